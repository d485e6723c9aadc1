"""The coarse -> fine flows: sample, train, store, flag, refine, resume.

``coarse(...)`` and ``fine(...)`` are what ``python -m sweepjax coarse|fine`` run, callable
from a notebook. They never print: remarks go to ``Callbacks.note`` (default: the
``sweepjax`` logger), progress to ``Callbacks.progress``.

Resume rule: a sweep's population is checkpointed in the store after every chunk. With
``resume=True`` the flow continues the unfinished (running-but-dead or interrupted)
sweep of the same kind named ``name`` or, without a name, the newest unfinished one
whose resolved config equals this call's; it refuses (ConfigError, one line naming the
differing settings) when the config differs or the device count is not the one the sweep
ran on, and it ends with exactly the results of an uninterrupted run (same chunks, same
compiled programs, same minibatches). The stored timing adds up every part (a part ended
by kill -9 counts its wall time up to its last checkpoint, compile included, as training).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import math
import os
import socket
import sqlite3
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sweepjax import distributed, schedule, search
from sweepjax.config import (
    DEFAULT_L2,
    DEFAULT_LR,
    DataConfig,
    ModelConfig,
    Range,
    ScheduleConfig,
    SearchSpace,
    TrainConfig,
)
from sweepjax.data import Dataset, load_dataset
from sweepjax.errors import AllDivergedError, ConfigError, StoreError, SweepjaxError
from sweepjax.results import MemberRecord, SweepResult, TimingRecord, Winner
from sweepjax.store import Store, default_path
from sweepjax.train import (
    ChunkReport,
    PopulationResult,
    accuracy,
    init_states,
    member_params,
    train_population,
)

log = logging.getLogger("sweepjax")

# Defaults of ``python -m sweepjax coarse`` with no flags: 256 members x 300 steps of
# batch 256 on the bundled sample take ~20 s on 2 CPU cores (compile included).
DEFAULT_TRIALS = 256
DEFAULT_STEPS = 300
DEFAULT_BATCH = 256
# A fine round trains this many times the parent's steps, with the learning-rate decay
# searched too (FINE_LR_DECAY: the multiplier reached at the end of the run, cosine from
# 1, when the parent did not search it): a short coarse round ranks rates, but only a
# longer, annealed run converges.
FINE_STEPS_FACTOR = 8
FINE_LR_DECAY = Range(0.01, 1.0)
# Each command's schedule when none is given (chosen by benchmarks/bench_time_to_quality.py;
# the README's "Schedules" section gives the numbers).
DEFAULT_SCHEDULE = {"coarse": "halving", "fine": "halving"}
PARAMS_KEPT = 5  # members whose learned weights are stored (winner first)
# Checkpoints may take at most this share of the wall time: one is written only when the
# time since the last one is at least (1 - share) / share times what a write costs.
CHECKPOINT_SHARE = 0.05
CHECKPOINT_BYTES_PER_S = 200e6  # first estimate of a write's speed, before one is timed


class SweepInterrupted(SweepjaxError):
    """Training stopped at a chunk boundary on request (Ctrl-C); the checkpoint is stored."""

    exit_code = 130

    def __init__(self, sweep_id: str, step: int, total: int, kind: str):
        self.sweep_id, self.step, self.total, self.kind = sweep_id, step, total, kind
        super().__init__(
            f"sweep {sweep_id} interrupted at step {step}/{total} (checkpoint stored); "
            f"continue it with the same command plus --resume"
        )


@dataclass
class Callbacks:
    """Hooks for the caller (the CLI prints; the library never does).

    Attributes:
      note: one-line remarks (data fallback, grid rounding, resume, chosen box).
      progress: ``(sweep_id, ChunkReport)`` after every chunk.
      stop: polled after every chunk; returning True stops at that boundary and raises
        :class:`SweepInterrupted` once the checkpoint is stored.
      begin: ``(sweep_id, start_step, total_steps, chunk_steps)`` as training starts.
    """

    note: Callable[[str], None] | None = None
    progress: Callable[[str, ChunkReport], None] | None = None
    stop: Callable[[], bool] | None = None
    begin: Callable[[str, int, int, int], None] | None = None

    def say(self, msg: str) -> None:
        (self.note or log.info)(msg)


@dataclass(frozen=True)
class SweepConfig:
    """Everything that determines a sweep's results (stored as its resolved config)."""

    kind: str
    data: DataConfig
    model: ModelConfig
    train: TrainConfig
    space: SearchSpace
    trials: int
    grid: bool = False
    parent: str | None = None
    top_k: int = search.DEFAULT_TOP_K
    margin: float = search.DEFAULT_MARGIN
    band: float = search.DEFAULT_BAND
    schedule: ScheduleConfig = ScheduleConfig()

    def as_dict(self) -> dict:
        return {
            "kind": self.kind,
            "data": dataclasses.asdict(self.data),
            "model": dataclasses.asdict(self.model),
            "train": dataclasses.asdict(self.train),
            "space": self.space.as_dict(),
            "trials": self.trials,
            "grid": self.grid,
            "parent": self.parent,
            "top_k": self.top_k,
            "margin": self.margin,
            "band": self.band,
            "schedule": dataclasses.asdict(self.schedule),
        }


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
def _range(name: str, value, default: Range | None, cap: float | None = None) -> Range | None:
    if value is None:
        return default
    if isinstance(value, Range):
        return value
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ConfigError(f"--{name} needs two numbers LO HI, got {value!r}") from None
    if cap is not None and hi > cap:
        raise ConfigError(f"--{name} upper bound must be <= {cap:g}, got {hi:g}")
    try:
        return Range(lo, hi)
    except ConfigError as e:
        raise ConfigError(f"--{name}: {e}") from None


