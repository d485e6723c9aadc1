"""The :class:`Custom` network: the user's model (a flax module via :func:`from_flax`, or
``init_fn`` / ``apply_fn`` / ``loss_fn``) as a :class:`sweepjax.models.network.Network`, with the
example shape it sees and the ``spec`` name it derives for itself. The contract, and how
names are registered, imported and checked against the data, are in
:mod:`sweepjax.models.custom`."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from sweepjax.errors import ConfigError
from sweepjax.models.builtin import l2_penalty
from sweepjax.models.network import DROPOUT_STREAM, scale_kernels, user_loss_t
from sweepjax.models.user_hp import loss_takes_hp, model_kw, takes_keyword

# A model with state keeps its member's dropout key (raw key bits) beside its variables:
# drawn once from the member's own init key, so a member's dropout masks depend on its id
# and the step only, never on which members train with it (NNX keeps its RNG streams as
# state the same way). Stored, checkpointed and resumed with the rest of the variables.
MEMBER_RNG = "member_rng"


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
      takes_hparams: ``apply_fn`` (and ``train_fn``) take an ``hparams`` keyword: they
        are called with this member's own hyperparameters ``{name: scalar}``
        (:mod:`sweepjax.models.user_hp`; default: whether ``apply_fn`` has it). A
        ``loss_fn`` with a third argument (or an ``hp`` keyword) receives them too.
      train_fn: for a model with state (BatchNorm statistics) or dropout:
        ``train_fn(variables, x[B, ...], key) -> (logits[B, K], updated)`` in training
        mode, where ``variables`` is what ``init_fn`` returns, a dict whose ``"params"``
        entry is trained (the other entries are the model's state) and ``updated`` the
        new values of some of the other entries (flax's ``mutable=`` output). With it,
        ``apply_fn(variables, x)`` is the evaluation mode (running statistics, no
        dropout). None: ``init_fn`` returns the trained parameters themselves.

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
    train_fn: Callable | None = None
    takes_hparams: bool | None = None

    def __post_init__(self):
        if self.takes_hparams is None:
            object.__setattr__(self, "takes_hparams", takes_keyword(self.apply_fn))
        for name in ("init_fn", "apply_fn"):
            if not callable(getattr(self, name)):
                raise ConfigError(f"Custom needs a callable {name}, got {getattr(self, name)!r}")
        if self.train_fn is not None and not callable(self.train_fn):
            raise ConfigError(f"Custom needs a callable train_fn, got {self.train_fn!r}")
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

    @property
    def stateful(self) -> bool:
        """Whether the member's tree holds model state beside its trained parameters
        (then the trainer uses :meth:`trainable`, :meth:`with_trainable` and
        :meth:`train_logits_t`)."""
        return self.train_fn is not None

    def init(self, key, num_features: int, hp):
        x = jnp.zeros((1, *self.shape(num_features)), jnp.float32)
        params = self.init_fn(key, x)
        if hp is not None:
            params = scale_kernels(params, hp.init_scale)
        if not self.stateful:
            return params
        bits = jax.random.fold_in(key, DROPOUT_STREAM)
        if jnp.issubdtype(bits.dtype, jax.dtypes.prng_key):
            bits = jax.random.key_data(bits)
        return {**params, MEMBER_RNG: bits}

    def _input(self, x_t):
        d, b = x_t.shape
        return jnp.reshape(x_t.T, (b, *self.shape(d)))

    def logits_t(self, params, x_t, hp, dropout_key=None):
        """Logits ``[K, B]`` in evaluation mode (a stateful model: running statistics, no
        dropout). ``dropout_key`` is given at training steps only: a model that takes
        ``hparams`` then gets the member's own values (at evaluation it is called
        without them, as dropout is off: evaluation is the same for every value)."""
        if self.stateful:
            params = {k: v for k, v in params.items() if k != MEMBER_RNG}
        kw = self._hp_kw(hp) if dropout_key is not None else {}
        return self.apply_fn(params, self._input(x_t), **kw).T

    def _hp_kw(self, hp) -> dict:
        """``hparams=`` for a model that takes it, at a training step."""
        if not self.takes_hparams or hp is None:
            return {}
        return model_kw(getattr(hp, "user", {}))

    @property
    def loss_takes_hp(self) -> str:
        """How the loss receives the member's own hyperparameters (``""``: it does not)."""
        return loss_takes_hp(self.loss_fn)

    def trainable(self, variables):
        """The trained part of a stateful member's tree (its ``"params"``)."""
        return variables["params"]

    def with_trainable(self, variables, params):
        return {**variables, "params": params}

    def train_logits_t(self, variables, x_t, hp, t):
        """Training-mode logits ``[K, B]`` at global step ``t`` and the member's tree with
        its state updated (BatchNorm statistics). The dropout key is
        ``fold_in(member key, t)``: the member's own stream."""
        key = jax.random.fold_in(jax.random.wrap_key_data(variables[MEMBER_RNG]), t)
        inner = {k: v for k, v in variables.items() if k != MEMBER_RNG}
        logits, updated = self.train_fn(inner, self._input(x_t), key, **self._hp_kw(hp))
        return logits.T, {**variables, **updated}

    def loss_t(self, logits_t, y, hp=None):
        """Per-example loss ``[B]`` (:func:`~sweepjax.models.network.user_loss_t`)."""
        return user_loss_t(self.loss_fn, logits_t, y, hp)

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


