"""Fixed costs: the refit's time is reported (``timing.refit_s``)."""

from __future__ import annotations

import types

import sweepjax.flows.refit as refit_mod
from sweepjax.results.records import TimingRecord, Winner


class _Store:
    """Records what refit_winner stores."""

    def __init__(self):
        self.timing, self.refit = None, None

    def set_refit(self, sid, steps, acc):
        self.refit = (sid, steps, acc)

    def set_timing(self, sid, timing):
        self.timing = (sid, timing)


def test_refit_time_is_reported_and_stored_apart_from_the_sweeps_training(monkeypatch):
    """refit_s is the clock's advance across refit_member (2.5 s of a fake clock), stored
    with the rest of the timing record; the sweep's own train_s is left as it was."""
    clock = iter([10.0, 12.5])
    monkeypatch.setattr(refit_mod.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(refit_mod, "refit_member", lambda *a: refit_mod.Refit(40, 0.91, None))
    member = types.SimpleNamespace(id=3)
    result = types.SimpleNamespace(
        sweep_id="f1",
        winner=Winner(3, 0.1, 1e-4, 0.9, 0.88),
        members=[member],
        timing=TimingRecord(1.0, 4.0, 100.0),
    )
    cfg = types.SimpleNamespace(model=None, train=None)
    st = _Store()
    cb = types.SimpleNamespace(say=lambda m: None)
    out = refit_mod.refit_winner(result, cfg, None, st, cb)
    assert out.timing.refit_s == 2.5 and out.timing.train_s == 4.0
    assert st.timing == ("f1", {**TimingRecord(1.0, 4.0, 100.0).as_dict(), "refit_s": 2.5})
    assert st.refit == ("f1", 40, 0.91) and out.winner.refit_steps == 40
