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

from sweepjax.engine.curves import Curves
from sweepjax.results.verdict_records import BoundaryFlag, VerdictRecord  # noqa: F401
from sweepjax.spec import SweepSpec
from sweepjax.sweep_config import SweepConfig

# The per-member axes a record carries beyond (lr, l2, lr_decay), named as their flags
# (``--hidden``, ``--dropout``, ``--init-scale``, ``--momentum``) and their JSON keys.
EXTRA_AXES = ("hidden", "dropout", "init_scale", "momentum")


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
    # With --replicas / --folds: the sampled config this member is a replica of, and which
    # replica (with --folds, also the fold it holds out). None in a plain sweep.
    config: int | None = None
    replica: int | None = None
    # The axes beyond (lr, l2, lr_decay), searched or fixed: the values it trained with.
    # hidden: its effective width, min(its own, the network's) (None: not an MLP);
    # momentum: the momentum / Adam b1 coefficient (None: sgd has none).
    hidden: int | None = None
    dropout: float | None = None
    init_scale: float | None = None
    momentum: float | None = None
    # The user's own hyperparameters (``hparams``, searched or fixed): ``{name: value}``;
    # each also reads as an attribute (``record.label_smoothing``), like the axes above.
    hparams: dict = field(default_factory=dict)
    # With categorical axes (``choices``): the values it trained with, e.g.
    # {"optimizer": "adam"} (None without; derived from the config, so not a column).
    choice: dict | None = None

    def __getattr__(self, name: str):
        return user_value(self, name)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def user_value(record, name: str):
    """The user's hyperparameter ``name`` of a record (its ``hparams``), else
    AttributeError: what lets the verdicts, the box rules and the exports read a user's
    axis as they read ``record.lr``."""
    own = record.__dict__.get("hparams") if not name.startswith("__") else None
    if own is not None and name in own:
        return own[name]
    raise AttributeError(f"{type(record).__name__} has no attribute {name!r}")


@dataclass(frozen=True)
class ConfigRecord:
    """One sampled config and its replicas (scikit-learn's ``cv_results_`` row).

    ``mean_val_acc`` / ``std_val_acc`` (population SD, ``ddof=0`` as scikit-learn) over
    the replicas' best validation accuracies (with folds: each on its own held-out fold);
    ``rank_val_acc`` 1 for the best config (finished before stopped before diverged, then
    by mean); ``val_acc_se`` the SE of the mean
    (:func:`~sweepjax.results.config_groups.config_se`)."""

    id: int
    lr: float
    l2: float
    lr_decay: float
    status: str  # "ok" | "stopped" | "diverged" (every replica diverged)
    mean_val_acc: float
    std_val_acc: float
    rank_val_acc: int
    val_acc_se: float
    mean_val_loss: float | None
    members: list[int]
    stopped_at: int | None = None
    hidden: int | None = None  # the axes beyond (lr, l2, lr_decay): see MemberRecord
    dropout: float | None = None
    init_scale: float | None = None
    momentum: float | None = None
    hparams: dict = field(default_factory=dict)  # the user's own: see MemberRecord

    def __getattr__(self, name: str):
        return user_value(self, name)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def _uses_momentum(optimizer: str) -> bool:
    """Whether ``optimizer`` has a momentum axis. The built-in names are known without
    importing optax: `watch` reads records before (and without) jax."""
    if optimizer in ("sgd", "momentum", "adam"):
        return optimizer != "sgd"
    from sweepjax.engine.optimizers import has_momentum  # an optax factory's name

    return has_momentum(optimizer)


