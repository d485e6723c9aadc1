"""What the trainers hand back: per-chunk reports, timings, the population's result."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from sweepjax.engine.curves import Checkpoint, Curves, ScheduleState
from sweepjax.engine.hparams import HParams
from sweepjax.metric import ACCURACY, Metric


class Timing(NamedTuple):
    compile_s: float  # ahead-of-time compilation of the population programs
    train_s: float  # the compiled chunk calls, blocked until ready
    eval_s: float  # whole-validation-set evaluations (decisions and the end)
    transfer_s: float  # device -> host copies of the whole state (checkpoints, the end)
    model_steps_per_s: float  # member-steps trained / train_s
    num_groups: int  # program calls the first population was split into (memory budget;
    # on a CPU a shrinking population's groups of its survivors' width: engine/group_width)
    group_size: int
    # Between blocks no decision needs: seconds the device had nothing queued (from a
    # block's metrics on the host to the next block's dispatch), and how many such gaps.
    # With the next block dispatched first (no ``on_chunk``: engine/overlap.py) ~0.
    host_gap_s: float = 0.0
    gaps: int = 0


class AnytimeStatus(NamedTuple):
    """An anytime run's standing after a block (``ChunkReport.anytime``)."""

    elapsed_s: float  # wall seconds of the whole process (and of earlier parts)
    member_steps: int
    budget: str  # as the user gave it, e.g. "60s"; "" without one
    spent: float  # share of the budget spent, 0..1 (NaN without one)
    finished: int  # members that reached the full length
    best_member: int  # the best finished member's id (-1: none yet)


class ChunkReport(NamedTuple):
    """Handed to ``on_chunk`` after every chunk.

    ``best_val_acc`` is the best accuracy so far on the validation subset evaluated every
    block (cheap, noisy); ``best_full_val_acc`` the best on the whole validation set,
    known only after a scheduler decision (NaN before). ``checkpoint()`` copies the
    state to the host: call it only when you will store it.
    """

    step: int
    total_steps: int
    alive: int
    active: int
    num_members: int
    best_val_acc: float
    best_full_val_acc: float
    elapsed_s: float
    decided: bool
    state_bytes: int  # size of what ``checkpoint()`` would copy
    checkpoint: Callable[[], Checkpoint]
    anytime: AnytimeStatus | None = None  # refilling (ASHA) runs only
    # The host records the trainer already holds (no copy; read, never modify): every
    # member's curves ``[M, E]`` and schedule state, for a live view. None: not given.
    curves: Curves | None = None
    schedule: ScheduleState | None = None
    metric: Metric = ACCURACY  # what ``best_val_acc`` measures (an MSE: lower is better)
    # A choice sweep's part: the sweep's member ids of the rows of ``curves`` /
    # ``schedule`` and the part's categorical values. None: the run's own rows, no choice.
    member_ids: np.ndarray | None = None
    choice: Mapping[str, str] | None = None


class PopulationResult(NamedTuple):
    """What :func:`train_population` returns. Per-member arrays are ``[M]``.

    ``params`` / ``best_params`` hold only the members that trained to the end, in
    ``finished`` order (use :func:`member_params`). ``best_val_acc`` is each member's
    best parameters measured on the whole validation set; ``final_val_*`` its final (or
    at-stop) parameters on the whole set.
    """

    member_ids: np.ndarray
    hparams: HParams  # final values (PBT changes them; see ``history``)
    alive: np.ndarray
    diverged_at: np.ndarray
    stopped_at: np.ndarray  # -1 unless a scheduler stopped the member
    initial_loss: np.ndarray
    best_val_acc: np.ndarray
    best_step: np.ndarray
    final_train_loss: np.ndarray
    final_val_loss: np.ndarray
    final_val_acc: np.ndarray
    final_train_acc: np.ndarray
    curves: Curves
    finished: np.ndarray  # rows that trained to the end, in ``params`` order
    params: Any
    best_params: Any
    lineage: np.ndarray  # [L, 3] (step, member row, copied-from row)
    history: np.ndarray  # [H, 5 + U] (step, member row, lr, l2, lr_decay, *user by name)
    timing: Timing
    completed: bool  # False when on_chunk asked to stop early
    checkpoint: Checkpoint | None
    # Anytime runs (``train_refilling``): best-so-far points ``[P, 4]`` (elapsed s,
    # member-steps, best whole-validation accuracy of a finished member, its row) and
    # how many members the budget stopped in flight.
    progress: np.ndarray | None = None
    in_flight: int = 0
    rung_log: np.ndarray | None = None  # [N, 5] every rung judgement (RungLog.as_array)
    # [M] the metric's per-example mean square at ``best_val_acc`` (its SE; NaN unmeasured)
    best_val_sq: np.ndarray | None = None

    @classmethod
    def of(cls, member_ids, sched: ScheduleState, curves: Curves, **rest) -> PopulationResult:
        """The result whose per-member numbers come from the schedule state and curves
        (both trainers end this way); ``rest`` holds the trainer's own fields."""
        diverged = ~sched.alive
        return cls(
            member_ids=member_ids,
            hparams=sched.hparams,
            alive=sched.alive,
            diverged_at=sched.diverged_at,
            stopped_at=sched.stopped_at,
            initial_loss=sched.initial_loss,
            best_val_acc=sched.best_val_acc,
            best_step=sched.best_step,
            final_train_loss=np.where(diverged, np.nan, curves.last_finite("train_loss")),
            final_val_loss=np.where(diverged, np.nan, sched.val_loss),
            final_val_acc=np.where(diverged, np.nan, sched.val_acc),
            final_train_acc=np.where(diverged, np.nan, curves.last_finite("train_acc")),
            curves=curves,
            history=sched.history,
            best_val_sq=sched.best_val_sq,
            **rest,
        )

    @property
    def num_members(self) -> int:
        return int(self.member_ids.shape[0])

    @property
    def status(self) -> list[str]:
        return [
            "diverged" if not a else ("stopped" if s >= 0 else "ok")
            for a, s in zip(self.alive, self.stopped_at, strict=True)
        ]
