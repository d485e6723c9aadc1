"""A refilling population (ASHA) in the host loop (:mod:`sweepjax.engine.loop`): the
population keeps a fixed width, members are born at different global steps, and between
blocks the host

1. frees the slot of a member that diverged (logged, so the draws' model learns where
   members diverge);
2. measures the members whose age reached a rung on the whole validation set and lets
   the policy judge them: a stopped member's slot is freed;
3. finishes the members that reached the run's length (the best-so-far point of the
   anytime result), keeping the parameters of the best few;
4. ends the run when the budget is spent (the members in flight are measured and
   stopped at their age) or every member it may create has ended;
5. refills every freed slot at once with a member the policy draws (new id, fresh
   weights and optimizer state, born at this global step): one more small program of
   fixed width, so the population never changes shape.
"""

from __future__ import annotations

import jax
import numpy as np

from sweepjax.engine import active
from sweepjax.engine.curves import Checkpoint
from sweepjax.engine.decisions import DIVERGED_RUNG, RungLog, RungView
from sweepjax.engine.outcome import PopulationResult
from sweepjax.engine.slots import (
    Ages,
    Clock,
    Judged,
    Population,
    Run,
    best_checkpoints,
    carry,
    grow,
    keep_finished,
    rank_kept,
    record_ended,
    refill,
)


def _measure(setup: Run, pop: Population, idx: np.ndarray, block: Ages):
    """Slots ``idx``' current parameters on the whole validation set, into ``block``."""
    if not len(idx):
        return 0.0
    lo, ac, secs, sq = active.evaluate_members(
        pop.act, "params", idx, setup.data, setup.static, setup.where, setup.fold_of
    )
    block.loss[idx], block.acc[idx], block.sq[idx] = lo, ac, sq
    return secs


def _judge_arrivals(setup: Run, pop: Population, block: Ages, div, at_rung) -> RungLog:
    """Each rung's arrivals ``at_rung`` judged by the policy (log entries added); the
    stopped members' ages written into ``block.stop_age``. ``div``: members found
    diverged in this block."""
    log, alive = pop.log, block.small["alive"]
    score = setup.static.metric.orient  # the policy reads scores: higher is better
    if div.any():  # logged (no decision reads it): the draws' model learns where
        k = int(div.sum())  # members diverge
        nan = np.full(k, np.nan)
        log = log.extend(DIVERGED_RUNG, block.slot_row[div], nan, nan, np.zeros(k, bool))
    for r in sorted({int(a) for a in block.age[at_rung]}):
        pos = np.flatnonzero(at_rung & (block.age == r))
        rows = block.slot_row[pos]
        log = log.extend(r, rows, block.loss[pos], score(block.acc[pos]), alive[pos])
        view = RungView(pop.step, rows, block.loss[pos], score(block.acc[pos]), alive[pos],
                        pop.slot_hp.take(pos), r, log)  # fmt: skip
        keep = np.isin(rows, setup.policy.decide(view).rows)
        block.stop_age[pos[~keep]] = r
    return log


def _spent(setup: Run, pop: Population, clock: Clock, open_slots) -> bool:
    """The run ends: its budget is spent, or every member it may create has ended."""
    if setup.budget is not None and setup.budget.spent(clock.elapsed(), clock.member_steps):
        return True
    made = pop.sched.stopped_at.shape[0]
    return setup.max_members is not None and made >= setup.max_members and not open_slots.any()


def judge(setup: Run, pop: Population, clock: Clock):
    """Members that diverged, reached a rung or the run's length, or were caught by the
    spent budget end here: measured, judged, recorded, the best finished ones kept."""
    occupied = pop.slot_row >= 0
    w = len(pop.slot_row)
    small = active.small(pop.act, setup.where)
    alive = small["alive"]
    age = pop.step - pop.born
    block = Ages(pop.slot_row, age, small, np.full(w, np.nan), np.full(w, np.nan),
                       np.full(w, -1), np.full(w, np.nan))  # fmt: skip
    g = setup.plan.group
    dead = occupied & ~alive
    # With a group, a dead member keeps its slot until its config ends: its death is
    # recorded once, and it arrives at the rungs with its config (which has no score).
    div = dead & pop.sched.alive[np.maximum(pop.slot_row, 0)]
    at_rung = occupied & (alive | (g > 1)) & np.isin(age, list(setup.plan.ages))
    done = occupied & alive & (age >= setup.total)
    measure = np.flatnonzero(at_rung & alive | done)
    clock = clock.add(eval_s=_measure(setup, pop, measure, block))
    log = _judge_arrivals(setup, pop, block, div, at_rung)
    stopped = block.stop_age >= 0
    ended = dead | stopped | done
    spent = _spent(setup, pop, clock, occupied & ~ended)
    caught = occupied & ~ended if spent else np.zeros(w, bool)
    if caught.any():  # the budget stops the members in flight: measure them too
        idx = np.flatnonzero(caught)
        clock = clock.add(eval_s=_measure(setup, pop, idx, block))
        block.stop_age[idx] = age[idx]
        clock = clock._replace(in_flight=len(idx))
    finishing = np.flatnonzero((stopped | done | caught) & alive)
    best_acc, secs, best_sq = best_checkpoints(setup, pop.act, finishing, block)
    sched = record_ended(pop.sched, block, div, finishing, best_acc, setup.static.metric, best_sq)
    if done.any():
        # The finished members' final numbers join the log as the run's last "rung":
        # once enough have finished, new members are drawn from a model of what
        # decides the winner (full-length accuracy), not of a rung's early ranking.
        pos = np.flatnonzero(done)
        score = setup.static.metric.orient(block.acc[pos])
        log = log.extend(setup.total, pop.slot_row[pos], block.loss[pos], score,
                         np.ones(len(pos), bool))  # fmt: skip
    pop = pop._replace(sched=sched, log=log)
    pop, clock = _finish(setup, pop, clock._replace(eval_s=clock.eval_s + secs), done, age)
    best = setup.static.metric.best(block.acc)
    live = int(np.sum(alive & occupied))
    if g > 1:  # a config's slots are freed together, once every member has ended
        ended = np.repeat((ended | ~occupied).reshape(-1, g).all(axis=1), g) & occupied
    return pop, clock, Judged(bool(len(measure)), live, best, spent, ended)


