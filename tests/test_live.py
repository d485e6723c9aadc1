"""Live progress in the store (sweepjax.store.live): what a running sweep writes between
chunks, how often (the throttle, on a fake clock), what another reader gets back, the
v5 -> v6 migration, and the decimated snapshot of a 4,096-member population."""

from __future__ import annotations

import math
import os
import re
import sqlite3
import subprocess
import sys

import numpy as np
import pytest

from sweepjax.engine.curves import Curves, ScheduleState
from sweepjax.engine.hparams import HParams
from sweepjax.engine.outcome import AnytimeStatus, ChunkReport
from sweepjax.store import live_snapshot
from sweepjax.store.db import SCHEMA_VERSION, Store
from sweepjax.store.live import (
    LiveWriter,
    newest_payload,
    newest_rows,
    progress,
    sweep_state,
)
from sweepjax.store.live_snapshot import (
    CURVE_POINTS,
    DIVERGED,
    STOPPED,
    SURFACE_POINTS,
    TOP_CURVES,
    TRAINING,
    TYPICAL_CURVES,
)
from tests.test_store import make_result, new_sweep, stored


class FakeClock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def population(m: int, e: int, seed: int = 0):
    """Curves ``[m, e]`` and a schedule state: every third member training, member 1
    stopped by a scheduler, member 2 diverged (flagged), member 3 active with a NaN
    newest evaluation (diverged in this block)."""
    rng = np.random.default_rng(seed)
    hp = HParams.create(lr=10 ** rng.uniform(-4, 0, m), l2=10 ** rng.uniform(-6, -1, m))
    va = rng.uniform(0.1, 0.9, (m, e)).astype(np.float32)
    tl = rng.uniform(0.1, 2.0, (m, e)).astype(np.float32)
    active = np.array(sorted({0, 3, *range(0, m, 3)} - {1, 2}), np.int64)
    inactive = np.setdiff1d(np.arange(m), active)
    va[inactive, e // 2 :] = np.nan  # stopped half-way
    va[3, -1] = np.nan
    sched = ScheduleState.start(hp)
    stopped = np.full(m, -1, np.int32)
    stopped[1] = 10
    alive = np.ones(m, bool)
    alive[2] = False
    sched = sched._replace(active=active, stopped_at=stopped, alive=alive)
    curves = Curves(np.arange(1, e + 1, dtype=np.int64) * 10, tl, tl, va, va, tl)
    return curves, sched


def report(step, total=300, elapsed=None, curves=None, sched=None, best=0.5, anytime=None):
    m = curves.val_acc.shape[0] if curves is not None else 8
    return ChunkReport(
        step=step,
        total_steps=total,
        alive=m - 1,
        active=m // 2,
        num_members=m,
        best_val_acc=best,
        best_full_val_acc=float("nan"),
        elapsed_s=float(step) / 10 if elapsed is None else elapsed,
        decided=False,
        state_bytes=0,
        checkpoint=lambda: None,
        anytime=anytime,
        curves=curves,
        schedule=sched,
    )


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "s.db", create=True) as st:
        st.sid = new_sweep(st, make_result("x", m=8))
        yield st


def test_throttle_writes_first_last_and_one_per_interval(store):
    clock = FakeClock()
    w = LiveWriter(store, store.sid, clock=clock)
    written = []
    for step in range(10, 310, 10):  # a chunk every 0.3 s
        if w.update(report(step)):
            written.append(step)
        clock.t += 0.3
    # First, then every 4th chunk (1.2 s >= 1 s since the last write), then the last.
    assert written == [10, 50, 90, 130, 170, 210, 250, 290, 300]
    assert [r.step for r in progress(store.conn, store.sid)] == written
    assert w.count == len(written) and w.flush() is False  # nothing pending


def test_throttle_keeps_writes_under_their_share(store):
    clock = FakeClock()

    class Slow(LiveWriter):
        def payload(self, rep):
            clock.t += 0.1  # each write costs 0.1 s
            return super().payload(rep)

    w = Slow(store, store.sid, clock=clock)
    for step in range(10, 300, 10):  # a chunk every 0.5 s, never the last
        w.update(report(step))
        clock.t += 0.5
    # After the first write the gap must be 0.98 / 0.02 * 0.1 = 4.9 s: ten chunks.
    assert [r.step for r in progress(store.conn, store.sid)] == [10, 110, 210]
    assert w.spent == pytest.approx(0.3)
    # The sweep stops between writes: flush stores the newest chunk.
    assert w.flush() is True
    assert progress(store.conn, store.sid)[-1].step == 290


