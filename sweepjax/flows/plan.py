"""plan(spec): from a :class:`~sweepjax.spec.SweepSpec` to everything a sweep will run.

A :class:`Plan` is the resolved spec (every option at the value the sweep uses, stored
with it), the :class:`SweepConfig` that determines its results, the data, the devices
and, for a fine round, the members a model-based sampler proposes. Planning checks
everything before anything is trained or written; :func:`sweepjax.flows.sweep.run`
runs a plan. A fine round's spec is the user's over its parent's stored one
(:meth:`SweepSpec.inherit`); the plan step adds what only the parent's results can say:
the new box, the steps, the seed.
"""

from __future__ import annotations

import dataclasses
import math
from typing import NamedTuple

from sweepjax.config import DataConfig, ModelConfig, Range, SearchSpace, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.engine import distributed
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError, StoreError
from sweepjax.flows import user_hparams
from sweepjax.flows.choices import check_schedule, first_optimizer, kept_choices
from sweepjax.flows.fine_space import fine_space, model_draws
from sweepjax.flows.inputs import data_targets, plan_data, settle_metric
from sweepjax.flows.runner import Callbacks
from sweepjax.flows.sweep_config import (
    SweepConfig,
    check_dataset_name,
    check_fixed_axes,
    derive_seed,
    group_shape,
    schedule_config,
    scheduler_for,
    train_config,
)
from sweepjax.models.custom import check_axes, model_config, prepare
from sweepjax.results.appraise import Appraisal, judge_sweep
from sweepjax.results.records import EXTRA_AXES, SweepResult
from sweepjax.spec import MODEL_DEFAULTS, SweepSpec, fine_trials
from sweepjax.spec.choices import check as check_choices
from sweepjax.store import Store, SweepRow


class Plan(NamedTuple):
    """A sweep ready to run."""

    config: SweepConfig  # its ``spec``: the options resolved as the sweep uses them
    data: Dataset
    where: distributed.Placement
    draws: HParams | None = None  # a model-based sampler's members (fine)
    refinement: str | None = None  # why the box is what it is (fine)

    @property
    def spec(self) -> SweepSpec:
        return self.config.spec


def plan_coarse(spec: SweepSpec, cb: Callbacks) -> Plan:
    """A coarse sweep: options over :attr:`~sweepjax.spec.Opt.default`, the model's
    defaults (optimizer, width), the data loaded and the model checked against it, and
    ``lr="auto"`` settled by the learning-rate finder."""
    v = spec.value
    replicas, folds = group_shape(spec.replicas, spec.folds)
    if isinstance(v("dataset"), str):
        check_dataset_name(v("dataset"))
    extra = {n: getattr(spec, n) for n in EXTRA_AXES}
    searched = {n: a for n, a in extra.items() if isinstance(a, Range)}
    fixed = {n: a for n, a in extra.items() if not isinstance(a, Range)}
    model = v("model")
    builtin = isinstance(model, str) and model in MODEL_DEFAULTS
    # A user's network takes the MLP's optimizer default (and no width: it has its own).
    defaults = MODEL_DEFAULTS[model if builtin else "mlp"]
    optimizer = first_optimizer(spec) or spec.optimizer or defaults.optimizer
    width = _width(
        searched.get("hidden"),
        fixed.get("hidden"),
        defaults.hidden if builtin else ModelConfig.hidden,
    )
    model_cfg = model_config(model, width, spec.loss)
    check_axes(model_cfg, [*searched, *(n for n, x in fixed.items() if x)])
    check_fixed_axes(SearchSpace(**searched), model_cfg.kind, optimizer, fixed)
    check_choices(spec.choices or (), model_cfg, spec.hidden is not None, spec.momentum is not None)
    own_searched, own_fixed = user_hparams.split(spec.hparams)
    fixed = user_hparams.factory_momentum(optimizer, searched.get("momentum"), fixed)
    train_cfg = _train(spec, optimizer, v("steps"), v("seed"), fixed, own_fixed)
    sched_cfg = schedule_config(
        "coarse", spec.schedule, spec.eta, spec.rungs, spec.pbt_interval, train_cfg.steps,
        spec.budget, spec.width, spec.brackets,
    )  # fmt: skip
    where = distributed.placement(spec.devices)
    data_cfg = DataConfig(
        data_dir=spec.data_dir,
        seed=v("seed"),
        scaling=v("scaling"),
        targets=data_targets(spec.metric),
    )
    data_cfg, ds = plan_data(v("dataset"), data_cfg, spec.scaling, cb)
    spec = _data_recorded(spec, data_cfg)
    train_cfg = dataclasses.replace(train_cfg, metric=settle_metric(spec.metric, ds))
    for line in prepare(model_cfg, ds):  # a custom model against the data, before any run
        cb.say(line)
    train_cfg = fit_batch(train_cfg, ds, folds, cb)
    lr = v("lr")
    if lr == "auto":
        from sweepjax.analysis.sanity import auto_lr_range

        lo, hi = auto_lr_range(ds, model_cfg, train_cfg)
        cb.say(f"`lr` auto: the learning-rate finder suggests [{lo:.3g}, {hi:.3g}]")
        lr = Range(lo, hi)
    space = SearchSpace(lr=lr, l2=v("l2"), lr_decay=spec.lr_decay, **searched, user=own_searched)
    resolved = _resolved(spec, model_cfg, train_cfg, sched_cfg, space, replicas, folds)
    cfg = SweepConfig(
        kind="coarse",
        data=data_cfg,
        model=model_cfg,
        train=train_cfg,
        space=space,
        trials=v("trials"),
        grid=v("grid"),
        top_k=v("top_k"),
        band=v("band"),
        schedule=sched_cfg,
        replicas=replicas,
        folds=folds,
        spec=resolved,
        choices=spec.choices or (),
    )
    scheduler_for(cfg, cfg.trials)  # a schedule that does not fit the run fails now
    check_schedule(cfg)
    check_optuna_storage(spec.optuna_storage)
    return Plan(cfg, ds, where)


