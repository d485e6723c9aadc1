"""The typed population of slots the host loop (:mod:`sweepjax.engine.loop`) carries
between blocks (:class:`Run`, :class:`Population`, :class:`Clock`), and the bookkeeping
of a refilling one (ASHA): what its checkpoint holds, new member rows, ended members'
records, the kept parameters of the best finished members, the refill program's call."""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import jax
import numpy as np

from sweepjax.budget import Budget, process_elapsed
from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.engine import active, program
from sweepjax.engine.active import Active
from sweepjax.engine.curves import Curves, ScheduleState, history_values
from sweepjax.engine.decisions import Plan, Policy, RungLog
from sweepjax.engine.distributed import Placement, put_members, to_host
from sweepjax.engine.hparams import HParams
from sweepjax.engine.member import Static
from sweepjax.engine.outcome import Timing
from sweepjax.engine.setup import static as make_static
from sweepjax.metric import ACCURACY, Metric

KEEP = 16  # finished members whose parameters are kept (the best by validation)


class Carry(NamedTuple):
    """The one checkpoint format of every schedule: everything the population carries
    between blocks besides the schedule state and the curves (host arrays; the
    ``states`` of its :class:`~sweepjax.engine.curves.Checkpoint`). A compacting
    population (every member born at step 0) keeps no finished members' parameters, no
    rung log and no progress (those arrays have 0 rows)."""

    slots: Any  # member states [W]
    slot_row: np.ndarray  # int64 [W] member row in each slot, -1 empty
    born: np.ndarray  # int64 [W] global step each slot's member started at
    kept_row: np.ndarray  # int64 [KEEP] finished members whose parameters are kept, -1
    kept_best: Any  # their best parameters [KEEP]
    kept_final: Any  # their final parameters [KEEP]
    log: np.ndarray  # [N, 5] the rung log (RungLog.as_array)
    progress: np.ndarray  # [P, 4] best-so-far points (PROGRESS_FIELDS)
    clock: np.ndarray  # float64 [2]: member-steps trained, seconds of earlier parts


class Kept(NamedTuple):
    """The parameters of the best :data:`KEEP` finished members (``row`` -1: empty)."""

    row: np.ndarray  # int64 [KEEP]
    best: Any  # their best parameters [KEEP]
    final: Any  # their final parameters [KEEP]


class Ages(NamedTuple):
    """One block's numbers per slot ``[W]`` (NaN / -1 where not measured)."""

    slot_row: np.ndarray  # member row in each slot, -1 empty
    age: np.ndarray  # steps trained
    small: dict  # health and best-checkpoint scalars (:func:`active.small`)
    loss: np.ndarray  # current parameters, whole validation set
    acc: np.ndarray
    stop_age: np.ndarray  # the age a member was stopped at, -1
    sq: np.ndarray  # the metric's per-example mean square of ``acc`` (its SE)


class Run(NamedTuple):
    """What stays fixed through a run."""

    dataset: Dataset
    policy: Policy
    plan: Plan
    total: int  # the run's length in steps (a member's, when refilling)
    ends: tuple[int, ...]  # compacting: the global steps a compiled call ends at
    data: Any  # the device data
    static: Static
    where: Placement
    key_bits: np.ndarray  # the minibatch key
    init_bits: np.ndarray  # the initial-weights key (refills)
    fold_of: np.ndarray  # each row's held-out fold [M] (compacting) / -1 per slot [W]
    member_ids: np.ndarray | None  # compacting: each row's id [M] (refilling: the row)
    sizes: tuple[int, int]  # (programs the first population was split into, group size)
    budget: Budget | None = None  # refilling: when to stop
    max_members: int | None = None


class Population(NamedTuple):
    """The population between blocks: slot ``j`` holds member row ``slot_row[j]`` (-1:
    free), born at global step ``born[j]``, training with ``slot_hp`` row ``j``."""

    step: int  # global steps trained
    act: Active
    slot_row: np.ndarray  # int64 [n]
    born: np.ndarray  # int64 [n]
    slot_hp: HParams
    sched: ScheduleState  # every member row's record
    curves: Curves  # [M, E], indexed by age
    log: RungLog  # every rung judgement (refilling)
    kept: Kept | None  # the best finished members' parameters (refilling)


