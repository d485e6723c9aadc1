"""The checkpoint throttle: writes take at most CHECKPOINT_SHARE of the wall time, on a
fake clock (passed in, not patched into the time module) where each write costs a known
time."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from sweepjax.flows import runner


class FakeClock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


@pytest.mark.parametrize("write_s,chunk_s", [(3.0, 0.5), (0.05, 0.2), (1.0, 10.0)])
def test_writes_take_at_most_the_share_of_the_time(write_s, chunk_s):
    clock = FakeClock()
    writes = []

    class Store:
        def save_checkpoint(self, sid, ckpt, timing=None):
            writes.append(clock.t)
            clock.t += write_s  # the write's cost

    saver = runner._CheckpointThrottle(Store(), "c1", clock=clock)
    # The first write's cost is estimated from the state's size.
    rep = SimpleNamespace(state_bytes=int(write_s * runner.CHECKPOINT_BYTES_PER_S), checkpoint=dict)
    for _ in range(2000):
        clock.t += chunk_s  # a chunk of training
        saver.maybe_save(rep)
    assert saver.count == len(writes) > 0
    assert saver.spent == pytest.approx(write_s * len(writes))
    assert saver.spent <= runner.CHECKPOINT_SHARE * clock.t + 1e-9
    # ... and not far below it: writes are as frequent as the share allows (within one
    # chunk of slack per gap).
    gap = (1 - runner.CHECKPOINT_SHARE) / runner.CHECKPOINT_SHARE * write_s
    assert len(writes) >= clock.t / (gap + write_s + chunk_s) - 1


def test_no_write_before_the_first_gap():
    clock = FakeClock()
    saved = []
    store = SimpleNamespace(save_checkpoint=lambda sid, ckpt, timing=None: saved.append(1))
    saver = runner._CheckpointThrottle(store, "c1", clock=clock)
    rep = SimpleNamespace(state_bytes=int(2.0 * runner.CHECKPOINT_BYTES_PER_S), checkpoint=dict)
    clock.t = 19 * 2.0 - 0.1  # just short of 19x the estimated 2 s write
    saver.maybe_save(rep)
    assert saved == []
    clock.t = 19 * 2.0 + 0.1
    saver.maybe_save(rep)
    assert saved == [1]
