"""A decimated picture of a population, small enough to store every second and to draw
in a browser for any number of members: the curves of the best and of a few typical
members (at most ``CURVE_POINTS`` evaluations each) and the response surface so far (at
most ``SURFACE_POINTS`` members). :mod:`sweepjax.store.live` stores it with a running
sweep's progress; a finished sweep's is built from its stored result.

Example::

  snap = build(step=300, steps=curves.step, val_acc=curves.val_acc,
               train_loss=curves.train_loss, lr=lr, l2=l2, status=codes,
               member_ids=ids, acc=curves.last_finite("val_acc"))
  len(snap.curves) <= TOP_CURVES + TYPICAL_CURVES  # True, whatever the population
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from sweepjax.analysis.ranking import rank_order
from sweepjax.engine.curves import Curves, ScheduleState
from sweepjax.metric import ACCURACY, Metric
from sweepjax.results.records import SweepResult

# Status codes of the surface points (index into STATUS).
TRAINING, OK, STOPPED, DIVERGED = 0, 1, 2, 3
STATUS = ("training", "ok", "stopped", "diverged")
TOP_CURVES = 8  # the best members by current accuracy
TYPICAL_CURVES = 6  # members at even quantiles of the rest of the ranking
CURVE_POINTS = 200
SURFACE_POINTS = 2000
SURFACE_TOP = 200  # the best members are always among the surface points


class MemberCurve(NamedTuple):
    """One drawn member: ``val_acc`` / ``train_loss`` at :attr:`Snapshot.steps` (None
    where it was not evaluated: diverged or stopped)."""

    member: int
    role: str  # "top" | "typical"
    lr: float
    l2: float
    acc: float | None
    val_acc: list[float | None]
    train_loss: list[float | None]
    # the user's own hyperparameters (``hparams``) of the member; {} for none (and for
    # snapshots written before they existed)
    hparams: dict = {}  # noqa: RUF012 (never mutated)


class Snapshot(NamedTuple):
    """The population at step ``step``. The surface lists (``member``, ``lr``, ``l2``,
    ``acc``, ``status``) are parallel, one entry per drawn member; ``counts`` covers every
    member (``{"training": n, "ok": n, "stopped": n, "diverged": n}``). ``acc_label``
    says what ``acc`` is (the newest subset accuracy while running, the best one once
    finished)."""

    step: int
    num_members: int
    acc_label: str
    steps: list[int]
    curves: list[MemberCurve]
    member: list[int]
    lr: list[float]
    l2: list[float]
    acc: list[float | None]
    status: list[int]
    counts: dict[str, int]

    def to_json(self) -> dict:
        out = self._asdict()
        out["curves"] = [c._asdict() for c in self.curves]
        return out

    @classmethod
    def from_json(cls, d: dict) -> Snapshot:
        fields = {k: d[k] for k in cls._fields}
        fields["curves"] = [MemberCurve(**c) for c in d["curves"]]
        return cls(**fields)


def _num(x, digits: int = 4) -> float | None:
    """``x`` to ``digits`` significant digits (JSON-small); None for NaN / inf."""
    x = float(x)
    if not math.isfinite(x):
        return None
    return float(f"{x:.{digits}g}")


def _nums(a, digits: int = 4) -> list[float | None]:
    return [_num(x, digits) for x in np.asarray(a, np.float64).ravel()]


def _even(n: int, k: int) -> np.ndarray:
    """At most ``k`` indices of ``range(n)``, evenly spread, first and last included."""
    if n <= k:
        return np.arange(n)
    return np.unique(np.round(np.linspace(0, n - 1, k)).astype(np.int64))


# A status code's group in the one ranking order: training or finished, stopped, diverged.
RANK_GROUP = np.array([0, 0, 1, 2])


def pick_curves(
    acc: np.ndarray, status: np.ndarray | None = None, ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Rows to draw: the ``TOP_CURVES`` best of ``[M]`` (NaN never), and
    ``TYPICAL_CURVES`` at even quantiles of the rest of the finite ranking. The ranking is
    the tables' (:func:`sweepjax.analysis.ranking.rank_order`): training and finished
    members before stopped ones before diverged ones (``status`` codes), each by higher
    ``acc``, then lower ``ids`` (the page has no validation loss)."""
    finite = np.flatnonzero(np.isfinite(acc))
    group = None if status is None else RANK_GROUP[np.asarray(status, np.int64)[finite]]
    tie = None if ids is None else np.asarray(ids)[finite]
    ranked = finite[rank_order(acc[finite], None, tie, group)]
    top, rest = ranked[:TOP_CURVES], ranked[TOP_CURVES:]
    if len(rest) <= TYPICAL_CURVES:
        return top, rest
    q = np.linspace(0, len(rest) - 1, TYPICAL_CURVES + 2)[1:-1]
    return top, rest[np.unique(np.round(q).astype(np.int64))]