class Clock(NamedTuple):
    """What the run has spent so far."""

    compile_s: float = 0.0
    train_s: float = 0.0
    eval_s: float = 0.0
    member_steps: int = 0  # the whole run's (a refilling checkpoint carries it)
    trained_here: int = 0  # this call's
    prior_s: float = 0.0  # seconds of a refilling run's earlier parts
    progress: tuple = ()  # refilling: best-so-far points (Carry.progress)
    quick_best: float = math.nan  # compacting: best subset accuracy so far
    finished: int = 0  # refilling: members that reached the full length
    in_flight: int = 0  # refilling: members the budget stopped
    row_steps: int = 0  # this call's program rows x steps (padding included)
    slowest_compile_s: float = 0.0  # this call's slowest chunk compile (or load)
    host_gap_s: float = 0.0  # device idle between blocks no decision needs (Timing)
    gaps: int = 0
    arrived: float = math.nan  # perf_counter when the last block's metrics were on the host

    def add(self, **kw) -> Clock:
        return self._replace(**{k: getattr(self, k) + v for k, v in kw.items()})

    def elapsed(self) -> float:
        return self.prior_s + process_elapsed()

    def timing(self, sizes: tuple[int, int], transfer_s: float) -> Timing:
        rate = self.trained_here / self.train_s if self.train_s else 0.0
        return Timing(self.compile_s, self.train_s, self.eval_s, transfer_s, rate, *sizes,
                      self.host_gap_s, self.gaps)  # fmt: skip


class Judged(NamedTuple):
    """What a block's judgement tells the report."""

    decided: bool  # members were measured on the whole validation set
    alive: int
    best_val_acc: float  # this report's best on the subset (compacting) / of the block
    spent: bool = False  # refilling: the budget is spent, the run ends
    freed: np.ndarray | None = None  # refilling: slots whose member ended [W]


def blank(num_features: int, static: Static, width: int):
    """Zero member states ``[width]`` of the right shapes and dtypes (no program runs)."""
    shapes = program.init_shapes(num_features, static, HParams.create(lr=np.ones(width), l2=0.0))
    return jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), shapes)


def carry_like(states) -> Carry:
    """A :class:`Carry` of the right structure around member states ``states`` shaped like
    a checkpoint's (the store reads a checkpoint against it; row counts may differ)."""
    return carry_of(states, np.zeros(0, np.int64))


def refill_like(dataset: Dataset, model_cfg: ModelConfig, config: TrainConfig, width: int):
    """:func:`carry_like` for a refilling population of ``width`` slots."""
    return carry_like(blank(dataset.num_features, make_static(dataset, model_cfg, config), width))


def carry_of(states, rows: np.ndarray) -> Carry:
    """The checkpoint of a compacting population: member states ``[A]`` of rows ``rows``,
    all born at step 0 (nothing else carried)."""
    z = np.zeros
    rows = np.asarray(rows, np.int64)
    none = jax.tree.map(lambda a: np.asarray(a)[:0], states.params)
    return Carry(states, rows, z(len(rows), np.int64), z(0, np.int64), none, none,
                 z((0, 5)), z((0, 4)), z(2))  # fmt: skip


