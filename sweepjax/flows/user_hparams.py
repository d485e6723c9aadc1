"""The user's own hyperparameters (the ``hparams`` option) in a plan: which are searched
(axes of the :class:`~sweepjax.config.SearchSpace`, drawn after the built-in ones) and
which are fixed (``TrainConfig.hparams``, every member's value, still traced), for a
coarse sweep and for a fine round over its parent's refined box."""

from __future__ import annotations

from sweepjax.config import Range, SearchSpace


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