def pick_surface(acc: np.ndarray) -> np.ndarray:
    """Rows of the surface: every member up to ``SURFACE_POINTS``; past that the
    ``SURFACE_TOP`` best and an even stride through the others (in member order, so
    the sample keeps the population's mix of good, bad and diverged)."""
    m = len(acc)
    if m <= SURFACE_POINTS:
        return np.arange(m)
    finite = np.flatnonzero(np.isfinite(acc))
    best = finite[np.argsort(-acc[finite], kind="stable")][:SURFACE_TOP]
    others = np.setdiff1d(np.arange(m), best)
    spread = others[_even(len(others), SURFACE_POINTS - len(best))]
    return np.sort(np.concatenate([best, spread]))


def build(
    step: int,
    steps: np.ndarray,
    val_acc: np.ndarray,
    train_loss: np.ndarray,
    lr: np.ndarray,
    l2: np.ndarray,
    status: np.ndarray,
    member_ids: np.ndarray,
    acc: np.ndarray,
    acc_label: str = "val acc now",
    user: dict | None = None,
    metric: Metric = ACCURACY,
) -> Snapshot:
    """The snapshot of a population: ``steps[E]``, curves ``[M, E]``, the rest ``[M]``
    (``status``: the codes above); the best picked in ``metric``'s direction."""
    acc = np.asarray(acc, np.float64)
    status = np.asarray(status, np.int64)
    ids = np.asarray(member_ids, np.int64)
    cols = _even(len(steps), CURVE_POINTS)
    score = metric.orient(acc)
    top, typical = pick_curves(score, status, ids) if len(cols) else (ids[:0], ids[:0])
    curves = [
        MemberCurve(
            int(ids[r]),
            role,
            _num(lr[r]),
            _num(l2[r]),
            _num(acc[r]),
            _nums(np.asarray(val_acc[r])[cols]),
            _nums(np.asarray(train_loss[r])[cols]),
            {k: _num(np.asarray(v)[r]) for k, v in (user or {}).items()},
        )
        for rows, role in ((top, "top"), (typical, "typical"))
        for r in rows
    ]
    pts = pick_surface(score)
    return Snapshot(
        step=int(step),
        num_members=len(acc),
        acc_label=acc_label,
        steps=[int(s) for s in np.asarray(steps)[cols]],
        curves=curves,
        member=[int(i) for i in ids[pts]],
        lr=_nums(np.asarray(lr)[pts]),
        l2=_nums(np.asarray(l2)[pts]),
        acc=_nums(acc[pts]),
        status=[int(s) for s in status[pts]],
        counts={name: int(np.sum(status == code)) for code, name in enumerate(STATUS)},
    )


def running_status(curves: Curves, schedule: ScheduleState) -> np.ndarray:
    """Per member ``[M]``: training (active, its newest evaluation finite), stopped (by a
    scheduler), diverged (flagged, or active with a non-finite newest evaluation)."""
    m = curves.val_acc.shape[0]
    out = np.full(m, OK, np.int64)
    out[schedule.active] = TRAINING
    newest = curves.val_acc[:, -1] if curves.val_acc.shape[1] else np.zeros(m)
    out[np.asarray(schedule.stopped_at) >= 0] = STOPPED
    bad = ~np.asarray(schedule.alive, bool)
    bad[schedule.active] |= ~np.isfinite(newest[schedule.active])
    out[bad] = DIVERGED
    return out


def of_running(
    curves: Curves,
    schedule: ScheduleState,
    member_ids: np.ndarray,
    step: int,
    metric: Metric | None = None,
) -> Snapshot:
    """A training population's snapshot (the trainer's host records, read only); the
    best members picked in ``metric``'s direction."""
    metric = metric or ACCURACY
    return build(
        step,
        curves.step,
        curves.val_acc,
        curves.train_loss,
        schedule.hparams.lr,
        schedule.hparams.l2,
        running_status(curves, schedule),
        member_ids,
        curves.last_finite("val_acc"),
        user=schedule.hparams.user,
        acc_label="val acc now" if metric is ACCURACY else f"val {metric.short} now",
        metric=metric,
    )


def of_result(result: SweepResult) -> Snapshot:
    """A stored sweep's snapshot: members by their best validation accuracy."""
    codes = {"ok": OK, "stopped": STOPPED, "diverged": DIVERGED}
    m = len(result.members)
    c = result.curves
    if c is None or c.val_acc.shape[0] != m:  # no curves stored: the surface only
        c = Curves.empty(m)
    return build(
        int(c.step[-1]) if len(c.step) else 0,
        c.step,
        c.val_acc,
        c.train_loss,
        result.member_array("lr"),
        result.member_array("l2"),
        np.array([codes.get(mr.status, OK) for mr in result.members], np.int64),
        np.array([mr.id for mr in result.members], np.int64),
        result.member_array("best_val_acc"),
        acc_label=f"best val {result.config.metric.short}",
        user=_user_columns(result),
        metric=result.config.metric,
    )


def _user_columns(result: SweepResult) -> dict[str, np.ndarray]:
    """``{name: [M]}`` of the user's own hyperparameters (NaN where a member has none)."""
    names = sorted({n for m in result.members for n in m.hparams})
    return {n: np.array([m.hparams.get(n, np.nan) for m in result.members]) for n in names}