class Parent(NamedTuple):
    """The finished sweep a fine round refines, as the store holds it."""

    id: str
    row: SweepRow
    result: SweepResult  # with its curves
    config: SweepConfig


class FineBox(NamedTuple):
    """What the parent's results say about the fine round's search."""

    judged: Appraisal  # the parent judged at the round's band and margin
    space: SearchSpace  # the new box
    why: str  # how the box was drawn (said, and stored as the refinement)
    given: dict  # the extra axes as the user gave them now (None: not given)


def plan_fine(spec: SweepSpec, store: Store, cb: Callbacks, where) -> Plan:
    """A fine round: the parent's stored spec under the user's options, its box from the
    parent's response surface (:func:`~sweepjax.flows.fine_space.fine_space`), its steps
    the model's factor times the parent's, its seed derived from the lineage."""
    if spec.loss is not None and spec.model is None:
        raise ConfigError("`loss` goes with `model`; pass the model again with its loss")
    if isinstance(spec.dataset, str):
        check_dataset_name(spec.dataset)
    par = _parent(spec, store)
    pcfg = par.config
    # Options the user did not give are the parent's (a searched axis: its refined box).
    # A smaller box than the parent's: fewer members cover it (spec.opt.fine_trials).
    merged = spec.inherit(par.result.spec, trials=fine_trials(pcfg.trials))
    v = merged.value
    # Replicas and folds go together: giving either replaces the parent's pair.
    own = spec.replicas is not None or spec.folds is not None
    replicas, folds = group_shape(
        *((spec if own else merged).replicas, (spec if own else merged).folds)
    )
    box = _fine_box(spec, merged, par)
    inherited = par.result.spec.hparams  # the parent's declarations, each kept unless given
    space, own_fixed, own_why = user_hparams.fine_user(box.space, spec.hparams, inherited)
    box = box._replace(space=space, why=box.why + own_why)
    merged, kept_note = kept_choices(spec, merged, par.result)
    model_cfg, fixed = _fine_model(spec, merged, box, pcfg)
    # The root seed (the data split's, shared by the whole chain) and, from it and the
    # lineage, this round's training seed: fresh draws each round, same per command.
    root = pcfg.data.seed if spec.seed is None else spec.seed
    ancestors = (store.sweep_row(p).kind for p, _ in par.result.parent_spaces)
    lineage = (*ancestors, par.row.kind, "fine")
    seed = derive_seed(root, lineage)
    factor = MODEL_DEFAULTS.get(model_cfg.kind, MODEL_DEFAULTS["mlp"]).fine_steps_factor
    steps = spec.steps if spec.steps is not None else factor * pcfg.train.steps
    sched_cfg = schedule_config(
        "fine", spec.schedule, spec.eta, spec.rungs, spec.pbt_interval, steps,
        spec.budget, spec.width, spec.brackets,
    )  # fmt: skip
    fixed = user_hparams.factory_momentum(v("optimizer"), box.space.momentum, fixed)
    train_cfg = _train(merged, v("optimizer"), steps, seed, fixed, own_fixed)
    data_cfg, ds = _fine_data(spec, merged, par, root, cb)
    merged = _data_recorded(merged, data_cfg)
    train_cfg = dataclasses.replace(
        train_cfg, metric=settle_metric(merged.metric or pcfg.train.metric, ds)
    )
    train_cfg = fit_batch(train_cfg, ds, folds, cb)
    grid, sampler = v("grid"), v("sampler")
    if grid and sampler != "uniform":
        raise ConfigError(f"`grid` draws a grid; drop it to use `sampler` {sampler}")
    resolved = _resolved(
        dataclasses.replace(merged, parent=par.id, seed=root),
        model_cfg, train_cfg, sched_cfg, box.space, replicas, folds,
    )  # fmt: skip
    cfg = SweepConfig(
        kind="fine",
        data=data_cfg,
        model=model_cfg,
        train=train_cfg,
        space=box.space,
        trials=v("trials"),
        grid=grid,
        parent=par.id,
        top_k=v("top_k"),
        margin=v("margin"),
        band=v("band"),
        schedule=sched_cfg,
        sampler=sampler,
        replicas=replicas,
        folds=folds,
        spec=resolved,
        choices=merged.choices or (),
    )
    scheduler_for(cfg, cfg.trials)
    check_schedule(cfg)
    replaced = spec.lr is not None or spec.l2 is not None
    replaced |= any(box.given[n] is not None for n in box.given if n in pcfg.space.axes())
    replaced |= any(n in pcfg.space.axes() for n, _ in spec.hparams or ())
    draws = model_draws(box.judged, pcfg.space, cfg, replaced=replaced)
    for line in prepare(cfg.model, ds):
        cb.say(line)
    if ds.info.sha256 != par.result.dataset.get("sha256"):
        was = par.result.dataset.get("name")
        cb.say(f"note: the data differs from parent {par.id}'s ({ds.info.name} vs {was}); "
               "accuracies may not compare")  # fmt: skip
    check_optuna_storage(spec.optuna_storage)
    cb.say(f"fine box from {par.id}: {box.why}")
    if kept_note:  # the categorical values kept and dropped
        cb.say(kept_note)
    cb.say(f"fine seed {seed}: from root seed {root} and lineage {'/'.join(lineage)}")
    return Plan(cfg, ds, where, draws, box.why)


