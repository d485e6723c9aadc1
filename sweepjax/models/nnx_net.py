"""Flax NNX modules as a :class:`~sweepjax.models.custom_net.Custom` network, the way NNX
teaches them: ``nnx.split(model, nnx.Param, nnx.RngState, ...)`` into pure state, a pure
function of that state, ``nnx.merge`` inside it.

One member's tree is ``{"params": <nnx.Param values>, "state": <every other variable but
the RNG streams: nnx.BatchStat, ...>}`` as pure dicts (``nnx.to_pure_dict``), plus the
member's dropout key (see ``custom_net.MEMBER_RNG``). The module's RNG streams are not
kept: at a training step every stream is reset to ``fold_in(step key, i)`` (the member's
own key folded with the step), so each member has its own dropout stream whatever
population it trains in. Modes switch as NNX does: ``model.train()`` for a step,
``model.eval()`` (running statistics, no dropout) for evaluation.

Per-member weights come from the model's own constructor: a class or a factory taking
``rngs`` is built with ``rngs=nnx.Rngs(member key)``. A ready instance gives every member
its weights (the note :data:`READY_NOTE` says so).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable

import jax
import jax.numpy as jnp

from sweepjax.errors import ConfigError
from sweepjax.models.user_hp import module_takes_hparams

READY_NOTE = (
    "note: model {spec} is a ready NNX instance, so every member starts from its weights; "
    "pass its class or a factory taking `rngs` for per-member initial weights"
)


def is_nnx(obj) -> bool:
    """Whether ``obj`` is an NNX module class or instance (flax.nnx imported lazily)."""
    from flax import nnx

    return isinstance(obj, nnx.Module) or (isinstance(obj, type) and issubclass(obj, nnx.Module))


def takes(fn, name: str) -> bool:
    """Whether ``fn`` (a function, or a class's constructor) has a parameter ``name``."""
    try:
        target = fn.__init__ if isinstance(fn, type) else fn
        return name in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def _factory(source, num_classes):
    """``rngs -> module`` from a class (with ``num_classes=K`` when its constructor takes
    it) or a factory taking ``rngs``; None for a ready instance."""
    from flax import nnx

    if isinstance(source, nnx.Module):
        return None
    kw = {"num_classes": int(num_classes)} if num_classes and takes(source, "num_classes") else {}
    return lambda rngs: source(rngs=rngs, **kw)


def _parts(module):
    """``(graphdef, params, rng streams, other state)`` of ``module``."""
    from flax import nnx

    return nnx.split(module, nnx.Param, nnx.RngState, ...)


@functools.lru_cache(maxsize=32)
def _template(source, num_classes):
    """The graph and abstract state of the model (built once, abstractly)."""
    from flax import nnx

    make = _factory(source, num_classes)
    if make is None:
        return _parts(source)
    try:
        return _parts(nnx.eval_shape(lambda: make(nnx.Rngs(0))))
    except Exception as e:
        raise ConfigError(
            f"building NNX model {getattr(source, '__qualname__', source)} with rngs= failed: "
            f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
        ) from None


def to_pure(state) -> dict:
    """``state`` (an nnx.State) as a plain nested dict of arrays. A function of the
    package from flax 0.10.4 (the method it replaces warns there); a method of the
    State before (flax 0.10.0, our floor)."""
    from flax import nnx

    fn = getattr(nnx, "to_pure_dict", None)
    return fn(state) if fn is not None else state.to_pure_dict()


def replace_by_pure(state, pure) -> None:
    """Write the values of the plain dict ``pure`` into the nnx.State ``state``, in place
    (as :func:`to_pure`: the package's function where it has one, else the method)."""
    from flax import nnx

    fn = getattr(nnx, "replace_by_pure_dict", None)
    if fn is not None:
        fn(state, pure)
    else:
        state.replace_by_pure_dict(pure)


def _filled(abstract, pure):
    """A copy of the abstract nnx.State ``abstract`` holding the values of ``pure``."""

    state = jax.tree.map(lambda a: a, abstract)
    replace_by_pure(state, pure)
    return state


def _streams(abstract_rngs, key):
    """Every RNG stream of the model restarted at ``fold_in(key, i)``, count 0."""

    pure = to_pure(abstract_rngs)
    flat, tree = jax.tree_util.tree_flatten_with_path(pure)
    new = [
        jax.random.fold_in(key, i)
        if getattr(path[-1], "key", None) == "key"
        else jnp.zeros(leaf.shape, leaf.dtype)
        for i, (path, leaf) in enumerate(flat)
    ]
    return _filled(abstract_rngs, jax.tree_util.tree_unflatten(tree, new))


def nnx_init(source, num_classes, key, x):
    """One member's tree, built with ``rngs=nnx.Rngs(key)`` (a ready instance: its own
    values). ``x`` (an example batch) is unused: NNX modules know their shapes."""
    from flax import nnx

    make = _factory(source, num_classes)
    module = source if make is None else make(nnx.Rngs(key))
    _, params, _, rest = _parts(module)
    return {"params": to_pure(params), "state": to_pure(rest)}


def _merged(source, num_classes, variables, key):
    from flax import nnx

    graph, params, rngs, rest = _template(source, num_classes)
    return nnx.merge(
        graph,
        _filled(params, variables["params"]),
        _streams(rngs, key),
        _filled(rest, variables["state"]),
    )


def nnx_apply(source, num_classes, variables, x):
    """Evaluation-mode logits: ``model.eval()`` (running statistics, no dropout)."""
    model = _merged(source, num_classes, variables, jax.random.key(0))
    model.eval()
    return model(x)


def nnx_train(source, num_classes, variables, x, key, **kw):
    """Training-mode logits (``model.train()``, dropout from ``key``) and the new state;
    ``kw``: ``hparams=`` for a model that takes it."""

    model = _merged(source, num_classes, variables, key)
    model.train()
    logits = model(x, **kw)
    return logits, {"state": to_pure(_parts(model)[3])}


def nnx_spec(source) -> str:
    """``module:QualName`` of a class or factory; an instance's adds a fingerprint of its
    weights (a new process needs the object again)."""
    from flax import nnx

    from sweepjax.models.custom_net import qualname, weights_spec

    if not isinstance(source, nnx.Module):
        return qualname(source)
    return weights_spec(source, jax.tree.leaves(to_pure(_parts(source)[1])))


def from_nnx(source, loss: Callable | None = None, input_shape=None, spec=None, num_classes=None):
    """A :class:`~sweepjax.models.custom_net.Custom` from an NNX module class, a factory
    ``f(rngs) -> module`` (both given ``num_classes=K`` when they take it) or a ready
    instance. ``model(x[B, *input_shape]) -> logits[B, K]``.

    Example::

      class Net(nnx.Module):
          def __init__(self, num_classes=10, *, rngs):
              self.l1 = nnx.Linear(784, 128, rngs=rngs)
              self.bn = nnx.BatchNorm(128, rngs=rngs)
              self.drop = nnx.Dropout(0.2, rngs=rngs)
              self.l2 = nnx.Linear(128, num_classes, rngs=rngs)
          def __call__(self, x):
              return self.l2(self.drop(nnx.relu(self.bn(self.l1(x)))))

      sweepjax.coarse(dataset="mnist-sample", model=Net)   # per-member weights
    """
    from flax import nnx

    from sweepjax.models.custom_net import adapted

    if not (isinstance(source, nnx.Module) or callable(source)):
        raise ConfigError(f"from_nnx needs an NNX module class, factory or instance: {source!r}")
    if not isinstance(source, nnx.Module) and not takes(source, "rngs"):
        raise ConfigError(
            f"{getattr(source, '__qualname__', source)} takes no `rngs`; give its "
            "constructor `*, rngs: nnx.Rngs` (as NNX modules do), or pass a ready instance"
        )
    fns = (nnx_init, nnx_apply, nnx_train)
    spec = spec or nnx_spec(source)
    hp = module_takes_hparams(source)
    return adapted(source, num_classes, fns, loss, spec, input_shape, takes_hparams=hp)