# The mode flags a linen ``__call__`` may take, with their training-mode value (the Flax
# examples' ``train``; ``deterministic`` is nn.Dropout's own word).
MODE_FLAGS = {"train": True, "deterministic": False}


def _mode_flag(module) -> str | None:
    try:
        names = inspect.signature(module.__call__).parameters
    except (TypeError, ValueError):
        return None
    return next((f for f in MODE_FLAGS if f in names), None)


def _mode(flag: str | None, training: bool) -> dict:
    if flag is None:
        return {}
    return {flag: MODE_FLAGS[flag] if training else not MODE_FLAGS[flag]}


def _flax_init(module, key, x):
    variables = module.init(key, x)
    extra = sorted(set(variables) - {"params"})
    if extra:
        raise ConfigError(
            f"{type(module).__name__} keeps variables {extra} besides params but its "
            "__call__ takes no `train` flag; add `train: bool` and pass it on "
            "(BatchNorm(use_running_average=not train)), as the Flax examples do"
        )
    if "params" not in variables:
        raise ConfigError(f"{type(module).__name__} has no parameters to train")
    return variables["params"]


def _flax_apply(module, params, x, **kw):
    return module.apply({"params": params}, x, **kw)


def _flax_init_vars(module, flag, key, x):
    """Every collection of ``module`` (``params``, ``batch_stats``, ...), built in
    evaluation mode (no dropout key needed)."""
    from flax.core import unfreeze

    variables = unfreeze(module.init(key, x, **_mode(flag, False)))
    if "params" not in variables:
        raise ConfigError(f"{type(module).__name__} has no parameters to train")
    return dict(variables)


def _flax_apply_vars(module, flag, variables, x, **kw):
    return module.apply(variables, x, **_mode(flag, False), **kw)


def _flax_train(module, flag, variables, x, key, **kw):
    mutable = [c for c in variables if c != "params"]
    out = module.apply(
        variables, x, **_mode(flag, True), mutable=mutable or False, rngs={"dropout": key}, **kw
    )
    return out if mutable else (out, {})


def from_flax(
    module,
    loss: Callable | None = None,
    input_shape: tuple[int, ...] | None = None,
    spec: str | None = None,
) -> Custom:
    """A :class:`Custom` network from a flax ``nn.Module`` instance whose ``__call__(x)``
    maps ``x[B, *input_shape]`` to logits ``[B, K]`` (see :mod:`sweepjax.models.custom` for the
    input shape, the loss and the regularised leaves).

    A module whose ``__call__`` takes a ``train`` (or ``deterministic``) flag is trained
    as the Flax examples do: ``apply({"params": p, "batch_stats": s}, x, train=True,
    mutable=["batch_stats"], rngs={"dropout": key})`` at each step, with one dropout
    stream per member, and evaluated with ``train=False`` (running statistics).

    Example::

      net = sweepjax.from_flax(MyCNN(), loss=my_per_example_loss)
      sweepjax.coarse(dataset="npz:digits.npz", model=net)
    """
    import flax.linen as nn

    if not isinstance(module, nn.Module):
        raise ConfigError(f"from_flax needs a flax nn.Module instance, got {module!r}")
    flag = _mode_flag(module)
    if flag is not None:  # a train/eval switch: BatchNorm statistics, dropout
        return Custom(
            init_fn=functools.partial(_flax_init_vars, module, flag),
            apply_fn=functools.partial(_flax_apply_vars, module, flag),
            loss_fn=loss,
            spec=spec,
            input_shape=input_shape,
            module=module,
            train_fn=functools.partial(_flax_train, module, flag),
            takes_hparams=takes_keyword(module.__call__),
        )
    return Custom(
        init_fn=functools.partial(_flax_init, module),
        apply_fn=functools.partial(_flax_apply, module),
        loss_fn=loss,
        spec=spec,
        input_shape=input_shape,
        module=module,
        takes_hparams=takes_keyword(module.__call__),
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


# --------------------------------------------------------------------------- adapters
def adapted(
    source, num_classes, fns: tuple, loss, spec: str, input_shape, takes_hparams: bool = False
) -> Custom:
    """The :class:`Custom` of a library adapter (:mod:`~sweepjax.models.nnx_net`,
    :mod:`~sweepjax.models.eqx_net`): ``fns`` is its ``(init, apply, train)`` written as
    ``f(source, num_classes, ...)``, bound here to the user's class, factory or instance;
    ``takes_hparams``: its ``__call__`` takes the member's own values (``hparams=``)."""
    init, apply, train = (functools.partial(f, source, num_classes) for f in fns)
    return Custom(
        init_fn=init,
        apply_fn=apply,
        train_fn=train,
        loss_fn=loss,
        spec=spec,
        input_shape=input_shape,
        module=source,
        takes_hparams=takes_hparams,
    )


def weights_spec(source, leaves) -> str:
    """``module:QualName#digest`` of a ready instance: its class's name and a hash of its
    weights ``leaves``, so two instances with other weights never share a name (a new
    process needs the object again)."""
    import numpy as np

    digest = hashlib.sha256(b"".join(np.asarray(v).tobytes() for v in leaves)).hexdigest()
    return f"{qualname(type(source))}#{digest[:10]}"
