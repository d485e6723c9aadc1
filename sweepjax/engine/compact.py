"""A compacting population (every schedule but ASHA): all members start at step 0, and
at a judged step the survivors (or PBT's copies) are gathered into a smaller program.

- :func:`boundaries`: the global steps at which a compiled call ends;
- :func:`settle`: the active members measured on the whole validation set, their health
  and best numbers written into the schedule state (before a decision, and at the end);
- :func:`apply`: a policy's decision recorded (stops, copies, new values);
- :func:`judge`, :func:`checkpoint`, :func:`result`: the host loop's steps for it.
"""

from __future__ import annotations

import time

import jax
import numpy as np

from sweepjax.engine import active, group_width, recompile
from sweepjax.engine.curves import Checkpoint, ScheduleState, history_values
from sweepjax.engine.decisions import Decision, RungView, ride
from sweepjax.engine.distributed import Placement
from sweepjax.engine.member import Static
from sweepjax.engine.outcome import PopulationResult
from sweepjax.engine.slots import Clock, Judged, Population, Run, carry_of

# At the last decision the next-best members ride in the rows the survivors' program has
# to spare whatever program and placement it is (active.ride_rows; decisions.ride):
# rows computed as padding anyway, and which members finish depends on neither the
# programs a process holds, the times it measured nor the devices it runs on. False
# stops every member below the cut, as the engine did before (tests/test_loop_reference.py
# compares with that code).
RIDERS = True


def boundaries(total: int, every: int, chunk: int, decisions) -> list[int]:
    """Steps at which a compiled call ends: every ``every`` steps (an evaluation), every
    ``chunk`` steps, at each scheduler decision and at the end of the run."""
    out = set(range(every, total, every)) | set(range(chunk, total, chunk))
    return sorted(out | {d for d in decisions if 0 < d < total} | {total})


def settle(
    sched: ScheduleState,
    act: active.Active,
    data,
    static: Static,
    where: Placement,
    step: int,
    folds: np.ndarray,
):
    """Measure the active members on the whole validation set and write their health,
    best and final numbers into the schedule state (before a decision, and at the end).

    The best checkpoint was chosen on the validation subset; measured on the whole set,
    the current parameters may beat it (at the end of an annealed run they often do):
    then they become the member's best. Returns the new state, the current-parameter
    (loss, acc), the mask of members whose current parameters won, and the seconds.
    """
    fold_active = folds[sched.active]
    small = active.small(act, where)
    # Every active member, in a smaller program when the current one is mostly padding
    # (halving keeps its program across a rung when recompiling does not pay).
    every = np.arange(act.n)
    loss, acc, s1, sq = active.evaluate_members(
        act, "params", every, data, static, where, fold_active
    )
    # A member whose subset-best is this very step holds its current parameters as its
    # best checkpoint (record_evaluation copied them): its best accuracy is ``acc``. Only
    # the others' best checkpoints are measured (early in a run, most members are still
    # improving, so this halves a decision's evaluation).
    best_acc, best_sq, s2 = acc.copy(), sq.copy(), 0.0
    stale = np.flatnonzero(small["best_step"] != step)
    if len(stale):
        _, best_acc[stale], s2, best_sq[stale] = active.evaluate_members(
            act, "best", stale, data, static, where, fold_active
        )
    rows = sched.active
    upd = {
        k: np.array(getattr(sched, k))
        for k in ScheduleState._fields
        if k not in ("active", "hparams", "lineage", "history")
    }
    upd["alive"][rows] = small["alive"]
    upd["diverged_at"][rows] = small["diverged_at"]
    upd["initial_loss"][rows] = small["initial_loss"]
    orient = static.metric.orient
    current_wins = small["alive"] & (orient(acc) > orient(best_acc))
    upd["best_step"][rows] = np.where(current_wins, step, small["best_step"])
    # A member that never improved on its subset keeps its initial parameters as "best".
    upd["best_val_acc"][rows] = np.where(current_wins, acc, best_acc)
    upd["best_val_sq"][rows] = np.where(current_wins, sq, best_sq)
    upd["val_loss"][rows] = np.where(small["alive"], loss, np.nan)
    upd["val_acc"][rows] = np.where(small["alive"], acc, np.nan)
    return sched._replace(**upd), loss, acc, current_wins, s1 + s2


