"""Host-driven steps over lanes: a convolutional model's members trained on several CPU
devices at once.

A host-driven block (``Static.host_steps``: a convolutional model on a CPU) calls one
compiled one-member step member after member. One such step keeps one core busy, and
the CPU backend runs one device's programs one after another, so on a host with more
cores the members are split over **lanes**, one per CPU device that
:func:`sweepjax.engine.distributed.request_lanes` added (the command line asks for
them). Each lane holds a copy of the population's rows and of the data on its device
and steps its own members with the same one-member program compiled for that device;
dispatch alternates between the lanes, so they run concurrently, and nothing waits
inside a block. At the block's end each lane's rows come back to device 0 by an explicit
``jax.device_put`` and the block's evaluation runs there as with one lane. A member's
computation is the same program on the same numbers whichever CPU device runs it, so
the results are bit-identical to one lane (tests/test_lanes.py).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from sweepjax.engine import program
from sweepjax.engine.distributed import (
    SINGLE,
    Placement,
    lane_devices,
    put_members,
    put_replicated,
)
from sweepjax.engine.member import Static

# The data's copy on each lane device, made once per data set (a run's blocks share it):
# (the data on device 0, {device id: its copy}). One entry, owned here: a new data set
# replaces it; the last run's copies stay until then (a CPU host's memory).
_DATA: list = [None, {}]


def lanes_for(real: int, where: Placement) -> tuple:
    """The devices a host-driven block of ``real`` members runs over: the lane devices
    (at most one per member) on a single-device run, else ``()`` (one lane)."""
    devs = lane_devices() if where.mesh is None else ()
    devs = devs[: max(real, 0)]
    return devs if len(devs) > 1 else ()


def data_on(data, device):
    """``data`` (on device 0) copied to ``device`` once, then held."""
    if _DATA[0] is not data:
        _DATA[0], _DATA[1] = data, {}
    if device.id not in _DATA[1]:
        _DATA[1][device.id] = jax.device_put(data, device)
    return _DATA[1][device.id]


def compiled(args, st: Static, devices: tuple):
    """Each lane device's step programs for ``args`` (as ``program.compiled_block``'s, on
    device 0), the lanes' arguments, and the seconds spent compiling."""
    out, secs = [], 0.0
    for d in devices[1:]:
        states, hps, folds, born, data, *rest = args
        mine = jax.device_put((states, hps, folds, born, *rest), d)
        args_d = (*mine[:4], data_on(data, d), *mine[4:])
        exe, c = program.compiled_steps(args_d, st, SINGLE, lane=d.id)
        out.append((exe, args_d))
        secs += c
    return out, secs


def by_steps(exe: program.Steps, lanes, args, first: int, n_steps: int, real: int, where):
    """One block as host-driven steps: ``n_steps`` calls of the one-member step per real
    member (the last one measured), then the evaluation; the padding rows beyond
    ``real`` are not trained (their results are dropped). ``lanes``: :func:`compiled`'s
    for the other lane devices (empty: one lane, member after member on device 0).
    Nothing waits: every call is queued behind its lane's previous one, the state
    donated from call to call. Returns what ``program.compiled_block``'s program does."""
    states, hps, folds, born, data, _, n_dev, horizon, key_bits = args
    size = jax.tree.leaves(states)[0].shape[0]
    count = 1 + len(lanes)
    work = [_lane(exe, args, first, n_steps, size, where)]
    work += [_lane(e, a, first, n_steps, size, None) for e, a in lanes]
    members = [list(range(j, real, count)) for j in range(count)]
    for r in range(max(len(m) for m in members)):
        for k in range(n_steps):  # alternate between the lanes, step by step
            for j, w in enumerate(work):
                if r < len(members[j]):
                    w.call(members[j][r], k)
    states, sums = work[0].states, work[0].sums
    for j, w in enumerate(work[1:], start=1):
        back = jax.device_put((w.states, w.sums), jax.local_devices()[0])
        own = np.zeros(size, bool)
        own[members[j]] = True
        states, sums = _merge((states, sums), back, put_members(own, where))
    return exe.finish(states, sums, hps, folds, born, data, work[0].ts[n_steps], n_dev)


class _Lane:
    """One lane's state in a block: its copy of the rows, sums and scalars."""

    def __init__(self, exe, states, sums, rest, ts, ids, n_steps):
        self.exe, self.states, self.sums = exe, states, sums
        self.rest, self.ts, self.ids, self.n_steps = rest, ts, ids, n_steps

    def call(self, i: int, k: int) -> None:
        fn = self.exe.measured if k == self.n_steps - 1 else self.exe.step
        hps, folds, born, data, horizon, key_bits = self.rest
        self.states, self.sums = fn(
            self.states, self.sums, hps, folds, born, data, self.ids[i], self.ts[k],
            horizon, key_bits,
        )  # fmt: skip


def _lane(exe, args, first: int, n_steps: int, size: int, where: Placement | None) -> _Lane:
    """A lane over ``args`` on one device (``where``: device 0's placement; None: the
    device ``args`` are on, a lane's). Every scalar the calls need is put there at once
    (explicit transfers)."""
    states, hps, folds, born, data, _, _, horizon, key_bits = args
    scalars = (
        [np.int32(first + k) for k in range(n_steps + 1)],
        [np.int32(i) for i in range(size)],
        tuple(np.zeros(size, np.float32) for _ in range(3)),
    )
    if where is not None:
        ts, ids, sums = put_replicated(scalars, where)
    else:
        (device,) = jax.tree.leaves(states)[0].devices()
        ts, ids, sums = jax.device_put(scalars, device)
    return _Lane(exe, states, sums, (hps, folds, born, data, horizon, key_bits), ts, ids, n_steps)


@jax.jit
def _merge(base, other, own):
    """``base``'s rows with ``other``'s where ``own[size]`` (a lane's members)."""

    def pick(a, b):
        return jnp.where(own.reshape((-1,) + (1,) * (a.ndim - 1)), b, a)

    return jax.tree.map(pick, base, other)
