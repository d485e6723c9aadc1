"""Whether a decision's survivors move to a smaller program: the training time the
smaller program saves before the next decision against what compiling it costs, both
as measured in this run.

A smaller program saves compute only while it is smaller: ``steps_left`` steps of
``size - new`` fewer members. Compiling it costs what this run's chunk programs cost
(seconds, measured: a cold compile, or a load from the persistent compile cache), and
nothing when this process already holds it (an earlier rung, an earlier sweep).

Example: 128 softmax members halved to 15 at step 111 of 1,000 on a 2-core CPU (0.12 ms
per member-step, 2.5 s per cold compile): 16 members save 0.12 ms x 112 x 889 = 12 s, so
they move; 5 members at step 333 (8 instead of 16 rows for 667 steps: 1 s) stay.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np

from sweepjax.engine import distributed, program, saved_programs

# Before anything was measured (a resumed run at its first decision), a compile is
# taken to cost this many member-steps of training (the rule before measured costs).
FALLBACK_MEMBER_STEPS = 10_000


class Costs(NamedTuple):
    """What this run measured: seconds per member-step of training (NaN: none yet) and
    the slowest chunk program's compile (or load) seconds (NaN: every program was
    already held by this process)."""

    member_step_s: float = math.nan
    compile_s: float = math.nan


def costs(train_s: float, row_steps: int, slowest_compile_s: float) -> Costs:
    """:class:`Costs` from a run's clock: this call's training seconds over its program
    rows x steps, and its slowest chunk compile."""
    per = train_s / row_steps if row_steps > 0 and train_s > 0 else math.nan
    return Costs(per, slowest_compile_s if slowest_compile_s > 0 else math.nan)


def pays(size: int, new: int, steps_left: int, measured: Costs, held: bool) -> bool:
    """Whether moving from a program of ``size`` rows to one of ``new`` rows pays for
    itself before the next decision (``steps_left`` steps): always when the program is
    already ``held``; otherwise when the saved training time exceeds the compile."""
    if new >= size:
        return True
    if held:
        return True
    saved = (size - new) * steps_left  # member-steps
    per = measured.member_step_s
    if not math.isfinite(per):
        return saved > FALLBACK_MEMBER_STEPS
    compile_s = measured.compile_s
    if not math.isfinite(compile_s):
        compile_s = FALLBACK_MEMBER_STEPS * per
    return saved * per > compile_s


def resized(tree, n: int):
    """``tree``'s leaves as shapes with ``n`` rows (their leading, member axis)."""
    return jax.tree.map(lambda a: jax.ShapeDtypeStruct((n, *np.shape(a)[1:]), a.dtype), tree)


def chunk_args(states, hp, n: int, data, key_bits) -> tuple:
    """The training program's arguments for ``n`` rows, as shapes (the ones
    :func:`sweepjax.engine.active.run_chunk` calls it with)."""
    scalar = jax.ShapeDtypeStruct((), np.int32)
    i32 = jax.ShapeDtypeStruct((n,), np.int32)
    bits = jax.ShapeDtypeStruct(np.shape(key_bits), np.asarray(key_bits).dtype)
    return (resized(states, n), resized(hp, n), i32, i32, data, scalar, scalar, scalar, bits)


def held(states, hp, n: int, data, key_bits, static, where) -> bool:
    """Whether this process holds the training program for ``n`` rows already, or is
    compiling it in the background (:mod:`sweepjax.engine.prefetch`)."""
    return program.held("chunk", chunk_args(states, hp, n, data, key_bits), static, where)


def compile_costs(measured: Costs) -> Costs:
    """``measured`` with its compile the slowest fresh compile of a training program
    this process or, before it, this machine has seen, where one is known: a run whose
    programs were all held or loaded measured only those (0-0.5 s), while the program a
    decision would move to is compiled (2.4-3.1 s for the softmax on a 2-core CPU with
    the threefry draw, which the loads had been taken for: a fine round of 128 members
    moved its last 4 from 16 rows to 8 to save about 1.3 s of training, and compiled
    for 2.4 s)."""
    known = saved_programs.compile_seconds("chunk")
    if known is None:
        return measured
    return measured._replace(compile_s=known)


def mover(setup, act, hp, clock, steps_left: int):
    """``moves(size, new)`` for :func:`sweepjax.engine.active.gather` after a decision
    of the run ``setup`` (a :class:`~sweepjax.engine.slots.Run`) whose population
    ``act`` trained with ``hp`` and spent what ``clock`` says (process 0's measurements
    decide on every process: each process's clock differs). Host-driven steps train
    only the real members whatever the program's rows: a smaller program saves nothing
    there, so they keep theirs."""
    measured = compile_costs(costs(clock.train_s, clock.row_steps, clock.slowest_compile_s))

    def moves(size: int, new: int) -> bool:
        if new >= size:
            return True
        if setup.static.host_steps and setup.where.mesh is None:
            return False
        have = act.on_device and held(
            act.states, hp, new, setup.data, setup.key_bits, setup.static, setup.where
        )
        # Process 0's choice on every process: the sizes decide the collectives.
        return distributed.agreed(pays(size, new, steps_left, measured, have))

    return moves