def _fine_data(spec: SweepSpec, merged: SweepSpec, par: Parent, root: int, cb: Callbacks):
    """``(DataConfig, Dataset)`` of a fine round: the data the parent really used (after
    any offline fallback), so rounds compare; a sweep stored before ``scaling`` was
    recorded scaled one way, globally."""
    pcfg = par.config
    data_cfg = dataclasses.replace(
        pcfg.data,
        data_dir=merged.data_dir,
        seed=root,
        scaling=merged.scaling or par.result.dataset.get("scaling") or "global",
        targets=data_targets(merged.metric or pcfg.train.metric),
    )
    used = par.result.dataset.get("name") or pcfg.data.dataset
    return plan_data(spec.dataset if spec.dataset is not None else used, data_cfg, spec.scaling, cb)


def _parent(spec: SweepSpec, store: Store) -> Parent:
    """The sweep named ``spec.parent`` (default: the newest coarse one), which must have
    finished."""
    parent = spec.parent or store.newest("coarse")
    if parent is None:
        raise StoreError(
            f"no finished coarse sweep in {store.path} to refine; run `sweepjax coarse` "
            "first or pass `parent`"
        )
    row = store.sweep_row(parent)
    if row.status != "finished":
        raise StoreError(
            f"sweep {parent} is {row.status}, not finished; resume it with `resume` first "
            "or pass another `parent`"
        )
    result = store.load_sweep(parent, curves=True)
    return Parent(parent, row, result, result.config)


def _fine_box(spec: SweepSpec, merged: SweepSpec, par: Parent) -> FineBox:
    """The parent judged at the round's band and margin, and the new box from it."""
    v, pcfg, res = merged.value, par.config, par.result
    judged, _ = judge_sweep(
        res.members, res.configs, pcfg.space, res.dataset["n_val"], res.curves,
        v("band"), v("margin"), pcfg.train.seed, pcfg.metric,
    )  # fmt: skip
    given = {n: getattr(spec, n) for n in EXTRA_AXES}
    decay_off = spec.lr_decay == "off"
    space, why = fine_space(
        judged,
        res,
        pcfg.space,
        pbt_parent=pcfg.schedule.name == "pbt",
        top_k=v("top_k"),
        margin=v("margin"),
        band=v("band"),
        lr=spec.lr,
        l2=spec.l2,
        lr_decay=None if decay_off else spec.lr_decay,
        decay_off=decay_off,
        extra=given,
    )
    return FineBox(judged, space, why, given)


