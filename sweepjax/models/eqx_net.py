"""Equinox modules as a :class:`~sweepjax.models.custom_net.Custom` network, the way
Equinox teaches them: ``eqx.partition(model, eqx.is_inexact_array)`` into the trained
arrays and the rest, ``eqx.combine`` inside a pure function, the model called on ONE
example under ``jax.vmap`` over the batch (``axis_name="batch"``, the name Equinox's
BatchNorm examples use).

- A ``key`` is passed to models whose ``__call__`` takes one (one key per example, split
  from the member's step key); ``eqx.nn.State`` is threaded to models whose
  ``__call__`` takes ``state`` (built with ``eqx.nn.make_with_state``).
- Modes: ``eqx.nn.inference_mode(model, False)`` for a step, ``True`` for evaluation
  (running statistics, no dropout).
- One member's tree: ``{"params": {"<i><path>": {name: array}}, "state": {"<i>": array}}``.
  A weight matrix or filter (a leaf named ``weight`` with two or more axes, as in
  ``eqx.nn.Linear`` / ``Conv``) is named ``kernel`` there, so the L2 and init-scale axes
  act on it and not on biases or norm scales (1-D ``weight`` leaves).
- Images reach the model channels-first, ``[C, H, W]``, as Equinox convolutions take them.

Per-member weights come from the constructor: a class or a factory taking ``key`` is
called with ``key=member key``; a ready instance gives every member its weights (the
plan's note says so).
"""

from __future__ import annotations

import sys
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sweepjax.errors import ConfigError
from sweepjax.models.nnx_net import takes
from sweepjax.models.user_hp import module_takes_hparams

READY_NOTE = (
    "note: model {spec} is a ready Equinox instance, so every member starts from its "
    "weights; pass its class or a factory taking `key` for per-member initial weights"
)
AXIS = "batch"


def is_eqx(obj) -> bool:
    """Whether ``obj`` is an Equinox module class or instance (never imports equinox)."""
    eqx = sys.modules.get("equinox")
    if eqx is None:
        return False
    return isinstance(obj, eqx.Module) or (isinstance(obj, type) and issubclass(obj, eqx.Module))


def is_ready(obj) -> bool:
    return is_eqx(obj) and not isinstance(obj, type)


def _build(source, num_classes, key):
    """``(model, state)`` from the constructor with ``key`` (a ready instance: itself)."""
    import equinox as eqx

    if is_ready(source):
        return source, eqx.nn.State(source)
    kw = {"num_classes": int(num_classes)} if num_classes and takes(source, "num_classes") else {}
    return eqx.nn.make_with_state(source)(key=key, **kw)


# (id(source), num_classes) -> (source, template): by identity, since a ready Equinox
# instance hashes by its (array) fields. Like the registries of custom.py, it grows by one
# entry per model object the process resolves (and keeps that object alive).
_TEMPLATES: dict[tuple, tuple] = {}


def _template(source, num_classes):
    """``(static part, params treedef, param names, state treedef, calls)`` from one
    concrete build (the static part holds no trained array)."""
    hit = _TEMPLATES.get((id(source), num_classes))
    if hit is not None and hit[0] is source:
        return hit[1]
    out = _make_template(source, num_classes)
    _TEMPLATES[(id(source), num_classes)] = (source, out)
    return out


