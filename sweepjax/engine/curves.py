"""Host records of a population in training: its curves, its schedule state, checkpoints.

Plain numpy containers that the trainer produces and the store, the results and the
report read. Nothing here knows about jit or SQLite, so neither the store nor the
results import the trainer.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from sweepjax.engine.hparams import BUILTIN_FIELDS, FIXED_DEFAULTS, HParams

# The checkpoint columns of the user's own hyperparameters: ``hpu_<name>``.
USER_PREFIX = "hpu_"

# The hyperparameters a member's schedule records (PBT explores lr and lambda; a copy's
# other axes come from its donor and are told by the lineage), then the user's own
# (``HParams.user``, by name), which PBT perturbs like lr.
HISTORY_FIELDS = ("lr", "l2", "lr_decay")


def history_values(hp: HParams) -> list[np.ndarray]:
    """The ``[M]`` columns a history row records after ``(step, member row)``:
    :data:`HISTORY_FIELDS`, then the user's own hyperparameters by name."""
    cols = [np.asarray(getattr(hp, f), np.float64) for f in HISTORY_FIELDS]
    return cols + [np.asarray(v, np.float64) for _, v in sorted(hp.user.items())]


def history_names(hp: HParams) -> tuple[str, ...]:
    """The names of :func:`history_values`' columns."""
    return (*HISTORY_FIELDS, *sorted(hp.user))


def history_rows(history, hp: HParams) -> np.ndarray:
    """``history`` as ``[H, 2 + len(history_names(hp))]`` float64; rows written before the
    user's columns were recorded (5 wide) get NaN there."""
    width = 2 + len(history_names(hp))
    h = np.asarray(history, np.float64)
    h = h.reshape(-1, h.shape[1] if h.ndim == 2 and h.size else width)
    if h.shape[1] < width:
        h = np.concatenate([h, np.full((h.shape[0], width - h.shape[1]), np.nan)], axis=1)
    return h


class Curves(NamedTuple):
    """Every evaluation of every member. ``step[E]``; each metric ``[M, E]``.

    Entries after a member diverged, or after a scheduler stopped it, are NaN.
    ``val_loss`` / ``val_acc`` come from the fixed validation subset the trainer
    evaluates between decisions (the whole validation set when it is small enough).
    """

    step: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    train_acc: np.ndarray
    update_ratio: np.ndarray

    @classmethod
    def empty(cls, num_members: int) -> Curves:
        z = np.zeros((num_members, 0), np.float32)
        return cls(np.zeros((0,), np.int64), z, z, z, z, z)

    def append(self, steps: np.ndarray, metrics, rows: np.ndarray | None = None) -> Curves:
        """Add evaluations ``metrics`` (fields ``[R, e]``) at ``steps[e]`` for member rows
        ``rows`` (default: every member); the other members get NaN there."""
        m = self.train_loss.shape[0]

        def grow(old, new):
            new = np.asarray(new, np.float32)
            if rows is None:
                block = new
            else:
                block = np.full((m, new.shape[1]), np.nan, np.float32)
                block[rows] = new
            return np.concatenate([old, block], axis=1)

        return Curves(
            np.concatenate([self.step, np.asarray(steps, np.int64)]),
            *(grow(old, new) for old, new in zip(self[1:], metrics, strict=True)),
        )

    def last_finite(self, name: str) -> np.ndarray:
        """Per member, the last finite value of curve ``name`` (NaN if none): a stopped
        member's value at its stop, a finished member's final value."""
        a = np.asarray(getattr(self, name), np.float32)
        out = np.full(a.shape[0], np.nan, np.float32)
        if a.shape[1] == 0:
            return out
        ok = np.isfinite(a)
        has = ok.any(axis=1)
        last = a.shape[1] - 1 - np.argmax(ok[:, ::-1], axis=1)
        out[has] = a[has, last[has]]
        return out