def _fine_model(
    spec: SweepSpec, merged: SweepSpec, box: FineBox, pcfg: SweepConfig
) -> tuple[ModelConfig, dict]:
    """The round's model (its width from the box or the fixed value) checked against
    the axes, and the fixed values of the extra axes (None where the box searches it)."""
    given_fixed = {n: x for n, x in box.given.items() if x is not None and not isinstance(x, Range)}
    # Fixed values, given now or the parent's; an axis the parent searched is in the box.
    fixed = {n: None if isinstance(x := getattr(merged, n), Range) else x for n in EXTRA_AXES}
    width = _width(box.space.hidden, fixed["hidden"] or pcfg.model.hidden)
    # A built-in's loss is the parent's (by its stored name) unless the model is given.
    loss = spec.loss if spec.model is not None else pcfg.model.loss
    model_cfg = model_config(merged.value("model"), width, loss)
    check_axes(model_cfg, [*box.space.axes(), *(n for n, x in given_fixed.items() if x)])
    check_fixed_axes(box.space, model_cfg.kind, merged.value("optimizer"), given_fixed)
    check_choices(
        merged.choices or (), model_cfg, box.space.hidden is not None, spec.momentum is not None
    )
    return model_cfg, fixed


def fit_batch(train_cfg, ds, folds: int, cb: Callbacks):
    """The training config with the batch the engine really draws: at most the rows it
    trains on (train, or train + validation pooled for folds), said in a note, so the
    header, the stored config and the JSON name the batch used."""
    rows = ds.info.n_train + (ds.info.n_val if folds > 1 else 0)
    if train_cfg.batch_size <= rows:
        return train_cfg
    cb.say(
        f"note: `batch_size` {train_cfg.batch_size} exceeds the {rows} training rows; "
        f"using batch {rows}"
    )
    return dataclasses.replace(train_cfg, batch_size=rows)


def check_optuna_storage(url: str | None) -> None:
    """Open ``optuna_storage`` now (the last check of a plan), so a missing extra or a
    URL Optuna cannot open fails before the sweep's row exists."""
    if not url:
        return
    from sweepjax.store.optuna_export import import_optuna

    optuna = import_optuna()
    try:
        optuna.storages.get_storage(url)
    except Exception as e:  # sqlalchemy / optuna raise several kinds for a bad URL
        raise ConfigError(
            f"cannot open the Optuna storage {url!r} ({type(e).__name__}); "
            "give an Optuna storage URL, e.g. `optuna_storage` sqlite:///optuna.db"
        ) from None


def _data_recorded(spec: SweepSpec, data_cfg: DataConfig) -> SweepSpec:
    """The spec with the scaling used and, for data given from Python, its name."""
    named = isinstance(spec.dataset, str) or spec.dataset is None
    return dataclasses.replace(
        spec, scaling=data_cfg.scaling, **({} if named else {"dataset": data_cfg.dataset})
    )


def _train(spec: SweepSpec, optimizer, steps, seed, fixed, own_fixed=None):
    return train_config(
        optimizer,
        steps,
        spec.value("batch_size"),
        seed,
        spec.eval_every,
        spec.chunk_steps,
        momentum=fixed.get("momentum"),
        dropout=fixed.get("dropout"),
        init_scale=fixed.get("init_scale"),
        hparams=tuple(sorted((own_fixed or {}).items())) or None,
    )


def _resolved(spec, model_cfg, train_cfg, sched_cfg, space, replicas, folds) -> SweepSpec:
    """The spec as the sweep runs it (stored with it; what a fine round inherits): the
    model by name, its searched axes as boxes, fixed axes as numbers, defaults filled."""
    axes = {n: space.axes().get(n) for n in EXTRA_AXES}
    for n in ("dropout", "init_scale", "momentum"):
        if axes[n] is None and getattr(spec, n) is not None:
            axes[n] = getattr(spec, n)
    if model_cfg.kind == "mlp" and axes["hidden"] is None:
        axes["hidden"] = model_cfg.hidden
    return dataclasses.replace(
        spec,
        trials=spec.value("trials"),
        grid=spec.value("grid"),
        seed=spec.value("seed"),
        model=model_cfg.spec or model_cfg.kind,
        loss=None,
        optimizer=train_cfg.optimizer,
        steps=train_cfg.steps,
        batch_size=train_cfg.batch_size,
        lr=space.lr,
        l2=space.l2,
        lr_decay=space.lr_decay,
        schedule=sched_cfg.name,
        replicas=replicas if replicas > 1 and not folds else None,
        folds=folds or None,
        hparams=user_hparams.resolved(space, dict(train_cfg.hparams)),
        # only when not accuracy, so specs stored before metrics compare equal on resume
        metric=None if train_cfg.metric == TrainConfig.metric else train_cfg.metric,
        **axes,
    )


def _width(searched: Range | None, fixed: int | None, default: int = ModelConfig.hidden) -> int:
    """The compiled MLP width: a searched width's whole upper bound (each member is masked
    to its own inside it), else the fixed one (``default`` when None)."""
    if searched is not None:
        return int(math.ceil(searched.hi))
    return int(fixed) if fixed is not None else default


__all__ = ["Plan", "plan_coarse", "plan_fine"]
