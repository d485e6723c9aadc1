"""Configuration as data: frozen dataclasses, validated on construction.

Static settings (shapes, step counts, widths) live here; swept values (learning rate,
L2 strength, ...) live in :class:`sweepjax.engine.hparams.HParams` as arrays, so changing them
never recompiles.

Ranges are given in real units with an explicit scale (``Range(1e-4, 1.0)`` is searched
log-uniformly), never as exponents.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sweepjax.budget import Budget
from sweepjax.errors import ConfigError

# The budget rules a sweep may use (:mod:`sweepjax.schedulers`).
SCHEDULES = ("full", "halving", "hyperband", "pbt", "asha")
# The verdicts' defaults (:mod:`sweepjax.analysis.verdict`), which are also options of a
# sweep (:mod:`sweepjax.spec`): the edge band, the fine box's margin and, with too few
# members for a model, how many of the best span the next box.
DEFAULT_BAND = 0.2
DEFAULT_MARGIN = 0.1
DEFAULT_TOP_K = 5

MODELS = ("softmax", "mlp")
OPTIMIZERS = ("sgd", "momentum", "adam")
ACTIVATIONS = ("relu", "gelu", "tanh")  # the built-in MLP's (ModelConfig.activation)
# How inputs are scaled after centring (DataConfig.scaling; the `scaling` option).
SCALINGS = ("auto", "feature", "global")


@dataclass(frozen=True)
class DataConfig:
    """Which data to load and how to split it.

    Attributes:
      dataset: ``mnist`` | ``fashion-mnist`` | ``mnist-sample`` | ``npz:PATH``.
      data_dir: a directory searched first for the dataset files.
      val_fraction: fraction of the training set carved out (seeded) for validation.
      seed: seed of the validation split.
      download: whether a missing ``mnist`` / ``fashion-mnist`` may be downloaded.
      scaling: after centring, divide each feature by its own training std
        (``feature``), or all by one std (``global``); ``auto``: ``feature`` for
        ``[N, D]`` tabular data, ``global`` for images (:mod:`sweepjax.data.preprocess`).
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    val_fraction: float = 0.1
    seed: int = 0
    download: bool = True
    scaling: str = "auto"

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}; try 0.1")
        if self.scaling not in SCALINGS:
            raise ConfigError(
                f"`scaling` must be one of {', '.join(SCALINGS)}, got {self.scaling!r}"
            )


@dataclass(frozen=True)
class ModelConfig:
    """The network every member shares.

    Attributes:
      kind: ``softmax`` (the lecture's linear classifier), ``mlp`` (one hidden ReLU layer)
        or ``custom`` (the user's own model, named by ``spec``; :mod:`sweepjax.models.custom`).
      hidden: hidden width of the MLP (static: a new width compiles a new program).
      spec: the custom model's ``package.module:Name`` (only with ``kind="custom"``).
    """

    kind: str = "softmax"
    hidden: int = 100
    spec: str | None = None
    activation: str = "relu"  # the MLP's hidden activation (static: a `choices` axis)

    def __post_init__(self):
        if self.kind == "custom":
            if not self.spec:
                raise ConfigError("a custom model needs its spec, e.g. 'package.module:Name'")
        elif self.kind not in MODELS:
            raise ConfigError(
                f"unknown model {self.kind!r}; choose one of {', '.join(MODELS)} "
                "or package.module:Name"
            )
        elif self.spec is not None:
            raise ConfigError(f"spec {self.spec!r} goes with kind='custom', not {self.kind!r}")
        if self.hidden < 1:
            raise ConfigError(f"hidden width must be >= 1, got {self.hidden}")
        if self.activation not in (ok := ACTIVATIONS if self.kind == "mlp" else ("relu",)):
            raise ConfigError(f"{self.kind} takes activation {'|'.join(ok)}, not {self.activation}")

    def as_dict(self) -> dict:
        """The stored form: ``spec`` / ``activation`` only when set (so older configs match)."""
        unset = {"spec": None, "activation": "relu"}
        return {k: v for k, v in dataclasses.asdict(self).items() if unset.get(k, ...) != v}


