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
import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sweepjax.analysis.flatness import flat_range, norm_sf
from sweepjax.analysis.ranking import (  # noqa: F401  (re-exported: the verdict vocabulary)
    DEFAULT_TIE_CONFIDENCE,
    Ranking,
    accuracy_se,
    selection_z,
    tied_set,
)
from sweepjax.analysis.ranking import norm_cdf as _norm_cdf
from sweepjax.analysis.surface import (
    Surface,
    features,
    fit_surface,
    knot_grid,
    predict,
    sample_coefs,
)
from sweepjax.config import DEFAULT_BAND, DEFAULT_MARGIN  # noqa: F401  (re-exported)

DEFAULT_ALPHA = 0.01
DEFAULT_FLAT_ALPHA = 0.01
DEFAULT_SAMPLES = 256
MIN_WIDTH = 0.05
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
      optimum_inside: no edge is flagged.
      optimum_confidence: fraction of posterior surfaces whose optimum is inside: no
        uncapped edge band beats its axis's interior by more than ``tol``.
      tol: the score difference below which nothing is called a difference.
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

    @property
    def flags(self) -> list[BoundaryVerdict]:
        """The flagged edges only."""
        return [b for b in self.boundaries if b.flagged]


def _caps(flags, num_axes: int) -> np.ndarray:
    out = np.zeros(num_axes, dtype=bool) if flags is None else np.asarray(flags, dtype=bool)
    if out.shape != (num_axes,):
        raise ValueError(f"cap flags need shape ({num_axes},), got {out.shape}")
    return out


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
    cap = np.stack([_caps(capped_low, a), _caps(capped_high, a)], axis=1)  # [A, 2]
    rng = np.random.default_rng(seed)
    # [P, S], contiguous: a transposed operand sends OpenBLAS down a path ~100x slower.
    coefs_t = np.ascontiguousarray(sample_coefs(surface, num_samples, rng).T)
    grid, phi = _grid_features(a, k)  # [G, A], [G, P]; the model's maximum is on the grid
    mean_grid = phi @ surface.coef
    samp_grid = (phi @ coefs_t).reshape((k,) * a + (num_samples,))  # [K, ..., K, S]
    best = int(np.argmax(mean_grid))
    opt = grid[best]
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

    return Verdict(
        boundaries=tuple(boundaries),
        flat=tuple(flat),
        flat_ranges=flat_ranges,
        importance=importance,
        importance_se=importance_se,
        optimum={n: float(opt[j]) for j, n in enumerate(surface.axes)},
        optimum_value=float(mean_grid[best]),
        optimum_inside=not any(b.flagged for b in boundaries),
        optimum_confidence=inside_conf,
        tol=float(tol),
    )


@functools.lru_cache(maxsize=16)
def _grid_features(num_axes: int, knots: int) -> tuple[np.ndarray, np.ndarray]:
    grid = knot_grid(num_axes, knots)
    phi = features(grid, knots)
    grid.flags.writeable = phi.flags.writeable = False
    return grid, phi


# -------------------------------------------------------------------------- next box
class Box(NamedTuple):
    """A box in unit coordinates of the searched box: ``lo``, ``hi`` both ``[A]``."""

    lo: np.ndarray
    hi: np.ndarray


def refine_box(
    verdict: Verdict,
    axes: tuple[str, ...] | list[str],
    x_tied: np.ndarray,
    capped_low: np.ndarray | None = None,
    capped_high: np.ndarray | None = None,
    margin: float = DEFAULT_MARGIN,
    min_width: float = MIN_WIDTH,
) -> Box:
    """The next box, from the model's verdict and the tied set.

    Per axis: the span of the tied members, the modelled optimum and the axis's flat range
    (a flat axis keeps its full width), widened by ``margin``; clipped to ``[0, 1]``
    except past a flagged edge, which is extended by half the box's width (at least
    ``margin``) whether or not the winner sits near it; never past a cap; at least
    ``min_width`` wide.

    Args:
      verdict: from :func:`judge_surface`.
      axes: axis names in column order.
      x_tied: ``[T, A]`` unit coordinates of the tied members (``x_unit[ranking.tied]``).
      capped_low, capped_high: ``[A]`` bool hard caps.
      margin, min_width: fractions of the searched box's width.

    Returns:
      A :class:`Box`; it always contains the tied members.

    Example::

      b = refine_box(v, ["lr", "l2"], x_unit[r.tied])
      Range(lo, hi).from_unit([b.lo[0], b.hi[0]])  # the next lr range
    """
    a = len(axes)
    cap_lo, cap_hi = _caps(capped_low, a), _caps(capped_high, a)
    x_tied = np.atleast_2d(np.asarray(x_tied, dtype=np.float64))
    flagged = {(b.param, b.side) for b in verdict.flags}
    lo, hi = np.zeros(a), np.ones(a)
    for j, name in enumerate(axes):
        f_lo, f_hi = verdict.flat_ranges.get(name, (verdict.optimum[name],) * 2)
        pts = np.concatenate([x_tied[:, j], [verdict.optimum[name], f_lo, f_hi]])
        b_lo, b_hi = float(pts.min()) - margin, float(pts.max()) + margin
        if name in verdict.flat:
            b_lo, b_hi = min(b_lo, 0.0), max(b_hi, 1.0)
        past = max((b_hi - b_lo) / 2.0, margin)
        open_lo = (name, "low") in flagged and not cap_lo[j]
        open_hi = (name, "high") in flagged and not cap_hi[j]
        b_lo = -past if open_lo else max(b_lo, 0.0)
        b_hi = 1.0 + past if open_hi else min(b_hi, 1.0)
        if b_hi - b_lo < min_width:  # keep a usable box, shifted back inside a clipped edge
            mid = (b_lo + b_hi) / 2.0
            b_lo, b_hi = mid - min_width / 2.0, mid + min_width / 2.0
            if b_lo < 0.0 and not open_lo:
                b_lo, b_hi = 0.0, min_width
            if b_hi > 1.0 and not open_hi:
                b_lo, b_hi = 1.0 - min_width, 1.0
        lo[j], hi[j] = b_lo, b_hi
    return Box(lo, hi)


