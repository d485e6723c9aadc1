"""``run``: the one host loop around the compiled programs, for every schedule.

Each block of steps is one compiled call (per program group) over the population's
slots; a slot holds a member row, the global step it was born at and its
hyperparameters. Between blocks (and only there) the host:

1. records each member's block metrics at its age (steps trained since it was born);
2. measures the members that reached one of the policy's judged ages on the whole
   validation set and asks the policy (:class:`~sweepjax.engine.decisions.Policy`) who
   continues, stops or is copied;
3. applies the decision. A compacting population (every member born at step 0: full,
   halving, Hyperband, PBT) gathers the survivors into a smaller program
   (:mod:`sweepjax.engine.compact`). A refilling one (ASHA: a fixed width, members born
   at different steps) frees the stopped and diverged members' slots, finishes the
   members that reached the run's length, and refills the freed slots with members the
   policy draws (:mod:`sweepjax.engine.slots`), until its budget is spent;
4. reports progress and hands out a checkpoint on request.

Minibatches are the population's: every member at global step ``t`` sees the same rows,
whatever its age, so a member trains exactly as it would alone from its birth step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import numpy as np

from sweepjax.engine import active, compact, overlap, prefetch, refilling, slots
from sweepjax.engine.curves import Checkpoint, Curves
from sweepjax.engine.outcome import AnytimeStatus, ChunkReport, PopulationResult
from sweepjax.engine.slots import Clock, Judged, Population, Run


def run(
    setup: Run,
    pop: Population,
    clock: Clock,
    on_chunk: Callable[[ChunkReport], bool | None] | None,
) -> PopulationResult:
    """Train ``pop`` block by block until the run ends (see the module docstring)."""
    refills = setup.plan.refills
    transfer = [0.0]  # seconds of device -> host copies (checkpoints, the end)
    t_start = time.perf_counter()
    completed = True
    # Without a callback nothing reads a block before the next decision: the next block
    # is dispatched before the previous one's metrics are fetched (engine/overlap.py).
    ahead = on_chunk is None and not refills
    while refills or (pop.step < setup.total and len(pop.slot_row)):
        through = ahead and overlap.applies(setup, pop)
        prefetch.start_next(setup, pop, clock, through)
        if through:
            pop, clock = overlap.train_through(setup, pop, clock)
        else:
            pop, clock = _train_block(setup, pop, clock)
        if refills:
            pop, clock, judged = refilling.judge(setup, pop, clock)
            if judged.spent:
                break
            pop, clock = refilling.refill_freed(setup, pop, clock, judged.freed)
        else:
            pop, clock, judged = compact.judge(setup, pop, clock)
        if on_chunk is None:
            continue
        rep = _report(setup, pop, clock, judged, time.perf_counter() - t_start, transfer)
        if on_chunk(rep) is False and (refills or pop.step < setup.total):
            completed = False
            break
    if refills:
        return refilling.result(setup, pop, clock, completed)
    return compact.result(setup, pop, clock, completed, transfer[0])


def _train_block(setup: Run, pop: Population, clock: Clock) -> tuple[Population, Clock]:
    """One compiled call; the block's metrics written into the curves at each age."""
    step = pop.step
    n = setup.plan.block or next(e for e in setup.ends if e > step) - step
    fold = setup.fold_of if setup.plan.refills else setup.fold_of[pop.slot_row]
    act, met, c, t = active.run_chunk(
        pop.act, pop.slot_hp, fold, setup.data, step, n, setup.total, setup.key_bits,
        setup.static, setup.where, pop.born,
    )  # fmt: skip
    step += n
    clock = overlap.gap(clock, t, decided=setup.plan.refills or pop.step in setup.plan.ages)
    rows = act.size if act.on_device else act.n
    clock = clock.add(compile_s=c, train_s=t, member_steps=act.n * n, trained_here=act.n * n,
                      row_steps=rows * n)  # fmt: skip
    clock = clock._replace(slowest_compile_s=max(clock.slowest_compile_s, c))
    curves = pop.curves
    if setup.plan.refills:  # written in place: the columns are every block's age
        occ = np.flatnonzero(pop.slot_row >= 0)
        col = (step - pop.born) // n - 1
        for f, m in zip(Curves._fields[1:], met, strict=True):
            getattr(curves, f)[pop.slot_row[occ], col[occ]] = np.asarray(m)[occ, 0]
    else:  # everyone's age is the step: one new column
        curves = curves.append(np.array([step]), met, pop.slot_row)
    return pop._replace(step=step, act=act, curves=curves), clock


# --------------------------------------------------------------------------- reports
def _report(setup: Run, pop: Population, clock: Clock, judged: Judged, wall_s, transfer):
    """The :class:`ChunkReport` after a block; ``checkpoint()`` copies the state then."""
    sched = pop.sched
    if setup.plan.refills:

        def checkpoint(pop=pop, clock=clock) -> Checkpoint:
            return refilling.checkpoint(setup, pop, clock)

        p = clock.progress
        best_full = p[-1][2] if p else math.nan
        budget = setup.budget
        anytime = AnytimeStatus(
            clock.elapsed(), clock.member_steps, str(budget) if budget is not None else "",
            slots.share(budget, clock.elapsed(), clock.member_steps), clock.finished,
            int(p[-1][3]) if p else -1,
        )  # fmt: skip
        live, members = int(np.sum(pop.slot_row >= 0)), int(sched.stopped_at.shape[0])
    else:

        def checkpoint(pop=pop) -> Checkpoint:
            return compact.checkpoint(pop, setup.where, transfer)

        best_full = setup.static.metric.best(sched.best_val_acc)
        anytime, live, members = None, len(sched.active), len(setup.member_ids)
    return ChunkReport(
        step=pop.step,
        total_steps=setup.total,
        alive=judged.alive,
        active=live,
        num_members=members,
        best_val_acc=judged.best_val_acc,
        best_full_val_acc=best_full,
        elapsed_s=wall_s,
        decided=judged.decided,
        state_bytes=active.state_bytes(pop.act),
        checkpoint=checkpoint,
        anytime=anytime,
        curves=pop.curves,
        schedule=sched,
        metric=setup.static.metric,
    )