def apply(sched: ScheduleState, decision: Decision, step: int) -> ScheduleState:
    """Record a scheduler's decision: stops, copies (lineage) and new values (history)."""
    rows_before = sched.active
    stopped = np.setdiff1d(rows_before, decision.rows)
    stopped_at = sched.stopped_at.copy()
    stopped_at[stopped] = step
    hp = sched.hparams.map(np.array)
    lineage, history = [sched.lineage], [sched.history]
    copied = rows_before[decision.src] != decision.rows
    if copied.any():
        lineage.append(
            np.stack(
                [
                    np.full(copied.sum(), step),
                    decision.rows[copied],
                    rows_before[decision.src][copied],
                ],
                axis=1,
            ).astype(np.int64)
        )
    new_vals = np.stack(history_values(decision.hparams), axis=1).astype(np.float32)
    old_vals = np.stack(history_values(hp), axis=1).astype(np.float32)[decision.rows]
    changed = (new_vals != old_vals).any(axis=1)
    if changed.any():
        history.append(
            np.concatenate(
                [
                    np.stack([np.full(changed.sum(), step), decision.rows[changed]], axis=1),
                    new_vals[changed],
                ],
                axis=1,
            ).astype(np.float64)
        )
    for f, v in zip(jax.tree.leaves(hp), jax.tree.leaves(decision.hparams), strict=True):
        f[decision.rows] = v
    return sched._replace(
        active=np.asarray(decision.rows, np.int64),
        hparams=hp,
        stopped_at=stopped_at,
        lineage=np.concatenate(lineage),
        history=np.concatenate(history),
    )


def judge(setup: Run, pop: Population, clock: Clock):
    """At one of the policy's ages every active member is judged at once; the survivors
    (or PBT's copies) are gathered into the next program."""
    step, sched, act = pop.step, pop.sched, pop.act
    decided = step in setup.plan.ages and step < setup.total
    if decided:
        sched, loss, acc, _, secs = settle(
            sched, act, setup.data, setup.static, setup.where, step, setup.fold_of
        )
        clock = clock.add(eval_s=secs)
        score = setup.static.metric.orient(acc)  # the policy reads scores: higher is better
        view = RungView(step, sched.active, loss, score, sched.alive[sched.active], pop.slot_hp)
        decision = setup.policy.decide(view)
        nxt = min([d for d in setup.plan.ages if d > step] + [setup.total])
        moves = recompile.mover(setup, act, pop.slot_hp, clock, nxt - step)
        # The last decision: spare rows are free (not for host-driven steps, whose
        # programs step each real member on its own).
        if RIDERS and nxt == setup.total and not setup.static.host_steps:
            n = len(decision.src)
            # At most a CPU's narrowest group: one device and a mesh ride alike.
            rows = active.ride_rows(n, setup.sizes[1], group_width.MIN_WIDTH)
            decision = ride(decision, view, rows - n)
        sched = apply(sched, decision, step)
        src = np.asarray(decision.src, np.int64)
        act = active.gather(act, src, setup.sizes[1], setup.where, nxt - step, moves)
        pop = pop._replace(
            act=act,
            slot_row=sched.active,
            born=np.zeros(len(sched.active), np.int64),
            slot_hp=sched.hparams.take(sched.active),
            sched=sched,
        )
    fin = pop.curves.val_acc[:, -1]  # this block's; NaN where a member diverged or stopped
    if np.isfinite(fin).any():
        m = setup.static.metric
        clock = clock._replace(quick_best=float(m.better_of(clock.quick_best, m.best(fin))))
    # After a decision (PBT may revive a slot) the settled health; otherwise the block's
    # metrics say it, with no extra transfer from the device.
    alive = sched.alive[sched.active] if decided else np.isfinite(fin[sched.active])
    return pop, clock, Judged(decided, int(np.sum(alive)), clock.quick_best)


def _host_rows(pop: Population, where: Placement, transfer: list):
    t0 = time.perf_counter()
    host = jax.tree.map(np.array, active.to_host_rows(pop.act, where))
    transfer[0] += time.perf_counter() - t0
    return host


def checkpoint(pop: Population, where: Placement, transfer: list) -> Checkpoint:
    host = _host_rows(pop, where, transfer)
    size = pop.act.size if pop.act.on_device else 0
    return Checkpoint(pop.step, carry_of(host, pop.slot_row), pop.curves, pop.sched, size)


def result(setup: Run, pop: Population, clock: Clock, completed, transfer_s):
    """Settle the members still training (their best parameters may be the current
    ones) and build the result."""
    sched, wins = pop.sched, None
    if completed and pop.act.n:
        sched, _, _, wins, secs = settle(
            sched, pop.act, setup.data, setup.static, setup.where, pop.step, setup.fold_of
        )
        clock = clock.add(eval_s=secs)
    transfer = [transfer_s]
    host = _host_rows(pop, setup.where, transfer)
    if wins is not None and wins.any():  # the final parameters are these members' best
        best = jax.tree.map(
            lambda b, p: np.where(wins.reshape((-1,) + (1,) * (p.ndim - 1)), p, b),
            host.best.params,
            host.params,
        )
        host = host._replace(best=host.best._replace(params=best))
    ckpt = None
    if not completed:
        size = pop.act.size if pop.act.on_device else 0
        ckpt = Checkpoint(pop.step, carry_of(host, sched.active), pop.curves, sched, size)
    return PopulationResult.of(
        setup.member_ids,
        sched,
        pop.curves,
        finished=sched.active,
        params=host.params,
        best_params=host.best.params,
        lineage=sched.lineage,
        timing=clock.timing(setup.sizes, transfer[0]),
        completed=completed,
        checkpoint=ckpt,
    )