def _positive(name: str, value: int | None) -> None:
    if value is not None and (not isinstance(value, int) or value < 1):
        raise ConfigError(f"--{name} must be a positive integer, got {value!r}")


def _train_config(optimizer, steps, batch_size, seed, eval_every, chunk_steps) -> TrainConfig:
    for n, v in (
        ("steps", steps),
        ("batch-size", batch_size),
        ("eval-every", eval_every),
        ("chunk-steps", chunk_steps),
    ):
        _positive(n, v)
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
    )


def _schedule_config(kind: str, name, eta, rungs, interval, steps: int) -> ScheduleConfig:
    for n, v in (("eta", eta), ("rungs", rungs), ("pbt-interval", interval)):
        _positive(n, v)
    eta = eta or ScheduleConfig.eta
    if name is None:  # the command's default adapts to short runs instead of failing
        name = DEFAULT_SCHEDULE[kind]
        if name in ("halving", "hyperband") and rungs is None:
            rungs = min(ScheduleConfig.rungs, max(0, int(math.log(steps, eta) + 1e-9) - 1))
            name = name if rungs >= 1 else "full"
    return ScheduleConfig(
        name=name, eta=eta, rungs=rungs or ScheduleConfig.rungs, interval=interval
    )


def _scheduler(cfg: SweepConfig, num_members: int):
    sc = cfg.schedule
    return schedule.make(
        sc.name,
        num_members=num_members,
        total=cfg.train.steps,
        space=cfg.space,
        seed=cfg.train.seed,
        eta=sc.eta,
        rungs=sc.rungs,
        interval=sc.interval,
    )


def _check_band(band: float) -> None:
    if not 0.0 <= band <= 0.5:
        raise ConfigError(f"--band must be in [0, 0.5], got {band}; try 0.1")


def _check_dataset_name(name: str) -> None:
    from sweepjax.data import SOURCES

    if not (name in SOURCES or name.startswith("npz:")):
        raise ConfigError(
            f"unknown dataset {name!r}; choose one of {', '.join(SOURCES)} or npz:PATH"
        )


