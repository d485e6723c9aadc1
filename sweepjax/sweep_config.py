"""A sweep's resolved configuration, typed: what the flows build, what the store keeps
(as :meth:`SweepConfig.as_dict`) and what every result carries
(``SweepResult.config``).

It lives at the config layer so that results, analysis and the report read typed
settings (``result.config.train.steps``) instead of walking stored dicts with their own
fallback defaults: a key missing from a stored config (a sweep stored by an older
version) takes its default in one place, :meth:`SweepConfig.from_dict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sweepjax.budget import Budget
from sweepjax.config import (
    AXES,
    DEFAULT_BAND,
    DEFAULT_MARGIN,
    DEFAULT_TOP_K,
    DataConfig,
    ModelConfig,
    Range,
    ScheduleConfig,
    SearchSpace,
    TrainConfig,
)
from sweepjax.errors import ConfigError
from sweepjax.metric import Metric
from sweepjax.metric import resolve as resolve_metric
from sweepjax.spec import DEFAULT_SAMPLER, SweepSpec
from sweepjax.spec.choices import applied, as_stored, combo_index, normalise_choices
from sweepjax.spec.choices import combos as choice_combos

# Train settings left out of the stored config while at their defaults (a sweep stored
# before they existed resumes, and compares equal, with the same flags).
UNSTORED_DEFAULTS = {
    "dropout": TrainConfig.dropout,
    "init_scale": TrainConfig.init_scale,
    "hparams": TrainConfig.hparams,
    "metric": TrainConfig.metric,
}

# Axes of the built-in MLP only: a custom model has no width mask and no dropout hook.
BUILTIN_ONLY_AXES = ("hidden", "dropout")


def check_axes(model: ModelConfig, axes: Iterable[str]) -> None:
    """Refuse the built-in MLP's axes (hidden width, dropout) for a custom model."""
    if model.kind != "custom":
        return
    bad = [a for a in axes if a in BUILTIN_ONLY_AXES]
    if bad:
        raise ConfigError(
            f"{' and '.join(bad)} {'is an axis' if len(bad) == 1 else 'are axes'} of the "
            f"built-in mlp; {model.spec} is your own model: sweep lr, l2, lr_decay, "
            "init_scale or momentum (or give it the width as a field)"
        )


def space_from_dict(
    space: Mapping[str, list[float]], scales: Mapping[str, str] | None = None
) -> SearchSpace:
    """A :class:`SearchSpace` from its ``{"lr": [lo, hi], ...}`` stored form (each axis
    on its scale in :data:`~sweepjax.config.AXES`: ``dropout`` and ``momentum`` linear,
    the others log; a user's hyperparameter on its scale in ``scales``, else log when
    its bounds are positive)."""
    scales = scales or {}
    axes = {}
    for k, v in space.items():
        if k in AXES:
            axes[k] = AXES[k].range(v[0], v[1])
        else:
            log = scales.get(k, "log" if v[0] > 0 else "linear") == "log"
            axes[k] = Range(float(v[0]), float(v[1]), log)
    return SearchSpace.of(axes)


