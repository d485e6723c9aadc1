"""The bookkeeping of a refilling population's slots (:mod:`sweepjax.engine.refill`):
what it carries between blocks, new member rows, ended members' records, the kept
parameters of the best finished members, and the block timing the width rule measures."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import numpy as np

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.engine import active, program
from sweepjax.engine.curves import HISTORY_FIELDS, Curves, ScheduleState
from sweepjax.engine.distributed import Placement, to_host
from sweepjax.engine.hparams import HParams
from sweepjax.engine.setup import static

KEEP = 16  # finished members whose parameters are kept (the best by validation)


class RefillCarry(NamedTuple):
    """Everything a refilling run carries between blocks besides the schedule state and
    the curves (host arrays; the ``states`` of its :class:`Checkpoint`)."""

    slots: Any  # member states [W]
    slot_row: np.ndarray  # int64 [W] member row in each slot, -1 empty
    born: np.ndarray  # int64 [W] global step each slot's member started at
    kept_row: np.ndarray  # int64 [KEEP] finished members whose parameters are kept, -1
    kept_best: Any  # their best parameters [KEEP]
    kept_final: Any  # their final parameters [KEEP]
    log: np.ndarray  # [N, 5] the rung log (RungLog.as_array)
    progress: np.ndarray  # [P, 4] best-so-far points (PROGRESS_FIELDS)
    clock: np.ndarray  # float64 [2]: member-steps trained, seconds of earlier parts


def blank(num_features: int, st, width: int):
    """Zero member states ``[width]`` of the right shapes and dtypes (no program runs)."""
    shapes = program.init_shapes(num_features, st, HParams.create(lr=np.ones(width), l2=0.0))
    return jax.tree.map(lambda a: np.zeros(a.shape, a.dtype), shapes)


def carry_like(dataset: Dataset, model_cfg: ModelConfig, config: TrainConfig, width: int):
    """A :class:`RefillCarry` of the right structure (the store reads a checkpoint
    against it)."""
    s = blank(dataset.num_features, static(dataset, model_cfg, config), width)
    params = jax.tree.map(lambda a: np.resize(a, (KEEP,) + a.shape[1:]), s.params)
    z = np.zeros
    return RefillCarry(
        s, z(width, np.int64), z(width, np.int64), z(KEEP, np.int64), params, params,
        z((0, 5)), z((0, 4)), z(2),
    )  # fmt: skip


def grow(sched: ScheduleState, curves: Curves, hp: HParams, born: int):
    """Append new member rows (hyperparameters ``hp``, born at global step ``born``)."""
    n = hp.num_members
    rows = np.arange(sched.stopped_at.shape[0], sched.stopped_at.shape[0] + n)

    def cat(a, fill, dtype):
        return np.concatenate([np.asarray(a), np.full(n, fill, dtype)])

    vals = [np.asarray(getattr(hp, f), np.float64) for f in HISTORY_FIELDS]
    hist = np.stack([np.full(n, float(born)), rows.astype(np.float64), *vals], axis=1)
    sched = sched._replace(
        hparams=concat(sched.hparams, hp),
        stopped_at=cat(sched.stopped_at, -1, np.int32),
        alive=cat(sched.alive, True, bool),
        diverged_at=cat(sched.diverged_at, -1, np.int32),
        initial_loss=cat(sched.initial_loss, np.nan, np.float32),
        best_step=cat(sched.best_step, 0, np.int32),
        best_val_acc=cat(sched.best_val_acc, np.nan, np.float32),
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
    return HParams(
        *(np.concatenate([np.asarray(x), np.asarray(y)]) for x, y in zip(a, b, strict=True))
    )


def best_checkpoints(act, idx, small, age, acc, data, st, where, no_fold):
    """Whole-validation accuracy ``[W]`` of the best parameters of slots ``idx`` (the
    current parameters' ``acc`` where the best checkpoint is this very step)."""
    best = acc.copy()
    stale = idx[small["best_step"][idx] != age[idx]]
    secs = 0.0
    if len(stale):
        _, best[stale], secs = active.evaluate_members(act, "best", stale, data, st, where, no_fold)
    return best, secs


def record_ended(sched, slot_row, small, div, finishing, stop_age, age, loss, acc, best_acc):
    """Write the ended members' final numbers into the schedule state."""
    upd = {
        k: np.array(getattr(sched, k))
        for k in ("alive", "diverged_at", "initial_loss", "stopped_at", "best_step",
                  "best_val_acc", "val_loss", "val_acc")
    }  # fmt: skip
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
        if stop_age[j] >= 0:
            upd["stopped_at"][r] = stop_age[j]
        current_wins = acc[j] > best_acc[j]
        upd["best_step"][r] = age[j] if current_wins else small["best_step"][j]
        upd["best_val_acc"][r] = max(acc[j], best_acc[j])
        upd["val_loss"][r] = loss[j]
        upd["val_acc"][r] = acc[j]
    return sched._replace(**upd)


def rank_kept(sched: ScheduleState, rows: np.ndarray) -> np.ndarray:
    """Positions of ``rows`` best first: higher whole-validation accuracy, then lower
    validation loss, then lower row (the winner rule's order)."""
    acc = np.nan_to_num(sched.best_val_acc[rows], nan=-1.0)
    loss = np.nan_to_num(sched.val_loss[rows], nan=np.inf)
    return np.lexsort((rows, loss, -acc))


def keep_finished(kept_row, kept_best, kept_final, sched, row, act, slot, small, age, acc, where):
    """Keep finished member ``row``'s parameters if it ranks among the best :data:`KEEP`
    finished so far (replacing the worst kept)."""
    full = np.flatnonzero(kept_row >= 0)
    if len(full) < KEEP:
        pos = int(np.flatnonzero(kept_row < 0)[0])
    else:
        order = rank_kept(sched, np.concatenate([kept_row, [row]]))
        if order[-1] == KEEP:  # the new member ranks last: not kept
            return kept_row, kept_best, kept_final
        pos = int(order[-1])
    final = on_device_rows(act.states.params, np.array([slot]), where)
    best = on_device_rows(act.states.best.params, np.array([slot]), where)
    if sched.best_step[row] == age[slot]:  # the current parameters are its best
        best = final
    kept_row = kept_row.copy()
    kept_row[pos] = row

    def put(dst, src):
        dst = np.array(dst)
        dst[pos] = src[0]
        return dst

    return kept_row, jax.tree.map(put, kept_best, best), jax.tree.map(put, kept_final, final)
