"""Any optax optimizer factory (``optax.adamw``, ``pkg.mod:fn``) as a member's optimizer,
its float arguments traced per member the way ``optax.inject_hyperparams`` does.

``inject_hyperparams(factory)`` keeps every numeric argument (given or default) in the
optimizer state as an array, so it is the member's own and new values never recompile.
At every step the member's values are written there before the update:

- ``learning_rate``: the member's scheduled rate (``hp.lr`` times the ``lr_decay``
  schedule), as for the built-in optimizers;
- ``b1`` (or ``momentum``): ``hp.momentum`` when the factory takes it with a number as
  its default (the flow sets the fixed value to that default unless ``momentum`` is
  given);
- any other argument named as one of the user's own hyperparameters (``hparams``:
  ``weight_decay``, ``b2``, ``eps``, ...): that value; the rest keep the factory's
  defaults.

The built-in names (``sgd``, ``momentum``, ``adam``) are not factories: they keep their
own path (:func:`sweepjax.engine.member.direction`), unchanged.
"""

from __future__ import annotations

import functools
import importlib
import inspect
from collections.abc import Callable

import jax.numpy as jnp
import optax

from sweepjax.errors import ConfigError

BUILTIN = ("sgd", "momentum", "adam")
# The factory arguments the momentum axis drives, in the order looked for.
MOMENTUM_ARGS = ("b1", "momentum")


def is_factory(name: str) -> bool:
    """Whether the optimizer ``name`` is a user's factory (not a built-in name)."""
    return name not in BUILTIN


@functools.lru_cache(maxsize=64)
def factory(name: str) -> Callable:
    """The factory named ``name`` (``optax.adamw`` or ``pkg.mod:fn``), imported; one line
    naming what is wrong otherwise."""
    mod, sep, attr = name.partition(":")
    if not sep:
        mod, _, attr = name.rpartition(".")
    if not mod or not attr:
        raise ConfigError(
            f"`optimizer` must be sgd, momentum, adam or a factory such as optax.adamw or "
            f"pkg.mod:fn, got {name!r}"
        )
    try:
        fn = importlib.import_module(mod)
        for part in attr.split("."):
            fn = getattr(fn, part)
    except ImportError as e:
        raise ConfigError(f"`optimizer` {name}: cannot import {mod} ({e})") from None
    except AttributeError:
        raise ConfigError(f"`optimizer` {name}: {mod} has no {attr}") from None
    params = _params(fn)
    if not callable(fn) or params is None or "learning_rate" not in params:
        raise ConfigError(
            f"`optimizer` {name} is not an optax optimizer factory (a function taking "
            "learning_rate and returning a GradientTransformation)"
        )
    return fn


def _params(fn) -> dict[str, inspect.Parameter] | None:
    try:
        return dict(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return None


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def momentum_arg(name: str) -> tuple[str | None, float | None]:
    """``(argument, default)`` of the factory's momentum (``b1`` or ``momentum``); the
    argument is None when it has none, the default None when it is not a number (optax's
    sgd: momentum off)."""
    params = _params(factory(name)) or {}
    for arg in MOMENTUM_ARGS:
        if arg in params:
            d = params[arg].default
            return arg, float(d) if _numeric(d) else None
    return None, None


def has_momentum(name: str) -> bool:
    """Whether optimizer ``name`` uses the momentum axis (the built-in momentum and adam;
    a factory whose b1 / momentum defaults to a number)."""
    if not is_factory(name):
        return name != "sgd"
    try:
        return momentum_arg(name)[1] is not None
    except ConfigError:  # a stored sweep whose factory no longer imports
        return True


def _values(name: str, hp, lr) -> dict:
    """The member's values of the factory's wired arguments (see the module doc)."""
    params = _params(factory(name)) or {}
    out = {"learning_rate": lr}
    arg, default = momentum_arg(name)
    if arg is not None and default is not None:
        out[arg] = hp.momentum
    for k, v in getattr(hp, "user", {}).items():
        if k in params and k not in out and k not in MOMENTUM_ARGS:
            out[k] = v
    # As arrays: inject_hyperparams traces only numbers and arrays (a NumPy scalar would
    # be taken as a static argument).
    return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}


def transform(name: str, hp, lr) -> optax.GradientTransformation:
    """The member's optimizer: ``inject_hyperparams(factory)`` at its values."""
    return optax.inject_hyperparams(factory(name))(**_values(name, hp, lr))


def init(name: str, hp, params):
    """The member's optimizer state (its values as traced arrays in ``hyperparams``)."""
    return transform(name, hp, hp.lr).init(params)


def update(name: str, hp, lr_t, grads, state, params):
    """``(updates, state)`` of one step at the member's scheduled rate ``lr_t``: the
    member's current values written into the state first (a PBT copy carries its
    donor's state but its own values). The updates include the rate and sign."""
    values = _values(name, hp, lr_t)
    old = state.hyperparams
    new = {k: jnp.asarray(values[k], old[k].dtype) if k in values else v for k, v in old.items()}
    state = state._replace(hyperparams=new)
    return transform(name, hp, lr_t).update(grads, state, params)