# ----------------------------------------------------------------------- next members
def propose(
    surface: Surface,
    box: Box,
    n: int,
    seed: int,
    method: str = "thompson",
    explore: float = 0.25,
    num_candidates: int = 256,
) -> np.ndarray:
    """The next population, ``[n, A]`` unit coordinates of ``box`` (not the old box).

    - ``"thompson"``: each member is the argmax, over its own ``num_candidates`` uniform
      candidates in ``box``, of its own posterior surface (one matrix product for all).
    - ``"ei"``: the ``n`` best of ``max(8 n, num_candidates)`` uniform candidates by
      expected improvement over the modelled optimum.
    - ``"uniform"``: uniform in ``box``.

    With ``thompson`` and ``ei`` a fraction ``explore`` of the members is uniform, so the
    model's blind spots (an extended edge) are still sampled. The same seed gives the
    same points.

    Example::

      u = propose(s, b, 256, seed=0)  # [256, A] in [0, 1]
      hp = b.lo + u * (b.hi - b.lo)   # the same points in the searched box's coordinates
    """
    a = surface.num_axes
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(box.lo, dtype=np.float64), np.asarray(box.hi, dtype=np.float64)
    if method == "uniform":
        return rng.uniform(size=(n, a))
    n_uni = int(round(explore * n))
    n_model = n - n_uni
    if method == "thompson":
        cand = rng.uniform(size=(n_model, num_candidates, a))
        phi = features((lo + cand * (hi - lo)).reshape(-1, a), surface.knots)
        phi = phi.reshape(n_model, num_candidates, -1)
        coefs = sample_coefs(surface, n_model, rng)
        vals = np.einsum("mcp,mp->mc", phi, coefs)
        picked = cand[np.arange(n_model), np.argmax(vals, axis=1)]
    elif method == "ei":
        cand = rng.uniform(size=(max(8 * n, num_candidates), a))
        mu, sd = predict(surface, lo + cand * (hi - lo))
        best = float(np.max(features(knot_grid(a, surface.knots), surface.knots) @ surface.coef))
        sd = np.maximum(sd, 1e-12)
        zz = (mu - best) / sd
        ei = (mu - best) * _norm_cdf(zz) + sd * np.exp(-0.5 * zz**2) / math.sqrt(2.0 * math.pi)
        picked = cand[np.argsort(-ei, kind="stable")[:n_model]]
    else:
        raise ValueError(f"unknown proposal method {method!r}; use thompson, ei or uniform")
    out = np.concatenate([picked, rng.uniform(size=(n_uni, a))], axis=0)
    return out[rng.permutation(n)]


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

    ``tol`` is the winner's accuracy SE. Arrays: ``x_unit [N, A]``, the rest ``[N]``.

    Example::

      r = judge(x, ["lr", "l2", "lr_decay"], acc, loss, alive, 6000,
                 capped_high=[False, False, True])
      r.verdict.flags, r.verdict.flat, r.box
    """
    ranking = tied_set(acc, val_loss, alive, n_val, acc_se)
    surface = fit_surface(x_unit, acc, alive, n_val, axes, acc_se)
    verdict = judge_surface(surface, ranking.winner_se, capped_low, capped_high, seed=seed)
    x_tied = np.asarray(x_unit, dtype=np.float64)[ranking.tied]
    box = refine_box(verdict, axes, x_tied, capped_low, capped_high)
    return Assessment(ranking, surface, verdict, box)
