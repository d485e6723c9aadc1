"""The contract between the trainer and a scheduler (:mod:`sweepjax.schedulers`).

At each of a scheduler's decision steps the trainer evaluates the active members on the
whole validation set and hands it a :class:`RungView`; the scheduler answers with a
:class:`Decision`, which the trainer applies as one gather on the member axis. The
trainer needs only these types, so the engine never imports a scheduling rule.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from sweepjax.engine.hparams import HParams


class RungView(NamedTuple):
    """The active members at a decision step (rows ``[A]``, in the trainer's order)."""

    step: int
    rows: np.ndarray  # member rows (positions in the original population)
    val_loss: np.ndarray  # current parameters, whole validation set
    val_acc: np.ndarray
    alive: np.ndarray
    hparams: HParams


class Decision(NamedTuple):
    """What continues: slot ``j`` of the new population takes the state of view position
    ``src[j]``, becomes member row ``rows[j]`` and trains with ``hparams`` row ``j``."""

    src: np.ndarray
    rows: np.ndarray
    hparams: HParams


class Scheduler(Protocol):
    name: str

    def decision_steps(self) -> list[int]:
        """Steps (sorted, each below the run's total) at which :meth:`decide` is called."""

    def decide(self, view: RungView) -> Decision: ...


# The rung a diverged member is logged at: no decision is made there (every decision reads
# one rung), but the draws' model reads these entries as evidence that the region is bad.
DIVERGED_RUNG = -1


class RungLog(NamedTuple):
    """Every rung judgement so far, one entry per (member, rung), in the order made,
    and every finished member's final numbers (``rung`` = the run's length ``R``; no
    decision is made there, the draws model them).

    ``rung`` is the age (steps trained) judged at; ``val_loss`` / ``val_acc`` the
    member's current parameters on the whole validation set (``n_val`` rows).
    """

    rung: np.ndarray  # int64 [N]
    row: np.ndarray  # int64 [N] member row
    val_loss: np.ndarray  # float64 [N]
    val_acc: np.ndarray  # float64 [N]
    alive: np.ndarray  # bool [N]
    n_val: int

    @classmethod
    def empty(cls, n_val: int) -> RungLog:
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), z, z, z.astype(bool), int(n_val))

    def extend(self, rung: int, rows, val_loss, val_acc, alive) -> RungLog:
        n = len(rows)
        return RungLog(
            np.concatenate([self.rung, np.full(n, rung, np.int64)]),
            np.concatenate([self.row, np.asarray(rows, np.int64)]),
            np.concatenate([self.val_loss, np.asarray(val_loss, np.float64)]),
            np.concatenate([self.val_acc, np.asarray(val_acc, np.float64)]),
            np.concatenate([self.alive, np.asarray(alive, bool)]),
            self.n_val,
        )

    def as_array(self) -> np.ndarray:
        """``[N, 5]`` float64 (rung, row, loss, acc, alive): the checkpoint's form."""
        cols = (self.rung, self.row, self.val_loss, self.val_acc, self.alive)
        return np.stack([np.asarray(c, np.float64) for c in cols], axis=1).reshape(-1, 5)

    @classmethod
    def from_array(cls, a: np.ndarray, n_val: int) -> RungLog:
        a = np.asarray(a, np.float64).reshape(-1, 5)
        return cls(
            a[:, 0].astype(np.int64),
            a[:, 1].astype(np.int64),
            a[:, 2].copy(),
            a[:, 3].copy(),
            a[:, 4].astype(bool),
            int(n_val),
        )


class Refills(Protocol):
    """An asynchronous scheduler: rungs by member age, a verdict per arrival, and the
    draws that refill freed slots (:class:`sweepjax.schedulers.asha.ASHA`)."""

    name: str

    def rungs(self) -> list[int]:
        """Ages (steps trained, sorted, each below the run's length) judged at."""

    def block(self) -> int:
        """Steps per compiled call; every rung and the run's length are multiples."""

    def corners(self) -> HParams:
        """Members at the box's extremes: the program is compiled to cover them."""

    def decide(self, log: RungLog, rung: int, positions: np.ndarray) -> np.ndarray:
        """Whether each log entry ``positions`` (just added, all at ``rung``) continues."""

    def draw(self, ids: np.ndarray, log: RungLog, hparams: HParams | None) -> HParams:
        """Hyperparameters of the new members ``ids`` (``hparams``: every member's so far,
        by row; None before the first)."""
