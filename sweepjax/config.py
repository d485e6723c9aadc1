"""Configuration as data: frozen dataclasses, validated on construction.

Static settings (shapes, step counts, widths) live here; swept values (learning rate,
L2 strength, ...) live in :class:`sweepjax.hparams.HParams` as arrays, so changing them
never recompiles.

Ranges are given in real units with an explicit scale (``Range(1e-4, 1.0)`` is searched
log-uniformly), never as exponents.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from sweepjax.errors import ConfigError

MODELS = ("softmax", "mlp")
OPTIMIZERS = ("sgd", "momentum", "adam")


@dataclass(frozen=True)
class DataConfig:
    """Which data to load and how to split it.

    Attributes:
      dataset: ``mnist`` | ``fashion-mnist`` | ``mnist-sample`` | ``npz:PATH``.
      data_dir: a directory searched first for the dataset files.
      val_fraction: fraction of the training set carved out (seeded) for validation.
      seed: seed of the validation split.
      download: whether a missing ``mnist`` / ``fashion-mnist`` may be downloaded.
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    val_fraction: float = 0.1
    seed: int = 0
    download: bool = True

    def __post_init__(self):
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction}; try 0.1")


@dataclass(frozen=True)
class ModelConfig:
    """The network every member shares.

    Attributes:
      kind: ``softmax`` (the lecture's linear classifier), ``mlp`` (one hidden ReLU layer)
        or ``custom`` (the user's own model, named by ``spec``; :mod:`sweepjax.custom`).
      hidden: hidden width of the MLP (static: a new width compiles a new program).
      spec: the custom model's ``package.module:Name`` (only with ``kind="custom"``).
    """

    kind: str = "softmax"
    hidden: int = 100
    spec: str | None = None

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

    def as_dict(self) -> dict:
        """The stored form: ``spec`` only when set, so configs stored before custom
        models compare equal on resume."""
        d = dataclasses.asdict(self)
        if d["spec"] is None:
            del d["spec"]
        return d


@dataclass(frozen=True)
class TrainConfig:
    """Static training settings shared by the whole population.

    Attributes:
      optimizer: ``sgd`` (the lecture's default), ``momentum`` or ``adam``.
      momentum: momentum coefficient of the ``momentum`` optimizer.
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
    """How a sweep spends its budget (:mod:`sweepjax.schedule`).

    Attributes:
      name: ``full`` (every member the whole run), ``halving``, ``hyperband`` or ``pbt``.
      eta: halving / hyperband keep the best ``1/eta`` at each rung.
      rungs: halving's rungs (hyperband: its broadest bracket's).
      interval: PBT's steps between exploit/explore decisions (``None``: a tenth of the run).
    """

    name: str = "full"
    eta: int = 3
    rungs: int = 3
    interval: int | None = None

    def __post_init__(self):
        from sweepjax.schedule import SCHEDULES

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


@dataclass(frozen=True)
class SearchSpace:
    """The box searched over. ``lr_decay`` is the learning-rate multiplier reached at the
    end of the run (cosine from 1; see :func:`sweepjax.train.lr_multiplier`); it is fixed
    at 1 (a constant rate) when None."""

    lr: Range = DEFAULT_LR
    l2: Range = DEFAULT_L2
    lr_decay: Range | None = None

    def axes(self) -> dict[str, Range]:
        out = {"lr": self.lr, "l2": self.l2}
        if self.lr_decay is not None:
            out["lr_decay"] = self.lr_decay
        return out

    def as_dict(self) -> dict[str, list[float]]:
        return {k: r.as_list() for k, r in self.axes().items()}
