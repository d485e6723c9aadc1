"""Where to look: log-uniform / grid sampling, refinement of a box, boundary flags.

Pure functions on numbers and dataclasses: nothing here trains, prints or stores.

Positions inside a box are measured in *unit coordinates* of each axis: 0 at the lower
bound, 1 at the upper bound, linear in log space for log axes (``Range.to_unit``). The
band and margin settings below are fractions of that width. Each axis's scale, integer
rounding and hard caps come from :data:`sweepjax.config.AXES`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from sweepjax.analysis.ranking import rank_order, status_group
from sweepjax.config import AXES, DEFAULT_BAND, DEFAULT_TOP_K, Range, SearchSpace, axis_of
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError
from sweepjax.results.records import BoundaryFlag, SweepResult
from sweepjax.sweep_config import space_from_dict

DEFAULT_MARGIN = 0.1  # fine box = top-K span widened by this fraction of the parent box
MIN_WIDTH = 0.02  # a refined box is at least this fraction of the parent's (log-)width


def as_space(space: SearchSpace | Mapping[str, list[float]]) -> SearchSpace:
    """A :class:`SearchSpace` from itself or its ``{"lr": [lo, hi], ...}`` dict form
    (each axis on its scale in :data:`~sweepjax.config.AXES`: ``dropout`` and
    ``momentum`` linear, the others log)."""
    if isinstance(space, SearchSpace):
        return space
    return space_from_dict(space)


def grid_points_per_axis(n: int, num_axes: int) -> int:
    """Points per axis of the grid closest to ``n`` members (at least 1)."""
    return max(1, round(n ** (1.0 / num_axes)))


def sample(
    space: SearchSpace,
    n: int,
    key_or_seed: int,
    grid: bool = False,
    fixed: Mapping[str, float] | None = None,
) -> tuple[HParams, np.ndarray]:
    """Draw ``n`` members from ``space``.

    Random mode draws each axis independently and uniformly in unit coordinates
    (log-uniform on log axes: Bergstra & Bengio 2012, random beats grid when only some
    axes matter; ``hidden`` is then rounded to whole units) from
    ``numpy.random.default_rng(seed)``; the same seed gives the same members. Axes not
    in ``space`` take their value in ``fixed`` (e.g. ``{"momentum": 0.95}``), else
    :data:`sweepjax.engine.hparams.FIXED_DEFAULTS`. Grid mode takes the product of evenly
    spaced points (cell centres, so no point sits on an edge) along each axis; ``n`` is
    rounded to the nearest perfect grid ``k ** num_axes`` (see
    :func:`grid_points_per_axis`), so check ``num_members``.

    Returns:
      ``(hparams, member_ids)`` with ``hparams`` fields ``[M]`` and ids ``arange(M)``
      (member ``i`` is the ``i``-th draw, so ids are stable for a fixed seed and flags).

    Example::

      hp, ids = sample(SearchSpace(), 256, seed=0)
      hp.lr.min() >= 1e-4  # True
    """
    if n < 1:
        raise ConfigError(f"number of trials must be >= 1, got {n}; try `trials` 256")
    axes = space.axes()
    if grid:
        k = grid_points_per_axis(n, len(axes))
        ticks = (np.arange(k) + 0.5) / k
        mesh = np.meshgrid(*([ticks] * len(axes)), indexing="ij")
        units = {name: m.ravel() for name, m in zip(axes, mesh, strict=True)}
        m = k ** len(axes)
    else:
        rng = np.random.default_rng(int(key_or_seed))
        # One [n, A] draw: row i is member i, so the first n members of a larger
        # sweep with the same seed are the members of the smaller one.
        u = rng.random((n, len(axes)))
        units = {name: u[:, j] for j, name in enumerate(axes)}
        m = n
    values = {name: r.from_unit(units[name]) for name, r in axes.items()}
    hp = hparams_from_values(space, values, fixed)
    return hp, np.arange(m, dtype=np.int64)


def hparams_from_values(
    space: SearchSpace,
    values: Mapping[str, np.ndarray],
    fixed: Mapping[str, float] | None = None,
) -> HParams:
    """:class:`HParams` from per-axis values ``[M]`` in real units, rounded to float32 (and
    to whole numbers on integer axes) and kept inside ``space`` (rounding must not push a
    value outside its box). Axes not in ``space`` take ``fixed`` or their defaults."""
    axes = space.axes()
    out = {}
    for name, r in axes.items():
        v = np.asarray(values[name], dtype=np.float64)
        if axis_of(name, r).integer:  # whole bounds: the rounded value stays inside
            out[name] = np.clip(np.rint(v), math.ceil(r.lo), math.floor(r.hi)).astype(np.float32)
            continue
        v = v.astype(np.float32)
        lo, hi = np.float32(r.lo), np.float32(r.hi)
        # Compared as float64: numpy 2 would compare a float32 with a Python float in
        # float32, where float32(0.2) > 0.2 reads False (an ASHA draw at the box's top
        # then ended at 0.2000000030, outside [0, 0.2]).
        lo = np.nextafter(lo, np.float32(np.inf)) if float(lo) < r.lo else lo
        hi = np.nextafter(hi, np.float32(-np.inf)) if float(hi) > r.hi else hi
        out[name] = np.clip(v, lo, hi)
    for name, v in (fixed or {}).items():
        if name not in axes:
            out[name] = v
    # The user's own hyperparameters (searched or fixed) ride in HParams.user.
    user = {n: out.pop(n) for n in [n for n in out if n not in AXES]}
    return HParams.create(**out, user=user)


# --------------------------------------------------------------------------- ranking
def ranking(result: SweepResult) -> np.ndarray:
    """Row indices of ``result.members``, best first, in the one ranking order
    (:func:`sweepjax.analysis.ranking.rank_order`): members that trained to the end, then
    those a scheduler stopped, then diverged ones; within each by best validation accuracy
    (descending), then by lower final validation loss, then by id. The winner is the
    first (:func:`sweepjax.analysis.verdict.tied_set` ranks the finished ones alike)."""
    if not result.members:
        return np.zeros(0, np.int64)
    acc = result.config.metric.orient(result.member_array("best_val_acc"))  # the score
    loss = [np.nan if m.final_val_loss is None else m.final_val_loss for m in result.members]
    ids = np.array([m.id for m in result.members])
    group = status_group(m.status for m in result.members)
    return rank_order(acc, np.array(loss, np.float64), ids, group)


def top_members(result: SweepResult, top_k: int, include_stopped: bool = False) -> list[int]:
    """Row indices of the best ``top_k`` members that trained to the end (fewer if fewer
    did). With ``include_stopped`` the members a scheduler stopped count too, after
    those (in :func:`ranking` order): they still say where the good region is."""
    keep = ("ok", "stopped") if include_stopped else ("ok",)
    order = [int(i) for i in ranking(result) if result.members[i].status in keep]
    return order[:top_k]


# --------------------------------------------------------------------------- boundary
def boundary_flags(
    result_or_arrays: SweepResult | Mapping[str, np.ndarray],
    space: SearchSpace | Mapping[str, list[float]],
    top_k: int = 1,
    band: float = DEFAULT_BAND,
) -> list[BoundaryFlag]:
    """Flag top members that sit in the outer band of an axis of ``space``.

    A value is in the low band when its unit coordinate is ``< band`` and in the high
    band when it is ``> 1 - band`` (for a log axis: within ``band`` of the box's
    log-width from the edge). Flags warn that the optimum may lie outside the box.

    Args:
      result_or_arrays: a :class:`SweepResult` (its best ``top_k`` surviving members are
        checked, best first), or a mapping ``{"lr": [R], "l2": [R], "id": [R]}`` whose
        rows are already ranked best first (``id`` optional: defaults to the row).
      space: the box that was searched.
      top_k: how many of the best members to check (the winner is the first).
      band: fraction of each axis's width that counts as its edge, in ``[0, 0.5]``.

    Returns:
      ``BoundaryFlag(param, side, member)`` list, in rank order then axis order.

    Example::

      boundary_flags({"lr": [2.9], "l2": [1e-3]}, SearchSpace(), top_k=1)
      # [BoundaryFlag(param='lr', side='high', member=0)]
    """
    if not 0.0 <= band <= 0.5:
        raise ConfigError(f"boundary band must be in [0, 0.5], got {band}; try {DEFAULT_BAND}")
    space = as_space(space)
    if isinstance(result_or_arrays, SweepResult):
        rows = top_members(result_or_arrays, top_k, include_stopped=True)
        members = result_or_arrays.members
        values = {
            a: np.array([getattr(members[i], a) for i in rows], dtype=float) for a in space.axes()
        }
        ids = [members[i].id for i in rows]
    else:
        values = {a: np.asarray(result_or_arrays[a], dtype=float)[:top_k] for a in space.axes()}
        n = len(next(iter(values.values())))
        ids = list(np.asarray(result_or_arrays.get("id", np.arange(n)))[:n])
    flags = []
    for r, member in enumerate(ids):
        for name, rng in space.axes().items():
            u = float(rng.to_unit(values[name][r]))
            if u < band:
                flags.append(BoundaryFlag(name, "low", int(member)))
            elif u > 1.0 - band:
                flags.append(BoundaryFlag(name, "high", int(member)))
    return flags


# --------------------------------------------------------------------------- refinement
def refine(
    parent: SweepResult,
    top_k: int = DEFAULT_TOP_K,
    margin: float = DEFAULT_MARGIN,
    band: float = DEFAULT_BAND,
) -> tuple[SearchSpace, str]:
    """The box a fine sweep searches after ``parent``, and a one-line explanation.

    The rule, per axis, in unit coordinates of the parent's box (0 = low edge,
    1 = high edge; log scale for log axes):

    1. Take the span of the best ``top_k`` surviving members and widen it by ``margin``
       on each side (so a single winner still gets a box ``2 * margin`` wide; never
       narrower than ``MIN_WIDTH``).
    2. Clip it to the parent's box, EXCEPT on a side where the parent's winner lay in
       that edge's band (``band``): there the optimum may be outside, so the new box
       extends past the edge by half its own width (at least ``margin``) instead.
    3. Cut it at the axis's hard caps (:data:`~sweepjax.config.AXES`: ``lr_decay <= 1``,
       ``dropout <= DROPOUT_MAX``, ``momentum <= MOMENTUM_MAX``, ``hidden >= 1``) and
       round ``hidden``'s bounds outward to whole units.

    The new box always contains the top-K members and keeps positive bounds on log
    axes. With an interior, clustered top-K it is narrower than the parent's.

    Raises:
      ConfigError: the parent has no surviving member to refine around.
    """
    if top_k < 1:
        raise ConfigError(f"`top_k` must be >= 1, got {top_k}; try `top_k` 5")
    if not 0.0 <= margin <= 1.0:
        raise ConfigError(f"margin must be in [0, 1], got {margin}; try 0.1")
    rows = top_members(parent, top_k, include_stopped=True)
    if not rows:
        raise ConfigError(
            f"sweep {parent.sweep_id} has no surviving member to refine around; rerun "
            "coarse with a lower `lr` range"
        )
    space = getattr(parent.config, "space", None) or as_space(parent.space)  # scales typed
    winner_flags = {(f.param, f.side) for f in boundary_flags(parent, space, 1, band)}
    new_axes, why = {}, []
    for name, rng in space.axes().items():
        vals = np.array([getattr(parent.members[i], name) for i in rows], dtype=float)
        u = rng.to_unit(vals)
        lo_u, hi_u = float(u.min()) - margin, float(u.max()) + margin
        if hi_u - lo_u < MIN_WIDTH:  # one member and no margin: keep a usable box
            mid = (lo_u + hi_u) / 2.0
            lo_u, hi_u = mid - MIN_WIDTH / 2.0, mid + MIN_WIDTH / 2.0
        width = hi_u - lo_u
        past = max(width / 2.0, margin)
        notes = []
        if (name, "low") in winner_flags:
            lo_u = min(lo_u, -past)
            notes.append("winner in the low band: extended below")
        elif lo_u < 0.0:
            lo_u, hi_u = 0.0, max(hi_u, MIN_WIDTH)
        if (name, "high") in winner_flags:
            hi_u = max(hi_u, 1.0 + past)
            notes.append("winner in the high band: extended above")
        elif hi_u > 1.0:
            lo_u, hi_u = min(lo_u, 1.0 - MIN_WIDTH), 1.0
        lo, hi = (float(x) for x in rng.from_unit([lo_u, hi_u]))
        # Exact edges and members survive the exp/log round trip: keep them inside.
        lo = rng.lo if lo_u == 0.0 else min(lo, float(vals.min()))
        hi = rng.hi if hi_u == 1.0 else max(hi, float(vals.max()))
        lo, hi, cut = axis_of(name, rng).clamp(lo, hi)  # never past a cap (lr_decay <= 1)
        notes += cut
        if not (hi > lo and (lo > 0 or not rng.log) and math.isfinite(hi)):
            raise ConfigError(f"cannot refine {name}: degenerate box [{lo:g}, {hi:g}]")
        new_axes[name] = Range(lo, hi, rng.log)
        ratio = hi_u - lo_u
        why.append(
            f"{name}: top-{len(rows)} span {vals.min():.3g}..{vals.max():.3g} "
            f"+{margin:.0%} margin -> [{lo:.3g}, {hi:.3g}] ({ratio:.0%} of the parent's "
            f"{'log-' if rng.log else ''}width" + (f"; {', '.join(notes)}" if notes else "") + ")"
        )
    return SearchSpace.of(new_axes), "; ".join(why)
