"""Compiling the next decision's program while the block before it trains.

After a halving or Hyperband rung the survivors move to a smaller program when the
compute it saves pays for compiling it (:mod:`sweepjax.engine.recompile`); compiled at
the decision, that compile stalls the run (about 2 s per program on a 2-core CPU with a
cold cache, 0.1-0.5 s to trace and load from a warm one). How many survive depends only
on how many are active (a policy keeps its best ``1/eta``; only divergence can make it
fewer), so the program is known a block ahead: it is compiled on a background thread
(XLA compiles without Python's lock) while the device trains, and the decision finds it
ready. The same rule decides as at the decision, so nothing is compiled that the run
would not use unless members diverge in this very block; what the run trains, and so
every result, is unchanged. The first block's program is started while the initial
weights are drawn, and each decision's whole-validation evaluation program while the
block before it trains. On by default where the device is not the host's CPU
(:func:`enabled`).
"""

from __future__ import annotations

import os

import jax
import numpy as np

from sweepjax.engine import active, overlap, program, recompile
from sweepjax.engine.decisions import ask_ahead
from sweepjax.engine.slots import Clock, Population, Run


def enabled() -> bool:
    """Whether programs are compiled ahead: on an accelerator (its host's cores are idle
    while it trains), not on a CPU, where the compile takes a core from the training it
    would overlap (measured on the 2-core CPU, cold halving runs alternated: 17.0-23.3 s
    with against 15.8-19.0 s without). ``SWEEPJAX_PREFETCH=1`` or ``0`` decides instead."""
    env = os.environ.get("SWEEPJAX_PREFETCH", "").strip().lower()
    if env:
        return env not in ("0", "off", "no", "false")
    return jax.default_backend() != "cpu"


def start_first(setup: Run, hparams, n: int, gsize: int) -> bool:
    """Start compiling the first block's training program (``n`` members on the device,
    ``hparams`` theirs) while the members' initial weights are drawn."""
    ndev = setup.where.num_devices
    if not enabled() or n == 0 or n > gsize or setup.where.mesh is not None:
        return False
    if setup.static.host_steps:
        return False
    size = active.round_up(n, ndev)
    hp = hparams.take(active.pad_rows(n, size))
    shapes = program.init_shapes(setup.dataset.num_features, setup.static, hp)
    args = recompile.chunk_args(shapes, hp, size, setup.data, setup.key_bits)
    return program.start_block(args, setup.static, setup.where)


def survivors(setup: Run, pop: Population, step: int) -> int | None:
    """How many members the decision at ``step`` keeps if every active one is alive
    (:func:`~sweepjax.engine.decisions.ask_ahead`); None when the policy cannot be
    asked."""
    d = ask_ahead(setup.policy, step, pop.sched.active, pop.slot_hp)
    return None if d is None else len(d.src)


def start_next(setup: Run, pop: Population, clock: Clock, through: bool = False) -> bool:
    """Start compiling, on background threads, what the decision (or the end) after the
    coming block will need: the evaluation program that measures every active member on
    the whole validation set, and the program the survivors will move to when the run
    would move there (``through``: the coming blocks run through to the next decision,
    :func:`sweepjax.engine.overlap.train_through`). True if a training program started."""
    act, step = pop.act, pop.step
    if not enabled() or setup.plan.refills or not act.on_device or setup.where.mesh is not None:
        return False
    if through:
        end = overlap.next_stop(setup, step)
    else:
        end = step + (setup.plan.block or next(e for e in setup.ends if e > step) - step)
    if end in setup.plan.ages or end >= setup.total:
        # On one device (the only place this runs) every evaluation is a call of the
        # EVAL_ROWS-row program (active._eval_program), whatever the population's size.
        rows = active.EVAL_ROWS
        folds = jax.ShapeDtypeStruct((rows,), np.int32)
        params = recompile.resized(act.states.params, rows)
        program.start_eval((params, folds, setup.data.val), setup.static, setup.where)
    if setup.static.host_steps:  # host-driven steps keep their program (recompile.mover)
        return False
    if end not in setup.plan.ages or end >= setup.total:
        return False
    kept = survivors(setup, pop, end)
    if not kept:
        return False
    new = active.bucket(kept, setup.sizes[1], setup.where.num_devices)
    if new >= act.size:
        return False
    nxt = min([d for d in setup.plan.ages if d > end] + [setup.total])
    measured = recompile.compile_costs(
        recompile.costs(clock.train_s, clock.row_steps, clock.slowest_compile_s)
    )
    if not recompile.pays(act.size, new, nxt - end, measured, held=False):
        return False
    args = recompile.chunk_args(act.states, pop.slot_hp, new, setup.data, setup.key_bits)
    return program.start_block(args, setup.static, setup.where)