def test_round_trip_rows_payload_and_resume(store):
    clock = FakeClock()
    curves, sched = population(m=8, e=12)
    w = LiveWriter(store, store.sid, member_ids=np.arange(100, 108), clock=clock, wall=lambda: 5.0)
    w.update(report(100, elapsed=4.0, curves=curves, sched=sched, best=0.75))
    clock.t += 2
    w.update(report(200, elapsed=6.0, curves=curves, sched=sched, best=0.8125))
    rows = progress(store.conn, store.sid)
    assert [(r.seq, r.step, r.total_steps, r.elapsed_s, r.wall) for r in rows] == [
        (0, 100, 300, 4.0, 5.0),
        (1, 200, 300, 6.0, 5.0),
    ]
    first, last = rows
    assert first.eta_s is None  # no rate yet
    assert last.eta_s == pytest.approx((6.0 - 4.0) / 100 * 100)  # 0.02 s/step x 100 left
    assert (last.active, last.alive, last.num_members) == (4, 7, 8)
    assert last.best_val_acc == 0.8125 and last.best_full_val_acc is None and last.spent is None
    assert newest_rows(store.conn) == {store.sid: last}
    # Only the newest row keeps a payload.
    blobs = store.conn.execute("SELECT payload IS NOT NULL FROM live ORDER BY seq").fetchall()
    assert blobs == [(0,), (1,)]
    snap = newest_payload(store.conn, store.sid).snapshot
    assert snap.step == 200 and snap.num_members == 8
    assert snap.member == list(range(100, 108))  # the runner's member ids, not rows
    acc = curves.last_finite("val_acc")
    assert snap.acc == [pytest.approx(float(a), rel=1e-3) for a in acc]
    assert snap.status[1] == STOPPED and snap.status[2] == DIVERGED
    assert snap.status[3] == DIVERGED and snap.status[0] == TRAINING  # NaN in this block
    top = snap.curves[0]
    assert top.member == 100 + int(np.nanargmax(acc)) and top.role == "top"
    drawn = curves.val_acc[top.member - 100]
    assert top.val_acc == [pytest.approx(float(v), rel=1e-3) for v in drawn]
    assert sum(snap.counts.values()) == 8
    # Resumed (a new writer for the same sweep): the sequence and the clock continue.
    w2 = LiveWriter(store, store.sid, clock=clock)
    w2.update(report(250, elapsed=1.5))
    newest = progress(store.conn, store.sid)[-1]
    assert (newest.seq, newest.step, newest.elapsed_s) == (2, 250, 6.0 + 1.5)
    assert newest_payload(store.conn, store.sid).snapshot is None  # no curves handed


def test_anytime_rows_use_the_budget(store):
    a = AnytimeStatus(elapsed_s=15.0, member_steps=900, budget="60s", spent=0.25, finished=3,
                      best_member=7)  # fmt: skip
    w = LiveWriter(store, store.sid, clock=FakeClock())
    w.update(report(40, total=300, anytime=a))
    row = progress(store.conn, store.sid)[-1]
    assert (row.elapsed_s, row.spent, row.eta_s) == (15.0, 0.25, pytest.approx(45.0))
    assert newest_payload(store.conn, store.sid).anytime == {
        "budget": "60s",
        "finished": 3,
        "best_member": 7,
        "member_steps": 900,
    }
    assert w.update(report(41, total=41, anytime=a)) is False  # anytime: no "last" chunk


def test_progress_is_decimated_keeping_the_newest(store):
    clock = FakeClock()
    w = LiveWriter(store, store.sid, clock=clock)
    for step in range(1, 1001):
        w.update(report(step, total=5000))
        clock.t += 1.0
    rows = progress(store.conn, store.sid, points=200)
    assert len(rows) <= 201 and rows[0].seq == 0 and rows[-1].step == 1000
    assert all(a.seq < b.seq for a, b in zip(rows, rows[1:], strict=False))


def test_a_failed_write_turns_the_writer_off(store):
    w = LiveWriter(store, store.sid, clock=FakeClock())
    store.conn.execute("DROP TABLE live")
    assert w.update(report(10)) is False
    assert "live progress not written" in w.error
    assert w.update(report(20)) is False and w.flush() is False


def test_snapshot_of_4096_members_is_bounded():
    curves, sched = population(m=4096, e=500)
    snap = live_snapshot.of_running(curves, sched, np.arange(4096), step=5000)
    assert len(snap.curves) == TOP_CURVES + TYPICAL_CURVES
    assert len(snap.steps) == CURVE_POINTS and snap.steps[0] == 10 and snap.steps[-1] == 5000
    assert all(len(c.val_acc) == len(c.train_loss) == CURVE_POINTS for c in snap.curves)
    assert len(snap.member) == SURFACE_POINTS
    acc = curves.last_finite("val_acc")
    best = np.argsort(-acc)[:TOP_CURVES]
    assert [c.member for c in snap.curves if c.role == "top"] == list(best)
    assert set(best) <= set(snap.member)  # the best are always on the surface
    assert sum(snap.counts.values()) == 4096
    numbers = 4 * len(snap.member) + sum(2 * len(c.val_acc) for c in snap.curves)
    assert numbers < 15_000


def test_snapshot_of_a_stored_result(tmp_path):
    res = make_result("x", m=6, e=4)
    snap = live_snapshot.of_result(res)
    assert snap.acc_label == "best val acc" and snap.step == 40
    assert snap.status[1] == DIVERGED and snap.counts["ok"] == 5
    assert snap.curves[0].member == int(np.argmax(res.member_array("best_val_acc")))
    res.curves = None
    assert live_snapshot.of_result(res).curves == []


