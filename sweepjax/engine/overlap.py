"""The next block dispatched before the previous one's metrics are fetched.

Between two decisions of a compacting population (every schedule but ASHA; ``full``
has none but the end) nothing the host does with a block's metrics changes the next
block: its curves are written, its best subset accuracy noted. When no ``on_chunk``
callback reads a block (its report may take a checkpoint, whose state the next block
would have consumed, or stop the run), the loop queues block ``k + 1`` on the device
first and then copies block ``k``'s metrics to the host, so the device never waits on
the host's bookkeeping. Same programs, same arguments, same order on the device: the
results are bit for bit those of the one-block-at-a-time order (tested).

:func:`gap` measures what this saves in the other order: the seconds from a block's
metrics reaching the host to the next block's dispatch (``Timing.host_gap_s``).
"""

from __future__ import annotations

import math
import time

import jax
import numpy as np

from sweepjax.engine import active
from sweepjax.engine.distributed import put_members, put_replicated, to_host
from sweepjax.engine.slots import Clock, Population, Run


def applies(setup: Run, pop: Population) -> bool:
    """Whether the blocks up to the next decision can be queued ahead: a compacting
    population held on the device in one program."""
    return not setup.plan.refills and pop.act.on_device and pop.act.n > 0


def gap(clock: Clock, train_s: float, decided: bool) -> Clock:
    """``clock`` after a block whose metrics just reached the host (``train_s`` after
    its dispatch), with the host's gap before it counted unless a decision (whose
    evaluation keeps the device busy) came between."""
    now = time.perf_counter()
    if not decided and math.isfinite(clock.arrived):
        clock = clock.add(host_gap_s=max(0.0, now - train_s - clock.arrived), gaps=1)
    return clock._replace(arrived=now)


def next_stop(setup: Run, step: int) -> int:
    """The first block end after ``step`` at which the policy decides, or the run's end."""
    return next(e for e in setup.ends if e > step and (e in setup.plan.ages or e == setup.total))


def train_through(setup: Run, pop: Population, clock: Clock) -> tuple[Population, Clock]:
    """Every block from ``pop.step`` to the next decision (or the end), each dispatched
    before the previous block's metrics are copied back; the curves and the clock as
    :func:`sweepjax.engine.loop._train_block` writes them block by block."""
    act, where, static = pop.act, setup.where, setup.static
    take = active.pad_rows(act.n, act.size)
    fold = setup.fold_of[pop.slot_row]
    mine = (pop.slot_hp.take(take), fold[take].astype(np.int32), pop.born[take].astype(np.int32))
    mine = put_members(mine, where)  # not donated: one copy serves every block
    states, step, stop, inflight = act.states, pop.step, next_stop(setup, pop.step), None
    while step < stop:
        n = next(e for e in setup.ends if e > step) - step
        shared = put_replicated(
            (np.int32(step), np.int32(n), np.int32(setup.total), np.asarray(setup.key_bits)),
            where,
        )
        args = (states, *mine, setup.data, *shared)
        states, met, c, t0 = active.launch(args, static, where, act.n, step, n)
        step += n
        if inflight is not None:  # the previous block's metrics, now that this one is queued
            pop, clock = _arrived(pop, clock, where, *inflight)
        inflight = (met, step, n, c, t0, inflight is None)
    pop, clock = _arrived(pop, clock, where, *inflight)
    return pop._replace(act=act._replace(states=states)), clock


def _arrived(pop: Population, clock: Clock, where, met, step, n, c, t0, first: bool):
    """A queued block's metrics on the host: its curves column and its clock (its
    training time from its dispatch or the previous block's end, whichever is later)."""
    act = pop.act
    met = jax.tree.map(lambda a: np.asarray(a)[: act.n][:, None], to_host(met, where))
    now = time.perf_counter()
    if not first and math.isfinite(clock.arrived):  # 0 when queued before it arrived
        clock = clock.add(host_gap_s=max(0.0, t0 - clock.arrived), gaps=1)
    start = max(t0, clock.arrived) if math.isfinite(clock.arrived) else t0
    clock = clock.add(compile_s=c, train_s=now - start, member_steps=act.n * n,
                      trained_here=act.n * n, row_steps=act.size * n)  # fmt: skip
    clock = clock._replace(slowest_compile_s=max(clock.slowest_compile_s, c), arrived=now)
    curves = pop.curves.append(np.array([step]), met, pop.slot_row)
    fin = curves.val_acc[:, -1]
    if np.isfinite(fin).any():
        clock = clock._replace(quick_best=float(np.fmax(clock.quick_best, np.nanmax(fin))))
    return pop._replace(step=step, curves=curves), clock