def _finish(setup: Run, pop: Population, clock: Clock, done, age):
    """Keep the parameters of the members that reached the run's length (the best
    :data:`~sweepjax.engine.KEEP`), and add the best-so-far points."""
    kept, progress, finished = pop.kept, list(clock.progress), clock.finished
    for j in np.flatnonzero(done):
        row = int(pop.slot_row[j])
        finished += 1
        kept = keep_finished(
            kept, pop.sched, row, j, int(age[j]), pop.act, setup.where, setup.plan.group,
            setup.static.metric,
        )  # fmt: skip
        acc = pop.sched.best_val_acc[row]
        orient = setup.static.metric.orient
        if not progress or orient(acc) > orient(progress[-1][2]):
            progress.append((clock.elapsed(), float(clock.member_steps), float(acc), row))
    return pop._replace(kept=kept), clock._replace(progress=tuple(progress), finished=finished)


def refill_freed(setup: Run, pop: Population, clock: Clock, freed) -> tuple[Population, Clock]:
    """Every freed slot takes a new member the policy draws (while members may still be
    created), born at this step, in the one refill program."""
    slot_row, sched, curves = pop.slot_row.copy(), pop.sched, pop.curves
    born, slot_hp = pop.born, pop.slot_hp
    free = np.flatnonzero(freed)
    made = sched.stopped_at.shape[0]
    n_new = len(free)
    if setup.max_members is not None:
        n_new = min(n_new, max(0, setup.max_members - made))
    slot_row[free] = -1
    act = pop.act
    if n_new:
        fill = free[:n_new]
        hp_new = setup.policy.draw(np.arange(made, made + n_new), pop.log, sched.hparams)
        sched, curves, rows = grow(sched, curves, hp_new, pop.step)
        slot_row[fill] = rows
        born = born.copy()
        born[fill] = pop.step
        fresh = np.zeros(len(slot_row), bool)
        fresh[fill] = True
        slot_hp = slot_hp.map(np.array)
        for f, v in zip(jax.tree.leaves(slot_hp), jax.tree.leaves(hp_new), strict=True):
            f[fill] = v
        act, c = refill(setup, act, fresh, slot_row, slot_hp)
        clock = clock.add(compile_s=c)
    sched = sched._replace(active=slot_row[slot_row >= 0].copy())
    pop = pop._replace(act=act, slot_row=slot_row, born=born, slot_hp=slot_hp, sched=sched,
                       curves=curves)  # fmt: skip
    return pop, clock


def checkpoint(setup: Run, pop: Population, clock: Clock) -> Checkpoint:
    held = carry(pop, clock, setup.where)
    return Checkpoint(pop.step, held, pop.curves, pop.sched, len(pop.slot_row))


def result(setup: Run, pop: Population, clock: Clock, completed: bool):
    sched, kept = pop.sched, pop.kept
    ckpt = None if completed else checkpoint(setup, pop, clock)
    full = np.flatnonzero(kept.row >= 0)
    order = full[rank_kept(sched, kept.row[full], setup.plan.group, setup.static.metric)]
    return PopulationResult.of(
        np.arange(sched.stopped_at.shape[0], dtype=np.int64),
        sched,
        pop.curves,
        finished=kept.row[order],
        params=jax.tree.map(lambda a: np.asarray(a)[order], kept.final),
        best_params=jax.tree.map(lambda a: np.asarray(a)[order], kept.best),
        lineage=np.zeros((0, 3), np.int64),
        timing=clock.timing(setup.sizes, 0.0),
        completed=completed,
        checkpoint=ckpt,
        progress=np.asarray(clock.progress, np.float64).reshape(-1, 4),
        in_flight=clock.in_flight,
        rung_log=pop.log.as_array(),
    )
