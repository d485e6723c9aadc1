"""``train_refilling``: a fixed-width population that refills itself (ASHA's trainer).

Each of the ``W`` slots holds one member with its own age (steps trained since it was
born) and its own learning-rate schedule over the run's ``R`` steps. Every block of
``b`` steps (the scheduler's first rung divides every rung and ``R``) is one call of ONE
compiled program of width ``W``. Between blocks the host:

1. records each member's block metrics at its own age (the curves are indexed by age);
2. frees the slot of a member that diverged;
3. measures the members whose age reached a rung on the whole validation set and lets
   the scheduler decide (:class:`~sweepjax.engine.decisions.Refills`): a stopped
   member's slot is freed;
4. finishes the members that reached ``R`` (the best-so-far point of the anytime
   result), keeping the parameters of the best few;
5. refills every freed slot at once with a new member drawn by the scheduler (new
   id, fresh weights and optimizer state, born at this global step): one more small
   program of fixed width, so the population never changes shape.

Minibatches stay the population's: every member at global step ``t`` sees the same
rows, whatever its age, so a refilled member trains exactly as it would alone from the
same global step. The run stops when the budget is spent (checked after each block,
so it ends within one block of it), when ``max_members`` members have been created and
every one of them has ended, or when ``on_chunk`` asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import jax
import numpy as np

from sweepjax.budget import Budget, process_elapsed
from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.engine import active, program, slots
from sweepjax.engine.curves import Checkpoint, Curves, ScheduleState
from sweepjax.engine.decisions import DIVERGED_RUNG, Refills, RungLog
from sweepjax.engine.distributed import SINGLE, Placement, put_members, to_host
from sweepjax.engine.hparams import HParams
from sweepjax.engine.outcome import AnytimeStatus, ChunkReport, PopulationResult, Timing
from sweepjax.engine.setup import root_keys, static

PROGRESS_FIELDS = ("elapsed_s", "member_steps", "best_val_acc", "member")


def train_refilling(
    dataset: Dataset,
    model_cfg: ModelConfig,
    config: TrainConfig,
    scheduler: Refills,
    *,
    width: int,
    budget: Budget | None = None,
    max_members: int | None = None,
    on_chunk: Callable[[ChunkReport], bool | None] | None = None,
    resume: Checkpoint | None = None,
    placement: Placement | None = None,
) -> PopulationResult:
    """Train a ``width``-slot population that refills itself until ``budget`` is spent
    (or ``max_members`` members have run). ``config.steps`` is the full length ``R``.

    Returns a :class:`PopulationResult` over every member that ran (rows in creation
    order, member id = row): ``status`` ``ok`` for members that reached ``R``,
    ``stopped`` for those the scheduler stopped at a rung or the budget caught in flight
    (``stopped_at``: their age), ``diverged``. ``curves`` are indexed by age.
    ``params``/``best_params`` hold the best :data:`~sweepjax.engine.slots.KEEP`
    finished members (``finished`` order). ``progress`` holds the best-so-far points,
    ``in_flight`` how many members the budget stopped.
    """
    if budget is None and max_members is None:
        raise ValueError("give a `budget` or `max_members`: a refilling run never ends")
    where = SINGLE if placement is None else placement
    w = int(width)
    if w < 1 or w % where.num_devices:
        raise ValueError(f"width {w} must be a positive multiple of {where.num_devices} devices")
    total, b = int(config.steps), int(scheduler.block())
    rungs = set(scheduler.rungs())
    if total % b or any(r % b for r in rungs):
        raise ValueError(f"block {b} must divide the run ({total}) and every rung {sorted(rungs)}")
    n_val = int(dataset.x_val.shape[0])
    init_key, data_key = root_keys(config.seed)
    init_bits = np.asarray(jax.random.key_data(init_key))
    key_bits = np.asarray(jax.random.key_data(data_key))
    data = program.device_data(dataset, config, where)
    no_fold = np.full(w, -1, np.int32)
    corners = scheduler.corners()

    if resume is not None:
        c: slots.RefillCarry = resume.states
        g, sched = resume.step, resume.schedule
        curves = Curves(*(np.array(a) for a in resume.curves))  # written in place
        slot_row, born = np.array(c.slot_row, np.int64), np.array(c.born, np.int64)
        log = RungLog.from_array(c.log, n_val)
        kept_row = np.array(c.kept_row, np.int64)
        kept_best, kept_final = c.kept_best, c.kept_final
        progress = [tuple(p) for p in np.asarray(c.progress).reshape(-1, 4)]
        member_steps, prior_s = int(c.clock[0]), float(c.clock[1])
        states0 = c.slots
    else:
        g, log, progress, member_steps, prior_s = 0, RungLog.empty(n_val), [], 0, 0.0
        first = min(w, max_members) if max_members is not None else w
        hp0 = scheduler.draw(np.arange(first), log, None)
        sched = ScheduleState.start(hp0)
        e = total // b
        curves = Curves(
            np.arange(1, e + 1, dtype=np.int64) * b,
            *(np.full((first, e), np.nan, np.float32) for _ in range(5)),
        )
        # Slots beyond ``max_members`` start empty (a copy of member 0, results dropped).
        slot_row = np.concatenate([np.arange(first), np.full(w - first, -1)]).astype(np.int64)
        born = np.zeros(w, np.int64)
    st = static(dataset, model_cfg, config, False, slots.concat(sched.hparams, corners))
    if resume is None:
        # Zeros of the right shapes, then every occupied slot initialised by the refill
        # program: the run's first members cost no program of their own.
        states0 = slots.blank(dataset.num_features, st, w)
        kept_row = np.full(slots.KEEP, -1, np.int64)
        kept_best = kept_final = jax.tree.map(
            lambda a: np.zeros((slots.KEEP,) + a.shape[1:], a.dtype), states0.params
        )
    hp_slots = sched.hparams.take(np.maximum(slot_row, 0))
    act = active.Active(put_members(states0, where), w, w, True)
    del states0
    compile_s = 0.0
    if resume is None:
        act, compile_s = _refill(
            act, slot_row >= 0, slot_row, hp_slots, init_bits, dataset, st, where
        )

    train_s = eval_s = 0.0
    trained_here = 0
    t_start = time.perf_counter()
    completed, in_flight = True, 0
    n_finished = 0 if resume is None else _finished(sched)

    def elapsed() -> float:
        return prior_s + process_elapsed()

    while True:
        act, met, c1, t1 = active.run_chunk(
            act, hp_slots, no_fold, data, g, b, total, key_bits, st, where, born
        )
        compile_s, train_s = compile_s + c1, train_s + t1
        g += b
        member_steps += w * b
        trained_here += w * b
        occupied = slot_row >= 0
        age = g - born
        col = age // b - 1
        occ = np.flatnonzero(occupied)
        for f, m in zip(Curves._fields[1:], met, strict=True):
            getattr(curves, f)[slot_row[occ], col[occ]] = np.asarray(m)[occ, 0]
        small = active.small(act, where)
        alive = small["alive"]
        stop_age = np.full(w, -1)
        # Diverged: frozen by the step; its slot is free now. Logged (no decision reads
        # it) so that the draws' model learns where members diverge.
        div = occupied & ~alive
        if div.any():
            k = int(div.sum())
            nan = np.full(k, np.nan)
            log = log.extend(DIVERGED_RUNG, slot_row[div], nan, nan, np.zeros(k, bool))
        # At a rung or at the end: measure on the whole validation set.
        at_rung = occupied & alive & np.isin(age, list(rungs))
        done = occupied & alive & (age >= total)
        measure = np.flatnonzero(at_rung | done)
        loss = np.full(w, np.nan)
        acc = np.full(w, np.nan)
        if len(measure):
            lo, ac, s = active.evaluate_members(act, "params", measure, data, st, where, no_fold)
            loss[measure], acc[measure] = lo, ac
            eval_s += s
        for r in sorted({int(a) for a in age[at_rung]}):
            pos = np.flatnonzero(at_rung & (age == r))
            start = len(log.rung)
            log = log.extend(r, slot_row[pos], loss[pos], acc[pos], np.ones(len(pos), bool))
            keep = scheduler.decide(log, r, np.arange(start, start + len(pos)))
            stop_age[pos[~keep]] = r
        stopped = stop_age >= 0
        ended = div | stopped | done
        spent = budget is not None and budget.spent(elapsed(), member_steps)
        if (
            max_members is not None
            and sched.stopped_at.shape[0] >= max_members
            and not (occupied & ~ended).any()
        ):
            spent = True  # every member that may be created has ended
        caught = occupied & ~ended if spent else np.zeros(w, bool)
        if caught.any():  # the budget stops the members in flight: measure them too
            idx = np.flatnonzero(caught)
            lo, ac, s = active.evaluate_members(act, "params", idx, data, st, where, no_fold)
            loss[idx], acc[idx] = lo, ac
            eval_s += s
            stop_age[idx] = age[idx]
            in_flight = len(idx)
        finishing = np.flatnonzero((stopped | done | caught) & alive)
        best_acc, s = slots.best_checkpoints(
            act, finishing, small, age, acc, data, st, where, no_fold
        )
        eval_s += s
        sched = slots.record_ended(
            sched, slot_row, small, div, finishing, stop_age, age, loss, acc, best_acc
        )
        if done.any():
            # The finished members' final numbers join the log as the run's last "rung":
            # once enough have finished, new members are drawn from a model of what
            # decides the winner (full-length accuracy), not of a rung's early ranking.
            pos = np.flatnonzero(done)
            log = log.extend(total, slot_row[pos], loss[pos], acc[pos], np.ones(len(pos), bool))
        for j in np.flatnonzero(done):
            row = int(slot_row[j])
            n_finished += 1
            kept_row, kept_best, kept_final = slots.keep_finished(
                kept_row, kept_best, kept_final, sched, row, act, j, small, age, acc, where
            )
            if not progress or sched.best_val_acc[row] > progress[-1][2]:
                progress.append(
                    (elapsed(), float(member_steps), float(sched.best_val_acc[row]), row)
                )
        if spent:
            break
        # Refill the freed slots (while members may still be created).
        free = np.flatnonzero(ended)
        n_new = len(free)
        if max_members is not None:
            n_new = min(n_new, max(0, max_members - sched.stopped_at.shape[0]))
        slot_row[free] = -1
        if n_new:
            fill = free[:n_new]
            ids = np.arange(sched.stopped_at.shape[0], sched.stopped_at.shape[0] + n_new)
            hp_new = scheduler.draw(ids, log, sched.hparams)
            sched, curves, rows = slots.grow(sched, curves, hp_new, g)
            slot_row[fill] = rows
            born[fill] = g
            fresh = np.zeros(w, bool)
            fresh[fill] = True
            hp_slots = HParams(*(np.array(f) for f in hp_slots))
            for f, v in zip(hp_slots, hp_new, strict=True):
                f[fill] = v
            act, c2 = _refill(act, fresh, slot_row, hp_slots, init_bits, dataset, st, where)
            compile_s += c2
        sched = sched._replace(active=slot_row[slot_row >= 0].copy())
        if on_chunk is not None:
            held = (act, slot_row.copy(), born.copy(), kept_row, kept_best, kept_final, log,
                    list(progress), member_steps)  # fmt: skip

            def checkpoint(g=g, curves=curves, sched=sched, held=held) -> Checkpoint:
                return Checkpoint(g, _carry(*held, prior_s, where), curves, sched, w)

            rep = ChunkReport(
                step=g,
                total_steps=total,
                alive=int(np.sum(alive & (slot_row >= 0))),
                active=int(np.sum(slot_row >= 0)),
                num_members=int(sched.stopped_at.shape[0]),
                best_val_acc=float(np.nanmax(acc)) if np.isfinite(acc).any() else float("nan"),
                best_full_val_acc=progress[-1][2] if progress else float("nan"),
                elapsed_s=time.perf_counter() - t_start,
                decided=bool(len(measure)),
                state_bytes=active.state_bytes(act),
                checkpoint=checkpoint,
                curves=curves,
                schedule=sched,
                anytime=AnytimeStatus(
                    elapsed(),
                    member_steps,
                    str(budget) if budget is not None else "",
                    _share(budget, elapsed(), member_steps),
                    n_finished,
                    int(progress[-1][3]) if progress else -1,
                ),
            )
            if on_chunk(rep) is False:
                completed = False
                break

    ckpt = None
    if not completed:
        held = (act, slot_row, born, kept_row, kept_best, kept_final, log, progress)
        ckpt = Checkpoint(g, _carry(*held, member_steps, prior_s, where), curves, sched, w)
    kept = np.flatnonzero(kept_row >= 0)
    order = kept[slots.rank_kept(sched, kept_row[kept])]
    return PopulationResult.of(
        np.arange(sched.stopped_at.shape[0], dtype=np.int64),
        sched,
        curves,
        finished=kept_row[order],
        params=jax.tree.map(lambda a: np.asarray(a)[order], kept_final),
        best_params=jax.tree.map(lambda a: np.asarray(a)[order], kept_best),
        lineage=np.zeros((0, 3), np.int64),
        timing=Timing(
            compile_s, train_s, eval_s, 0.0, trained_here / train_s if train_s else 0.0, 1, w
        ),
        completed=completed,
        checkpoint=ckpt,
        progress=np.asarray(progress, np.float64).reshape(-1, 4),
        in_flight=in_flight,
        rung_log=log.as_array(),
    )


def _carry(
    act, slot_row, born, kept_row, kept_best, kept_final, log, progress, member_steps,
    prior_s, where,
) -> slots.RefillCarry:  # fmt: skip
    """What a checkpoint of a refilling run holds besides its schedule state and curves
    (the slots' states copied to the host)."""
    return slots.RefillCarry(
        jax.tree.map(np.array, to_host(act.states, where)),
        slot_row, born, kept_row, kept_best, kept_final, log.as_array(),
        np.asarray(progress, np.float64).reshape(-1, 4),
        np.array([member_steps, prior_s + process_elapsed()], np.float64),
    )  # fmt: skip


def _refill(act, fresh, slot_row, hp_slots, init_bits, dataset, st, where):
    """Slots ``fresh[W]`` take new members (ids ``slot_row``, values ``hp_slots``) in the
    one refill program; returns the new active state and the compile seconds."""
    ids = np.where(fresh, np.maximum(slot_row, 0), 0).astype(np.uint32)
    args = (
        act.states,
        put_members(np.asarray(fresh, bool), where),
        put_members(ids, where),
        put_members(hp_slots, where),
        init_bits,
    )
    exe, c = program.compiled_refill(args, dataset.num_features, st, where)
    return act._replace(states=exe(*args)), c


def _finished(sched: ScheduleState) -> int:
    """Members that reached the full length (alive, not stopped, not in a slot)."""
    done = sched.alive & (sched.stopped_at < 0)
    done[np.asarray(sched.active, np.int64)] = False
    return int(done.sum())


def _share(budget: Budget | None, elapsed_s: float, member_steps: int) -> float:
    if budget is None:
        return float("nan")
    if budget.seconds is not None:
        return min(1.0, elapsed_s / budget.seconds)
    return min(1.0, member_steps / budget.member_steps)
