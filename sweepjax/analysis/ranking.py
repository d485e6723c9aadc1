"""Scores with their uncertainty: each member's standard error, the winner, and the set
of members statistically tied with it (Gupta's subset selection).

Pure numpy. A member's accuracy on ``n_val`` validation examples has binomial SE
``sqrt(p (1 - p) / n_val)``. Two members are scored on the *same* examples, so their
errors are positively correlated and the SE of their difference is at most the unpaired
``sqrt(se_i^2 + se_j^2)``: using the unpaired SE makes "tied" conservative (the tied set
errs on the large side).
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numpy as np

from sweepjax.analysis.surface import binomial_se
from sweepjax.metric import ACCURACY, Metric

DEFAULT_TIE_CONFIDENCE = 0.95

# The one ranking order (:func:`rank_order`): a member's status group, then its score. The
# tables print ORDER_LINE above their header (not starting with "rank", the header's word).
STATUS_GROUP = {"ok": 0, "stopped": 1, "diverged": 2}
ORDER_LINE = (
    "order: finished members first, then stopped, then diverged; "
    "each by val acc, then val loss, then id"
)
CONFIG_ORDER_LINE = (
    "order: finished configs first, then stopped, then diverged; "
    "each by mean val acc, then mean val loss, then id"
)


def order_line(metric: Metric = ACCURACY, configs: bool = False) -> str:
    """The ranking order said above a table (:data:`ORDER_LINE` for accuracy), in the
    metric's name and direction."""
    if metric is ACCURACY:
        return CONFIG_ORDER_LINE if configs else ORDER_LINE
    what, mean = ("configs", "mean ") if configs else ("members", "")
    way = "highest" if metric.higher_is_better else "lowest"
    return (
        f"order: finished {what} first, then stopped, then diverged; each by {mean}val "
        f"{metric.short} ({way} first), then {mean}val loss, then id"
    )


def rank_order(
    acc: np.ndarray,
    loss: np.ndarray | None = None,
    ids: np.ndarray | None = None,
    group: np.ndarray | None = None,
) -> np.ndarray:
    """The one ranking order, used by every rung, the winner, the tables and the exports:
    indices of ``[N]`` arrays best first by lower ``group`` (:data:`STATUS_GROUP`:
    finished, stopped, diverged), then higher ``acc``, then lower ``loss``, then lower
    ``ids`` (default: the index). A NaN accuracy or loss counts as the worst; without
    ``loss`` (or ``group``) that key ties.

    Finished members rank before stopped ones as Optuna's best trial ignores pruned trials
    and scikit-learn's halving picks from its last iteration: a member stopped at a rung
    is scored on fewer steps, and its accuracy is not comparable with a finished one's.

    Example::

      rank_order(np.array([0.91, 0.9075, 0.9075]), np.array([0.3, 0.32, 0.31]),
                 group=np.array([1, 0, 0]))  # array([2, 1, 0])
    """
    acc = np.asarray(acc, np.float64)
    acc = np.where(np.isnan(acc), -np.inf, acc)
    n = len(acc)
    loss = np.zeros(n) if loss is None else np.asarray(loss, np.float64)
    loss = np.where(np.isnan(loss), np.inf, loss)
    ids = np.arange(n) if ids is None else np.asarray(ids)
    group = np.zeros(n, np.int64) if group is None else np.asarray(group, np.int64)
    return np.lexsort((ids, loss, -acc, group)).astype(np.int64)


def status_group(statuses) -> np.ndarray:
    """``[N]`` group of each status name for :func:`rank_order` (unknown ones last)."""
    return np.array([STATUS_GROUP.get(s, len(STATUS_GROUP)) for s in statuses], np.int64)


def accuracy_se(acc: np.ndarray, n_val: int) -> np.ndarray:
    """Binomial SE ``sqrt(p (1 - p) / n_val)`` of accuracies ``[N]`` -> ``[N]``.

    ``p`` is shrunk by half an example so a perfect score still has a positive SE.

    Example::

      accuracy_se(np.array([0.85]), 6000)  # array([0.00461])
    """
    return binomial_se(acc, n_val)


class Ranking(NamedTuple):
    """Alive members ranked, and those statistically tied with the winner.

    Attributes:
      order: ``[N_alive]`` member indices, best first (:func:`rank_order`: accuracy, then
        lower loss, then id).
      winner: index of the best member.
      tied: ``[T]`` indices (winner included, rank order) tied with the winner.
      se: ``[N]`` accuracy SE of every member.
      winner_se: SE of the winner's accuracy.
    """

    order: np.ndarray
    winner: int
    tied: np.ndarray
    se: np.ndarray
    winner_se: float


