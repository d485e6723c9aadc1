"""The coarse -> fine flows: sample, train, store, flag, refine, resume.

``coarse(...)`` and ``fine(...)`` are what ``python -m sweepjax coarse|fine`` run, callable
from a notebook. They never print: remarks go to ``Callbacks.note`` (default: the
``sweepjax`` logger), progress to ``Callbacks.progress``. What they are built from lives
next door: settings and their checks in :mod:`sweepjax.flows.sweep_config`, running, storing
and resuming in :mod:`sweepjax.flows.runner`, a fine round's box and model-based draws in
:mod:`sweepjax.flows.fine_space`, the winner's refit in :mod:`sweepjax.flows.refit`.

Resume rule: a sweep's population is checkpointed in the store between chunks. With
``resume=True`` the flow continues the unfinished (running-but-dead or interrupted)
sweep of the same kind named ``name`` or, without a name, the newest unfinished one
whose resolved config equals this call's; it refuses (ConfigError, one line naming the
differing settings) when the config differs or the device count is not the one the sweep
ran on, and it ends with exactly the results of an uninterrupted run (same chunks, same
compiled programs, same minibatches). The stored timing adds up every part (a part ended
by kill -9 counts its wall time up to its last checkpoint, compile included, as training).
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from typing import Any

from sweepjax import search
from sweepjax.analysis import verdict
from sweepjax.config import (
    DEFAULT_L2,
    DEFAULT_LR,
    DataConfig,
    ModelConfig,
    Range,
    SearchSpace,
)
from sweepjax.engine import distributed
from sweepjax.errors import ConfigError, StoreError
from sweepjax.flows.build import PARAMS_KEPT, build_result
from sweepjax.flows.fine_space import fine_space, model_draws
from sweepjax.flows.refit import refit_winner
from sweepjax.flows.runner import (
    CHECKPOINT_SHARE,
    Callbacks,
    SweepInterrupted,
    load_inputs,
    open_store,
    report_dir,
    run_sweep,
    write_report_hook,
)
from sweepjax.flows.sweep_config import (
    DEFAULT_BATCH,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULE,
    DEFAULT_STEPS,
    DEFAULT_TRIALS,
    FINE_LR_DECAY,
    FINE_STEPS_FACTOR,
    MODEL_DEFAULTS,
    SAMPLERS,
    SweepConfig,
    axis_value,
    check_band,
    check_dataset_name,
    check_fixed_axes,
    check_positive,
    derive_seed,
    group_shape,
    range_value,
    schedule_config,
    scheduler_for,
    train_config,
)
from sweepjax.models.custom import check_axes, model_config, prepare
from sweepjax.results.appraise import appraise_sweep
from sweepjax.results.records import SweepResult


# --------------------------------------------------------------------------- flows
def coarse(
    *,
    dataset: str = "mnist",
    data_dir: str | None = None,
    model: Any = "softmax",
    hidden: int | tuple[int, int] | Range | None = None,
    optimizer: str | None = None,
    trials: int = DEFAULT_TRIALS,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH,
    lr: tuple[float, float] | Range | str | None = None,
    l2: tuple[float, float] | Range | None = None,
    lr_decay: tuple[float, float] | Range | None = None,
    dropout: float | tuple[float, float] | Range | None = None,
    init_scale: float | tuple[float, float] | Range | None = None,
    momentum: float | tuple[float, float] | Range | None = None,
    grid: bool = False,
    seed: int = 0,
    eval_every: int | None = None,
    chunk_steps: int | None = None,
    top_k: int = search.DEFAULT_TOP_K,
    band: float = verdict.DEFAULT_BAND,
    store: str | os.PathLike | None = None,
    name: str | None = None,
    report: bool = True,
    resume: bool = False,
    callbacks: Callbacks | None = None,
    devices: int | None = None,
    schedule: str | None = None,
    eta: int | None = None,
    rungs: int | None = None,
    pbt_interval: int | None = None,
    replicas: int | None = None,
    folds: int | None = None,
    loss: Callable | None = None,
) -> SweepResult:
    """A coarse sweep: ``trials`` members drawn log-uniformly from the ``lr`` x ``l2`` box
    (default ``DEFAULT_LR`` x ``DEFAULT_L2``), trained ``steps`` steps at once, stored.

    More axes, each traced per member in the same compiled program: ``lr_decay``,
    ``hidden`` (the MLP's width: an int fixes it, a ``(lo, hi)`` pair searches whole
    widths log-uniformly, each member masked to its own inside a network ``hi`` wide),
    ``dropout`` (MLP), ``init_scale`` and ``momentum`` (the ``momentum`` optimizer's
    coefficient, Adam's ``b1``): a number fixes the axis, a pair (or a
    :class:`~sweepjax.config.Range` on the axis's scale) searches it; dropout and momentum
    are searched on a linear scale, the others in log space (:data:`sweepjax.config.AXES`).

    ``lr="auto"`` takes the box from the learning-rate finder
    (:func:`sweepjax.analysis.sanity.auto_lr_range`, a short vectorized sweep at tiny lambda).
    ``devices`` spreads the members over that many devices (default: all of them; in a
    multi-process run every process calls this with the same arguments).
    ``schedule`` (``full`` | ``halving`` | ``hyperband`` | ``pbt``, default
    ``DEFAULT_SCHEDULE["coarse"]``) decides how the budget is spent, with ``eta``,
    ``rungs`` and ``pbt_interval`` (see :class:`sweepjax.config.ScheduleConfig`).
    ``replicas`` trains that many seeds (initial weights) of every sampled config as
    extra members of the same program; ``folds=K`` K-fold cross-validates every config
    over train + validation pooled (replica ``r`` holds out fold ``r``). Either way the
    result is grouped by config (``result.configs``) and the winner is a config's mean.

    ``model``: ``"softmax"``, ``"mlp"``, your own model as ``"package.module:Name"``, a
    flax ``nn.Module`` instance (``__call__(x[B, ...]) -> logits[B, K]``) or a
    :class:`sweepjax.Custom`; ``loss(logits[B, K], labels[B]) -> [B]`` replaces its
    cross-entropy (see :mod:`sweepjax.models.custom`: input shapes, regularised leaves, names).

    Returns the :class:`SweepResult` (also stored; ``result.sweep_id`` names it).
    Raises ConfigError / DataError / StoreError (nothing written), SweepInterrupted,
    AllDivergedError (after storing the results).

    Example::

      res = sweepjax.coarse(dataset="mnist-sample", trials=64, steps=200, store="s.db")
      res.winner.val_acc  # ~0.9
    """
    cb = callbacks or Callbacks()
    replicas_, folds_ = group_shape(replicas, folds)
    check_positive("trials", trials)
    check_positive("top", top_k)
    check_dataset_name(dataset)
    auto = isinstance(lr, str)
    if auto and lr != "auto":
        raise ConfigError(f"--lr takes LO HI or 'auto', got {lr!r}")
    data_cfg = DataConfig(dataset=dataset, data_dir=data_dir, seed=seed)
    extra = {
        "hidden": axis_value("hidden", hidden),
        "dropout": axis_value("dropout", dropout),
        "init_scale": axis_value("init_scale", init_scale),
        "momentum": axis_value("momentum", momentum),
    }
    searched = {n: a for n, a in extra.items() if isinstance(a, Range)}
    fixed = {n: a for n, a in extra.items() if not isinstance(a, Range)}
    builtin = isinstance(model, str) and model in MODEL_DEFAULTS
    # A user's network takes the MLP's optimizer default (and no width: it has its own).
    defaults = MODEL_DEFAULTS[model if builtin else "mlp"]
    optimizer = optimizer or defaults.optimizer
    width = _width(
        searched.get("hidden"),
        fixed.get("hidden"),
        defaults.hidden if builtin else ModelConfig.hidden,
    )
    model_cfg = model_config(model, width, loss)
    check_axes(model_cfg, [*searched, *(n for n, v in fixed.items() if v)])
    check_fixed_axes(SearchSpace(**searched), model_cfg.kind, optimizer, fixed)
    train_cfg = train_config(
        optimizer,
        steps,
        batch_size,
        seed,
        eval_every,
        chunk_steps,
        momentum=fixed.get("momentum"),
        dropout=fixed.get("dropout"),
        init_scale=fixed.get("init_scale"),
    )
    sched_cfg = schedule_config("coarse", schedule, eta, rungs, pbt_interval, train_cfg.steps)
    l2_r = range_value("l2", l2, DEFAULT_L2)
    check_band(band)
    where = distributed.placement(devices)
    ds = load_inputs(data_cfg, cb)
    prepare(model_cfg, ds)  # a custom model's shapes against the data, before anything runs
    if auto:
        from sweepjax.analysis.sanity import auto_lr_range

        lo, hi = auto_lr_range(ds, model_cfg, train_cfg)
        cb.say(f"--lr auto: the learning-rate finder suggests [{lo:.3g}, {hi:.3g}]")
        lr = (lo, hi)
    cfg = SweepConfig(
        kind="coarse",
        data=data_cfg,
        model=model_cfg,
        train=train_cfg,
        space=SearchSpace(
            lr=range_value("lr", lr, DEFAULT_LR),
            l2=l2_r,
            lr_decay=range_value("lr-decay", lr_decay, None, cap=1.0),
            **searched,
        ),
        trials=trials,
        grid=grid,
        top_k=top_k,
        band=band,
        schedule=sched_cfg,
        replicas=replicas_,
        folds=folds_,
    )
    scheduler_for(cfg, trials)  # a schedule that does not fit the run fails before anything runs
    with open_store(store, True, where) as st:
        return run_sweep(cfg, ds, st, cb, name=name, resume=resume, report=report, where=where)


def fine(
    *,
    parent: str | None = None,
    top_k: int = search.DEFAULT_TOP_K,
    margin: float = verdict.DEFAULT_MARGIN,
    band: float = verdict.DEFAULT_BAND,
    trials: int | None = None,
    steps: int | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    model: Any = None,
    hidden: int | tuple[int, int] | Range | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    lr: tuple[float, float] | Range | None = None,
    l2: tuple[float, float] | Range | None = None,
    lr_decay: tuple[float, float] | Range | str | None = None,
    dropout: float | tuple[float, float] | Range | None = None,
    init_scale: float | tuple[float, float] | Range | None = None,
    momentum: float | tuple[float, float] | Range | None = None,
    grid: bool | None = None,
    seed: int | None = None,
    eval_every: int | None = None,
    chunk_steps: int | None = None,
    store: str | os.PathLike | None = None,
    name: str | None = None,
    report: bool = True,
    resume: bool = False,
    callbacks: Callbacks | None = None,
    devices: int | None = None,
    schedule: str | None = None,
    eta: int | None = None,
    rungs: int | None = None,
    pbt_interval: int | None = None,
    sampler: str | None = None,
    refit: bool = True,
    replicas: int | None = None,
    folds: int | None = None,
    loss: Callable | None = None,
) -> SweepResult:
    """A fine sweep around the best region of ``parent`` (default: the newest finished
    coarse sweep in the store); ``fine(parent=<a fine sweep>)`` chains rounds.

    The box comes from the parent's response surface (:mod:`sweepjax.results.appraise`,
    :func:`sweepjax.analysis.verdict.refine_box`): per axis, the span of the members tied with the
    parent's winner, the modelled optimum and its flat range, widened by ``margin``
    (fraction of the parent's log-width); extended past an edge toward which the modelled
    score still rises significantly (measured over the outer ``band``), whether or not the
    winner sits near it; a flat axis stays wide; never past a cap (lr_decay <= 1). With
    too few surviving members for a model, the old rule (:func:`sweepjax.search.refine`,
    the span of the ``top_k`` best) is used instead. ``lr`` / ``l2`` replace an axis of
    that box; so do ``hidden`` / ``dropout`` / ``init_scale`` / ``momentum`` given as a
    pair, while one number fixes that axis instead (every axis the parent searched is
    searched again, in its refined box, unless so replaced or fixed; a pair for an axis
    the parent did not search adds it). A searched width compiles a network
    ``ceil(hidden.hi)`` wide. ``sampler`` (``DEFAULT_SAMPLER`` when None) draws the members in it:
    ``uniform``, or ``thompson`` / ``ei`` from the parent's model
    (:func:`sweepjax.analysis.verdict.propose`). ``refit`` retrains the winner on train +
    validation (:mod:`sweepjax.flows.refit`) and reports ``winner.refit_test_acc``.

    Every other setting is the parent's unless given; ``steps`` defaults to
    ``FINE_STEPS_FACTOR`` x the parent's and ``trials`` to the parent's; ``schedule``
    to ``DEFAULT_SCHEDULE["fine"]``; ``replicas`` / ``folds`` to the parent's (see
    :func:`coarse`). A parent's own model is re-created from its stored name; one that
    was a Python object of another session needs ``model=`` (and ``loss=``) again.

    ``seed`` is the root seed (default: the parent's): it fixes the validation split of
    the whole chain, and the round trains with :func:`derive_seed` of it and the round's
    lineage, so every round draws fresh members, weights and minibatches.
    """
    cb = callbacks or Callbacks()
    for n, v in (("trials", trials), ("top", top_k)):
        check_positive(n, v)
    check_band(band)
    sampler_ = DEFAULT_SAMPLER if sampler is None else sampler
    if sampler_ not in SAMPLERS:
        raise ConfigError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
    if not 0.0 <= margin <= 1.0:
        raise ConfigError(f"--margin must be in [0, 1], got {margin}; try 0.1")
    lr_r = range_value("lr", lr, DEFAULT_LR) if lr is not None else None
    l2_r = range_value("l2", l2, DEFAULT_L2) if l2 is not None else None
    extra = {
        "hidden": axis_value("hidden", hidden),
        "dropout": axis_value("dropout", dropout),
        "init_scale": axis_value("init_scale", init_scale),
        "momentum": axis_value("momentum", momentum),
    }
    decay_off = isinstance(lr_decay, str)
    if decay_off and lr_decay != "off":
        raise ConfigError(f"--lr-decay takes LO HI or 'off', got {lr_decay!r}")
    decay_r = None if decay_off else range_value("lr-decay", lr_decay, None, cap=1.0)
    if dataset is not None:
        check_dataset_name(dataset)
    if loss is not None and model is None:
        raise ConfigError("loss= goes with model=; pass the model again with its loss")
    for n, v in (("eta", eta), ("rungs", rungs), ("pbt-interval", pbt_interval)):
        check_positive(n, v)
    where = distributed.placement(devices)
    with open_store(store, False, where) as st:
        if parent is None:
            parent = st.newest("coarse")
            if parent is None:
                raise StoreError(
                    f"no finished coarse sweep in {st.path} to refine; run "
                    "`sweepjax coarse` first or pass --from SWEEP"
                )
        prow = st.sweep_row(parent)
        if prow.status != "finished":
            raise StoreError(
                f"sweep {parent} is {prow.status}, not finished; resume it "
                "with --resume first or pass another --from"
            )
        par = st.load_sweep(parent, curves=True)
        pc = par.config
        pd, pm, pt = pc["data"], pc["model"], pc["train"]
        pspace = search.as_space(par.space)
        judged, _ = appraise_sweep(
            par.members,
            par.configs,
            pspace,
            par.dataset["n_val"],
            par.curves,
            band,
            margin,
            pt["seed"],
        )
        if replicas is None and folds is None:
            replicas, folds = pc.get("replicas"), pc.get("folds")
        replicas_, folds_ = group_shape(replicas, folds)
        pbt_parent = pc.get("schedule", {}).get("name") == "pbt"
        space, why = fine_space(
            judged,
            par,
            pspace,
            pbt_parent=pbt_parent,
            top_k=top_k,
            margin=margin,
            lr=lr_r,
            l2=l2_r,
            lr_decay=decay_r,
            decay_off=decay_off,
            extra=extra,
        )
        optimizer_ = optimizer or pt["optimizer"]
        fixed = {n: a for n, a in extra.items() if a is not None and not isinstance(a, Range)}
        width = _width(space.hidden, fixed.get("hidden", pm["hidden"]))
        model_cfg = model_config(
            (pm.get("spec") or pm["kind"]) if model is None else model, width, loss
        )
        check_axes(model_cfg, [*space.axes(), *(n for n, v in fixed.items() if v)])
        check_fixed_axes(space, model_cfg.kind, optimizer_, fixed)
        # Fixed values not given now are the parent's (stored only when not the default).
        for axis in ("momentum", "dropout", "init_scale"):
            fixed.setdefault(axis, pt.get(axis))
        # The data the parent really used (after any offline fallback), so rounds compare.
        used = par.dataset.get("name") or pd["dataset"]
        # The root seed (the data split's, shared by the whole chain) and, from it and the
        # lineage, this round's training seed: fresh draws each round, same per command.
        root = pd["seed"] if seed is None else seed
        lineage = (
            *(st.sweep_row(p).kind for p, _ in par.parent_spaces),
            prow.kind,
            "fine",
        )
        seed_ = derive_seed(root, lineage)
        factor = MODEL_DEFAULTS.get(model_cfg.kind, MODEL_DEFAULTS["mlp"]).fine_steps_factor
        steps_ = steps if steps is not None else factor * pt["steps"]
        sched_cfg = schedule_config("fine", schedule, eta, rungs, pbt_interval, steps_)
        cfg = SweepConfig(
            kind="fine",
            data=DataConfig(
                dataset=dataset or used,
                data_dir=data_dir if data_dir is not None else pd["data_dir"],
                val_fraction=pd["val_fraction"],
                seed=root,
                download=pd["download"],
            ),
            model=model_cfg,
            train=train_config(
                optimizer_,
                steps_,
                batch_size if batch_size is not None else pt["batch_size"],
                seed_,
                eval_every,
                chunk_steps,
                momentum=fixed["momentum"],
                dropout=fixed["dropout"],
                init_scale=fixed["init_scale"],
            ),
            space=space,
            trials=trials if trials is not None else pc["trials"],
            grid=pc["grid"] if grid is None else grid,
            parent=parent,
            top_k=top_k,
            margin=margin,
            band=band,
            schedule=sched_cfg,
            sampler=sampler_,
            replicas=replicas_,
            folds=folds_,
        )
        scheduler_for(cfg, cfg.trials)
        if cfg.grid and sampler_ != "uniform":
            raise ConfigError(f"--grid draws a grid; drop it to use --sampler {sampler_}")
        replaced = lr_r is not None or l2_r is not None
        replaced |= any(extra[n] is not None for n in extra if n in pspace.axes())
        draws = model_draws(judged, pspace, cfg, replaced=replaced)
        ds = load_inputs(cfg.data, cb)
        prepare(cfg.model, ds)
        if ds.info.sha256 != par.dataset.get("sha256"):
            cb.say(
                f"note: the data differs from parent {parent}'s "
                f"({ds.info.name} vs {par.dataset.get('name')}); accuracies may not compare"
            )
        cb.say(f"fine box from {parent}: {why}")
        cb.say(f"fine seed {seed_}: from root seed {root} and lineage {'/'.join(lineage)}")
        result = run_sweep(
            cfg,
            ds,
            st,
            cb,
            name=name,
            resume=resume,
            report=report,
            refinement=why,
            where=where,
            draws=draws,
        )
        if refit:
            result = refit_winner(result, cfg, ds, st, cb)
        return result


def _width(searched: Range | None, fixed: int | None, default: int = ModelConfig.hidden) -> int:
    """The compiled MLP width: a searched width's whole upper bound (each member is masked
    to its own inside it), else the fixed one (``default`` when None)."""
    if searched is not None:
        return int(math.ceil(searched.hi))
    return int(fixed) if fixed is not None else default


__all__ = [
    "CHECKPOINT_SHARE",
    "DEFAULT_BATCH",
    "DEFAULT_SAMPLER",
    "DEFAULT_SCHEDULE",
    "DEFAULT_STEPS",
    "DEFAULT_TRIALS",
    "FINE_LR_DECAY",
    "FINE_STEPS_FACTOR",
    "MODEL_DEFAULTS",
    "PARAMS_KEPT",
    "SAMPLERS",
    "Callbacks",
    "SweepConfig",
    "SweepInterrupted",
    "build_result",
    "coarse",
    "derive_seed",
    "fine",
    "report_dir",
    "write_report_hook",
]
