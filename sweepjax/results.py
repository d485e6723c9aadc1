"""Typed records of a finished (or interrupted) sweep.

These are what the Python API returns, what the store writes and reads, what the JSON
output is made from, and what the report draws. They hold host data only (numpy,
floats, strings): nothing here knows about jit or SQLite.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sweepjax.curves import Curves


@dataclass(frozen=True)
class MemberRecord:
    """One member's hyperparameters and outcome (a row of the results table)."""

    id: int
    lr: float
    l2: float
    lr_decay: float
    status: str  # "ok" | "diverged" | "stopped" (a scheduler stopped it at stopped_at)
    diverged_at: int | None
    best_val_acc: float
    best_step: int
    final_train_loss: float | None
    final_val_loss: float | None
    final_train_acc: float | None
    final_val_acc: float | None
    test_acc: float | None = None  # filled for winners only
    stopped_at: int | None = None  # step at which a scheduler stopped it
    val_acc_se: float | None = None  # binomial SE of best_val_acc on the validation set

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class BoundaryFlag:
    """The modelled score still rises significantly toward an edge of the searched box
    (:func:`sweepjax.verdict.decide`): the optimum may lie past it.

    ``rise`` is the modelled accuracy gained across the outer band toward the edge (SE
    ``rise_se``, one-sided ``p_value``); ``confidence`` the fraction of posterior surfaces
    whose best point lies in that band. ``member`` is only set on flags read from stores
    written before the model (the old rule flagged top members in the band)."""

    param: str  # "lr" | "l2" | ...
    side: str  # "low" | "high"
    member: int | None = None
    rise: float | None = None
    rise_se: float | None = None
    p_value: float | None = None
    confidence: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class VerdictRecord:
    """The response-surface verdict of a sweep in real units (:mod:`sweepjax.appraise`).

    Attributes:
      importance: per axis, the range of the modelled partial-dependence curve
        (accuracy points between the axis's best and worst value, others averaged).
      importance_se: its posterior SD.
      flat: axes over which the model shows no measurable difference anywhere.
      flat_ranges: per axis, ``[lo, hi]`` around its best value with no measurable
        difference (the whole box for a flat axis).
      optimum: per axis, the modelled optimum; ``optimum_value`` the score there.
      optimum_inside: no edge is flagged; ``optimum_confidence`` the fraction of
        posterior surfaces whose optimum is inside.
      tol: the smallest difference called a difference (the winner's accuracy SE).
      fit: which members the surface was fitted on.
    """

    importance: dict[str, float]
    importance_se: dict[str, float]
    flat: list[str]
    flat_ranges: dict[str, list[float]]
    optimum: dict[str, float]
    optimum_value: float
    optimum_inside: bool
    optimum_confidence: float
    tol: float
    fit: str = ""

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Winner:
    id: int
    lr: float
    l2: float
    val_acc: float
    test_acc: float | None
    val_acc_se: float | None = None
    # The winner retrained on train + validation for refit_steps (fine / auto), scored on
    # the test set; test_acc is the early-stopped (best-checkpoint) model's.
    refit_test_acc: float | None = None
    refit_steps: int | None = None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class TimingRecord:
    compile_s: float
    train_s: float
    model_steps_per_s: float
    eval_s: float = 0.0  # whole-validation-set evaluations (decisions, the end)
    transfer_s: float = 0.0  # device -> host copies of the state (checkpoints, the end)
    checkpoint_s: float = 0.0  # writing checkpoints to the store (throttled to ~5%)
    checkpoints: int = 0  # how many were written

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass
class SweepResult:
    """Everything known about one sweep.

    Attributes:
      sweep_id: stable id in the store.
      kind: ``"coarse"`` or ``"fine"``.
      parent: the sweep this one refined, or None.
      dataset: ``DatasetInfo.as_dict()`` of the data really used.
      space: searched box, ``{"lr": [lo, hi], "l2": [lo, hi], ...}`` in real units.
      config: the resolved configuration (model, train, data, search settings).
      members: one record per member, in id order.
      winner: the member with the best validation accuracy, with its test accuracy.
      boundary: edges toward which the modelled score still rises significantly.
      tied: member ids statistically tied with the winner (winner first).
      verdict: the response-surface verdict (importance, flat axes, optimum), or None.
      timing: compile / train time and throughput.
      curves: every evaluation of every member (rows in ``members`` order), or None.
      winner_params: the winner's parameters (host pytree), for the weight pictures.
      parent_spaces: boxes of the ancestors, oldest first, as ``(sweep_id, space)``.
      refinement: a one-line explanation of how a fine box was chosen (fine only).
      status: ``"finished"`` | ``"running"`` | ``"interrupted"``.
      report: path of the HTML report, or None.
      lineage: PBT's copies, ``{"step", "member", "copied_from"}`` (member ids).
      history: each hyperparameter change, ``{"step", "member", "lr", "l2",
        "lr_decay"}``; a member's schedule is its rows in step order (PBT).
    """

    sweep_id: str
    kind: str
    parent: str | None
    dataset: dict
    space: dict[str, list[float]]
    config: dict
    members: list[MemberRecord]
    winner: Winner | None
    boundary: list[BoundaryFlag]
    timing: TimingRecord
    curves: Curves | None = None
    winner_params: Any = None
    parent_spaces: list[tuple[str, dict[str, list[float]]]] = field(default_factory=list)
    refinement: str | None = None
    status: str = "finished"
    report: str | None = None
    lineage: list[dict] = field(default_factory=list)
    history: list[dict] = field(default_factory=list)
    tied: list[int] = field(default_factory=list)
    verdict: VerdictRecord | None = None

    def verdict_json(self) -> dict:
        """What the store keeps of the verdict (tied set and the model's decisions)."""
        return {
            "tied": list(self.tied),
            "verdict": self.verdict.as_dict() if self.verdict else None,
        }

    def member_array(self, name: str) -> np.ndarray:
        """A column of the members table, e.g. ``member_array("lr")`` -> ``[M]``."""
        return np.array([getattr(m, name) for m in self.members], dtype=float)

    def schedule_json(self) -> dict:
        """What the store keeps of the scheduler's decisions."""
        return {"lineage": self.lineage, "history": self.history}

    def hparam_schedule(self, member: int) -> list[dict]:
        """Member ``member``'s hyperparameters over time (one entry per change)."""
        return [h for h in self.history if h["member"] == member]

    def to_json(self) -> dict:
        """The documented JSON document (``--format json``)."""
        return {
            "sweep_id": self.sweep_id,
            "kind": self.kind,
            "parent": self.parent,
            "dataset": {
                k: self.dataset.get(k) for k in ("name", "n_train", "n_val", "n_test", "sha256")
            },
            "space": self.space,
            "members": [m.as_dict() for m in self.members],
            "winner": self.winner.as_dict() if self.winner else None,
            "boundary": [b.as_dict() for b in self.boundary],
            "tied": list(self.tied),
            "importance": self.verdict.importance if self.verdict else {},
            "flat": self.verdict.flat if self.verdict else [],
            "optimum_inside": self.verdict.optimum_inside if self.verdict else None,
            "optimum_confidence": self.verdict.optimum_confidence if self.verdict else None,
            "verdict": self.verdict.as_dict() if self.verdict else None,
            "timing": self.timing.as_dict(),
            "schedule": self.config.get("schedule", {}).get("name", "full"),
            "lineage": self.lineage,
            "report": self.report,
        }