class ScheduleState(NamedTuple):
    """What a scheduler has decided so far, per member row ``[M]`` of the population.

    Attributes:
      active: rows still training, in the order their states are held ``[A]``.
      hparams: current hyperparameters of every member (PBT changes them over time).
      stopped_at: step at which a scheduler stopped the member, -1 if it was not.
      alive, diverged_at, initial_loss, best_step: the member's health and
        best-checkpoint step, frozen when it stops (active rows are updated at the end).
      best_val_acc: accuracy of the member's best parameters on the WHOLE validation
        set, NaN until it has been measured (at a decision or at the end).
      val_loss, val_acc: its current parameters on the whole validation set when it
        stopped or the run ended (NaN before).
      lineage: ``[L, 3]`` int64 rows ``(step, member row, copied-from row)`` (PBT).
      history: ``[H, 5 + U]`` float64 rows ``(step, member row, lr, l2, lr_decay, *user)``
        (the user's own hyperparameters by name, :func:`history_names`): each
        member's hyperparameter schedule, one row per change (PBT).
    """

    active: np.ndarray
    hparams: HParams
    stopped_at: np.ndarray
    alive: np.ndarray
    diverged_at: np.ndarray
    initial_loss: np.ndarray
    best_step: np.ndarray
    best_val_acc: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    lineage: np.ndarray
    history: np.ndarray
    # The metric's per-example mean square at ``best_val_acc`` (its SE for a metric that
    # is not accuracy, :meth:`sweepjax.metric.Metric.se`); NaN where not measured (and in
    # checkpoints written before it was kept).
    best_val_sq: np.ndarray

    @classmethod
    def start(cls, hparams: HParams) -> ScheduleState:
        m = hparams.num_members
        rows = np.arange(m, dtype=np.int64)
        hist = np.stack([np.zeros(m), rows, *history_values(hparams)], axis=1)
        return cls(
            active=rows,
            hparams=hparams,
            stopped_at=np.full(m, -1, np.int32),
            alive=np.ones(m, bool),
            diverged_at=np.full(m, -1, np.int32),
            initial_loss=np.full(m, np.nan, np.float32),
            best_step=np.zeros(m, np.int32),
            best_val_acc=np.full(m, np.nan, np.float32),
            val_loss=np.full(m, np.nan, np.float32),
            val_acc=np.full(m, np.nan, np.float32),
            lineage=np.zeros((0, 3), np.int64),
            history=hist.astype(np.float64),
            best_val_sq=np.full(m, np.nan, np.float32),
        )

    def as_arrays(self) -> dict[str, np.ndarray]:
        """Flat ``{name: array}`` form (for the store)."""
        out = {k: np.asarray(v) for k, v in self._asdict().items() if k != "hparams"}
        out.update({f"hp_{k}": v for k, v in self.hparams.as_columns().items()})
        out.update({f"{USER_PREFIX}{k}": np.asarray(v) for k, v in self.hparams.user.items()})
        return out

    @classmethod
    def from_arrays(cls, d: dict[str, Any]) -> ScheduleState:
        # Checkpoints written before an axis existed hold its fixed value.
        n = len(np.asarray(d["hp_lr"]))
        hp = HParams(
            *(
                np.asarray(d[f"hp_{f}"], np.float32)
                if f"hp_{f}" in d
                else np.full(n, FIXED_DEFAULTS[f], np.float32)
                for f in BUILTIN_FIELDS
            ),
            user={
                k[len(USER_PREFIX) :]: np.asarray(v, np.float32)
                for k, v in sorted(d.items())
                if k.startswith(USER_PREFIX)
            },
        )
        nan = np.full(n, np.nan, np.float32)  # a field written after the checkpoint
        fields = {k: np.asarray(d[k]) if k in d else nan for k in cls._fields if k != "hparams"}
        fields["lineage"] = fields["lineage"].reshape(-1, 3).astype(np.int64)
        fields["history"] = history_rows(fields["history"], hp)
        return cls(hparams=hp, **fields)


class Checkpoint(NamedTuple):
    """Everything needed to continue training exactly where it stopped.

    ``states`` is a host pytree of the active members' training state, leading axis
    ``[A]`` in ``schedule.active`` order; ``curves`` covers every member; ``size`` is the
    compiled program's population size they trained in (0: the default for ``A``), so a
    resumed run continues in the same program and matches bit for bit.
    """

    step: int
    states: Any
    curves: Curves
    schedule: ScheduleState
    size: int = 0
    # A sweep with categorical axes trains its parts one after another: the stored
    # final checkpoints of the parts already finished (:mod:`sweepjax.flows.choices`).
    parts: tuple = ()
