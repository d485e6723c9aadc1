"""The checks that build a sweep's resolved configuration: defaults, ranges, train /
schedule settings, seeds. Shared by the flows (``sweep.py``) and the runner. The typed
:class:`~sweepjax.sweep_config.SweepConfig` itself lives at the config layer (results
carry it); it is re-exported here."""

from __future__ import annotations

import dataclasses
import hashlib
import math

from sweepjax.budget import Budget
from sweepjax.config import Range, ScheduleConfig, SearchSpace, TrainConfig
from sweepjax.errors import ConfigError
from sweepjax.schedulers import rules as schedule
from sweepjax.spec import DEFAULT_SCHEDULE, MODEL_DEFAULTS
from sweepjax.sweep_config import SweepConfig  # also re-exported: the flows' import path

# A fine round trains a model's factor (MODEL_DEFAULTS) times the parent's steps, with the
# learning-rate decay searched too (FINE_LR_DECAY: the multiplier reached at the end of the
# run, cosine from 1, when the parent did not search it): a short coarse round ranks
# rates, but only a longer, annealed run converges.
FINE_STEPS_FACTOR = MODEL_DEFAULTS["softmax"].fine_steps_factor
FINE_LR_DECAY = Range(0.01, 1.0)


# --------------------------------------------------------------------------- seeds
def derive_seed(root: int, lineage: tuple[str, ...]) -> int:
    """The training seed of a sweep: its members' draws, initial weights and minibatches.

    ``lineage`` is the sweep's kind after its ancestors' kinds, root first (``("coarse",)``,
    ``("coarse", "fine")``, ``("coarse", "fine", "fine")``, ...). A root sweep trains with
    ``root`` itself; a refinement round gets a seed hashed from ``root`` and its lineage, so
    chained rounds draw fresh unit coordinates, weights and minibatches, while the same
    commands still give the same seeds (no clock, no store ids involved).

    Example::

      derive_seed(0, ("coarse",))  # 0
      derive_seed(0, ("coarse", "fine")) != derive_seed(0, ("coarse", "fine", "fine"))
    """
    if len(lineage) <= 1:
        return int(root)
    digest = hashlib.sha256(f"sweepjax:{int(root)}:{'/'.join(lineage)}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


# --------------------------------------------------------------------------- config
def check_fixed_axes(space: SearchSpace, model: str, optimizer: str, fixed: dict) -> None:
    """The searched (``space``) and explicitly fixed (``fixed``: ``{name: value or None}``)
    axes fit the model and optimizer: width and dropout are the MLP's, momentum is not
    sgd's."""
    if space.hidden is not None and model != "mlp":
        raise ConfigError("`hidden` LO HI searches the MLP's hidden width; add `model` mlp")
    if model != "mlp" and (space.dropout is not None or (fixed.get("dropout") or 0.0) > 0):
        raise ConfigError("`dropout` drops the MLP's hidden units; add `model` mlp")
    if optimizer == "sgd" and (space.momentum is not None or fixed.get("momentum") is not None):
        raise ConfigError("`momentum` needs `optimizer` momentum or adam (sgd has no momentum)")


def check_positive(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ConfigError(f"`{name}` must be a positive integer, got {value!r}")


def train_config(
    optimizer, steps, batch_size, seed, eval_every, chunk_steps, **fixed
) -> TrainConfig:
    for n, v in (
        ("steps", steps),
        ("batch_size", batch_size),
        ("eval_every", eval_every),
        ("chunk_steps", chunk_steps),
    ):
        check_positive(n, v)
    if chunk_steps is None:
        # A compiled call ends at every evaluation (about 20 per run) and every scheduler
        # decision anyway; longer chunks add nothing.
        chunk_steps = steps
    return TrainConfig(
        optimizer=optimizer,
        steps=steps,
        batch_size=batch_size,
        eval_every=eval_every,
        seed=seed,
        chunk_steps=chunk_steps,
        **{k: v for k, v in fixed.items() if v is not None},  # momentum, dropout, init_scale
    )


# ASHA's rungs unless given: the first at about a ninth of the run (R / eta^2), as
# Optuna's Hyperband over ten reports starts at one. Measured on Fashion-MNIST softmax
# (2,400 steps, width 16, 160 s, 2-core CPU): with three rungs (the first at 80 steps,
# blocks of 80) measuring arrivals on the whole validation set took 22.6 s and training
# 107 s; with two (240-step blocks) 10.7 s and 128 s.
ASHA_RUNGS = 2


def schedule_config(
    kind: str,
    name,
    eta,
    rungs,
    interval,
    steps: int,
    budget: Budget | None = None,
    width=None,
    brackets=None,
) -> ScheduleConfig:
    asha_only = (("budget", budget), ("width", width), ("brackets", brackets))
    for n, v in (("eta", eta), ("rungs", rungs), ("pbt_interval", interval), *asha_only[1:]):
        check_positive(n, v)
    eta = eta or ScheduleConfig.eta
    given = [n for n, v in asha_only if v is not None]
    if given:
        name = name or "asha"  # a budget is an anytime search
        if name != "asha":
            raise ConfigError(f"`{given[0]}` is asha's; drop it or use `schedule` asha")
    if name is None:  # the command's default adapts to short runs instead of failing
        name = DEFAULT_SCHEDULE[kind]
        if name in ("halving", "hyperband") and rungs is None:
            rungs = min(ScheduleConfig.rungs, max(0, int(math.log(steps, eta) + 1e-9) - 1))
            name = name if rungs >= 1 else "full"
    if name == "asha" and rungs is None:
        rungs = max(1, min(ASHA_RUNGS, int(math.log(steps, eta) + 1e-9) - 1))
    return ScheduleConfig(
        name=name,
        eta=eta,
        rungs=rungs or ScheduleConfig.rungs,
        interval=interval,
        budget=budget,
        width=width,
        brackets=brackets or 1,
    )


def scheduler_for(cfg: SweepConfig, num_configs: int):
    """The sweep's scheduler over ``num_configs`` sampled configs (with replicas or folds
    it decides whole configs: :class:`sweepjax.schedulers.rules.Grouped`)."""
    sc = cfg.schedule
    return schedule.make(
        sc.name,
        num_members=num_configs,
        total=cfg.train.steps,
        space=cfg.space,
        seed=cfg.train.seed,
        eta=sc.eta,
        rungs=sc.rungs,
        interval=sc.interval,
        replicas=cfg.group,
        fixed=cfg.fixed(),
        brackets=sc.brackets,
        start=sc.start,
    )


def with_start(cfg: SweepConfig, start: dict) -> SweepConfig:
    """``cfg`` with ASHA's first member at ``start`` (``{axis: value}``), checked now (the
    scheduler is built: an axis not searched, or a value outside its box, is a
    ConfigError before anything is written); ``cfg`` itself when ``start`` is empty."""
    if not start:
        return cfg
    cfg = dataclasses.replace(cfg, schedule=dataclasses.replace(cfg.schedule, start=start))
    scheduler_for(cfg, cfg.trials)
    return cfg


def group_shape(replicas: int | None, folds: int | None) -> tuple[int, int]:
    """Checked ``(replicas, folds)``: K folds train K replicas, one per held-out fold."""
    check_positive("replicas", replicas)
    if folds is not None and (not isinstance(folds, int) or folds < 2):
        raise ConfigError(f"`folds` must be an integer >= 2, got {folds!r}")
    r, k = replicas or 1, folds or 0
    if k and r not in (1, k):
        raise ConfigError(
            f"`folds` {k} trains one replica per fold; drop `replicas` or set it to {k}"
        )
    return (k or r), k


def check_dataset_name(name: str) -> None:
    from sweepjax.data import SOURCES

    if not (name in SOURCES or name.startswith("npz:")):
        raise ConfigError(f"unknown dataset {name!r}; choose one of {', '.join(SOURCES)}")