# --------------------------------------------------------------------------- flows
def coarse(
    *,
    dataset: str = "mnist",
    data_dir: str | None = None,
    model: str = "softmax",
    hidden: int = 100,
    optimizer: str = "sgd",
    trials: int = DEFAULT_TRIALS,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH,
    lr: tuple[float, float] | Range | str | None = None,
    l2: tuple[float, float] | Range | None = None,
    lr_decay: tuple[float, float] | Range | None = None,
    grid: bool = False,
    seed: int = 0,
    eval_every: int | None = None,
    chunk_steps: int | None = None,
    top_k: int = search.DEFAULT_TOP_K,
    band: float = search.DEFAULT_BAND,
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
) -> SweepResult:
    """A coarse sweep: ``trials`` members drawn log-uniformly from the ``lr`` x ``l2`` box
    (default ``DEFAULT_LR`` x ``DEFAULT_L2``), trained ``steps`` steps at once, stored.

    ``lr="auto"`` takes the box from the learning-rate finder
    (:func:`sweepjax.sanity.auto_lr_range`, a short vectorized sweep at tiny lambda).
    ``devices`` spreads the members over that many devices (default: all of them; in a
    multi-process run every process calls this with the same arguments).
    ``schedule`` (``full`` | ``halving`` | ``hyperband`` | ``pbt``, default
    ``DEFAULT_SCHEDULE["coarse"]``) decides how the budget is spent, with ``eta``,
    ``rungs`` and ``pbt_interval`` (see :class:`sweepjax.config.ScheduleConfig`).

    Returns the :class:`SweepResult` (also stored; ``result.sweep_id`` names it).
    Raises ConfigError / DataError / StoreError (nothing written), SweepInterrupted,
    AllDivergedError (after storing the results).

    Example::

      res = sweepjax.coarse(dataset="mnist-sample", trials=64, steps=200, store="s.db")
      res.winner.val_acc  # ~0.9
    """
    cb = callbacks or Callbacks()
    _positive("trials", trials)
    _positive("top", top_k)
    _check_dataset_name(dataset)
    auto = isinstance(lr, str)
    if auto and lr != "auto":
        raise ConfigError(f"--lr takes LO HI or 'auto', got {lr!r}")
    data_cfg = DataConfig(dataset=dataset, data_dir=data_dir, seed=seed)
    model_cfg = ModelConfig(kind=model, hidden=hidden)
    train_cfg = _train_config(optimizer, steps, batch_size, seed, eval_every, chunk_steps)
    sched_cfg = _schedule_config("coarse", schedule, eta, rungs, pbt_interval, train_cfg.steps)
    l2_r = _range("l2", l2, DEFAULT_L2)
    _check_band(band)
    where = distributed.placement(devices)
    ds = _load(data_cfg, cb)
    if auto:
        from sweepjax.sanity import auto_lr_range

        lo, hi = auto_lr_range(ds, model_cfg, train_cfg)
        cb.say(f"--lr auto: the learning-rate finder suggests [{lo:.3g}, {hi:.3g}]")
        lr = (lo, hi)
    cfg = SweepConfig(
        kind="coarse",
        data=data_cfg,
        model=model_cfg,
        train=train_cfg,
        space=SearchSpace(
            lr=_range("lr", lr, DEFAULT_LR),
            l2=l2_r,
            lr_decay=_range("lr-decay", lr_decay, None, cap=1.0),
        ),
        trials=trials,
        grid=grid,
        top_k=top_k,
        band=band,
        schedule=sched_cfg,
    )
    _scheduler(cfg, trials)  # a schedule that does not fit the run fails before anything runs
    with _open_store(store, True, where) as st:
        return _run(cfg, ds, st, cb, name=name, resume=resume, report=report, where=where)