def test_migration_from_v5_adds_the_live_table(tmp_path):
    path = tmp_path / "old.db"
    res = stored(path)
    conn = sqlite3.connect(path)
    conn.execute("DROP TABLE live")
    conn.execute("PRAGMA user_version = 5")
    conn.commit()
    conn.close()
    with Store.open(path) as st:
        assert st.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        assert progress(st.conn, res.sweep_id) == []  # the old sweep: no live rows
        assert st.load_sweep(res.sweep_id).members == res.members
        LiveWriter(st, res.sweep_id, clock=FakeClock()).update(report(10))
        assert len(progress(st.conn, res.sweep_id)) == 1


def test_sweep_state_checks_the_process(store):
    row = store.sweep_row(store.sid)
    assert row.status == "running" and row.pid == os.getpid()
    assert sweep_state(row) == "running"
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    assert sweep_state(row._replace(pid=gone.pid)) == "interrupted"  # killed: resumable
    assert sweep_state(row._replace(status="interrupted")) == "interrupted"
    assert sweep_state(row._replace(status="finished")) == "done"
    assert sweep_state(row._replace(host="elsewhere", pid=1)) == "running"  # cannot tell


def test_a_sweep_writes_live_progress(tmp_path):
    import sweepjax

    db = tmp_path / "s.db"
    res = sweepjax.coarse(dataset="mnist-sample", trials=8, steps=40, batch_size=32,
                          schedule="full", eval_every=10, chunk_steps=10, store=str(db),
                          report=False)  # fmt: skip
    with Store.open(db) as st:
        rows = progress(st.conn, res.sweep_id)
        snap = newest_payload(st.conn, res.sweep_id).snapshot
    assert rows[0].step == 10 and rows[-1].step == 40 == rows[-1].total_steps  # first, last
    assert rows[-1].num_members == 8 and rows[-1].eta_s == 0.0
    assert all(math.isfinite(r.elapsed_s) for r in rows)
    best = max(m.best_val_acc for m in res.members)
    assert rows[-1].best_val_acc == pytest.approx(best, abs=0.2)
    assert snap.step == 40 and sorted(snap.member) == [m.id for m in res.members]
    assert snap.steps == [int(s) for s in res.curves.step]


# --------------------------------------------------------------------------- live page charts
def test_tick_labels_are_distinct():
    from sweepjax.report.svg import BOTTOM, H, Series, line_chart, nice_ticks

    svg = line_chart([Series("best", [5000, 12000, 20000], [0.5, 0.7, 0.8])], "step", "acc")
    xlabels = re.findall(rf'y="{H - BOTTOM + 14}" text-anchor="middle">([^<]*)<', svg)
    assert xlabels == ["5000", "1e4", "1.5e4", "2e4"]  # was 5000, 1e4, 2e4, 2e4
    from sweepjax.report.svg import tick_labels

    rng = np.random.default_rng(0)
    for _ in range(2000):
        lo = float(10 ** rng.uniform(-7, 7)) * rng.choice([-1, 1, 0])
        hi = lo + float(10 ** rng.uniform(-7, 8))
        ticks = nice_ticks(lo, hi)
        labels = tick_labels(ticks)
        assert len(set(labels)) == len(labels) == len(ticks), (lo, hi, labels)
        step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(ticks[0]) or 1.0
        for lab, t in zip(labels, ticks, strict=True):  # each label is its tick's value
            assert abs(float(lab) - t) <= 1e-6 * step, (lo, hi, labels)


def test_the_colour_scale_ignores_diverged_members():
    """One diverged member at 0.15 used to stretch the ramp so that every other point
    took its top colour."""
    from sweepjax.report.svg import RAMP, scatter

    acc = [0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.15]
    marks = [1, 1, 1, 1, 1, 1, DIVERGED]
    lr = [1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 1.0]
    svg = scatter(lr, lr, acc, marks, "lr", "l2", cross=DIVERGED, ring=STOPPED)
    assert ">0.900</text>" in svg and ">0.800</text>" in svg and "0.150" not in svg
    dots = re.findall(r'stroke="(#[0-9a-f]{6})" stroke-width="6"', svg)
    assert len(set(dots) & set(RAMP)) >= 5  # six members, spread over the ramp
    crosses = re.findall(r'<path d="([^"]*)" fill="none" stroke="#d62728"', svg)
    assert len(crosses) == 1 and crosses[0].count("M") == 1  # the diverged one, apart


def test_top_curves_follow_the_tables_ranking():
    """The live page's top members are ranked as the tables rank: training and finished
    before stopped before diverged, each by accuracy, then id; NaN never drawn."""
    acc = np.array([0.91, 0.9075, 0.9075, 0.99, np.nan])
    status = np.array([live_snapshot.STOPPED, live_snapshot.OK, live_snapshot.TRAINING,
                       live_snapshot.DIVERGED, live_snapshot.OK])  # fmt: skip
    top, rest = live_snapshot.pick_curves(acc, status, np.array([10, 12, 11, 13, 14]))
    assert top.tolist() == [2, 1, 0, 3] and rest.tolist() == []
