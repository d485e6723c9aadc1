"""Where the evidence is: which points of the box the members support, and where most of
them diverged.

Pure numpy, unit coordinates of the searched box (0 = low edge, 1 = high edge). The
verdicts (:mod:`sweepjax.analysis.verdict`) take their optimum and their edge flags only
from supported points, and the next box stops at a divergence frontier the way it stops
at a cap. Why each rule is what it is:

- **Support.** A grid point is supported when the model's posterior SD there is at most
  the typical noise SE of one fitted member (the median, dispersion included): the fit
  knows that point at least as well as one measurement there would. Past the last
  survivor of a cliff, or in a corner no member reached, the SD grows without bound (one
  fit put ±0.63 on an lr = 3 edge) and the mean there is the model's guess, not evidence.
- **Consistency.** A supported point whose modelled score sits more than ``GAP_SE`` SEs
  above every member near it (within 1.5 knot cells, or the few nearest; the members
  that trained to the end alone where any are near) is an extrapolation the data
  contradicts; it is not taken as the optimum. The optimum is the best supported point
  the nearby members do not contradict. (An MLP halving fit put 0.895 on a knot between
  finished members that scored 0.865-0.870: a hat basis can spike at a knot no member
  sits on when the stopped members around it pull its neighbours down.)
- **Divergence frontier.** Along each axis, members are binned in ``FRONTIER_BINS``
  equal slices; walking in from an edge, every slice where at least half of the members
  (``min_members`` or more) diverged belongs to the diverged region. The region ends at
  the first slice with a surviving majority. ``fine`` never searches past it: a box that
  reached lr = 3 on a softmax lost 37-41% of its members to divergence.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

GAP_SE = 3.0  # a modelled optimum further above every nearby member than this is not one
FRONTIER_BINS = 20
FRONTIER_SHARE = 0.5  # "most members diverged"
FRONTIER_MIN_MEMBERS = 5  # a diverged region needs at least this many members in it
NEAREST = 3  # members consulted at least, when a point's neighbourhood holds fewer


def supported_points(sd: np.ndarray, noise_se: np.ndarray, dispersion: float) -> np.ndarray:
    """``[G]`` bool: the model's SD ``sd [G]`` at most the median member noise SE
    (``noise_se`` of the fitted, non-diverged members, times ``sqrt(dispersion)``)."""
    bound = float(np.median(noise_se)) * np.sqrt(max(dispersion, 1.0))
    return np.asarray(sd) <= bound


def consistent_points(
    points: np.ndarray,
    value: np.ndarray,
    x: np.ndarray,
    y: np.ndarray,
    se: np.ndarray,
    cell: float,
    exact: np.ndarray | None = None,
    gap_se: float = GAP_SE,
) -> np.ndarray:
    """``[G]`` bool: the modelled ``value [G]`` at ``points [G, A]`` is within ``gap_se``
    SEs of at least one member near it.

    Near: within 1.5 knot cells (``cell`` wide) in every coordinate. Members are
    ``x [N, A]`` with scores ``y [N]`` and SEs ``se [N]`` (the non-diverged fitted
    members); ``exact [N]`` marks those whose score measures what the model predicts (a
    member that trained to the end, not one a scheduler stopped early). Where exact
    members are near, they alone decide: a stopped member's low score with its wide SE
    would excuse any height. Elsewhere the near members decide with their SEs, or the
    ``NEAREST`` closest members when fewer are that close.
    """
    points = np.atleast_2d(points)
    exact = np.ones(len(x), dtype=bool) if exact is None else np.asarray(exact, dtype=bool)
    out = np.zeros(len(points), dtype=bool)
    if len(x) == 0:
        return out
    for start in range(0, len(points), 512):  # [B, N] distances, bounded memory
        p = points[start : start + 512]
        d_inf = np.abs(p[:, None, :] - x[None, :, :]).max(axis=2)
        near = d_inf <= 1.5 * cell + 1e-12
        near_exact = near & exact[None, :]
        has_exact = near_exact.any(axis=1)
        near = np.where(has_exact[:, None], near_exact, near)
        few = near.sum(axis=1) < 1
        if few.any():
            d2 = ((p[few][:, None, :] - x[None, :, :]) ** 2).sum(axis=2)
            k = min(NEAREST, len(x))
            idx = np.argpartition(d2, k - 1, axis=1)[:, :k]
            nn = np.zeros((int(few.sum()), len(x)), dtype=bool)
            np.put_along_axis(nn, idx, True, axis=1)
            near[few] = nn
        ok = (value[start : start + 512, None] - y[None, :]) <= gap_se * se[None, :]
        out[start : start + 512] = (near & ok).any(axis=1)
    return out


class Frontier(NamedTuple):
    """A region at one edge of one axis where most members diverged.

    Attributes:
      axis: column of the axis.
      side: ``"low"`` or ``"high"``.
      bound: unit coordinate where the region starts (the box must stay on the near side).
      diverged: members in the region that diverged.
      members: members in the region.
    """

    axis: int
    side: str
    bound: float
    diverged: int
    members: int


def divergence_frontiers(
    x: np.ndarray,
    diverged: np.ndarray,
    bins: int = FRONTIER_BINS,
    share: float = FRONTIER_SHARE,
    min_members: int = FRONTIER_MIN_MEMBERS,
) -> list[Frontier]:
    """The diverged regions at the edges of each axis (see the module docstring).

    Args:
      x: ``[N, A]`` unit positions of every member that was judged (diverged included).
      diverged: ``[N]`` bool.

    Returns:
      At most one :class:`Frontier` per axis and side, axis order, low first.

    Example::

      divergence_frontiers(x, status == "diverged")
      # [Frontier(axis=0, side='high', bound=0.9, diverged=46, members=53)]
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    diverged = np.asarray(diverged, dtype=bool)
    out: list[Frontier] = []
    if not diverged.any():
        return out
    edges = np.linspace(0.0, 1.0, bins + 1)
    for j in range(x.shape[1]):
        b = np.clip(np.floor(x[:, j] * bins), 0, bins - 1).astype(int)
        n = np.bincount(b, minlength=bins)
        d = np.bincount(b, weights=diverged.astype(float), minlength=bins)
        for side, order in (("low", range(bins)), ("high", range(bins - 1, -1, -1))):
            run = []
            for i in order:
                if n[i] == 0:
                    continue  # an empty slice neither starts nor ends the region
                if d[i] < share * n[i]:
                    break
                run.append(i)
            if not run:
                continue
            members, div = int(n[run].sum()), int(d[run].sum())
            if members < min_members:
                continue
            bound = float(edges[max(run) + 1] if side == "low" else edges[min(run)])
            out.append(Frontier(j, side, bound, div, members))
    return out


def frontier_limits(frontiers: list[Frontier], num_axes: int) -> tuple[np.ndarray, np.ndarray]:
    """``([A], [A])``: the lowest and highest unit coordinate a next box may reach on each
    axis (``-inf`` / ``+inf`` where no region diverged)."""
    lo, hi = np.full(num_axes, -np.inf), np.full(num_axes, np.inf)
    for f in frontiers:
        if f.side == "low":
            lo[f.axis] = max(lo[f.axis], f.bound)
        else:
            hi[f.axis] = min(hi[f.axis], f.bound)
    return lo, hi