def grow(sched: ScheduleState, curves: Curves, hp: HParams, born: int):
    """Append new member rows (hyperparameters ``hp``, born at global step ``born``)."""
    n = hp.num_members
    rows = np.arange(sched.stopped_at.shape[0], sched.stopped_at.shape[0] + n)

    def cat(a, fill, dtype):
        return np.concatenate([np.asarray(a), np.full(n, fill, dtype)])

    vals = history_values(hp)
    hist = np.stack([np.full(n, float(born)), rows.astype(np.float64), *vals], axis=1)
    sched = sched._replace(
        hparams=concat(sched.hparams, hp),
        stopped_at=cat(sched.stopped_at, -1, np.int32),
        alive=cat(sched.alive, True, bool),
        diverged_at=cat(sched.diverged_at, -1, np.int32),
        initial_loss=cat(sched.initial_loss, np.nan, np.float32),
        best_step=cat(sched.best_step, 0, np.int32),
        best_val_acc=cat(sched.best_val_acc, np.nan, np.float32),
        best_val_sq=cat(sched.best_val_sq, np.nan, np.float32),
        val_loss=cat(sched.val_loss, np.nan, np.float32),
        val_acc=cat(sched.val_acc, np.nan, np.float32),
        history=np.concatenate([sched.history, hist]),
    )
    e = curves.step.shape[0]
    curves = Curves(
        curves.step,
        *(np.concatenate([c, np.full((n, e), np.nan, np.float32)]) for c in curves[1:]),
    )
    return sched, curves, rows


def on_device_rows(tree, idx: np.ndarray, where: Placement):
    """Host copy of rows ``idx`` of a placed member-axis pytree."""
    host = to_host(tree, where)
    return jax.tree.map(lambda a: np.asarray(a)[idx], host)


def concat(a: HParams, b: HParams) -> HParams:
    """The members of ``a`` then those of ``b``."""
    return jax.tree.map(lambda x, y: np.concatenate([np.asarray(x), np.asarray(y)]), a, b)


def best_checkpoints(setup: Run, act: Active, idx: np.ndarray, block: Ages):
    """Whole-validation accuracy ``[W]`` of the best parameters of slots ``idx`` (the
    current parameters' ``acc`` where the best checkpoint is this very step)."""
    best, best_sq = block.acc.copy(), block.sq.copy()
    stale = idx[block.small["best_step"][idx] != block.age[idx]]
    secs = 0.0
    if len(stale):
        _, best[stale], secs, best_sq[stale] = active.evaluate_members(
            act, "best", stale, setup.data, setup.static, setup.where, setup.fold_of
        )
    return best, secs, best_sq


def record_ended(
    sched: ScheduleState,
    block: Ages,
    div,
    finishing,
    best_acc,
    metric: Metric = ACCURACY,
    best_sq=None,
) -> ScheduleState:
    """Write the ended members' final numbers into the schedule state (the best in
    ``metric``'s direction)."""
    orient = metric.orient
    upd = {
        k: np.array(getattr(sched, k))
        for k in ("alive", "diverged_at", "initial_loss", "stopped_at", "best_step",
                  "best_val_acc", "val_loss", "val_acc", "best_val_sq")
    }  # fmt: skip
    small, slot_row = block.small, block.slot_row
    for j in np.flatnonzero(div):
        r = slot_row[j]
        upd["alive"][r] = False
        upd["diverged_at"][r] = small["diverged_at"][j]
        upd["initial_loss"][r] = small["initial_loss"][j]
        upd["best_step"][r] = small["best_step"][j]
        upd["best_val_acc"][r] = np.nan
    for j in finishing:
        r = slot_row[j]
        upd["initial_loss"][r] = small["initial_loss"][j]
        if block.stop_age[j] >= 0:
            upd["stopped_at"][r] = block.stop_age[j]
        current_wins = orient(block.acc[j]) > orient(best_acc[j])
        upd["best_step"][r] = block.age[j] if current_wins else small["best_step"][j]
        upd["best_val_acc"][r] = max(block.acc[j], best_acc[j], key=orient)
        if best_sq is not None:
            upd["best_val_sq"][r] = block.sq[j] if current_wins else best_sq[j]
        upd["val_loss"][r] = block.loss[j]
        upd["val_acc"][r] = block.acc[j]
    return sched._replace(**upd)


