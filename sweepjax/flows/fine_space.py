"""The box a fine round searches and the members drawn in it.

:func:`fine_space` turns the parent's judged response surface
(:func:`sweepjax.results.appraise.judge_sweep`) and the round's flag overrides into the new
:class:`SearchSpace` and the sentence that explains it; :func:`model_draws` has a
model-based sampler (``thompson`` / ``ei``) propose the members in that box. The flow
that uses them is :func:`sweepjax.flows.sweep.fine`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sweepjax import search
from sweepjax.analysis.verdict import propose
from sweepjax.config import Range, SearchSpace
from sweepjax.flows.sweep_config import FINE_LR_DECAY, SweepConfig
from sweepjax.results.appraise import Appraisal
from sweepjax.results.claims import next_space
from sweepjax.results.records import SweepResult


def fine_space(
    judged: Appraisal,
    par: SweepResult,
    pspace: SearchSpace,
    *,
    pbt_parent: bool,
    top_k: int,
    margin: float,
    band: float,
    lr: Range | None,
    l2: Range | None,
    lr_decay: Range | None,
    decay_off: bool,
    extra: dict,
) -> tuple[SearchSpace, str]:
    """The fine round's box and why: from the parent's modelled surface
    (:func:`sweepjax.results.appraise.next_space`), or, with no model (too few survivors, or a
    PBT parent whose hyperparameters moved), the span of its ``top_k`` best
    (:func:`sweepjax.search.refine`, with the round's edge ``band``); then ``lr_decay``
    searched over ``FINE_LR_DECAY`` when the parent kept the rate constant (unless
    ``decay_off``), and the flags' boxes: ``lr`` / ``l2`` / ``lr_decay`` replace an axis,
    and each of ``extra`` (hidden, dropout, init_scale, momentum) replaces or adds it when
    a :class:`Range` and drops it (fixed) when a number."""
    if judged.box is not None and not pbt_parent:
        space, why = next_space(judged, pspace)
    else:
        space, why = search.refine(par, top_k, margin, band)
        reason = "PBT changed the hyperparameters during the run" if pbt_parent else judged.fit_note
        why = f"no model ({reason}): top-{top_k} span rule; {why}"
        space, clipped = _short_of_frontiers(space, judged, pspace)
        why += clipped
    if space.lr_decay is None and not decay_off and lr_decay is None:
        space = dataclasses.replace(space, lr_decay=FINE_LR_DECAY)
        why += (
            f"; lr_decay: final lr multiplier searched over "
            f"[{FINE_LR_DECAY.lo:g}, {FINE_LR_DECAY.hi:g}]"
        )
    if decay_off:
        space = dataclasses.replace(space, lr_decay=None)
    if lr_decay is not None:
        space = dataclasses.replace(space, lr_decay=lr_decay)
        why += "; lr_decay: the given `lr_decay`"
    if lr is not None or l2 is not None:
        space = dataclasses.replace(space, lr=lr or space.lr, l2=l2 or space.l2)
        why += "; replaced by the given " + " and ".join(
            f"`{a}`" for a, r in (("lr", lr), ("l2", l2)) if r is not None
        )
    for axis, a in extra.items():  # a pair replaces (or adds) the box, a number fixes
        if a is None:
            continue
        space = dataclasses.replace(space, **{axis: a if isinstance(a, Range) else None})
        why += f"; {axis}: " + (
            f"the given `{axis}` [{a.lo:g}, {a.hi:g}]"
            if isinstance(a, Range)
            else f"fixed at {a:g} by `{axis}`"
        )
    return space, why


def _short_of_frontiers(
    space: SearchSpace, judged: Appraisal, pspace: SearchSpace
) -> tuple[SearchSpace, str]:
    """``space`` with each axis stopped at the parent's divergence frontiers (the model box
    already is; the top-k span rule can reach past them), and the words that say so."""
    ranges, why = space.axes(), ""
    parent = pspace.axes()
    for f in judged.frontiers:
        name = judged.axes[f.axis]
        if name not in ranges or name not in parent:
            continue
        bound = float(parent[name].from_unit(f.bound))
        r = ranges[name]
        if f.side == "high" and r.hi > bound > r.lo:
            space = space.with_axis(name, Range(r.lo, bound, r.log))
        elif f.side == "low" and r.lo < bound < r.hi:
            space = space.with_axis(name, Range(bound, r.hi, r.log))
        else:
            continue
        where = "above" if f.side == "high" else "below"
        why += f"; {name}: stopped at {bound:.3g} ({f.diverged} of {f.members} diverged {where})"
        ranges = space.axes()
    return space, why


def model_draws(judged: Appraisal, pspace: SearchSpace, cfg: SweepConfig, replaced: bool):
    """The members a model-based sampler proposes (None: ``search.sample`` draws them
    uniformly). Axes the parent did not search (lr_decay on a first fine round, an axis
    added by its flag) are drawn uniformly; a modelled axis replaced or fixed by its flag
    (``--lr``, ``--hidden``, ...) leaves no model to sample from."""
    if cfg.sampler == "uniform" or judged.surface is None or replaced:
        return None
    u = propose(judged.surface, judged.box, cfg.trials, cfg.train.seed, cfg.sampler)
    unit = judged.box.lo + u * (judged.box.hi - judged.box.lo)  # in the parent's box
    parent_axes = pspace.axes()
    values = {a: parent_axes[a].from_unit(unit[:, j]) for j, a in enumerate(judged.axes)}
    rng = np.random.default_rng(cfg.train.seed)
    for name, r in cfg.space.axes().items():
        if name not in values:
            values[name] = r.from_unit(rng.random(cfg.trials))
    return search.hparams_from_values(cfg.space, values, cfg.fixed())