def fine(
    *,
    parent: str | None = None,
    top_k: int = search.DEFAULT_TOP_K,
    margin: float = search.DEFAULT_MARGIN,
    band: float = search.DEFAULT_BAND,
    trials: int | None = None,
    steps: int | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    model: str | None = None,
    hidden: int | None = None,
    optimizer: str | None = None,
    batch_size: int | None = None,
    lr: tuple[float, float] | Range | None = None,
    l2: tuple[float, float] | Range | None = None,
    lr_decay: tuple[float, float] | Range | str | None = None,
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
) -> SweepResult:
    """A fine sweep around the best region of ``parent`` (default: the newest finished
    coarse sweep in the store); ``fine(parent=<a fine sweep>)`` chains rounds.

    The box is :func:`sweepjax.search.refine` of the parent: the span of its best
    ``top_k`` members widened by ``margin`` (fraction of the parent's log-width) and
    clipped to the parent's box, except where the parent's winner sat in an edge's band
    (``band``): there the box extends past that edge. ``lr`` / ``l2`` replace an axis of
    that box. Every other setting is the parent's unless given; ``steps`` defaults to
    ``FINE_STEPS_FACTOR`` x the parent's and ``trials`` to the parent's; ``schedule``
    to ``DEFAULT_SCHEDULE["fine"]``.

    ``seed`` is the root seed (default: the parent's): it fixes the validation split of
    the whole chain, and the round trains with :func:`derive_seed` of it and the round's
    lineage, so every round draws fresh members, weights and minibatches.
    """
    cb = callbacks or Callbacks()
    for n, v in (("trials", trials), ("top", top_k)):
        _positive(n, v)
    _check_band(band)
    if not 0.0 <= margin <= 1.0:
        raise ConfigError(f"--margin must be in [0, 1], got {margin}; try 0.1")
    lr_r = _range("lr", lr, DEFAULT_LR) if lr is not None else None
    l2_r = _range("l2", l2, DEFAULT_L2) if l2 is not None else None
    decay_off = isinstance(lr_decay, str)
    if decay_off and lr_decay != "off":
        raise ConfigError(f"--lr-decay takes LO HI or 'off', got {lr_decay!r}")
    decay_r = None if decay_off else _range("lr-decay", lr_decay, None, cap=1.0)
    if dataset is not None:
        _check_dataset_name(dataset)
    for n, v in (("eta", eta), ("rungs", rungs), ("pbt-interval", pbt_interval)):
        _positive(n, v)
    where = distributed.placement(devices)
    with _open_store(store, False, where) as st:
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
        par = st.load_sweep(parent, curves=False)
        pc = par.config
        pd, pm, pt = pc["data"], pc["model"], pc["train"]
        space, why = search.refine(par, top_k, margin, band)
        if space.lr_decay is None and not decay_off and decay_r is None:
            space = dataclasses.replace(space, lr_decay=FINE_LR_DECAY)
            why += (
                f"; lr_decay: final lr multiplier searched over "
                f"[{FINE_LR_DECAY.lo:g}, {FINE_LR_DECAY.hi:g}]"
            )
        if decay_off:
            space = dataclasses.replace(space, lr_decay=None)
        if decay_r is not None:
            space = dataclasses.replace(space, lr_decay=decay_r)
            why += "; lr_decay: the given --lr-decay"
        if lr_r is not None or l2_r is not None:
            space = SearchSpace(lr=lr_r or space.lr, l2=l2_r or space.l2, lr_decay=space.lr_decay)
            why += "; replaced by the given " + " and ".join(
                f"--{a}" for a, r in (("lr", lr_r), ("l2", l2_r)) if r is not None
            )
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
        steps_ = steps if steps is not None else FINE_STEPS_FACTOR * pt["steps"]
        sched_cfg = _schedule_config("fine", schedule, eta, rungs, pbt_interval, steps_)
        cfg = SweepConfig(
            kind="fine",
            data=DataConfig(
                dataset=dataset or used,
                data_dir=data_dir if data_dir is not None else pd["data_dir"],
                val_fraction=pd["val_fraction"],
                seed=root,
                download=pd["download"],
            ),
            model=ModelConfig(
                kind=model or pm["kind"], hidden=hidden if hidden is not None else pm["hidden"]
            ),
            train=_train_config(
                optimizer or pt["optimizer"],
                steps_,
                batch_size if batch_size is not None else pt["batch_size"],
                seed_,
                eval_every,
                chunk_steps,
            ),
            space=space,
            trials=trials if trials is not None else pc["trials"],
            grid=pc["grid"] if grid is None else grid,
            parent=parent,
            top_k=top_k,
            margin=margin,
            band=band,
            schedule=sched_cfg,
        )
        _scheduler(cfg, cfg.trials)
        ds = _load(cfg.data, cb)
        if ds.info.sha256 != par.dataset.get("sha256"):
            cb.say(
                f"note: the data differs from parent {parent}'s "
                f"({ds.info.name} vs {par.dataset.get('name')}); accuracies may not compare"
            )
        cb.say(f"fine box from {parent}: {why}")
        cb.say(f"fine seed {seed_}: from root seed {root} and lineage {'/'.join(lineage)}")
        return _run(
            cfg, ds, st, cb, name=name, resume=resume, report=report, refinement=why, where=where
        )


# --------------------------------------------------------------------------- internals
@contextmanager
def _open_store(path, create: bool, where: distributed.Placement):
    """The store for this process. Process 0 (or a single process) opens the real one;
    in a multi-process run the others work on a private copy taken before anyone
    writes (so they read the same parents and checkpoints and assign the same ids),
    and their writes are discarded: only process 0 writes the store."""
    if where.process_count == 1 or where.process_index == 0:
        if where.process_count > 1:
            distributed.barrier("sweepjax-store-copied")
        with Store.open(path, create=create) as st:
            yield st
        return
    real = Path(path if path is not None else default_path())
    with tempfile.TemporaryDirectory(prefix="sweepjax-p") as tmp:
        copy = Path(tmp) / real.name
        if real.exists():
            src = sqlite3.connect(real)
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
        distributed.barrier("sweepjax-store-copied")
        with Store.open(copy, create=create) as st:
            st.real_path = str(real)
            yield st