def rank_kept(
    sched: ScheduleState, rows: np.ndarray, group: int = 1, metric: Metric = ACCURACY
) -> np.ndarray:
    """Positions of ``rows`` best first: higher whole-validation accuracy, then lower
    validation loss, then lower row (the winner rule's order). With ``group`` members
    per config, configs first, by their members' mean accuracy (a diverged member
    counts as -1; scores in ``metric``'s direction), so the winning config's members are
    kept."""
    worst = metric.worst()
    acc = np.nan_to_num(metric.orient(sched.best_val_acc[rows]), nan=worst, neginf=worst)
    loss = np.nan_to_num(sched.val_loss[rows], nan=np.inf)
    if group <= 1:
        return np.lexsort((rows, loss, -acc))
    per = metric.orient(np.asarray(sched.best_val_acc, np.float64))
    per = np.nan_to_num(per, nan=worst, neginf=worst)
    first = np.asarray(rows, np.int64) // group * group
    mean = per[first[:, None] + np.arange(group)].mean(axis=1)
    return np.lexsort((rows, loss, -acc, -mean))


def no_kept(params) -> Kept:
    """Empty :class:`Kept` for member parameters shaped like ``params`` ``[W]``."""
    z = jax.tree.map(lambda a: np.zeros((KEEP,) + a.shape[1:], a.dtype), params)
    return Kept(np.full(KEEP, -1, np.int64), z, z)


def keep_finished(
    kept: Kept,
    sched: ScheduleState,
    row: int,
    slot: int,
    age: int,
    act,
    where,
    group: int = 1,
    metric: Metric = ACCURACY,
) -> Kept:
    """Keep finished member ``row``'s parameters (in slot ``slot``, at ``age``) if it ranks
    among the best :data:`KEEP` finished so far (replacing the worst kept;
    :func:`rank_kept`)."""
    full = np.flatnonzero(kept.row >= 0)
    if len(full) < KEEP:
        pos = int(np.flatnonzero(kept.row < 0)[0])
    else:
        order = rank_kept(sched, np.concatenate([kept.row, [row]]), group, metric)
        if order[-1] == KEEP:  # the new member ranks last: not kept
            return kept
        pos = int(order[-1])
    final = on_device_rows(act.states.params, np.array([slot]), where)
    best = on_device_rows(act.states.best.params, np.array([slot]), where)
    if sched.best_step[row] == age:  # the current parameters are its best
        best = final
    kept_row = kept.row.copy()
    kept_row[pos] = row

    def put(dst, src):
        dst = np.array(dst)
        dst[pos] = src[0]
        return dst

    return Kept(kept_row, jax.tree.map(put, kept.best, best), jax.tree.map(put, kept.final, final))


def refill(setup: Run, act: Active, fresh: np.ndarray, slot_row: np.ndarray, slot_hp: HParams):
    """Slots ``fresh[W]`` take new members (ids ``slot_row``, values ``slot_hp``) in the
    one refill program; returns the new active state and the compile seconds."""
    where = setup.where
    ids = np.where(fresh, np.maximum(slot_row, 0), 0).astype(np.uint32)
    args = (
        act.states,
        put_members(np.asarray(fresh, bool), where),
        put_members(ids, where),
        put_members(slot_hp, where),
        setup.init_bits,
    )
    exe, c = program.compiled_refill(args, setup.dataset.num_features, setup.static, where)
    return act._replace(states=exe(*args)), c


def carry(pop: Population, clock: Clock, where: Placement) -> Carry:
    """What a checkpoint of a refilling run holds besides its schedule state and curves
    (the slots' states copied to the host)."""
    kept = pop.kept
    return Carry(
        jax.tree.map(np.array, to_host(pop.act.states, where)),
        pop.slot_row, pop.born, kept.row, kept.best, kept.final, pop.log.as_array(),
        np.asarray(clock.progress, np.float64).reshape(-1, 4),
        np.array([clock.member_steps, clock.elapsed()], np.float64),
    )  # fmt: skip


def finished_count(sched: ScheduleState) -> int:
    """Members that reached the full length (alive, not stopped, not in a slot)."""
    done = sched.alive & (sched.stopped_at < 0)
    done[np.asarray(sched.active, np.int64)] = False
    return int(done.sum())


def share(budget: Budget | None, elapsed_s: float, member_steps: int) -> float:
    """The share of ``budget`` spent (NaN without one)."""
    if budget is None:
        return float("nan")
    if budget.seconds is not None:
        return min(1.0, elapsed_s / budget.seconds)
    return min(1.0, member_steps / budget.member_steps)
