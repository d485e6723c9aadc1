"""Verdicts you can trust: edge and flat-axis decisions, the next box and the next
population, from a sweep's results (scores with SEs and the tied set: ``ranking.py``).

Pure numpy on arrays and small typed containers: nothing here trains, stores, prints or
jits. Positions are unit coordinates of the searched box (0 = low edge, 1 = high edge,
log space on log axes: ``sweepjax.config.Range.to_unit``); every box returned is in unit
coordinates of the box that was searched, and the caller maps it back with
``Range.from_unit``. The response-surface model lives in ``surface.py``.

Statistical choices (each also stated where it is made):

- A member's accuracy on ``n_val`` validation examples has binomial SE
  ``sqrt(p (1 - p) / n_val)``. Two members are scored on the *same* examples, so their
  errors are positively correlated and the SE of their difference is at most the
  unpaired ``sqrt(se_i^2 + se_j^2)``: using the unpaired SE makes "tied" conservative
  (the tied set errs on the large side).
- An edge is flagged only when the *modelled* score still rises toward it: over the
  outer ``band`` of the axis, at the modelled optimum's other coordinates, the rise is
  positive by a one-sided z-test at level ``alpha`` (default 0.01), AND in at least half
  of the posterior surfaces the best point in that band beats the best point inside the
  axis by more than ``tol`` (a significant but immaterial rise, or a rise down in a
  collapsed corner, is not a reason to move the box). Never past a cap. Where the edge
  sits in the winner's band plays no part: the model reads all members.
- An axis is flat where its partial dependence moves by less than ``tol`` (default:
  one SE of the winner's accuracy, the smallest difference one validation set can show)
  in at least 90% of posterior surfaces. This is an equivalence statement ("no
  measurable difference"), not a failure to reject.
- Confidences (optimum inside, optimum past an edge) are fractions of surfaces drawn
  from the model's Gaussian posterior (a parametric bootstrap).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sweepjax.analysis import evidence as ev
from sweepjax.analysis.flatness import flat_range, norm_sf
from sweepjax.analysis.nextbox import (  # noqa: F401  (re-exported: the next box and members)
    MIN_WIDTH,
    Box,
    cap_flags,
    propose,
    refine_box,
)
from sweepjax.analysis.ranking import (  # noqa: F401  (re-exported: the verdict vocabulary)
    DEFAULT_TIE_CONFIDENCE,
    Ranking,
    accuracy_se,
    selection_z,
    tied_set,
)
from sweepjax.analysis.surface import (
    Surface,
    features,
    fit_surface,
    knot_grid,
    sample_coefs,
)
from sweepjax.config import DEFAULT_BAND, DEFAULT_MARGIN  # noqa: F401  (re-exported)

DEFAULT_ALPHA = 0.01
DEFAULT_FLAT_ALPHA = 0.01
DEFAULT_SAMPLES = 256
INSIDE_CONFIDENCE = 0.5  # "optimum inside the box" needs at least this confidence
SIDES = ("low", "high")


# ------------------------------------------------------------------------ scores and ties
# ---------------------------------------------------------------------------- verdicts
class BoundaryVerdict(NamedTuple):
    """The evidence at one edge of one axis.

    Attributes:
      param: axis name.
      side: ``"low"`` or ``"high"``.
      rise: modelled score gained moving across the outer band *toward* the edge.
      rise_se: SE of ``rise``.
      p_value: one-sided p-value of ``rise <= 0``.
      confidence_past: fraction of posterior surfaces whose best point with this axis in
        this band beats their best point with it inside ``[band, 1 - band]`` by more than
        ``tol`` (the optimum is at or past this edge).
      capped: the edge is a hard cap (nothing exists past it).
      flagged: the optimum may lie past this edge: ``p_value < alpha`` and
        ``confidence_past >= 0.5``, and the edge is not a cap.
    """

    param: str
    side: str
    rise: float
    rise_se: float
    p_value: float
    confidence_past: float
    capped: bool
    flagged: bool


@dataclass(frozen=True)
class Verdict:
    """Everything decided from a fitted surface (unit coordinates throughout).

    Attributes:
      boundaries: one :class:`BoundaryVerdict` per axis and side, axis order, low first.
      flat: axes flat over the whole box.
      flat_ranges: per axis, the widest ``(lo, hi)`` around the axis's best value over
        which it is flat (``(0, 1)`` for a flat axis; a narrow one for a sharp optimum).
      importance: per axis, range of the modelled partial-dependence curve.
      importance_se: its posterior SD.
      optimum: per axis, unit coordinate of the modelled optimum.
      optimum_value: modelled score there.
      optimum_inside: no edge is flagged AND ``optimum_confidence`` is at least
        ``INSIDE_CONFIDENCE`` (0.5): below that the optimum is "not established".
      optimum_confidence: fraction of posterior surfaces whose optimum is inside: no
        uncapped edge band beats its axis's interior by more than ``tol`` (each surface
        compared over supported points only).
      tol: the score difference below which nothing is called a difference.
      optimum_sd: the model's posterior SD at the optimum.
      optimum_supported: members near the optimum do not contradict it (no supported
        point was within ``GAP_SE`` SEs of a nearby member when False).
      unsupported_value: the model mean's own maximum when it lies elsewhere (an
        unsupported or contradicted point the verdicts did not take), else None.
    """

    boundaries: tuple[BoundaryVerdict, ...]
    flat: tuple[str, ...]
    flat_ranges: dict[str, tuple[float, float]]
    importance: dict[str, float]
    importance_se: dict[str, float]
    optimum: dict[str, float]
    optimum_value: float
    optimum_inside: bool
    optimum_confidence: float
    tol: float
    optimum_sd: float = 0.0
    optimum_supported: bool = True
    unsupported_value: float | None = None

    @property
    def flags(self) -> list[BoundaryVerdict]:
        """The flagged edges only."""
        return [b for b in self.boundaries if b.flagged]

    @property
    def flagged(self) -> bool:
        """Some edge is flagged."""
        return any(b.flagged for b in self.boundaries)


def judge_surface(
    surface: Surface,
    tol: float,
    capped_low: np.ndarray | None = None,
    capped_high: np.ndarray | None = None,
    band: float = DEFAULT_BAND,
    alpha: float = DEFAULT_ALPHA,
    flat_alpha: float = DEFAULT_FLAT_ALPHA,
    num_samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
) -> Verdict:
    """Edge, flat-axis, importance and optimum verdicts from a fitted surface.

    Args:
      surface: from :func:`sweepjax.analysis.surface.fit_surface`.
      tol: smallest score difference worth a word (e.g. the winner's accuracy SE).
      capped_low, capped_high: ``[A]`` bool, the box edge is a hard cap (lr_decay <= 1).
      band: outer fraction of an axis over which the rise toward an edge is measured.
      alpha: level of the one-sided test of that rise.
      flat_alpha: level of the Wald test that a stretch of an axis is constant.
      num_samples: posterior surfaces drawn for the confidences.
      seed: seed of those draws.

    Example::

      v = judge_surface(fit_surface(x, acc, alive, 6000, ["lr", "l2"]), tol=0.0046)
      [(b.param, b.side) for b in v.flags], v.flat, v.optimum_inside
    """
    a, k = surface.num_axes, surface.knots
    cap = np.stack([cap_flags(capped_low, a), cap_flags(capped_high, a)], axis=1)  # [A, 2]
    rng = np.random.default_rng(seed)
    # [P, S], contiguous: a transposed operand sends OpenBLAS down a path ~100x slower.
    coefs_t = np.ascontiguousarray(sample_coefs(surface, num_samples, rng).T)
    grid, phi = _grid_features(a, k)  # [G, A], [G, P]; the model's maximum is on the grid
    mean_grid = phi @ surface.coef
    sd_grid = np.sqrt(np.maximum(np.einsum("gp,pq,gq->g", phi, surface.cov, phi), 0.0))
    ev = _evidence(surface, grid, mean_grid, sd_grid)
    best = ev.best
    opt = grid[best]
    # Posterior surfaces are compared only where members support the model: past the
    # last survivor a sampled surface is noise, and its maximum there would count as
    # "the optimum may lie past this edge".
    samp = np.where(ev.supported[:, None], phi @ coefs_t, -np.inf)
    samp_grid = samp.reshape((k,) * a + (num_samples,))  # [K, ..., K, S]
    knots = np.linspace(0.0, 1.0, k)
    nb = max(1, int(round(band * (k - 1))))  # knot intervals in the band

    boundaries, past = [], np.zeros((a, 2, num_samples), dtype=bool)
    importance, importance_se, flat, flat_ranges = {}, {}, [], {}
    for j, name in enumerate(surface.axes):
        # Best score of each sampled surface with axis j at each knot: [K, S].
        others = tuple(i for i in range(a) if i != j)
        slab = samp_grid.max(axis=others) if others else samp_grid
        inner = slab[nb : k - nb].max(axis=0)
        for s, side in enumerate(SIDES):
            # Rise across the outer band toward the edge, other axes at the optimum.
            pts = np.repeat(opt[None, :], 2, axis=0)
            pts[:, j] = (0.0, knots[nb]) if side == "low" else (1.0, knots[k - 1 - nb])
            d = features(pts, k)
            d = d[0] - d[1]
            rise = float(d @ surface.coef)
            rise_se = float(np.sqrt(max(d @ surface.cov @ d, 1e-30)))
            p = norm_sf(rise / rise_se)
            edge_max = slab[:nb].max(axis=0) if side == "low" else slab[k - nb :].max(axis=0)
            past[j, s] = edge_max > inner + tol
            conf = float(past[j, s].mean())
            flagged = bool(p < alpha and conf >= 0.5 and not cap[j, s])
            boundaries.append(
                BoundaryVerdict(name, side, rise, rise_se, p, conf, bool(cap[j, s]), flagged)
            )
        # Partial dependence: the model averaged over the grid's other axes.
        pd_op = phi.reshape((k,) * a + (-1,))
        pd_op = pd_op.mean(axis=others) if others else pd_op  # [K, P]
        pd_mean = pd_op @ surface.coef
        pd_samp = pd_op @ coefs_t  # [K, S]
        importance[name] = float(np.ptp(pd_mean))
        importance_se[name] = float(np.std(np.ptp(pd_samp, axis=0)))
        lo, hi = flat_range(pd_mean, pd_op @ surface.cov @ pd_op.T, tol, flat_alpha)
        flat_ranges[name] = (float(knots[lo]), float(knots[hi]))
        if lo == 0 and hi == k - 1:
            flat.append(name)
    open_past = past[~cap]  # [E, S] over the uncapped edges
    inside_conf = float(np.mean(~open_past.any(axis=0))) if open_past.size else 1.0
    flagged_any = any(b.flagged for b in boundaries)

    return Verdict(
        boundaries=tuple(boundaries),
        flat=tuple(flat),
        flat_ranges=flat_ranges,
        importance=importance,
        importance_se=importance_se,
        optimum={n: float(opt[j]) for j, n in enumerate(surface.axes)},
        optimum_value=float(mean_grid[best]),
        optimum_inside=not flagged_any and inside_conf >= INSIDE_CONFIDENCE,
        optimum_confidence=inside_conf,
        tol=float(tol),
        optimum_sd=float(sd_grid[best]),
        optimum_supported=ev.consistent,
        unsupported_value=ev.unsupported_value,
    )


class _Evidence(NamedTuple):
    supported: np.ndarray  # [G] bool
    best: int  # grid index of the optimum
    consistent: bool  # the nearby members do not contradict it
    unsupported_value: float | None  # the mean's own maximum, when the optimum is not it


def _evidence(surface: Surface, grid, mean_grid, sd_grid) -> _Evidence:
    """The optimum: the best supported grid point the nearby members do not contradict
    (:mod:`sweepjax.analysis.evidence`); the mean's own maximum is kept for the record
    when it lies elsewhere."""
    if surface.x is None:  # a surface built by hand, without its members
        return _Evidence(np.ones(len(grid), bool), int(np.argmax(mean_grid)), True, None)
    alive = ~surface.diverged
    supported = ev.supported_points(sd_grid, surface.noise_se[alive], surface.dispersion)
    if not supported.any():  # nothing is known as well as one member: the safest point
        supported = sd_grid <= np.min(sd_grid) * (1 + 1e-9)
    cand = np.flatnonzero(supported)
    cand = cand[np.argsort(-mean_grid[cand], kind="stable")]
    cell = 1.0 / (surface.knots - 1)
    x, y, se = surface.x[alive], surface.y[alive], surface.noise_se[alive]
    exact = None if surface.exact is None else surface.exact[alive]
    best, consistent = int(cand[0]), False
    for start in range(0, len(cand), 256):  # best first, stop at the first consistent one
        block = cand[start : start + 256]
        ok = ev.consistent_points(grid[block], mean_grid[block], x, y, se, cell, exact)
        if ok.any():
            best, consistent = int(block[int(np.argmax(ok))]), True
            break
    top = int(np.argmax(mean_grid))
    other = None if top == best else float(mean_grid[top])
    return _Evidence(supported, best, consistent, other)


@functools.lru_cache(maxsize=16)
def _grid_features(num_axes: int, knots: int) -> tuple[np.ndarray, np.ndarray]:
    grid = knot_grid(num_axes, knots)
    phi = features(grid, knots)
    grid.flags.writeable = phi.flags.writeable = False
    return grid, phi


# ------------------------------------------------------------------------ all in one
class Assessment(NamedTuple):
    """:func:`judge`'s result: the ranking, the surface, its verdict and the next box."""

    ranking: Ranking
    surface: Surface
    verdict: Verdict
    box: Box


def judge(
    x_unit: np.ndarray,
    axes: tuple[str, ...] | list[str],
    acc: np.ndarray,
    val_loss: np.ndarray,
    alive: np.ndarray,
    n_val: int,
    capped_low: np.ndarray | None = None,
    capped_high: np.ndarray | None = None,
    acc_se: np.ndarray | None = None,
    seed: int = 0,
) -> Assessment:
    """Rank, fit, decide and refine in one call, with the defaults above.

    ``tol`` is the winner's accuracy SE. Arrays: ``x_unit [N, A]``, the rest ``[N]``; a
    member not ``alive`` diverged (it enters the fit at the floor, and the next box stays
    out of a region where most members diverged).

    Example::

      r = judge(x, ["lr", "l2", "lr_decay"], acc, loss, alive, 6000,
                 capped_high=[False, False, True])
      r.verdict.flags, r.verdict.flat, r.box
    """
    ranking = tied_set(acc, val_loss, alive, n_val, acc_se)
    dead = ~np.asarray(alive, dtype=bool)  # diverged: evidence at the floor
    surface = fit_surface(x_unit, acc, alive, n_val, axes, acc_se, diverged=dead)
    verdict = judge_surface(surface, ranking.winner_se, capped_low, capped_high, seed=seed)
    x = np.asarray(x_unit, dtype=np.float64)
    lim_lo, lim_hi = ev.frontier_limits(ev.divergence_frontiers(x, dead), len(axes))
    box = refine_box(
        verdict, axes, x[ranking.tied], capped_low, capped_high,
        limit_low=lim_lo, limit_high=lim_hi,
    )  # fmt: skip
    return Assessment(ranking, surface, verdict, box)