def _real_path(st: Store) -> str:
    return getattr(st, "real_path", None) or str(st.path)


def _load(cfg: DataConfig, cb: Callbacks) -> Dataset:
    ds = load_dataset(cfg)
    if ds.info.note:
        (cb.note or log.warning)(ds.info.note)
    return ds


def _config_diff(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {a} -> {b}")
    return out


def _pid_alive(row) -> bool:
    if row.host != socket.gethostname() or not row.pid or row.pid == os.getpid():
        return False
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _find_resumable(st: Store, cfg: dict, kind: str, name: str | None, sha: str) -> str:
    """The unfinished sweep to continue (see the module docstring), or a ConfigError."""
    if name is not None:
        if not st.exists(name):
            raise ConfigError(
                f"no sweep named {name!r} to resume in {st.path}; drop --resume to start it"
            )
        rows = [st.sweep_row(name)]
        if rows[0].status == "finished":
            raise ConfigError(
                f"sweep {name} already finished; nothing to resume "
                "(drop --resume and pick a new --name)"
            )
    else:
        rows = st.unfinished(kind)
        if not rows:
            raise ConfigError(
                f"no interrupted {kind} sweep in {st.path} to resume; "
                "drop --resume to start a new one"
            )
        same = [r for r in rows if r.config == cfg]
        rows = same[:1] or rows[:1]
    row = rows[0]
    diff = _config_diff(row.config, cfg)
    if diff:
        raise ConfigError(
            f"flags differ from interrupted sweep {row.id} ({'; '.join(diff[:3])}); "
            "rerun with its flags, or drop --resume to start a new sweep"
        )
    if row.dataset.get("sha256") != sha:
        raise ConfigError(
            f"the data differs from sweep {row.id}'s (sha256 changed); "
            "restore it, or drop --resume to start a new sweep"
        )
    if row.status == "running" and _pid_alive(row):
        raise ConfigError(
            f"sweep {row.id} is still running (pid {row.pid}); wait for it or stop it first"
        )
    return row.id


def _run(
    cfg: SweepConfig,
    ds: Dataset,
    st: Store,
    cb: Callbacks,
    *,
    name: str | None,
    resume: bool,
    report: bool,
    refinement: str | None = None,
    where: distributed.Placement = distributed.SINGLE,
) -> SweepResult:
    hp, ids = search.sample(cfg.space, cfg.trials, cfg.train.seed, cfg.grid)
    if cfg.grid and hp.num_members != cfg.trials:
        k = search.grid_points_per_axis(cfg.trials, len(cfg.space.axes()))
        cb.say(
            f"note: --grid rounds {cfg.trials} trials to a {k}x{k} grid of {hp.num_members} members"
        )
    cfg_dict = cfg.as_dict()
    info = ds.info.as_dict()
    ckpt = None
    prior = {"compile_s": 0.0, "train_s": 0.0}  # the earlier parts of a resumed sweep
    if resume:
        sid = _find_resumable(st, cfg_dict, cfg.kind, name, ds.info.sha256)
        prior = {**prior, **st.run_timing(sid)}
        ran_on = prior.get("devices")
        if ran_on is not None and ran_on != where.num_devices:
            # Members split differently over devices round differently: refuse rather
            # than continue to results that are only float-close to an uninterrupted run.
            raise ConfigError(
                f"sweep {sid} ran on {ran_on} device(s), this run has {where.num_devices}; "
                f"resume it with --devices {ran_on} (results match exactly only then)"
            )
        like = init_states(ds, hp, cfg.model, cfg.train, ids)
        ckpt = st.load_checkpoint(sid, like)
        st.mark_running(sid)
        at = ckpt.step if ckpt is not None else 0
        cb.say(f"resuming {cfg.kind} sweep {sid} at step {at}/{cfg.train.steps}")
    else:
        sid = st.create_sweep(
            cfg.kind,
            cfg_dict,
            info,
            cfg.space.as_dict(),
            hp.num_members,
            cfg.train.steps,
            parent=cfg.parent,
            name=name,
        )
    run = {"devices": where.num_devices, "partial": True}
    st.set_timing(sid, {**prior, **run})
    scheduler = _scheduler(cfg, hp.num_members)
    plan = "" if scheduler is None else f", {scheduler.name} at steps {scheduler.decision_steps()}"
    cb.say(
        f"{cfg.kind} sweep {sid}: {hp.num_members} members x {cfg.train.steps} steps "
        f"(batch {cfg.train.batch_size}, {cfg.train.optimizer}, {cfg.model.kind}{plan}) on "
        f"{ds.info.name}; results -> {_real_path(st)}"
    )
    saver = _CheckpointThrottle(st, sid)

    def on_chunk(rep: ChunkReport) -> bool:
        # Until this part ends cleanly, its wall time so far (compile included) counts
        # as training: what a kill -9 leaves for the resumed sweep to add up.
        so_far = {**prior, **run, "train_s": prior["train_s"] + rep.elapsed_s}
        saver.maybe_save(rep, timing=so_far)
        if cb.progress is not None:
            cb.progress(sid, rep)
        return not (cb.stop is not None and cb.stop())

    if cb.begin is not None:
        cb.begin(
            sid,
            ckpt.step if ckpt is not None else 0,
            cfg.train.steps,
            cfg.train.resolved_chunk_steps,
        )
    try:
        res = train_population(
            ds,
            hp,
            cfg.model,
            cfg.train,
            member_ids=ids,
            scheduler=scheduler,
            on_chunk=on_chunk,
            resume=ckpt,
            placement=where,
        )
    except BaseException:
        st.mark_interrupted(sid)  # the last stored checkpoint stays resumable
        raise
    total = {
        **run,
        "compile_s": prior["compile_s"] + res.timing.compile_s,
        "train_s": prior["train_s"] + res.timing.train_s,
    }
    if not res.completed:
        st.save_checkpoint(sid, res.checkpoint, timing=total)
        st.mark_interrupted(sid)
        raise SweepInterrupted(sid, res.checkpoint.step, cfg.train.steps, cfg.kind)
    if resume:  # the timing of the whole sweep, not just of its last part (the rate is
        # the last part's: under a scheduler the parts train different numbers of members)
        res = res._replace(
            timing=res.timing._replace(compile_s=total["compile_s"], train_s=total["train_s"])
        )

    parent_spaces = []
    if cfg.parent is not None:
        par = st.load_sweep(cfg.parent, curves=False)
        parent_spaces = [*par.parent_spaces, (par.sweep_id, par.space)]
    result, params = build_result(sid, cfg, res, ds, refinement, parent_spaces)
    result.timing = dataclasses.replace(result.timing, checkpoint_s=saver.spent)
    st.save_results(result, params)
    if report and where.process_index != 0:
        # Process 0 writes the report; the others name the same path in their JSON.
        result.report = str(report_dir(_real_path(st), sid) / "index.html")
    elif report:
        try:
            result.report = write_report_hook(result, st, ds)
        except ImportError as e:  # our own package or a dependency missing: a broken install
            raise SweepjaxError(
                f"the report module failed to import ({e}): the sweepjax install is broken, "
                f"reinstall it; sweep {sid}'s results are stored, `sweepjax report {sid}` "
                "writes its report once fixed"
            ) from e
        except Exception as e:  # the results are stored; a failed report must not lose them
            cb.say(f"note: report not written ({type(e).__name__}: {e})")
        if result.report is not None:
            st.set_report(sid, result.report)
    if result.winner is None:
        err = AllDivergedError(
            f"every member of sweep {sid} diverged (stored); lower the --lr range, e.g. "
            f"--lr {cfg.space.lr.lo / 100:g} {cfg.space.lr.lo:g}"
        )
        err.result = result  # the CLI still shows the table
        raise err
    return result


class _CheckpointThrottle:
    """Stores a chunk's checkpoint only when it is due, so checkpoints take at most
    ``CHECKPOINT_SHARE`` of the wall time: the gap since the last write must be at least
    ``(1 - share) / share`` times what the last write cost (the first write's cost is
    estimated from the state's size). A resume replays the chunks since the last write
    exactly (same programs, same minibatches), so fewer writes lose nothing but time."""

    def __init__(self, st: Store, sid: str):
        self.st, self.sid = st, sid
        self.last_end = time.perf_counter()
        self.cost: float | None = None
        self.spent = 0.0  # seconds spent writing checkpoints (copy to host included)

    def maybe_save(self, rep: ChunkReport, timing: dict | None = None) -> None:
        cost = self.cost if self.cost is not None else rep.state_bytes / CHECKPOINT_BYTES_PER_S
        if time.perf_counter() - self.last_end < (1 - CHECKPOINT_SHARE) / CHECKPOINT_SHARE * cost:
            return
        t0 = time.perf_counter()
        self.st.save_checkpoint(self.sid, rep.checkpoint(), timing=timing)
        self.last_end = time.perf_counter()
        self.cost = self.last_end - t0
        self.spent += self.cost


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def build_result(
    sid: str,
    cfg: SweepConfig,
    res: PopulationResult,
    ds: Dataset,
    refinement: str | None = None,
    parent_spaces: list | None = None,
) -> tuple[SweepResult, dict[int, Any]]:
    """The :class:`SweepResult` of a finished population, and ``{member id: params}`` of
    the best few surviving members (winner first)."""
    hp = res.hparams
    status = res.status
    members = [
        MemberRecord(
            id=int(res.member_ids[i]),
            lr=float(hp.lr[i]),
            l2=float(hp.l2[i]),
            lr_decay=float(hp.lr_decay[i]),
            status=status[i],
            diverged_at=None if res.alive[i] else int(res.diverged_at[i]),
            best_val_acc=float(res.best_val_acc[i]),
            best_step=int(res.best_step[i]),
            final_train_loss=_num(res.final_train_loss[i]),
            final_val_loss=_num(res.final_val_loss[i]),
            final_train_acc=_num(res.final_train_acc[i]),
            final_val_acc=_num(res.final_val_acc[i]),
            stopped_at=int(res.stopped_at[i]) if res.stopped_at[i] >= 0 else None,
        )
        for i in range(res.num_members)
    ]
    ids = res.member_ids
    t = res.timing
    result = SweepResult(
        sweep_id=sid,
        kind=cfg.kind,
        parent=cfg.parent,
        dataset=ds.info.as_dict(),
        space=cfg.space.as_dict(),
        config=cfg.as_dict(),
        members=members,
        winner=None,
        boundary=[],
        timing=TimingRecord(t.compile_s, t.train_s, t.model_steps_per_s, t.eval_s, t.transfer_s),
        curves=res.curves,
        parent_spaces=parent_spaces or [],
        refinement=refinement,
        lineage=[
            {"step": int(a), "member": int(ids[b]), "copied_from": int(ids[c])}
            for a, b, c in res.lineage
        ],
        history=[
            {
                "step": int(a),
                "member": int(ids[int(b)]),
                "lr": float(c),
                "l2": float(d),
                "lr_decay": float(e),
            }
            for a, b, c, d, e in res.history
        ],
    )
    top = search.top_members(result, max(PARAMS_KEPT, 1))
    params = {members[i].id: member_params(res, i) for i in top}
    if top:
        w = top[0]
        test = accuracy(params[members[w].id], cfg.model, ds.num_classes, ds.x_test, ds.y_test)
        members[w] = dataclasses.replace(members[w], test_acc=test)
        m = members[w]
        result.winner = Winner(m.id, m.lr, m.l2, m.best_val_acc, test)
        result.winner_params = params[m.id]
    result.boundary = search.boundary_flags(result, cfg.space, cfg.top_k, cfg.band)
    return result, params


# --------------------------------------------------------------------------- report hook
def report_dir(store_path: str | os.PathLike, sweep_id: str) -> Path:
    """Where a sweep's report goes: ``<store>-reports/<sweep_id>/`` next to the store."""
    p = Path(store_path)
    return p.with_name(p.stem + "-reports") / sweep_id


def write_report_hook(result: SweepResult, st: Store, ds: Dataset | None = None) -> str:
    """REPORT HOOK: write the HTML report with ``sweepjax.report.write_report``; returns
    its path. An ImportError (sweepjax.report is part of this package, so a broken
    install) propagates."""
    from sweepjax.report import write_report

    parents = [st.load_sweep(pid) for pid, _ in result.parent_spaces]
    images = ds.raw_train_images if ds is not None else None
    sample = ds.x_val[:1000] if ds is not None else None
    return str(
        write_report(
            result,
            parents,
            report_dir(st.path, result.sweep_id),
            dataset_images=images,
            x_sample=sample,
        )
    )


__all__ = [
    "Callbacks",
    "SweepConfig",
    "SweepInterrupted",
    "build_result",
    "coarse",
    "derive_seed",
    "fine",
]
