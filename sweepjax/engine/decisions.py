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
