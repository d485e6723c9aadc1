"""How the user's own hyperparameters (``hparams``) reach the user's code: a loss that
takes a third argument (or an ``hp`` keyword) and a model whose call takes an
``hparams`` keyword receive this member's values as ``{name: scalar}``, traced (new
values never recompile). A two-argument loss and a model without the keyword are called
as before."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping

# The keyword a model's call takes to receive the values.
MODEL_KEYWORD = "hparams"


def _params(fn) -> list[inspect.Parameter] | None:
    try:
        return list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return None


def loss_takes_hp(fn: Callable | None) -> str:
    """How ``loss_fn`` wants the values: ``"positional"`` (a third positional parameter),
    ``"keyword"`` (an ``hp`` keyword) or ``""`` (a two-argument loss: not at all)."""
    params = _params(fn) if fn is not None else None
    if not params:
        return ""
    if any(p.name == "hp" for p in params):
        return "keyword"
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) >= 3 or any(p.kind == p.VAR_POSITIONAL for p in params):
        return "positional"
    return ""


def call_loss(fn: Callable, how: str, logits, labels, values: Mapping | None):
    """``fn(logits, labels)`` with the member's ``values`` added as ``how`` says."""
    values = values if isinstance(values, Probe) else dict(values or {})
    if how == "positional":
        return fn(logits, labels, values)
    if how == "keyword":
        return fn(logits, labels, hp=values)
    return fn(logits, labels)


def takes_keyword(fn, name: str = MODEL_KEYWORD) -> bool:
    """Whether ``fn`` (a function, a bound method, a class: its ``__call__``) has a
    parameter ``name``."""
    target = fn.__call__ if isinstance(fn, type) else fn
    params = _params(target)
    return bool(params) and any(p.name == name for p in params)


def module_takes_hparams(source) -> bool:
    """Whether an NNX / Equinox module class or instance is called with ``hparams=`` (its
    ``__call__`` has it). A factory function is not inspected (its module is built
    later): False."""
    if isinstance(source, type):
        return takes_keyword(source)
    if callable(source) and not inspect.isfunction(source):
        return takes_keyword(type(source))
    return False


def model_kw(values: Mapping | None) -> dict:
    """The keyword arguments a model that takes ``hparams`` is called with."""
    return {} if values is None else {MODEL_KEYWORD: dict(values)}


class Probe(dict):
    """The values a loss is checked with before a sweep: any name reads as a scalar 0.1
    (the declared names are not known to the model check)."""

    def __missing__(self, key):
        import jax.numpy as jnp

        return jnp.float32(0.1)


def probe_loss(fn: Callable):
    """``fn`` as ``(logits, labels) -> [B]`` for the model check: a loss that takes the
    user's hyperparameters gets a :class:`Probe`."""
    how = loss_takes_hp(fn)
    return lambda logits, labels: call_loss(fn, how, logits, labels, None if not how else Probe())
