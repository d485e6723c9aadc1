"""The next box and the next members, from a verdict: :func:`refine_box` (the box a
``fine`` round searches) and :func:`propose` (members drawn in it from the model).

Pure numpy, unit coordinates of the searched box (see :mod:`sweepjax.analysis.verdict`,
whose :class:`~sweepjax.analysis.verdict.Verdict` these read).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple, Protocol

import numpy as np

from sweepjax.analysis.ranking import norm_cdf as _norm_cdf
from sweepjax.analysis.surface import Surface, features, knot_grid, predict, sample_coefs
from sweepjax.config import DEFAULT_MARGIN


class VerdictLike(Protocol):
    """What :func:`refine_box` reads of a :class:`sweepjax.analysis.verdict.Verdict`."""

    flat: tuple[str, ...]
    flat_ranges: dict[str, tuple[float, float]]
    optimum: dict[str, float]

    @property
    def flags(self) -> Sequence: ...


MIN_WIDTH = 0.05


def cap_flags(flags, num_axes: int) -> np.ndarray:
    out = np.zeros(num_axes, dtype=bool) if flags is None else np.asarray(flags, dtype=bool)
    if out.shape != (num_axes,):
        raise ValueError(f"cap flags need shape ({num_axes},), got {out.shape}")
    return out


# -------------------------------------------------------------------------- next box
class Box(NamedTuple):
    """A box in unit coordinates of the searched box: ``lo``, ``hi`` both ``[A]``."""

    lo: np.ndarray
    hi: np.ndarray


def refine_box(
    verdict: VerdictLike,
    axes: tuple[str, ...] | list[str],
    x_tied: np.ndarray,
    capped_low: np.ndarray | None = None,
    capped_high: np.ndarray | None = None,
    margin: float = DEFAULT_MARGIN,
    min_width: float = MIN_WIDTH,
    limit_low: np.ndarray | None = None,
    limit_high: np.ndarray | None = None,
) -> Box:
    """The next box, from the model's verdict and the tied set.

    Per axis: the span of the tied members, the modelled optimum and the axis's flat range
    (a flat axis keeps its full width), widened by ``margin``; clipped to ``[0, 1]``
    except past a flagged edge, which is extended by half the box's width (at least
    ``margin``) whether or not the winner sits near it; never past a cap; never past a
    divergence frontier (``limit_low`` / ``limit_high``: where most members diverged,
    :func:`sweepjax.analysis.evidence.divergence_frontiers`), which also keeps a flagged
    edge from being extended; at least ``min_width`` wide.

    Args:
      verdict: from :func:`judge_surface`.
      axes: axis names in column order.
      x_tied: ``[T, A]`` unit coordinates of the tied members (``x_unit[ranking.tied]``).
      capped_low, capped_high: ``[A]`` bool hard caps.
      margin, min_width: fractions of the searched box's width.
      limit_low, limit_high: ``[A]`` unit coordinates the box may not pass (``-inf`` /
        ``inf``: no limit).

    Returns:
      A :class:`Box`; it contains the tied members that lie inside the limits.

    Example::

      b = refine_box(v, ["lr", "l2"], x_unit[r.tied])
      Range(lo, hi).from_unit([b.lo[0], b.hi[0]])  # the next lr range
    """
    a = len(axes)
    cap_lo, cap_hi = cap_flags(capped_low, a), cap_flags(capped_high, a)
    lim_lo = np.full(a, -np.inf) if limit_low is None else np.asarray(limit_low, np.float64)
    lim_hi = np.full(a, np.inf) if limit_high is None else np.asarray(limit_high, np.float64)
    x_tied = np.atleast_2d(np.asarray(x_tied, dtype=np.float64))
    flagged = {(b.param, b.side) for b in verdict.flags}
    lo, hi = np.zeros(a), np.ones(a)
    for j, name in enumerate(axes):
        f_lo, f_hi = verdict.flat_ranges.get(name, (verdict.optimum[name],) * 2)
        pts = np.concatenate([x_tied[:, j], [verdict.optimum[name], f_lo, f_hi]])
        pts = np.clip(pts, lim_lo[j], lim_hi[j])
        b_lo, b_hi = float(pts.min()) - margin, float(pts.max()) + margin
        if name in verdict.flat:
            b_lo, b_hi = min(b_lo, 0.0), max(b_hi, 1.0)
        past = max((b_hi - b_lo) / 2.0, margin)
        open_lo = (name, "low") in flagged and not cap_lo[j] and lim_lo[j] <= 0.0
        open_hi = (name, "high") in flagged and not cap_hi[j] and lim_hi[j] >= 1.0
        b_lo = -past if open_lo else max(b_lo, 0.0)
        b_hi = 1.0 + past if open_hi else min(b_hi, 1.0)
        # A divergence frontier is a cap the data drew: the box stays on the near side.
        floor_j, ceil_j = max(lim_lo[j], 0.0 if not open_lo else -np.inf), lim_hi[j]
        b_lo, b_hi = max(b_lo, lim_lo[j]), min(b_hi, ceil_j)
        if b_hi - b_lo < min_width:  # keep a usable box, shifted back inside a clipped edge
            mid = (b_lo + b_hi) / 2.0
            b_lo, b_hi = mid - min_width / 2.0, mid + min_width / 2.0
            top = min(ceil_j, np.inf if open_hi else 1.0)
            if b_hi > top:
                b_lo, b_hi = top - min_width, top
            if b_lo < floor_j:
                b_lo, b_hi = floor_j, floor_j + min_width
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