def tied_set(
    acc: np.ndarray,
    val_loss: np.ndarray,
    alive: np.ndarray,
    n_val: int,
    acc_se: np.ndarray | None = None,
    confidence: float = DEFAULT_TIE_CONFIDENCE,
    z: float | None = None,
    ids: np.ndarray | None = None,
) -> Ranking:
    """Rank the alive members and find those tied with the winner.

    The winner has the best accuracy (ties broken by lower validation loss, then lower
    ``ids``: :func:`rank_order`, the order every table and export uses). Member ``i``
    is tied when ``acc[winner] - acc[i] <= z * sqrt(se[winner]^2 + se[i]^2)``.

    ``z`` defaults to Gupta's subset-selection constant for ``k`` = the number of alive
    members (:func:`selection_z`): the tied set then contains the truly best member with
    probability >= ``confidence`` whatever the true accuracies are (the worst case is all
    equal). A per-pair ``z = 1.96`` is a one-sided 2.5% test of "the winner is better"
    but ignores that the winner was *picked* as the maximum of ``k`` noisy scores, and
    drops the truly best member far more often than 5% when many members are close.
    The unpaired SE overstates the noise of a paired difference (both members are scored
    on the same validation examples, so their errors are positively correlated): the
    test is conservative, the set errs on the large side.

    Args:
      acc, val_loss, alive: ``[N]`` accuracy, loss and alive flag of each member.
      n_val: validation set size.
      acc_se: optional ``[N]`` empirical SEs (replicas, folds) to use instead.
      confidence: probability that the set contains the truly best member.
      z: a fixed critical value instead (per pair).
      ids: optional ``[N]`` member ids for the last tie-break (default: the index).

    Example::

      r = tied_set(np.array([0.85, 0.849, 0.80]), np.array([0.4, 0.4, 0.6]),
                   np.ones(3, bool), 6000)
      r.winner, r.tied  # 0, array([0, 1])
    """
    acc = np.asarray(acc, dtype=np.float64)
    loss = np.nan_to_num(np.asarray(val_loss, dtype=np.float64), nan=np.inf)
    alive = np.asarray(alive, dtype=bool) & np.isfinite(acc)
    if not alive.any():
        raise ValueError("no alive member to rank")
    se = accuracy_se(acc, n_val) if acc_se is None else np.asarray(acc_se, dtype=np.float64)
    rows = np.flatnonzero(alive)
    tie = rows if ids is None else np.asarray(ids)[rows]
    order = rows[rank_order(acc[rows], loss[rows], tie)]
    win = int(order[0])
    if z is None:
        z = selection_z(len(rows), confidence)
    diff_se = np.sqrt(se[win] ** 2 + se[order] ** 2)
    tied = order[acc[win] - acc[order] <= z * diff_se]
    return Ranking(order, win, tied, se, float(se[win]))


def norm_cdf(x: np.ndarray) -> np.ndarray:
    """Standard normal CDF, vectorised (numpy has no erf): interpolated in a 1e-3 table."""
    grid, table = _norm_table()
    return np.interp(x, grid, table)


@functools.lru_cache(maxsize=1)
def _norm_table() -> tuple[np.ndarray, np.ndarray]:
    grid = np.linspace(-12.0, 12.0, 24001)
    return grid, np.array([0.5 * math.erfc(-g / math.sqrt(2.0)) for g in grid])


@functools.lru_cache(maxsize=256)
def selection_z(k: int, confidence: float = DEFAULT_TIE_CONFIDENCE) -> float:
    """Gupta's (1965) subset-selection constant, in units of the SE of a difference.

    Keeping every member within ``z * sqrt(2) * se`` of the best observed of ``k``
    members with equal known SE ``se`` keeps the truly best with probability
    ``>= confidence``; ``z`` solves ``E_t[Phi(t + z sqrt 2) ** (k - 1)] = confidence``.

    Example::

      selection_z(2), selection_z(256)  # (1.645, 3.25)
    """
    if k <= 1:
        return 0.0
    t = np.linspace(-8.0, 8.0, 1601)
    wt = np.exp(-0.5 * t**2) / math.sqrt(2.0 * math.pi) * (t[1] - t[0])
    lo, hi = 0.0, 10.0
    for _ in range(40):
        mid = (lo + hi) / 2.0
        p = float(np.sum(wt * norm_cdf(t + mid * math.sqrt(2.0)) ** (k - 1)))
        lo, hi = (mid, hi) if p < confidence else (lo, mid)
    return (lo + hi) / 2.0
