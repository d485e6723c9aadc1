"""The :class:`Custom` network: the user's model (a flax module via :func:`from_flax`, or
``init_fn`` / ``apply_fn`` / ``loss_fn``) as a :class:`sweepjax.models.network.Network`, with the
example shape it sees and the ``spec`` name it derives for itself. The contract, and how
names are registered, imported and checked against the data, are in
:mod:`sweepjax.models.custom`."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax.numpy as jnp

from sweepjax.errors import ConfigError
from sweepjax.models.builtin import l2_penalty
from sweepjax.models.network import cross_entropy_t, scale_kernels


def input_shape_for(sample_shape) -> tuple[int, ...]:
    """The shape a custom model sees for one example of shape ``sample_shape``:
    ``(H, W)`` gains a channel axis ``(H, W, 1)`` (flax convolutions are NHWC); any
    other shape is kept."""
    s = tuple(int(v) for v in sample_shape)
    return (*s, 1) if len(s) == 2 else s


@dataclass(frozen=True, eq=False)
class Custom:
    """The user's model as a :class:`sweepjax.models.network.Network` (hashed by identity:
    :func:`sweepjax.models.custom.resolve` returns the same object for the same spec, data shape
    and class count, so a coarse -> fine chain in one process reuses its compiled
    programs).

    Attributes:
      init_fn: ``init_fn(key, x[1, *input_shape]) -> params`` (a pytree).
      apply_fn: ``apply_fn(params, x[B, *input_shape]) -> logits[B, K]``.
      loss_fn: ``loss_fn(logits[B, K], labels[B]) -> [B]`` per-example loss, or None for
        softmax cross-entropy. It should be >= 0 like cross-entropy: the divergence rule
        compares it with ``explode_factor`` times its first value.
      spec: the name stored with the sweep (default: derived, see :mod:`sweepjax.models.custom`).
      input_shape: the example shape ``apply_fn`` takes (None: from the data).
      num_classes: ``K``, set by :func:`sweepjax.models.custom.resolve`.
      module: the flax module :func:`from_flax` wrapped (None for plain functions).

    Example::

      def init(key, x):
          return {"dense": {"kernel": 0.01 * jax.random.normal(key, (x.shape[-1], 10)),
                            "bias": jnp.zeros(10)}}

      def apply(p, x):
          return x @ p["dense"]["kernel"] + p["dense"]["bias"][None, :]

      sweepjax.coarse(dataset="npz:data.npz", model=sweepjax.Custom(init, apply))
    """

    init_fn: Callable
    apply_fn: Callable
    loss_fn: Callable | None = None
    spec: str | None = None
    input_shape: tuple[int, ...] | None = None
    num_classes: int | None = None
    module: Any = None

    def __post_init__(self):
        for name in ("init_fn", "apply_fn"):
            if not callable(getattr(self, name)):
                raise ConfigError(f"Custom needs a callable {name}, got {getattr(self, name)!r}")
        if self.loss_fn is not None and not callable(self.loss_fn):
            raise ConfigError(f"loss must be callable, got {self.loss_fn!r}")
        if self.input_shape is not None:
            object.__setattr__(self, "input_shape", tuple(int(v) for v in self.input_shape))
        if self.spec is None:
            object.__setattr__(self, "spec", _auto_spec(self))

    # ------------------------------------------------------------------ Network
    def shape(self, num_features: int) -> tuple[int, ...]:
        """The example shape ``apply_fn`` takes (``(num_features,)`` when unknown)."""
        return self.input_shape if self.input_shape is not None else (int(num_features),)

    def init(self, key, num_features: int, hp):
        x = jnp.zeros((1, *self.shape(num_features)), jnp.float32)
        params = self.init_fn(key, x)
        return params if hp is None else scale_kernels(params, hp.init_scale)

    def logits_t(self, params, x_t, hp, dropout_key=None):
        d, b = x_t.shape
        logits = self.apply_fn(params, jnp.reshape(x_t.T, (b, *self.shape(d))))
        return logits.T

    def loss_t(self, logits_t, y):
        if self.loss_fn is None:
            return cross_entropy_t(logits_t, y)
        return self.loss_fn(logits_t.T, y)

    def penalty(self, params):
        return l2_penalty(params)

    # ------------------------------------------------------------------ identity
    def same(self, other: Custom) -> bool:
        """Whether ``other`` is the same model (then the registry keeps the first object)."""
        if not isinstance(other, Custom) or self.spec != other.spec:
            return False
        fns = self.loss_fn is other.loss_fn and self.input_shape == other.input_shape
        if self.module is not None or other.module is not None:
            return fns and self.module == other.module
        return fns and self.init_fn is other.init_fn and self.apply_fn is other.apply_fn


def _flax_init(module, key, x):
    variables = module.init(key, x)
    extra = sorted(set(variables) - {"params"})
    if extra:
        raise ConfigError(
            f"{type(module).__name__} keeps variables {extra} besides params; sweepjax "
            "trains params only (use LayerNorm, or BatchNorm(use_running_average=True))"
        )
    if "params" not in variables:
        raise ConfigError(f"{type(module).__name__} has no parameters to train")
    return variables["params"]


def _flax_apply(module, params, x):
    return module.apply({"params": params}, x)


def from_flax(
    module,
    loss: Callable | None = None,
    input_shape: tuple[int, ...] | None = None,
    spec: str | None = None,
) -> Custom:
    """A :class:`Custom` network from a flax ``nn.Module`` instance whose ``__call__(x)``
    maps ``x[B, *input_shape]`` to logits ``[B, K]`` (see :mod:`sweepjax.models.custom` for the
    input shape, the loss and the regularised leaves).

    Example::

      net = sweepjax.from_flax(MyCNN(), loss=my_per_example_loss)
      sweepjax.coarse(dataset="npz:digits.npz", model=net)
    """
    import flax.linen as nn

    if not isinstance(module, nn.Module):
        raise ConfigError(f"from_flax needs a flax nn.Module instance, got {module!r}")
    return Custom(
        init_fn=functools.partial(_flax_init, module),
        apply_fn=functools.partial(_flax_apply, module),
        loss_fn=loss,
        spec=spec,
        input_shape=input_shape,
        module=module,
    )


# --------------------------------------------------------------------------- spec
def qualname(obj) -> str:
    return f"{getattr(obj, '__module__', None) or '?'}:{getattr(obj, '__qualname__', '?')}"


def _fingerprint(*parts) -> str:
    # Memory addresses in reprs (functions held as module attributes) differ per process.
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", "\x1f".join(str(p) for p in parts))
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def _fn_name(fn) -> str:
    if fn is None:
        return "-"
    if isinstance(fn, functools.partial):
        return f"partial({_fn_name(fn.func)}, {fn.args!r}, {fn.keywords!r})"
    return qualname(fn) if hasattr(fn, "__qualname__") else repr(fn)


def _default_of(cls, num_classes):
    """The instance ``pkg.mod:Cls`` resolves to (None when it needs other arguments)."""
    kw = {"num_classes": num_classes} if has_field(cls, "num_classes") else {}
    try:
        return cls(**kw)
    except Exception:  # a required field without default: not importable by name alone
        return None


def has_field(cls, name: str) -> bool:
    return dataclasses.is_dataclass(cls) and any(f.name == name for f in dataclasses.fields(cls))


def _auto_spec(c: Custom) -> str:
    """``module:QualName`` when that name re-creates ``c`` (a module class's default
    instance, default loss and shape); otherwise that name plus ``#fingerprint``."""
    if c.module is not None:
        cls = type(c.module)
        base = qualname(cls)
        k = getattr(c.module, "num_classes", None)
        plain = c.loss_fn is None and c.input_shape is None and "<locals>" not in base
        if plain and _default_of(cls, k) == c.module:
            return base
        return f"{base}#{_fingerprint(repr(c.module), _fn_name(c.loss_fn), c.input_shape)}"
    parts = (_fn_name(c.init_fn), _fn_name(c.apply_fn), _fn_name(c.loss_fn), c.input_shape)
    return f"{qualname(c.apply_fn)}#{_fingerprint(*parts)}"
