"""The user's own model, swept exactly like the built-in softmax and MLP.

A :class:`Custom` network wraps either a flax module (:func:`from_flax`) or a pair of
functions, ``init_fn(key, x[1, *input_shape]) -> params`` and
``apply_fn(params, x[B, *input_shape]) -> logits[B, K]``, plus an optional per-example
``loss_fn(logits[B, K], labels[B]) -> [B]`` (default: softmax cross-entropy; accuracy is
always ``argmax(logits) == label``). Everything else is unchanged: the swept values
(lr, l2, lr_decay, init_scale, momentum) are traced per member, one compiled program
trains the population, and store, verdicts, report, resume, refit and scale-out treat it
like a built-in. (``hidden`` and ``dropout`` are the built-in MLP's axes only.)

Contract, for ONE member (the trainer adds the member axis):

- input: the dataset's example shape (``DatasetInfo.input_shape``, e.g. ``(784,)`` for
  an npz of ``[N, 784]``), preprocessed (centred and scaled) as for the built-ins; a
  2-D example ``(H, W)`` gets a trailing channel axis, ``(H, W, 1)``, so flax's NHWC
  ``nn.Conv`` takes grayscale images unchanged. ``input_shape=`` overrides it.
- the l2 term ``sum(w**2) / 2`` and the init-scale axis act on the leaves named
  ``kernel`` (flax's ``Dense`` / ``Conv`` weights); biases and norm scales are neither
  regularised nor scaled. A model without such a leaf is refused.
- a flax module whose ``__call__`` takes a ``train`` (or ``deterministic``) flag may keep
  state (``batch_stats``) and use dropout: it is trained with ``train=True``,
  ``mutable=[its other collections]`` and ``rngs={"dropout": key}`` (one key stream per
  member, from its id and the step), and evaluated with ``train=False``. Its statistics
  travel with its weights (best checkpoint, store, resume, refit). Without such a flag a
  module may hold only ``params``: ``module.apply({"params": p}, x)``.

Flax NNX modules (:mod:`sweepjax.models.nnx_net`) and Equinox modules
(:mod:`sweepjax.models.eqx_net`) are adapted to the same contract: a class, or a factory
taking ``rngs`` (NNX) or ``key`` (Equinox), is built per member from its key and named
by ``package.module:Name``; a ready instance gives every member its weights (a note says
so) and is named with a fingerprint of them.

Names (the ``spec`` stored with a sweep): ``package.module:Name`` is imported with the
working directory on ``sys.path`` (as ``python -m`` does). ``Name`` may be a flax
``Module`` class (instantiated with no arguments, or ``num_classes=K`` when it has that
field), a module instance, a :class:`Custom`, or a function returning one of those
(called with ``num_classes=K`` when it takes that argument). An object passed to
``coarse(model=...)`` is registered under ``module:QualName`` of its class (or apply
function): a default-constructed module class stays importable by that name, so
``fine`` / ``--resume`` in a new process re-create it; any other object's spec ends in
``#`` and a fingerprint, and a new process needs ``model=`` again.

Example::

  class Net(nn.Module):
      @nn.compact
      def __call__(self, x):                       # [B, 28, 28, 1] -> [B, 10]
          x = nn.relu(nn.Conv(8, (3, 3))(x)).reshape((x.shape[0], -1))
          return nn.Dense(10)(x)

  res = sweepjax.coarse(dataset="mnist-sample", model=Net(), trials=32, steps=200)
  sweepjax.fine(parent=res.sweep_id)               # inherits the model

This module turns names into networks: the registry of Python objects, importing
``package.module:Name`` (:func:`resolve`), the ``ModelConfig`` of a flow's ``model=``,
and the checks against the data (:func:`check`, :func:`sizes`, :func:`prepare`). The
network class itself, :class:`Custom` and :func:`from_flax`, is
:mod:`sweepjax.models.custom_net` (re-exported here).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import inspect
import math
import os
import sys
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp

from sweepjax.config import MODELS, ModelConfig
from sweepjax.errors import ConfigError
from sweepjax.models.custom_net import Custom, from_flax, has_field, input_shape_for, qualname
from sweepjax.models.eqx_net import READY_NOTE as EQX_READY
from sweepjax.models.eqx_net import from_equinox, is_eqx, is_ready
from sweepjax.models.loss_ref import check_loss, loss_name, resolve_loss
from sweepjax.models.nnx_net import READY_NOTE, from_nnx, is_nnx, takes

# The MLP-only axes check lives with the typed sweep config (every config runs it);
# re-exported for the flows and the engine, which check a model before building one.
from sweepjax.sweep_config import check_axes  # noqa: F401

# --------------------------------------------------------------------------- registry
# spec -> the object passed through the Python API (this process).
_OBJECTS: dict[str, Custom] = {}
# (spec, num_classes, input_shape) -> (the unbound object, the bound network).
_BOUND: dict[tuple, tuple[Custom, Custom]] = {}


def register(model, loss: Callable | None = None) -> Custom:
    """The :class:`Custom` for a Python object (a flax module instance or a
    :class:`Custom`, with ``loss`` replacing its loss when given), remembered under its
    spec so :func:`resolve` (``fine``, ``resume``) finds the very same object."""
    import flax.linen as nn

    if isinstance(model, nn.Module):
        c = from_flax(model, loss=loss)
    elif is_nnx(model) or (callable(model) and takes(model, "rngs")):
        c = from_nnx(model, loss=loss)
    elif _eqx_like(model):
        c = from_equinox(model, loss=loss)
    elif isinstance(model, Custom):
        c = model if loss is None else dataclasses.replace(model, loss_fn=loss, spec=None)
    else:
        raise ConfigError(
            f"model must be 'softmax', 'mlp', 'package.module:Name', a flax nn.Module "
            f"instance, a flax nnx.Module class or instance or a sweepjax.Custom, got {model!r}"
        )
    old = _OBJECTS.get(c.spec)
    if old is not None and old.same(c):
        return old
    _OBJECTS[c.spec] = c
    return c


def model_config(model, hidden: int = 100, loss: Callable | None = None) -> ModelConfig:
    """The :class:`ModelConfig` for a flow's ``model=`` argument: ``"softmax"``,
    ``"mlp"``, ``"package.module:Name"`` (imported now, so a bad name fails before any
    data is read), a flax module instance or class, or a :class:`Custom`."""
    import flax.linen as nn

    if isinstance(model, type) and issubclass(model, nn.Module):
        model = qualname(model)
    elif _importable(model) and (is_nnx(model) or takes(model, "rngs") or _eqx_like(model)):
        model = qualname(model)  # an NNX / Equinox class or factory: built per member
    if not (isinstance(model, str) and model in MODELS) and hidden != ModelConfig.hidden:
        raise ConfigError(
            f"hidden width {hidden} is the built-in mlp's; give your own model its width "
            "as a field of the module instead"
        )
    if isinstance(model, str):
        if model in MODELS:  # a loss by its stored name (fine's parent) or the function
            name = loss if isinstance(loss, str) or loss is None else loss_name(loss)
            return ModelConfig(kind=model, hidden=hidden, loss=name)
        if loss is not None:
            raise ConfigError(
                f"loss= goes with a model object; for {model} export "
                "sweepjax.from_flax(Name(), loss=...) from your module and name that"
            )
        _lookup(model)
        return ModelConfig(kind="custom", spec=model)
    return ModelConfig(kind="custom", spec=register(model, loss).spec)


def _eqx_like(obj) -> bool:
    """An Equinox module class or instance, or (equinox imported) a factory taking ``key``."""
    return is_eqx(obj) or (
        "equinox" in sys.modules and inspect.isfunction(obj) and takes(obj, "key")
    )


def _importable(obj) -> bool:
    """Whether ``obj`` is a class or function a new process re-imports by its name."""
    if not (isinstance(obj, type) or inspect.isfunction(obj)) or "<locals>" in qualname(obj):
        return False
    mod = sys.modules.get(obj.__module__)
    named = getattr(mod, obj.__name__, None) if mod is not None else None
    return named is obj and obj.__module__ != "__main__"


def resolve(spec: str, num_classes: int, sample_shape=None) -> Custom:
    """The network named ``spec`` for ``num_classes`` classes and examples of shape
    ``sample_shape`` (the dataset's; None: the flat feature vector). The same arguments
    give the same object in a process (the compiled programs are reused).

    Raises ConfigError (one line) when the name cannot be imported, or was a Python
    object registered in another process."""
    shape = None if sample_shape is None else tuple(int(v) for v in sample_shape)
    key = (spec, int(num_classes), shape)
    base = _OBJECTS.get(spec)
    hit = _BOUND.get(key)
    if hit is not None and (base is None or hit[0] is base):
        return hit[1]
    if base is None:
        base = _coerce(_lookup(spec), spec, num_classes)
    in_shape = base.input_shape
    if in_shape is None and shape is not None:
        in_shape = input_shape_for(shape)
    bound = dataclasses.replace(base, num_classes=int(num_classes), input_shape=in_shape)
    _BOUND[key] = (base, bound)
    return bound


def _lookup(spec: str):
    """The object ``package.module:Name`` names (imported; the CWD on ``sys.path``)."""
    if "#" in spec:
        if spec in _OBJECTS:
            return _OBJECTS[spec]
        raise ConfigError(
            f"model {spec} was a Python object of another session, not an importable "
            "name; give `model` as package.module:Name; from Python, pass the object "
            "itself again"
        )
    mod_name, sep, attr = spec.partition(":")
    if not (sep and mod_name and attr):
        raise ConfigError(
            f"unknown model {spec!r}; choose softmax, mlp or package.module:Name "
            "(e.g. examples.my_cnn:SmallCNN)"
        )
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    try:
        obj = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise ConfigError(
            f"cannot import {mod_name!r} for model {spec} ({e}); run from the directory "
            "that holds it, or put it on PYTHONPATH"
        ) from None
    except Exception as e:  # the user's module itself failed at import
        raise ConfigError(
            f"importing {mod_name!r} for model {spec} failed: {type(e).__name__}: {_first_line(e)}"
        ) from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            hint = (
                " (a script's or notebook's __main__ is gone in a new process: give `model` as "
                "package.module:Name; from Python, pass the object itself again)"
                if mod_name == "__main__"
                else ""
            )
            raise ConfigError(f"{mod_name!r} has no attribute {attr!r} for model {spec}{hint}")
        obj = getattr(obj, part)
    return obj


def _coerce(obj, spec: str, num_classes: int | None) -> Custom:
    """A :class:`Custom` named ``spec`` from what ``spec`` names."""
    import flax.linen as nn

    what = (
        "a flax nn.Module or nnx.Module class or instance, a sweepjax.Custom, or a function "
        "returning one"
    )
    if is_nnx(obj) or (inspect.isfunction(obj) and takes(obj, "rngs")):
        return from_nnx(obj, spec=spec, num_classes=num_classes)
    if _eqx_like(obj):
        return from_equinox(obj, spec=spec, num_classes=num_classes)
    if isinstance(obj, type) and issubclass(obj, nn.Module):
        kw = {"num_classes": int(num_classes)} if has_field(obj, "num_classes") else {}
        try:
            obj = obj(**kw)
        except TypeError as e:
            raise ConfigError(
                f"{spec} cannot be built without arguments ({_first_line(e)}); give its "
                "fields defaults, or name an instance or a function that returns one"
            ) from None
    elif callable(obj) and not isinstance(obj, nn.Module | Custom):
        try:
            takes_k = "num_classes" in inspect.signature(obj).parameters
        except (TypeError, ValueError):
            takes_k = False
        try:
            obj = obj(num_classes=int(num_classes)) if takes_k else obj()
        except ConfigError:
            raise
        except Exception as e:
            raise ConfigError(
                f"calling {spec}() to build the model failed: {type(e).__name__}: {_first_line(e)}"
            ) from None
    if isinstance(obj, nn.Module):
        obj = from_flax(obj)
    elif is_nnx(obj):  # a function returned a ready instance
        return from_nnx(obj, spec=spec)
    elif is_eqx(obj):
        return from_equinox(obj, spec=spec)
    if not isinstance(obj, Custom):
        raise ConfigError(f"{spec} is a {type(obj).__name__}, not {what}")
    return dataclasses.replace(obj, spec=spec)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    line = text[0] if text else type(e).__name__
    return line if len(line) <= 200 else line[:197] + "..."


# --------------------------------------------------------------------------- checks
def check(net: Custom, num_features: int) -> None:
    """Check ``net`` against the data with :func:`jax.eval_shape` (no computation):
    the example shape fits ``num_features``, ``init`` takes it, the logits are
    ``[B, K]``, the loss is per example, and some leaf is a ``kernel``.

    Raises ConfigError (one line) otherwise."""
    shape = net.shape(num_features)
    name, k = net.spec, net.num_classes
    if math.prod(shape) != num_features:
        raise ConfigError(
            f"model {name} takes examples of shape {list(shape)} ({math.prod(shape)} values) "
            f"but the data has {num_features} features per example"
        )
    x1 = jax.ShapeDtypeStruct((1, *shape), jnp.float32)
    x2 = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    try:
        params = jax.eval_shape(net.init_fn, jax.random.key(0), x1)
        logits = jax.eval_shape(net.apply_fn, params, x2)
        if net.train_fn is not None:  # the training mode must give the same logits
            trained, _ = jax.eval_shape(net.train_fn, params, x2, jax.random.key(0))
            if getattr(trained, "shape", None) != getattr(logits, "shape", None):
                logits = trained
    except ConfigError:
        raise
    except Exception as e:
        raise ConfigError(
            f"model {name} cannot take the data's examples of shape [B, "
            f"{', '.join(map(str, shape))}]: {type(e).__name__}: {_first_line(e)}"
        ) from None
    if getattr(logits, "shape", None) not in ((2, k), *(((2,),) if k == 1 else ())):
        got = list(getattr(logits, "shape", [])) or type(logits).__name__
        raise ConfigError(
            f"model {name} maps a batch [2, {', '.join(map(str, shape))}] to {got}; "
            f"it must return logits [B, K] = [2, {k}] ({k} classes in the data)"
        )
    if net.loss_fn is not None:
        check_loss(net.loss_fn, logits, f"the loss of model {name}")
    paths = jax.tree_util.tree_leaves_with_path(params)
    if not any(getattr(p[-1], "key", None) == "kernel" for p, _ in paths):
        raise ConfigError(
            f"model {name} has no parameter named 'kernel': the l2 and init_scale axes act "
            "on those (flax Dense/Conv weights); name your weight leaves 'kernel'"
        )


class Sizes(NamedTuple):
    """One member's sizes, in values, from abstract evaluation on one example."""

    params: int
    activations: int  # every intermediate of ``apply_fn``, summed
    largest: int  # the largest single intermediate


@functools.lru_cache(maxsize=64)
def _forward(net: Custom, num_features: int):
    """``(abstract params, jaxpr of apply_fn)`` on one example (no computation)."""
    x1 = jax.ShapeDtypeStruct((1, *net.shape(num_features)), jnp.float32)
    params = jax.eval_shape(net.init_fn, jax.random.key(0), x1)
    return params, jax.make_jaxpr(net.apply_fn)(params, x1)


def sizes(net: Custom, num_features: int) -> Sizes:
    """``(parameters, activation values per example, largest activation)`` of one
    member, from abstract evaluation (the activations: every intermediate of
    ``apply_fn`` on one example; the largest: the biggest of them)."""
    params, jaxpr = _forward(net, num_features)
    n = sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(params))
    outs = [math.prod(v.aval.shape) for eqn in jaxpr.eqns for v in eqn.outvars]
    return Sizes(int(n), int(sum(outs)), int(max(outs, default=0)))


