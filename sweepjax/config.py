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

from sweepjax.axis import Axis, Range
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
# How a step draws its minibatch (sweepjax.engine.minibatch): the first is the default.
MINIBATCH_DRAWS = ("hash", "threefry")
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
    targets: str = "auto"  # labels: classes | real (a regression) | auto (real: non-whole floats)

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
      loss: the stored name of the user's loss for a built-in network
        (:mod:`sweepjax.models.loss_ref`; None: cross-entropy). A custom model's loss is
        part of its ``spec``.
    """

    kind: str = "softmax"
    hidden: int = 100
    spec: str | None = None
    activation: str = "relu"  # the MLP's hidden activation (static: a `choices` axis)
    loss: str | None = None

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
        unset = {"spec": None, "activation": "relu", "loss": None}
        return {k: v for k, v in dataclasses.asdict(self).items() if unset.get(k, ...) != v}


@dataclass(frozen=True)
class TrainConfig:
    """Static training settings shared by the whole population.

    Attributes:
      optimizer: ``sgd`` (the lecture's default), ``momentum``, ``adam`` or an optax
        factory by name (``optax.adamw``, ``pkg.mod:fn``: :mod:`sweepjax.engine.optimizers`).
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
      hparams: the user's own hyperparameters held fixed, ``((name, value), ...)``.
      minibatch: how each step's rows are drawn (:mod:`sweepjax.engine.minibatch`):
        ``hash`` (counter-based, cheap to compile), or ``threefry`` (``jax.random``),
        which sweeps stored before ``hash`` existed resume with.
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
    # The user's own hyperparameters fixed (``hparams`` name=value): ``((name, value),
    # ...)`` sorted (a mapping is accepted); every member gets the value, traced.
    hparams: tuple = ()
    metric: str = "accuracy"  # what members are scored by: a sweepjax.metric.Metric's name
    minibatch: str = "hash"

    def __post_init__(self):
        fixed = dict(self.hparams)
        for name, v in fixed.items():
            check_user_name(name)
            if not math.isfinite(float(v)):
                raise ConfigError(f"hyperparameter {name} must be a finite number, got {v}")
        object.__setattr__(self, "hparams", tuple((n, float(fixed[n])) for n in sorted(fixed)))
        if self.optimizer not in OPTIMIZERS and not is_factory_name(self.optimizer):
            raise ConfigError(
                f"unknown optimizer {self.optimizer!r}; choose one of {', '.join(OPTIMIZERS)} "
                "or an optax factory (optax.adamw, pkg.mod:fn)"
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
        if self.minibatch not in MINIBATCH_DRAWS:
            raise ConfigError(
                f"unknown minibatch draw {self.minibatch!r}; choose {' or '.join(MINIBATCH_DRAWS)}"
            )
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
      brackets: ASHA's brackets (``> 1``: asynchronous Hyperband,
        :mod:`sweepjax.schedulers.asha`); 1 to ``rungs + 1``.
      start: ASHA's first member, ``((axis, value), ...)``: those axes at those values,
        the others at the box's centre (``()``: all at the centre). ``auto`` puts the
        learning rate at its finder's best.
    """

    name: str = "full"
    eta: int = 3
    rungs: int = 3
    interval: int | None = None
    budget: Budget | None = None
    width: int | None = None
    brackets: int = 1
    start: tuple = ()

    def __post_init__(self):
        if self.name not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.name!r}; choose one of {', '.join(SCHEDULES)}"
            )
        if self.eta < 2:
            raise ConfigError(f"eta must be >= 2, got {self.eta}; try 3")
        if self.rungs < 1:
            raise ConfigError(f"rungs must be >= 1, got {self.rungs}; try 3")
        if self.name == "asha" and not 1 <= self.brackets <= self.rungs + 1:
            raise ConfigError(
                f"asha with {self.rungs} rungs has 1 to {self.rungs + 1} brackets, got "
                f"{self.brackets}; try {self.rungs + 1}"
            )
        if self.interval is not None and self.interval < 1:
            raise ConfigError(f"the PBT interval must be >= 1 step, got {self.interval}")
        if self.budget is not None and not isinstance(self.budget, Budget):  # parsed once
            raise ConfigError(f"budget is a Budget; give Budget.parse({self.budget!r})")
        if self.start and self.name != "asha":
            raise ConfigError(f"`start` places asha's first member; schedule {self.name} has none")
        # One form whatever it came as (a dict, stored [name, value] lists): sorted pairs.
        pairs = self.start.items() if isinstance(self.start, dict) else self.start
        object.__setattr__(self, "start", tuple(sorted((str(n), float(v)) for n, v in pairs)))


# Hard caps of the per-member axes (inclusive): a dropout rate of 1 drops every unit and a
# momentum of 1 never forgets (the update grows without bound), so both stop short of 1.
DROPOUT_MAX = 0.95
MOMENTUM_MAX = 0.999


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
    # The user's own hyperparameters searched (``hparams``): ``((name, Range), ...)``
    # sorted by name (a mapping is accepted), drawn after the built-in axes.
    user: tuple = ()

    def __post_init__(self):
        user = dict(self.user)
        for name in user:
            check_user_name(name)
        object.__setattr__(self, "user", tuple(sorted(user.items())))
        for name, r in self.axes().items():
            axis_of(name, r).check(name, r)

    @classmethod
    def of(cls, axes: dict[str, Range]) -> SearchSpace:
        """The space of ``{name: Range}``, built-in axes and the user's alike."""
        own = {n: r for n, r in axes.items() if n not in AXES}
        return cls(**{n: r for n, r in axes.items() if n in AXES}, user=own)

    def with_axis(self, name: str, r: Range | None) -> SearchSpace:
        """A copy with axis ``name`` searched over ``r`` (None: not searched)."""
        axes = {**self.axes(), name: r}
        return SearchSpace.of({n: v for n, v in axes.items() if v is not None})

    def axes(self) -> dict[str, Range]:
        """The searched axes, ``{name: Range}``: :data:`AXES` order, then the user's."""
        out = {n: getattr(self, n) for n in AXES if getattr(self, n) is not None}
        out.update(self.user)
        return out

    def scales(self) -> dict[str, str]:
        """``{name: "log" | "linear"}`` of the user's axes (the built-ins' are in AXES)."""
        return {n: "log" if r.log else "linear" for n, r in self.user}

    def as_dict(self) -> dict[str, list[float]]:
        """``{"lr": [lo, hi], ...}`` of the searched axes (whole numbers as ints); the
        user's axes' scales are :meth:`scales`."""
        return {
            k: [int(r.lo), int(r.hi)] if axis_of(k, r).integer else r.as_list()
            for k, r in self.axes().items()
        }


def axis_of(name: str, r: Range | None = None) -> Axis:
    """The rule of axis ``name``: its row of :data:`AXES`, or for the user's own
    hyperparameter a plain axis on ``r``'s scale. Its one cap keeps the sign: a linear
    box that starts at or above 0 (a smoothing, a weight) is never extended below 0 by
    ``fine``; a log box stays positive by its scale."""
    if name in AXES:
        return AXES[name]
    log = True if r is None else r.log
    return Axis(log=log, floor=0.0 if (r is not None and not log and r.lo >= 0) else None)


def check_user_name(name) -> None:
    """ConfigError unless ``name`` can be the user's own hyperparameter."""
    if not isinstance(name, str) or not name.isidentifier():
        raise ConfigError(f"a hyperparameter's name is a Python identifier, got {name!r}")
    if name in AXES or name in RESERVED_NAMES:
        raise ConfigError(
            f"hyperparameter {name!r} is a built-in axis; give its own option (`{name}`) "
            "or another name"
        )


def is_factory_name(name) -> bool:
    """Whether optimizer ``name`` reads as a factory (``optax.adamw``, ``pkg.mod:fn``); it
    is imported when a sweep is planned (:mod:`sweepjax.engine.optimizers`)."""
    return isinstance(name, str) and ("." in name or ":" in name) and " " not in name


# Names a user's hyperparameter may not take: the built-in axes and what a member record
# already calls something else.
RESERVED_NAMES = frozenset({"id", "status", "config", "replica", "hparams", "user"})
