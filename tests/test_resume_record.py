"""What a sweep records about its run for --resume: the total timing of all its parts,
the device count it ran on (a different count is refused), and a report module that
fails to import fails the command loudly."""

from __future__ import annotations

import sys

import pytest

import sweepjax
import sweepjax.flows.runner as runner_mod
from sweepjax.errors import ConfigError, SweepjaxError
from sweepjax.flows.sweep import Callbacks, SweepInterrupted
from sweepjax.store.db import Store

# 6 chunks of 10 steps, one compiled shape for every sweep in this file.
ARGS = dict(
    dataset="mnist-sample",
    trials=8,
    steps=60,
    batch_size=32,
    eval_every=10,
    chunk_steps=10,
    report=False,
)


def _stop_after(n: int) -> Callbacks:
    seen = []
    return Callbacks(progress=lambda sid, rep: seen.append(rep.step), stop=lambda: len(seen) >= n)


@pytest.fixture
def timed_parts(monkeypatch):
    """Every ``train_population`` call's own Timing, in call order."""
    parts = []
    real = runner_mod.train_population

    def spy(*a, **k):
        res = real(*a, **k)
        parts.append(res.timing)
        return res

    monkeypatch.setattr(runner_mod, "train_population", spy)
    return parts


@pytest.mark.slow
def test_resumed_sweep_stores_the_timing_of_both_parts(tmp_path, timed_parts):
    store = str(tmp_path / "s.db")
    with pytest.raises(SweepInterrupted):
        sweepjax.coarse(**ARGS, store=store, callbacks=_stop_after(2))
    with Store.open(store) as st:
        rec = st.run_timing("c1")
    first = timed_parts[0]
    assert rec["devices"] == 1 and rec["partial"]
    assert rec["train_s"] == pytest.approx(first.train_s)
    assert rec["compile_s"] == pytest.approx(first.compile_s)
    res = sweepjax.coarse(**ARGS, store=store, resume=True)
    second = timed_parts[1]
    assert res.timing.train_s == pytest.approx(first.train_s + second.train_s)
    assert res.timing.compile_s == pytest.approx(first.compile_s + second.compile_s)
    # The rate is the last part's own: under a scheduler the parts train different
    # numbers of members, so a rate over the whole sweep would mix them.
    assert res.timing.model_steps_per_s == pytest.approx(second.model_steps_per_s)
    with Store.open(store) as st:
        stored = st.load_sweep("c1", curves=False).timing
    assert stored.train_s == pytest.approx(res.timing.train_s)
    assert stored.compile_s == pytest.approx(res.timing.compile_s)


@pytest.mark.slow
def test_a_crashed_part_counts_its_wall_time_up_to_the_last_checkpoint(
    tmp_path, timed_parts, monkeypatch
):
    """A part that dies (here: an exception in the progress hook, as kill -9 leaves it)
    never returns its Timing; its wall time up to its last checkpoint is counted."""
    import sweepjax.flows.runner

    # Checkpoints are throttled by time (runner.CHECKPOINT_SHARE): allowing them 100%
    # of the time writes one after every chunk, so the test does not depend on timing.
    monkeypatch.setattr(sweepjax.flows.runner, "CHECKPOINT_SHARE", 1.0)
    store = str(tmp_path / "s.db")
    walls = []

    def crash(sid, rep):
        walls.append(rep.elapsed_s)
        if len(walls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sweepjax.coarse(**ARGS, store=store, callbacks=Callbacks(progress=crash))
    assert timed_parts == []  # the dead part returned nothing
    with Store.open(store) as st:
        counted = st.run_timing("c1")["train_s"]
    assert counted == pytest.approx(walls[-1])
    res = sweepjax.coarse(**ARGS, store=store, resume=True)
    assert res.timing.train_s == pytest.approx(counted + timed_parts[0].train_s)


@pytest.mark.slow
def test_resume_on_another_device_count_is_refused(tmp_path):
    store = str(tmp_path / "s.db")
    with pytest.raises(SweepInterrupted):
        sweepjax.coarse(**ARGS, store=store, callbacks=_stop_after(1))
    with Store.open(store) as st:  # as if it had run on two devices
        st.set_timing("c1", {**st.run_timing("c1"), "devices": 2})
    with pytest.raises(ConfigError, match=r"ran on 2 device\(s\), this run has 1; .*`devices` 2"):
        sweepjax.coarse(**ARGS, store=store, resume=True)
    with Store.open(store) as st:
        assert st.sweep_row("c1").status == "interrupted"  # nothing changed


def test_report_module_that_fails_to_import_fails_loudly(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "sweepjax.report", None)  # import raises ImportError
    store = str(tmp_path / "s.db")
    with pytest.raises(SweepjaxError, match="install is broken") as e:
        sweepjax.coarse(**{**ARGS, "report": True}, store=store)
    assert isinstance(e.value.__cause__, ImportError)
    with Store.open(store) as st:  # the results are stored all the same
        assert st.sweep_row("c1").status == "finished"
