"""Running one sweep: open the store, find what to resume, train with checkpoints, build
and store the result, write the report (see ``sweep.py`` for the resume rule)."""

from __future__ import annotations

import dataclasses
import logging
import math
import sqlite3
import tempfile
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sweepjax import search
from sweepjax.config import DataConfig
from sweepjax.data import Dataset, load_dataset
from sweepjax.data.folds import pool
from sweepjax.engine import ChunkReport, distributed, train_population
from sweepjax.engine.hparams import HParams
from sweepjax.errors import AllDivergedError, SweepjaxError
from sweepjax.flows import anytime, choices
from sweepjax.flows.build import build_result
from sweepjax.flows.faults import check_new_study, check_room, kept_on_full_disk, mark_interrupted
from sweepjax.flows.resume import Members, Part, resumed_part, this_run
from sweepjax.flows.sweep_config import SweepConfig, scheduler_for
from sweepjax.results.records import SweepResult
from sweepjax.store import space
from sweepjax.store.db import Store, default_path
from sweepjax.store.live import LiveWriter, Throttle
from sweepjax.store.paths import report_dir

log = logging.getLogger("sweepjax")

# Checkpoints may take at most this share of the wall time: one is written only when the
# time since the last one is at least (1 - share) / share times what a write costs.
CHECKPOINT_SHARE = 0.05
# First estimate of a write's speed (copy to host, msgpack, SQLite), before one is timed:
# measured ~90 MB/s for the 330 MB state of 256 Adam MLPs on the 2-core CPU.
CHECKPOINT_BYTES_PER_S = 80e6