@dataclass(frozen=True)
class TrainConfig:
    """Static training settings shared by the whole population.

    Attributes:
      optimizer: ``sgd`` (the lecture's default), ``momentum`` or ``adam``.
      momentum: the momentum coefficient (``momentum``: trace decay; ``adam``: ``b1``)
        of every member when the ``momentum`` axis is not searched.
      dropout: the MLP's dropout rate of every member when ``dropout`` is not searched.
      init_scale: the multiplier of the initial weights of every member when
        ``init_scale`` is not searched.
      steps: total optimizer steps per member.
      batch_size: minibatch size; every member sees the same minibatch at a step.
      eval_every: steps between evaluations; ``None`` picks about 20 evaluations.
        Each evaluation measures a fixed validation subset (``val_subset`` rows);
        training loss and accuracy are the block's running means over its minibatches;
        scheduler decisions and the final best accuracy use the whole validation set.
      chunk_steps: steps per compiled call (host work such as progress and checkpoints
        happens only between chunks).
      explode_factor: a member diverges when its loss exceeds this many times its
        initial loss, or is not finite (the lecture's "3x the original cost" rule).
      val_subset: rows of the fixed validation subset evaluated every block (the
        whole validation set is measured at scheduler decisions and at the end).
      eval_batch_size: rows per slice when evaluating the validation set (bounds memory).
      memory_budget_mb: device memory one compiled program may use; a larger population
        is split into several groups trained one after another.
      seed: root seed; member ``i`` is initialised from ``fold_in(seed, id_i)``.
    """

    optimizer: str = "sgd"
    momentum: float = 0.9
    dropout: float = 0.0
    init_scale: float = 1.0
    steps: int = 1000
    batch_size: int = 256
    eval_every: int | None = None
    chunk_steps: int = 500
    explode_factor: float = 3.0
    val_subset: int = 512
    eval_batch_size: int = 1000
    memory_budget_mb: int = 2048
    seed: int = 0

    def __post_init__(self):
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)}"
            )
        for name in (
            "steps",
            "batch_size",
            "chunk_steps",
            "val_subset",
            "eval_batch_size",
            "memory_budget_mb",
        ):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.eval_every is not None and self.eval_every < 1:
            raise ConfigError(f"eval_every must be >= 1, got {self.eval_every}")
        if not self.explode_factor > 1.0:
            raise ConfigError(f"explode_factor must be > 1, got {self.explode_factor}")
        for name in ("momentum", "dropout", "init_scale"):
            v = float(getattr(self, name))
            if not AXES[name].admits(v):
                raise ConfigError(f"{name} must be in {AXES[name].bounds_text()}, got {v:g}")

    @property
    def resolved_eval_every(self) -> int:
        """Steps between evaluations: the configured value, or ``steps / 20`` rounded
        (about 20 evaluations whatever the step count: a block that does not divide the
        run evenly is simply a little longer)."""
        if self.eval_every is not None:
            return min(self.eval_every, self.steps)
        return max(1, round(self.steps / 20))

    @property
    def resolved_chunk_steps(self) -> int:
        """Steps per compiled call (at most the run)."""
        return min(self.chunk_steps, self.steps)

    def replace(self, **changes) -> TrainConfig:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True)