def primitives(net: Custom, num_features: int) -> frozenset[str]:
    """Names of the JAX primitives in ``apply_fn`` on one example, nested calls (jit,
    custom derivatives, loops) included: e.g. ``"conv_general_dilated"`` for a
    convolution."""
    return _names(_forward(net, num_features)[1].jaxpr)


def _names(jaxpr) -> frozenset[str]:
    out = set()
    for eqn in jaxpr.eqns:
        out.add(eqn.primitive.name)
        for v in eqn.params.values():
            for sub in v if isinstance(v, tuple | list) else (v,):
                inner = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr holds its Jaxpr
                if hasattr(inner, "eqns"):
                    out |= _names(inner)
    return frozenset(out)


def prepare(model: ModelConfig, dataset) -> list[str]:
    """Resolve and check a custom ``model`` (a built-in's: its loss) against ``dataset``
    before anything is run or stored. Raises ConfigError (one line). Returns the notes
    for the user: a ready NNX instance gives every member the same initial weights."""
    if model.kind != "custom":
        if model.loss is not None:
            k = dataset.num_classes
            logits = jax.ShapeDtypeStruct((2, k), jnp.float32)
            check_loss(resolve_loss(model.loss), logits, f"loss {model.loss}")
        return []
    net = resolve(model.spec, dataset.num_classes, dataset.info.input_shape)
    check(net, dataset.num_features)
    from flax import nnx

    if isinstance(net.module, nnx.Module):
        return [READY_NOTE.format(spec=net.spec)]
    return [EQX_READY.format(spec=net.spec)] if is_ready(net.module) else []