@dataclass(frozen=True)
class SweepConfig:
    """Everything that determines a sweep's results (stored as its resolved config).

    Example::

      cfg = SweepConfig("coarse", DataConfig("mnist-sample"), ModelConfig(), TrainConfig(),
                        SearchSpace(), trials=64)
      SweepConfig.from_dict(cfg.as_dict()) == cfg  # True
    """

    kind: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    space: SearchSpace
    trials: int
    grid: bool = False
    parent: str | None = None
    top_k: int = DEFAULT_TOP_K
    margin: float = DEFAULT_MARGIN
    band: float = DEFAULT_BAND
    schedule: ScheduleConfig = ScheduleConfig()
    sampler: str = DEFAULT_SAMPLER
    # Seeds per sampled config (extra members of the same program) and K-fold
    # cross-validation (folds > 1: replica r holds out fold r; replicas == folds).
    replicas: int = 1
    folds: int = 0
    # The options as the sweep used them (stored; what a fine round inherits). None for a
    # sweep stored before specs existed (and a config built in Python without one):
    # :meth:`options` then reads them from the config.
    spec: SweepSpec | None = None
    # Categorical axes, ``((name, (value, ...)), ...)`` (:mod:`sweepjax.spec.choices`):
    # one part of the population, with its own program, per combination of values.
    choices: tuple = ()

    def __post_init__(self):
        check_axes(self.model, self.space.axes())

    def combos(self) -> list[dict]:
        """The combinations of the categorical values (``[{}]`` without choices)."""
        return choice_combos(self.choices)

    def member_choice(self, member_id: int) -> dict | None:
        """The categorical values member ``member_id`` trained with (None: no choices);
        config ``c`` (member id // group) trains with combination ``c % n``."""
        if not self.choices:
            return None
        return self.combos()[combo_index(int(member_id) // self.group, self.choices)]

    def member_config(self, member_id: int) -> SweepConfig:
        """This config as member ``member_id`` trained with it: its optimizer, activation
        and width (itself without choices)."""
        return self.with_combo(self.member_choice(member_id) or {})

    def with_combo(self, combo: Mapping) -> SweepConfig:
        """The config of the part that trains with ``combo`` (no choices left)."""
        if not combo:
            return self
        model, train = applied(self.model, self.train, combo)
        return dataclasses.replace(self, model=model, train=train, choices=())

    @property
    def group(self) -> int:
        """Members per config (1 without replicas or folds)."""
        return max(self.replicas, self.folds, 1)

    @property
    def metric(self) -> Metric:
        """What members are scored and ranked by (:mod:`sweepjax.metric`)."""
        return resolve_metric(self.train.metric)

    def fixed(self) -> dict[str, float]:
        """The values of the per-member axes the space does not search (momentum, dropout,
        init scale: ``TrainConfig``'s; the width: the network's, the HParams default)."""
        t = self.train
        own = {n: v for n, v in t.hparams if n not in self.space.axes()}
        return {"momentum": t.momentum, "dropout": t.dropout, "init_scale": t.init_scale, **own}

    def options(self) -> SweepSpec:
        """The options the sweep ran with: :attr:`spec`, or without one (a sweep stored
        before specs existed) the options that produce this config."""
        return self.spec if self.spec is not None else SweepSpec.from_dict(self.as_dict())

    def as_dict(self) -> dict:
        """The stored form (JSON-able): :meth:`from_dict` reads it back."""
        train = dataclasses.asdict(self.train)
        for name, default in UNSTORED_DEFAULTS.items():
            if train[name] == default:  # configs stored before these settings compare equal
                del train[name]
        data = dataclasses.asdict(self.data)
        if data["targets"] == DataConfig.targets:  # as stored before regression existed
            del data["targets"]
        schedule = dataclasses.asdict(self.schedule)
        # The budget is stored in its one spelling (Budget.__str__), read back by parse.
        schedule["budget"] = None if self.schedule.budget is None else str(self.schedule.budget)
        if not schedule["start"]:  # only when set, so configs stored before it compare equal
            del schedule["start"]
        return {
            "kind": self.kind,
            "data": data,
            "model": self.model.as_dict(),
            "train": train,
            "space": self.space.as_dict(),
            # the scales of the user's own axes (only when searched: older configs equal)
            **({"hparam_scales": self.space.scales()} if self.space.user else {}),
            "trials": self.trials,
            "grid": self.grid,
            "parent": self.parent,
            "top_k": self.top_k,
            "margin": self.margin,
            "band": self.band,
            "schedule": schedule,
            "sampler": self.sampler,
            # only when used, so configs stored before replicas compare equal on resume
            **({"replicas": self.replicas} if self.replicas > 1 else {}),
            **({"folds": self.folds} if self.folds > 1 else {}),
            **({"spec": self.spec.to_dict()} if self.spec is not None else {}),
            **({"choices": as_stored(self.choices)} if self.choices else {}),
        }

    @classmethod
    def from_dict(cls, d: Mapping) -> SweepConfig:
        """The typed config of a stored sweep (:meth:`as_dict`'s form, any version). The
        one place a key an older version did not store takes its default."""
        schedule = dict(d.get("schedule") or {})
        if schedule.get("budget") is not None:
            schedule["budget"] = Budget.parse(schedule["budget"])
        return cls(
            kind=d["kind"],
            # Versions before `scaling` was recorded scaled every input by one std.
            data=DataConfig(**{"scaling": "global", **d["data"]}),
            model=ModelConfig(**d["model"]),
            # Versions before the hash draw drew every minibatch with threefry.
            train=TrainConfig(**{"minibatch": "threefry", **d["train"]}),
            space=space_from_dict(d["space"], d.get("hparam_scales")),
            trials=d["trials"],
            grid=d.get("grid", False),
            parent=d.get("parent"),
            top_k=d.get("top_k", DEFAULT_TOP_K),
            margin=d.get("margin", DEFAULT_MARGIN),
            band=d.get("band", DEFAULT_BAND),
            schedule=ScheduleConfig(**schedule),
            sampler=d.get("sampler", DEFAULT_SAMPLER),
            replicas=d.get("replicas", 1),
            folds=d.get("folds", 0),
            spec=_spec(d["spec"]) if "spec" in d else None,
            choices=normalise_choices(d.get("choices") or []),
        )


def _spec(d: Mapping) -> SweepSpec:
    """A stored spec; one written before `scaling` was recorded scaled globally (the
    spec of a sweep stores the scaling it used, so a resume compares like with like)."""
    return SweepSpec.from_dict({"scaling": "global", **d})