def fixed_axes(config: SweepConfig) -> dict:
    """The :data:`EXTRA_AXES` values every member of a sweep trained with when it did not
    search them, from the sweep's resolved ``config``: the MLP's full width (None without
    an MLP), ``train.dropout``, ``train.init_scale``, ``train.momentum`` (None with sgd).
    What members stored before these axes existed are read as.

    Example::

      cfg = SweepConfig("coarse", DataConfig(), ModelConfig("mlp", hidden=100),
                        TrainConfig(optimizer="adam"), SearchSpace(), trials=8)
      fixed_axes(cfg)  # {'hidden': 100, 'dropout': 0.0, 'init_scale': 1.0, 'momentum': 0.9}
    """
    model, train = config.model, config.train
    return {
        "hidden": int(model.hidden) if model.kind == "mlp" else None,
        "dropout": float(train.dropout),
        "init_scale": float(train.init_scale),
        "momentum": float(train.momentum) if _uses_momentum(train.optimizer) else None,
    }


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
    # With replicas / folds the winner is a config: ``val_acc`` its mean over replicas,
    # ``val_acc_se`` the SE of that mean; ``id`` / ``test_acc`` its best replica's.
    config: int | None = None
    # An anytime search whose budget ran out before any member reached the full length
    # answers with its best member so far: ``finished`` False, ``steps`` the steps it
    # trained (no weights were kept, so no ``test_acc``; a refit retrains it).
    finished: bool = True
    steps: int | None = None

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
    # The winner's retraining on train + validation (flows/refit.py): training too, but
    # after the sweep, so it is not in ``train_s``; 0 when there was no refit.
    refit_s: float = 0.0

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
      config: the resolved configuration, typed (model, train, data, schedule, search
        settings; :class:`~sweepjax.sweep_config.SweepConfig`).
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
        "lr_decay", *the user's own}``; a member's schedule is its rows in step order
        (PBT). A user's axis is absent from rows of sweeps stored before it was recorded.
      configs: with ``replicas`` / ``folds``, the members grouped by sampled config
        (:class:`ConfigRecord`, scikit-learn's ``cv_results_``); empty otherwise.
      activations: MLP only: ``{member id: ActivationStats}`` of the kept members
        (winner first), their hidden activations on a fixed validation sample
        (:mod:`sweepjax.analysis.activations`); empty for other models and older stores.
    """

    sweep_id: str
    kind: str
    parent: str | None
    dataset: dict
    space: dict[str, list[float]]
    config: SweepConfig
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
    # With replicas / folds: one record per sampled config (``tied`` then holds config
    # ids and the winner is a config: see :class:`Winner`).
    configs: list[ConfigRecord] = field(default_factory=list)
    activations: dict[int, Any] = field(default_factory=dict)
    # Anytime (ASHA) runs: best-so-far points ``{"elapsed_s", "member_steps",
    # "best_val_acc", "member"}`` and how many members the budget stopped in flight.
    progress: list[dict] = field(default_factory=list)
    in_flight: int = 0

    @property
    def spec(self) -> SweepSpec:
        """The options the sweep ran with, typed (:class:`~sweepjax.spec.SweepSpec`; a
        sweep stored before specs existed is read from its config)."""
        return self.config.options()

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
        out = {"lineage": self.lineage, "history": self.history}
        if self.progress or self.in_flight:
            out.update(progress=self.progress, in_flight=self.in_flight)
        return out

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
                k: self.dataset.get(k)
                for k in (
                    "name",
                    "n_train",
                    "n_val",
                    "n_test",
                    "num_classes",
                    "classes",
                    "sha256",
                    "scaling",
                )
            },
            "space": self.space,
            "members": [m.as_dict() for m in self.members],
            **({"configs": [c.as_dict() for c in self.configs]} if self.configs else {}),
            "winner": self.winner.as_dict() if self.winner else None,
            "boundary": [b.as_dict() for b in self.boundary],
            "tied": list(self.tied),
            "importance": self.verdict.importance if self.verdict else {},
            "flat": self.verdict.flat if self.verdict else [],
            "optimum_inside": self.verdict.optimum_inside if self.verdict else None,
            "optimum_confidence": self.verdict.optimum_confidence if self.verdict else None,
            "verdict": self.verdict.as_dict() if self.verdict else None,
            "timing": self.timing.as_dict(),
            "schedule": self.spec.schedule or "full",
            "lineage": self.lineage,
            "history": self.history,
            "progress": self.progress,
            "in_flight": self.in_flight,
            "report": self.report,
            **({"choices": self.choices_json()} if self.config.choices else {}),
        }

    def choices_json(self) -> dict:
        """The categorical axes, their values and each value judged (best member, its
        score and SE, members, diverged share, verdict) with the one-line verdict."""
        from sweepjax.results.choice_verdict import choice_line, choice_scores

        return {
            "axes": {n: list(v) for n, v in self.config.choices},
            "values": [s.as_dict() for s in choice_scores(self.members, self.config)],
            "verdict": choice_line(self.members, self.config),
        }
