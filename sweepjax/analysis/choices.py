"""Categorical values compared with their uncertainty: each value's best member (the
one ranking order) and its SE, and the values statistically tied with the best one
(the tied-set rule of :func:`sweepjax.analysis.ranking.tied_set` over the values' best
members, Gupta's constant for as many values).

Pure numpy: ``compare`` takes one label per member and the members' scores.

Example::

  s = compare(["sgd", "adam"], np.array([0, 1]), np.array([0.90, 0.95]), ...)
  verdict_line("optimizer", s)  # 'optimizer: adam better than sgd by 0.050 (...)'
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sweepjax.analysis.ranking import rank_order, status_group, tied_set


class ValueScore(NamedTuple):
    """One categorical value (or combination) of a sweep, judged.

    Attributes:
      label: the value, e.g. ``adam`` (``adam+gelu`` for a combination).
      best_id: its best member (finished first, then by accuracy, loss, id); -1: none.
      acc, se: that member's best validation accuracy and its SE (NaN: none).
      members: members that trained with the value.
      diverged: the share of them that diverged.
      verdict: ``best``, ``tied`` (with the best), ``worse`` or ``none`` (no member left
        to judge: all diverged).
    """

    label: str
    best_id: int
    acc: float
    se: float
    members: int
    diverged: float
    verdict: str

    def as_dict(self) -> dict:
        d = self._asdict()
        d["acc"] = None if not np.isfinite(self.acc) else float(self.acc)
        d["se"] = None if not np.isfinite(self.se) else float(self.se)
        return d


def compare(
    labels: list[str],
    value_of: np.ndarray,
    acc: np.ndarray,
    loss: np.ndarray,
    se: np.ndarray,
    status: list[str],
    ids: np.ndarray,
) -> list[ValueScore]:
    """``labels[v]`` judged from the members whose ``value_of`` is ``v`` (``[N]`` arrays
    of accuracy, loss, SE, status and id): each value's best member by the one ranking
    order, then the tied set over those bests with their SEs."""
    value_of, acc = np.asarray(value_of), np.asarray(acc, np.float64)
    loss, se, ids = np.asarray(loss, np.float64), np.asarray(se, np.float64), np.asarray(ids)
    group = status_group(status)
    best = np.full(len(labels), -1, np.int64)
    for v in range(len(labels)):
        rows = np.flatnonzero((value_of == v) & (group < 2) & np.isfinite(acc))
        if len(rows):
            best[v] = rows[rank_order(acc[rows], loss[rows], ids[rows], group[rows])[0]]
    has = best >= 0
    b_acc = np.where(has, acc[np.maximum(best, 0)], np.nan)
    b_loss = np.where(has, loss[np.maximum(best, 0)], np.nan)
    b_se = np.where(has, se[np.maximum(best, 0)], np.nan)
    verdicts = ["none"] * len(labels)
    if has.any():
        r = tied_set(b_acc, b_loss, has, 1, acc_se=np.nan_to_num(b_se, nan=0.0))
        for v in np.flatnonzero(has):
            verdicts[v] = "worse"
        for v in r.tied:
            verdicts[int(v)] = "tied"
        verdicts[r.winner] = "best"
    out = []
    for v, name in enumerate(labels):
        mine = value_of == v
        n = int(mine.sum())
        div = float(np.mean(np.asarray(status)[mine] == "diverged")) if n else 0.0
        out.append(
            ValueScore(
                name,
                int(ids[best[v]]) if best[v] >= 0 else -1,
                float(b_acc[v]),
                float(b_se[v]),
                n,
                div,
                verdicts[v],
            )  # fmt: skip
        )
    return out


def _score(s: ValueScore) -> str:
    return f"{s.acc:.3f} ± {s.se:.3f}" if np.isfinite(s.acc) else "no member left"


def verdict_line(name: str, scores: list[ValueScore]) -> str:
    """One line: ``optimizer adam vs sgd: tied (0.912 ± 0.006 vs 0.905 ± 0.007)``, or
    ``... adam better by 0.040 (...)``; with more values the best, the tied and the
    worse ones."""
    ranked = sorted(scores, key=lambda s: ("best", "tied", "worse", "none").index(s.verdict))
    if len(ranked) == 2:
        a, b = ranked
        both = f"({_score(a)} vs {_score(b)})"
        if b.verdict == "tied":
            return f"{name} {a.label} vs {b.label}: tied {both}"
        if b.verdict == "none":
            lost = f"every {b.label} member diverged"
            return f"{name} {a.label} vs {b.label}: {a.label} ({_score(a)}); {lost}"
        by = abs(a.acc - b.acc)  # in the metric's units, whichever way is better
        return f"{name} {a.label} vs {b.label}: {a.label} better by {by:.3f} {both}"
    parts = []
    for what in ("best", "tied", "worse", "none"):
        these = [f"{s.label} ({_score(s)})" for s in ranked if s.verdict == what]
        if these:
            parts.append(f"{what}: {', '.join(these)}")
    return f"{name}: " + "; ".join(parts)