def _make_template(source, num_classes):
    import equinox as eqx

    try:  # one compiled program, not one per operation of the constructor
        model, state = eqx.filter_jit(lambda k: _build(source, num_classes, k))(jax.random.key(0))
    except Exception as e:
        name = getattr(source, "__qualname__", type(source).__name__)
        raise ConfigError(
            f"building Equinox model {name} with key= failed: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    params, static = eqx.partition(model, eqx.is_inexact_array)
    flat, tree = jax.tree_util.tree_flatten_with_path(params)
    names = tuple(_name(i, path, leaf) for i, (path, leaf) in enumerate(flat))
    calls = (takes(model.__call__, "state"), takes(model.__call__, "key"))
    return static, tree, names, jax.tree.structure(state), calls


def _name(i, path, leaf) -> tuple[str, str]:
    last = getattr(path[-1], "name", None) or str(path[-1])
    if last == "weight" and np.ndim(leaf) >= 2:
        last = "kernel"
    return f"{i:04d}{jax.tree_util.keystr(path[:-1])}", last


def _named(template, params, state) -> dict:
    _, _, names, _, _ = template
    leaves = jax.tree.leaves(params)
    return {
        "params": {outer: {inner: v} for (outer, inner), v in zip(names, leaves, strict=True)},
        "state": {f"{i:04d}": v for i, v in enumerate(jax.tree.leaves(state))},
    }


def eqx_init(source, num_classes, key, x):
    """One member's tree from ``key`` (``x``, an example batch, is unused)."""
    import equinox as eqx

    model, state = _build(source, num_classes, key)
    return _named(_template(source, num_classes), eqx.filter(model, eqx.is_inexact_array), state)


def _forward(source, num_classes, variables, x, key, training: bool, extra=None):
    import equinox as eqx

    static, tree, names, state_tree, (uses_state, uses_key) = _template(source, num_classes)
    leaves = [variables["params"][outer][inner] for outer, inner in names]
    model = eqx.combine(jax.tree.unflatten(tree, leaves), static)
    model = eqx.nn.inference_mode(model, value=not training)
    state = jax.tree.unflatten(
        state_tree, [variables["state"][k] for k in sorted(variables["state"])]
    )
    if x.ndim == 4:  # [B, H, W, C] -> [B, C, H, W]: Equinox convolutions are channels-first
        x = jnp.moveaxis(x, -1, 1)
    keys = jax.random.split(key, x.shape[0]) if (uses_key and key is not None) else None
    extra = extra or {}  # hparams= at training steps, for a model that takes it
    kw = lambda k: {"key": k, **extra} if uses_key else dict(extra)  # noqa: E731
    if uses_state:
        out, state = jax.vmap(
            lambda xi, ki: model(xi, state, **kw(ki)),
            in_axes=(0, None if keys is None else 0),
            out_axes=(0, None),
            axis_name=AXIS,
        )(x, keys)
    else:
        out = jax.vmap(
            lambda xi, ki: model(xi, **kw(ki)), in_axes=(0, None if keys is None else 0)
        )(x, keys)
    return out, state


def eqx_apply(source, num_classes, variables, x):
    """Evaluation-mode logits (``inference_mode(model, True)``)."""
    return _forward(source, num_classes, variables, x, None, False)[0]


def eqx_train(source, num_classes, variables, x, key, **kw):
    """Training-mode logits and the new ``eqx.nn.State`` (``kw``: ``hparams=``)."""
    logits, state = _forward(source, num_classes, variables, x, key, True, kw)
    return logits, {"state": {f"{i:04d}": v for i, v in enumerate(jax.tree.leaves(state))}}


def eqx_spec(source) -> str:
    from sweepjax.models.custom_net import qualname, weights_spec

    if not is_ready(source):
        return qualname(source)
    import equinox as eqx

    return weights_spec(source, jax.tree.leaves(eqx.filter(source, eqx.is_array)))


def from_equinox(
    source, loss: Callable | None = None, input_shape=None, spec=None, num_classes=None
):
    """A :class:`~sweepjax.models.custom_net.Custom` from an Equinox module class, a factory
    ``f(key) -> module`` (both given ``num_classes=K`` when they take it) or a ready
    instance; ``model(x[*input_shape]) -> logits[K]`` on ONE example.

    Example::

      class MLP(eqx.Module):
          l1: eqx.nn.Linear
          l2: eqx.nn.Linear
          def __init__(self, num_classes=10, *, key):
              k1, k2 = jax.random.split(key)
              self.l1 = eqx.nn.Linear(784, 128, key=k1)
              self.l2 = eqx.nn.Linear(128, num_classes, key=k2)
          def __call__(self, x):
              return self.l2(jax.nn.relu(self.l1(jnp.ravel(x))))

      sweepjax.coarse(dataset="mnist-sample", model=MLP)
    """
    from sweepjax.models.custom_net import adapted

    if not is_ready(source) and not takes(source, "key"):
        raise ConfigError(
            f"{getattr(source, '__qualname__', source)} takes no `key`; give its constructor "
            "`*, key` (as Equinox modules do), or pass a ready instance"
        )
    fns = (eqx_init, eqx_apply, eqx_train)
    spec = spec or eqx_spec(source)
    hp = module_takes_hparams(source)
    return adapted(source, num_classes, fns, loss, spec, input_shape, takes_hparams=hp)
