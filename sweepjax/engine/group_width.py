"""The width a shrinking population trains at on a CPU: the width its survivors need.

Successive halving keeps ``1/eta`` of its members at each rung: 128 members become 43,
15, then 5. Trained as one program of 128 rows, the survivors either stay in it, their
padding rows trained for nothing (between the first two rungs 43 of the 128 rows do
useful work), or move to a program of their own size, which costs a compile (about 2 s
for the softmax on a 2-core CPU: as long as 20,000 of its member-steps). On a CPU a
member-step costs about the same in a program of 16 rows as in one of 128: the cores are
full either way (0.77-0.95x the throughput for the softmax, the same for the width-256
MLP, measured). So such a run trains, from its first step, in groups of the width its
last survivors will fill: the early rungs call that one program group after group, the
later ones once, and no rung compiles or trains a padding row it could have dropped.

Measured (softmax on Fashion-MNIST, 128 members x 1,000 steps, halving over 3 rungs at
eta 3, 2-core CPU, nothing cached): one program of 128 rows, 10.4 s (compiling 4.9 s,
training 3.8 s); groups of 15, 6.5 s (compiling 2.5 s, training 2.0 s); the same winner.

Not on an accelerator: its time per block is flat in the width up to thousands of
members, so a group there costs a whole block. Not for host-driven steps (their
programs train the real members only) or a mesh, and never wider than the memory
budget's group.
"""

from __future__ import annotations

import jax
import numpy as np

from sweepjax.engine import active
from sweepjax.engine.decisions import ask_ahead

# Narrower than this, a CPU's throughput falls off (the softmax's member-steps per second
# at 8 rows are well below those at 16); a population this small is never split.
MIN_WIDTH = 16


def survivors(policy, hparams, n: int) -> list[int]:
    """How many of ``n`` members the policy keeps at each of its judged ages, every
    member alive (:func:`~sweepjax.engine.decisions.ask_ahead`, rung after rung); ``[]``
    for a policy that never decides or cannot be asked."""
    rows, hp, counts = np.arange(n, dtype=np.int64), hparams, []
    for age in policy.plan().ages:
        d = ask_ahead(policy, age, rows, hp)
        if d is None:
            return []
        rows, hp = np.asarray(d.rows, np.int64), d.hparams
        counts.append(len(rows))
    return counts


def width(policy, hparams, n: int, gsize: int, static, where) -> int:
    """The members per program call for ``n`` members under ``policy``: ``gsize`` (the
    memory budget's group), or on a CPU, for a policy whose survivors shrink, the
    power of two its last survivors fill (at least :data:`MIN_WIDTH`)."""
    if n <= MIN_WIDTH or where.mesh is not None or static.host_steps:
        return gsize
    if jax.default_backend() != "cpu":
        return gsize
    counts = survivors(policy, hparams, n)
    if not counts or min(counts) >= n:
        return gsize
    # The program size the last survivors would move to (at most the group).
    return active.bucket(max(min(counts), MIN_WIDTH), gsize, where.num_devices)