class Range:
    """A search interval in real units; ``log=True`` searches it log-uniformly."""

    lo: float
    hi: float
    log: bool = True

    def __post_init__(self):
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            raise ConfigError(f"range bounds must be finite numbers, got [{self.lo}, {self.hi}]")
        if self.lo >= self.hi:
            raise ConfigError(
                f"range lower bound {self.lo:g} must be below upper bound {self.hi:g}; "
                "swap them or widen the range"
            )
        if self.log and self.lo <= 0:
            raise ConfigError(
                f"log-scale range needs positive bounds, got [{self.lo:g}, {self.hi:g}]; "
                "use e.g. 1e-6 instead of 0"
            )

    def to_unit(self, x):
        """Map values in the range to [0, 1] (in log space when ``log``)."""
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        if self.log:
            return (np.log(x) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return (x - self.lo) / (self.hi - self.lo)

    def from_unit(self, u):
        """Inverse of :meth:`to_unit`."""
        import numpy as np

        u = np.asarray(u, dtype=np.float64)
        if self.log:
            return np.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        return self.lo + u * (self.hi - self.lo)

    def as_list(self) -> list[float]:
        return [float(self.lo), float(self.hi)]


# Defaults chosen for sweepjax's preprocessing (features centred and scaled to unit
# overall variance). The lecture's 1e-7..1e-3 learning rates suited raw 0-255 pixels;
# with unit-scale inputs plain SGD on the softmax classifier learns from ~1e-4 and
# explodes above ~1, so the default box brackets both edges.
DEFAULT_LR = Range(1e-4, 3.0)
DEFAULT_L2 = Range(1e-6, 1.0)


@dataclass(frozen=True)
class ScheduleConfig:
    """How a sweep spends its budget (:mod:`sweepjax.schedulers.rules`).

    Attributes:
      name: ``full`` (every member the whole run), ``halving``, ``hyperband`` or ``pbt``.
      eta: halving / hyperband keep the best ``1/eta`` at each rung.
      rungs: halving's rungs (hyperband: its broadest bracket's).
      interval: PBT's steps between exploit/explore decisions (``None``: a tenth of the run).
      budget: ASHA's budget, e.g. ``Budget.parse("60s")`` (wall time of the process) or
        ``Budget.parse("5M")`` (member-steps); ``None``: the run creates ``trials``
        members and ends when they have.
      width: ASHA's population width (``None``: measured, :mod:`sweepjax.engine.width`).
    """

    name: str = "full"
    eta: int = 3
    rungs: int = 3
    interval: int | None = None
    budget: Budget | None = None
    width: int | None = None

    def __post_init__(self):
        if self.name not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.name!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if self.eta < 2:
            raise ConfigError(f"eta must be >= 2, got {self.eta}; try 3")
        if self.rungs < 1:
            raise ConfigError(f"rungs must be >= 1, got {self.rungs}; try 3")
        if self.interval is not None and self.interval < 1:
            raise ConfigError(f"the PBT interval must be >= 1 step, got {self.interval}")
        if self.budget is not None and not isinstance(self.budget, Budget):  # parsed once
            raise ConfigError(f"budget is a Budget; give Budget.parse({self.budget!r})")


# Hard caps of the per-member axes (inclusive): a dropout rate of 1 drops every unit and a
# momentum of 1 never forgets (the update grows without bound), so both stop short of 1.
DROPOUT_MAX = 0.95
MOMENTUM_MAX = 0.999


@dataclass(frozen=True)
class Axis:
    """How one searched axis is drawn and bounded (one row of :data:`AXES`).

    Attributes:
      log: drawn uniformly in log space (else uniformly on a linear scale).
      integer: values are whole numbers (drawn on the axis's scale, then rounded).
      floor, ceiling: hard caps, inclusive: no box, sample or refinement goes past them.
      cap_note: why the ceiling exists (said when a refined box is cut at it).
    """

    log: bool = True
    integer: bool = False
    floor: float | None = None
    ceiling: float | None = None
    cap_note: str = ""

    def admits(self, v: float) -> bool:
        """``v`` is a legal value of the axis (inside the caps, positive on a log axis,
        whole on an integer axis)."""
        return (
            math.isfinite(v)
            and (not self.log or v > 0)
            and (self.floor is None or v >= self.floor)
            and (self.ceiling is None or v <= self.ceiling)
            and (not self.integer or float(v).is_integer())
        )

    def bounds_text(self) -> str:
        lo = f"[{self.floor:g}" if self.floor is not None else "(0" if self.log else "(-inf"
        hi = f"{self.ceiling:g}]" if self.ceiling is not None else "inf)"
        return f"{lo}, {hi}" + (" (whole numbers)" if self.integer else "")

    def check(self, name: str, r: Range) -> None:
        """ConfigError unless ``r`` is searched on this axis's scale inside its caps."""
        if r.log != self.log:
            scale = "log" if self.log else "linear"
            raise ConfigError(
                f"{name} is searched on a {scale} scale; give Range({r.lo:g}, {r.hi:g}, "
                f"log={self.log})"
            )
        for v in (r.lo, r.hi):
            if not self.admits(v):
                raise ConfigError(
                    f"{name} bounds must lie in {self.bounds_text()}, got [{r.lo:g}, {r.hi:g}]"
                )

    def clamp(self, lo: float, hi: float) -> tuple[float, float, list[str]]:
        """A refined box ``[lo, hi]`` cut at the caps (whole bounds on an integer axis,
        rounded outward, at least one unit wide), and a note per change made.

        Example::

          AXES["dropout"].clamp(-0.1, 0.99)  # (0.0, 0.95, ['floored at 0', 'capped at 0.95'])
        """
        notes = []
        if self.ceiling is not None and hi > self.ceiling:
            hi = self.ceiling
            notes.append(
                f"capped at {self.ceiling:g}" + (f" ({self.cap_note})" if self.cap_note else "")
            )
        if self.floor is not None and lo < self.floor:
            lo = self.floor
            notes.append(f"floored at {self.floor:g}")
        if self.integer:
            lo, hi = float(math.floor(lo + 1e-9)), float(math.ceil(hi - 1e-9))
            if self.floor is not None:
                lo = max(lo, self.floor)
            hi = max(hi, lo + 1.0)
        return lo, hi, notes

    def range(self, lo: float, hi: float) -> Range:
        """A :class:`Range` on this axis's scale."""
        return Range(float(lo), float(hi), self.log)


# Every per-member axis, in the column order of a sweep's draws (``SearchSpace.axes``):
# a new axis goes at the end, so the members of existing spaces keep their draws.
AXES: dict[str, Axis] = {
    "lr": Axis(),
    "l2": Axis(),
    "lr_decay": Axis(ceiling=1.0, cap_note="constant rate"),
    "hidden": Axis(integer=True, floor=1.0),
    "dropout": Axis(log=False, floor=0.0, ceiling=DROPOUT_MAX),
    "init_scale": Axis(),
    "momentum": Axis(log=False, floor=0.0, ceiling=MOMENTUM_MAX),
}


@dataclass(frozen=True)
class SearchSpace:
    """The box searched over; an axis left None is not searched (every member gets its
    fixed value).

    Attributes:
      lr, l2: the learning rate and L2 strength (log).
      lr_decay: the learning-rate multiplier reached at the end of the run (cosine from
        1; see :func:`sweepjax.engine.lr_multiplier`), log, at most 1; fixed at 1 (a
        constant rate) when None.
      hidden: the MLP's hidden width, whole numbers, log; each member is masked to its own
        width inside the widest (the compiled network is ``ceil(hidden.hi)`` wide).
      dropout: the MLP's dropout rate, linear, in ``[0, DROPOUT_MAX]``.
      init_scale: the multiplier of the initial weights, log.
      momentum: the momentum / Adam ``b1`` coefficient, linear, in ``[0, MOMENTUM_MAX]``.

    Scales and caps come from :data:`AXES`; a Range on another scale is refused, so a
    stored space (``as_dict``) reads back as it was (:func:`sweepjax.search.as_space`).

    Example::

      SearchSpace(hidden=Range(8, 64), dropout=Range(0.0, 0.5, log=False))
    """

    lr: Range = DEFAULT_LR
    l2: Range = DEFAULT_L2
    lr_decay: Range | None = None
    hidden: Range | None = None
    dropout: Range | None = None
    init_scale: Range | None = None
    momentum: Range | None = None

    def __post_init__(self):
        for name, r in self.axes().items():
            AXES[name].check(name, r)

    def axes(self) -> dict[str, Range]:
        """The searched axes, ``{name: Range}`` in :data:`AXES` order."""
        return {n: getattr(self, n) for n in AXES if getattr(self, n) is not None}

    def as_dict(self) -> dict[str, list[float]]:
        """``{"lr": [lo, hi], ...}`` of the searched axes (whole numbers as ints)."""
        return {
            k: [int(r.lo), int(r.hi)] if AXES[k].integer else r.as_list()
            for k, r in self.axes().items()
        }