class SweepInterrupted(SweepjaxError):
    """Training stopped at a chunk boundary on request (Ctrl-C); the checkpoint is stored."""

    exit_code = 130

    def __init__(self, sweep_id: str, step: int, total: int, kind: str):
        self.sweep_id, self.step, self.total, self.kind = sweep_id, step, total, kind
        super().__init__(
            f"sweep {sweep_id} interrupted at step {step}/{total} (checkpoint stored); "
            f"continue it with the same command plus `resume`"
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


# --------------------------------------------------------------------------- internals
@contextmanager
def open_store(path, create: bool, where: distributed.Placement):
    """The store for this process. Process 0 (or a single process) opens the real one;
    in a multi-process run the others work on a private copy taken before anyone
    writes (so they read the same parents and checkpoints and assign the same ids),
    and their writes are discarded: only process 0 writes the store."""
    if where.process_count == 1 or where.process_index == 0:
        if where.process_count > 1:
            distributed.barrier("sweepjax-store-copied")
        with Store.open(path, create=create) as store:
            yield store
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
        with Store.open(copy, create=create, shown_path=real) as store:
            yield store


def load_inputs(cfg: DataConfig, cb: Callbacks) -> Dataset:
    if (ds := load_dataset(cfg)).info.note:
        (cb.note or log.warning)(ds.info.note)
    return ds


def replicate(hp: HParams, ids: np.ndarray, group: int) -> tuple[HParams, np.ndarray]:
    """Each sampled config ``ids[c]`` as ``group`` members: rows ``c * group + r`` with
    the config's values and member ids ``ids[c] * group + r`` (so each replica has its
    own initial weights, ``fold_in(init_key, id)``; with folds, replica ``r`` holds out
    fold ``r``). ``group == 1`` returns the population unchanged."""
    if group <= 1:
        return hp, np.asarray(ids)
    rows = np.repeat(np.arange(hp.num_members), group)
    reps = np.tile(np.arange(group), hp.num_members)
    return hp.take(rows), (np.asarray(ids, np.int64)[rows] * group + reps).astype(np.int64)


def run_sweep(cfg: SweepConfig, ds: Dataset, store: Store, cb: Callbacks, **kw) -> SweepResult:
    """Train, store and judge one sweep (:func:`_run_sweep`); a full disk ends it in one
    line, a sweep that exists is kept for ``resume`` (:mod:`.faults`)."""
    created: list[str] = []  # the sweep's id, once its row exists
    with kept_on_full_disk(store, created):
        return _run_sweep(cfg, ds, store, cb, created=created, **kw)


def _run_sweep(
    cfg: SweepConfig,
    ds: Dataset,
    store: Store,
    cb: Callbacks,
    *,
    name: str | None,
    resume: bool,
    report: bool,
    refinement: str | None = None,
    where: distributed.Placement = distributed.SINGLE,
    draws: HParams | None = None,
    created: list[str],
) -> SweepResult:
    """Train, store and judge one sweep. ``draws`` are the members to train (a model-based
    sampler's; default: ``search.sample``); ``created`` gets the sweep's id once it exists."""
    cfg, members = _members(cfg, ds, where, draws, resume, cb)
    choices.check_footprint(cfg, ds, members.hp, members.ids)  # before any row (each part)
    if resume:
        cfg, members, part = resumed_part(cfg, ds, store, cb.say, members, name, where, created)
    else:
        part = _created(cfg, ds, store, members, name, where, created)
    store.set_timing(part.sid, {**part.prior, **part.run})
    policy = scheduler_for(cfg, members.num_configs)
    cb.say(_plan_line(cfg, ds, store, part.sid, members, policy))
    url = cfg.spec.optuna_storage if cfg.spec is not None else None
    study = None
    if url and where.process_index == 0:
        from sweepjax.store.optuna_live import OptunaLive

        try:
            study = OptunaLive(url, part.sid, cfg, _row_ids(members), note=cb.say)
        except BaseException:
            mark_interrupted(store, part.sid)  # nothing trained; `resume` starts at step 0
            raise
    res, saver = _train(cfg, ds, store, cb, members, part, policy, where, study)
    if resume:  # the timing of the whole sweep, not just of its last part (the rate is
        # the last part's: under a scheduler the parts train different numbers of members)
        total = _total_timing(part, res)
        res = res._replace(
            timing=res.timing._replace(compile_s=total["compile_s"], train_s=total["train_s"])
        )
    parent_spaces = []
    if cfg.parent is not None:
        par = store.load_sweep(cfg.parent, curves=False)
        parent_spaces = [*par.parent_spaces, (par.sweep_id, par.space)]
    result, params = build_result(part.sid, cfg, res, ds, refinement, parent_spaces)
    result.timing = dataclasses.replace(
        result.timing, checkpoint_s=saver.spent, checkpoints=saver.count
    )
    store.save_results(result, params)
    if study is not None:
        study.finish(result)
    _report(result, store, ds, cb, report, where)
    space.give_back(store.conn, store.path)  # the dropped checkpoint's pages, the WAL cut
    return _checked(result, cfg, cb)


def _members(cfg: SweepConfig, ds: Dataset, where, draws, resume: bool, cb: Callbacks):
    """The sweep's members (and its config: a time budget sizes an ASHA member's length
    to what it has left)."""
    if cfg.schedule.name == "asha":  # members are drawn as slots free up
        # Whole configs (replicas or folds) in adjacent slots, spread over the devices.
        unit = math.lcm(cfg.group, where.num_devices)
        w = max(unit, anytime.choose(cfg, ds, where, cb.say) // unit * unit)
        if not resume:
            cfg = anytime.fit_to_budget(cfg, ds, where, w, cb.say)
        return cfg, Members(HParams.create(lr=np.ones(w), l2=0.0), np.arange(w), cfg.trials, w)
    if draws is None:
        hp, ids = search.sample(cfg.space, cfg.trials, cfg.train.seed, cfg.grid, cfg.fixed())
    else:
        hp, ids = draws, np.arange(draws.num_members, dtype=np.int64)
    num_configs = hp.num_members
    hp, ids = replicate(hp, ids, cfg.group)
    if cfg.grid and num_configs != cfg.trials:
        a = len(cfg.space.axes())
        k = search.grid_points_per_axis(cfg.trials, a)
        cb.say(
            f"note: `grid` rounds {cfg.trials} trials to a {'x'.join([str(k)] * a)} grid of "
            f"{num_configs} configs"
        )
    return cfg, Members(hp, ids, num_configs)


def _created(cfg, ds, store: Store, members: Members, name, where, created) -> Part:
    """A new sweep's row."""
    check_room(store, cfg, ds, members.hp.num_members)
    url = cfg.spec.optuna_storage if cfg.spec is not None else None
    if url and where.process_index == 0:  # its study is named after the sweep
        check_new_study(url, name or store.next_id(cfg.kind))
    sid = store.create_sweep(
        cfg.kind,
        cfg,
        ds.info.as_dict(),
        cfg.space.as_dict(),
        members.hp.num_members,
        cfg.train.steps,
        parent=cfg.parent,
        name=name,
    )
    created.append(sid)
    return Part(sid, None, {"compile_s": 0.0, "train_s": 0.0}, this_run(where))


def _row_ids(members: Members):
    """Each result row's member id: ASHA's are its rows (slots refilled), others' ``ids``."""
    return None if members.width else members.ids


def _plan_line(cfg, ds, store: Store, sid: str, members: Members, policy) -> str:
    """The one line that says what the sweep trains."""
    ages = list(policy.plan().ages)
    if members.width:
        budget = cfg.schedule.budget or f"{cfg.trials} members"
        plan = f", asha at ages {ages} until {budget}"
    else:
        plan = f", {policy.name} at steps {ages}" if ages else ""
    of = "each config" if members.width else f"{members.num_configs} configs"  # ASHA: drawn
    if cfg.folds > 1:
        plan += f", {cfg.folds}-fold cross-validation of {of}"
    elif cfg.group > 1:
        plan += f", {cfg.group} replicas of {of}"
    plan += choices.plan_text(cfg, members.hp, members.ids) if cfg.choices else ""
    size = f"width {members.width}" if members.width else f"{members.hp.num_members} members"
    return (
        f"{cfg.kind} sweep {sid}: {size} x {cfg.train.steps} steps "
        f"(batch {cfg.train.batch_size}, {cfg.train.optimizer}, "
        f"{cfg.model.spec or cfg.model.kind}{plan}) on "
        f"{ds.info.name}; results -> {str(store.shown_path)}"
    )


def _total_timing(part: Part, res) -> dict:
    return {
        **part.run,
        "compile_s": part.prior["compile_s"] + res.timing.compile_s,
        "train_s": part.prior["train_s"] + res.timing.train_s,
    }


def _train(cfg, ds, store: Store, cb: Callbacks, members: Members, part: Part, policy,
           where, study):  # fmt: skip
    """Train this part with checkpoints and live progress; an interrupted part stores
    its checkpoint and raises :class:`SweepInterrupted`."""
    sid, prior = part.sid, part.prior
    saver = _CheckpointThrottle(store, sid)
    live = LiveWriter(store, sid, member_ids=_row_ids(members))  # for `watch`, ~1 row/s

    def on_chunk(rep: ChunkReport) -> bool:
        # Until this part ends cleanly, its wall time so far (compile included) counts
        # as training: what a kill -9 leaves for the resumed sweep to add up.
        so_far = {**prior, **part.run, "train_s": prior["train_s"] + rep.elapsed_s}
        saver.maybe_save(rep, timing=so_far)
        live.update(rep)
        if study is not None:
            study.update(rep)
        if cb.progress is not None:
            cb.progress(sid, rep)
        return not (cb.stop is not None and cb.stop())

    start = part.ckpt.step if part.ckpt is not None else 0
    if cb.begin is not None:
        cb.begin(sid, start, cfg.train.steps, cfg.train.resolved_chunk_steps)
    train_ds, folds = ds, None
    if cfg.folds > 1:  # every pooled row in one fold; replica r holds out fold r
        train_ds, folds = pool(ds, cfg.folds, cfg.data.seed)
    try:
        if members.width:
            res = anytime.train(
                cfg, train_ds, members.width, on_chunk=on_chunk, resume=part.ckpt, where=where,
                folds=folds,
            )  # fmt: skip
        elif cfg.choices:  # one population per categorical value, one after another
            res = choices.train(cfg, train_ds, members.hp, members.ids, on_chunk=on_chunk,
                                resume=part.ckpt, where=where, folds=folds)  # fmt: skip
        else:
            res = train_population(
                train_ds, members.hp, cfg.model, cfg.train, member_ids=members.ids,
                scheduler=policy, on_chunk=on_chunk, resume=part.ckpt, placement=where,
                folds=folds,
            )  # fmt: skip
    except BaseException:
        mark_interrupted(store, sid)  # the last stored checkpoint stays resumable
        raise
    finally:
        live.flush()
        if live.error is not None:
            cb.say(f"note: {live.error}")
    if not res.completed:
        store.save_checkpoint(sid, res.checkpoint, timing=_total_timing(part, res))
        store.mark_interrupted(sid)
        raise SweepInterrupted(sid, res.checkpoint.step, cfg.train.steps, cfg.kind)
    return res, saver


def _report(result: SweepResult, store: Store, ds: Dataset, cb: Callbacks, report: bool, where):
    """Write the sweep's HTML report (process 0; the others name its path)."""
    sid = result.sweep_id
    if report and where.process_index != 0:
        result.report = str(report_dir(str(store.shown_path), sid) / "index.html")
        return
    if not report:
        return
    try:
        result.report = write_report_hook(result, store, ds)
    except ImportError as e:  # our own package or a dependency missing: a broken install
        raise SweepjaxError(
            f"the report module failed to import ({e}): the sweepjax install is broken, "
            f"reinstall it; sweep {sid}'s results are stored, `sweepjax report {sid}` "
            "writes its report once fixed"
        ) from e
    except Exception as e:  # the results are stored; a failed report must not lose them
        cb.say(f"note: report not written ({type(e).__name__}: {e})")
    if result.report is not None:
        store.set_report(sid, result.report)


def _checked(result: SweepResult, cfg: SweepConfig, cb: Callbacks) -> SweepResult:
    """The result, with a warning when no member finished, or an error when all diverged."""
    sid, w = result.sweep_id, result.winner
    if w is not None and not w.finished:  # an anytime search always answers
        cb.say(
            f"warning: no member of sweep {sid} reached its {cfg.train.steps} steps within the "
            f"budget ({cfg.schedule.budget or f'{cfg.trials} members'}); the winner is the best "
            f"member so far, unfinished at step {w.steps}: raise `budget` or lower `steps`"
        )
    if result.winner is None:
        raise AllDivergedError(
            f"every member of sweep {sid} diverged (stored); lower the `lr` range, e.g. "
            f"({cfg.space.lr.lo / 100:g}, {cfg.space.lr.lo:g})",
            result=result,  # the CLI still shows the table
        )
    return result


class _CheckpointThrottle:
    """Stores a chunk's checkpoint only when it is due, so checkpoints take at most
    ``CHECKPOINT_SHARE`` of the wall time (the rule of :class:`~sweepjax.store.live.Throttle`;
    the first write's cost is estimated from the state's size, the gap counted from the
    start). A resume replays the chunks since the last write exactly (same programs,
    same minibatches), so fewer writes lose nothing but time."""

    def __init__(self, store: Store, sid: str, clock: Callable[[], float] = time.perf_counter):
        self.store, self.sid, self.clock = store, sid, clock
        self.throttle = Throttle(CHECKPOINT_SHARE, clock=clock, start=clock())

    @property
    def spent(self) -> float:  # seconds spent writing checkpoints (copy to host included)
        return self.throttle.spent

    @property
    def count(self) -> int:
        return self.throttle.count

    def maybe_save(self, rep: ChunkReport, timing: dict | None = None) -> None:
        # The copy to the host is a collective: every process takes process 0's decision.
        if not distributed.agreed(self.throttle.due(rep.state_bytes / CHECKPOINT_BYTES_PER_S)):
            return
        t0 = self.clock()
        self.store.save_checkpoint(self.sid, rep.checkpoint(), timing=timing)
        self.throttle.wrote(t0)


# --------------------------------------------------------------------------- report hook
def write_report_hook(result: SweepResult, store: Store, ds: Dataset | None = None) -> str:
    """REPORT HOOK: write the HTML report with ``sweepjax.report.write_report``; returns
    its path. An ImportError (sweepjax.report is part of this package, so a broken
    install) propagates."""
    from sweepjax.report import write_report

    parents = [store.load_sweep(pid) for pid, _ in result.parent_spaces]
    images = ds.raw_train_images if ds is not None else None
    sample = ds.x_val[:1000] if ds is not None else None
    return str(
        write_report(
            result,
            parents,
            report_dir(store.path, result.sweep_id),
            dataset_images=images,
            x_sample=sample,
        )
    )


__all__ = ["Callbacks", "SweepInterrupted", "report_dir", "write_report_hook"]
