"""The user's own hyperparameters (the ``hparams`` option) in a plan: which are searched
(axes of the :class:`~sweepjax.config.SearchSpace`, drawn after the built-in ones) and
which are fixed (``TrainConfig.hparams``, every member's value, still traced), for a
coarse sweep and for a fine round over its parent's refined box."""

from __future__ import annotations

from sweepjax.config import Range, SearchSpace
from sweepjax.engine import optimizers
from sweepjax.errors import ConfigError


def split(hparams) -> tuple[dict[str, Range], dict[str, float]]:
    """``(searched, fixed)`` of the option's ``((name, Range | float), ...)``."""
    pairs = dict(hparams or ())
    searched = {n: v for n, v in pairs.items() if isinstance(v, Range)}
    return searched, {n: float(v) for n, v in pairs.items() if not isinstance(v, Range)}


def fine_user(space: SearchSpace, given, inherited) -> tuple[SearchSpace, dict[str, float], str]:
    """The fine round's box and fixed values of the user's hyperparameters: the parent's
    refined box (already in ``space``) and fixed values (``inherited``, the parent's
    resolved option), each replaced by the value given now (``given``: a box replaces
    or adds the axis, a number fixes it). Returns the words that say what was replaced."""
    _, fixed = split(inherited)
    why = ""
    for name, v in dict(given or ()).items():
        if isinstance(v, Range):
            space = space.with_axis(name, v)
            fixed.pop(name, None)
            why += f"; {name}: the given `hparams` [{v.lo:g}, {v.hi:g}]"
        else:
            space = space.with_axis(name, None)
            fixed[name] = float(v)
            why += f"; {name}: fixed at {v:g} by `hparams`"
    fixed = {n: v for n, v in fixed.items() if n not in dict(space.user)}
    return space, fixed, why


def resolved(space: SearchSpace, fixed: dict[str, float]) -> tuple | None:
    """The option as the sweep runs it (stored; what a fine round inherits): searched
    axes as their boxes, fixed ones as numbers; None when there is none."""
    out = {**dict(space.user), **fixed}
    return tuple(sorted(out.items())) or None


def factory_momentum(optimizer: str, searched: Range | None, fixed: dict) -> dict:
    """The fixed axes with an optax factory's momentum settled (built-in optimizers: as
    they are). The factory is imported now (a bad name fails in one line before anything
    runs). Its ``b1`` / ``momentum`` default becomes the fixed momentum unless the user
    gave one, so an unswept factory trains at its own defaults; a factory whose momentum
    is off by default (optax.sgd: None) or that has none refuses a given momentum."""
    if not optimizers.is_factory(optimizer):
        return fixed
    optimizers.factory(optimizer)
    arg, default = optimizers.momentum_arg(optimizer)
    given = searched is not None or fixed.get("momentum") is not None
    if given and default is None:
        has = "has no b1 or momentum" if arg is None else f"has its {arg} off (None) by default"
        raise ConfigError(
            f"`momentum` drives an optax factory's b1 or momentum, but {optimizer} {has}; "
            "drop `momentum`, or give a factory with a numeric default"
        )
    if not given and default is not None:
        return {**fixed, "momentum": default}
    return fixed
