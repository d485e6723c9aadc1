"""The SQLite store: round trips, atomic writes, refusals that leave files untouched."""

from __future__ import annotations

import dataclasses
import sqlite3
from typing import NamedTuple

import jax
import numpy as np
import pytest

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.engine.curves import Checkpoint, Curves, ScheduleState
from sweepjax.engine.hparams import HParams
from sweepjax.errors import StoreError
from sweepjax.results.records import BoundaryFlag, MemberRecord, SweepResult, TimingRecord, Winner
from sweepjax.store import space
from sweepjax.store.db import SCHEMA_VERSION, Store
from tests.helpers import sweep_config


def make_result(sid: str, m: int = 6, e: int = 4, seed: int = 0) -> SweepResult:
    rng = np.random.default_rng(seed)
    curves = Curves(
        np.arange(1, e + 1, dtype=np.int64) * 10,
        *(rng.random((m, e), dtype=np.float32) for _ in range(5)),
    )
    curves.val_loss[1, 2:] = np.nan  # member 1 diverged after its 2nd evaluation
    members = [
        MemberRecord(
            i,
            float(10 ** -rng.uniform(1, 3)),
            float(10 ** -rng.uniform(2, 6)),
            1.0,
            "diverged" if i == 1 else "ok",
            25 if i == 1 else None,
            float(rng.random()),
            30,
            None if i == 1 else 0.5,
            0.6,
            0.7,
            0.8,
            0.9 if i == 0 else None,
        )
        for i in range(m)
    ]
    w = members[0]
    return SweepResult(
        sid,
        "coarse",
        None,
        {"name": "toy", "sha256": "ab"},
        {"lr": [1e-3, 1e-1], "l2": [1e-6, 1e-2]},
        sweep_config(trials=m),
        members,
        Winner(w.id, w.lr, w.l2, w.best_val_acc, 0.9),
        [BoundaryFlag("lr", "high", 0)],
        TimingRecord(1.0, 2.0, 3.0),
        curves,
        refinement=None,
    )


def new_sweep(st: Store, res: SweepResult, name=None, parent=None) -> str:
    return st.create_sweep(
        res.kind, res.config, res.dataset, res.space, len(res.members), 40, parent=parent, name=name
    )


def stored(path, res: SweepResult | None = None) -> SweepResult:
    """A new store at ``path`` holding ``res`` (default: a 3-member result), closed: the
    starting point of a migration test."""
    res = make_result("x", m=3) if res is None else res
    with Store.open(path, create=True) as st:
        res.sweep_id = new_sweep(st, res)
        st.save_results(res)
    return res


def test_round_trip(tmp_path):
    res = make_result("ignored")
    params = {
        0: {
            "out": {
                "kernel": np.arange(6, dtype=np.float32).reshape(2, 3),
                "bias": np.zeros(2, np.float32),
            }
        }
    }
    with Store.open(tmp_path / "s.db", create=True) as st:
        sid = new_sweep(st, res)
        assert sid == "c1"
        res.sweep_id = sid
        st.save_results(res, params)
    with Store.open(tmp_path / "s.db") as st:
        back = st.load_sweep("c1")
        assert back.status == "finished"
        assert back.members == res.members
        assert back.winner == res.winner
        assert back.boundary == res.boundary
        assert back.timing == res.timing
        assert back.space == res.space and back.config == res.config
        for a, b in zip(back.curves, res.curves, strict=True):
            np.testing.assert_array_equal(a, b)  # exact, NaN included
        np.testing.assert_array_equal(
            back.winner_params["out"]["kernel"], params[0]["out"]["kernel"]
        )
        assert st.newest("coarse") == "c1" and st.newest("fine") is None
        row = st.list_sweeps()[0]
        assert (row.id, row.status, row.best_val_acc) == (
            "c1",
            "finished",
            res.members[0].best_val_acc,
        )
        assert row.versions["numpy"] == np.__version__


def test_ids_names_and_parents(tmp_path):
    res = make_result("x")
    with Store.open(tmp_path / "s.db", create=True) as st:
        assert new_sweep(st, res) == "c1"
        assert new_sweep(st, res, name="c2") == "c2"  # a name that looks like an id
        assert new_sweep(st, res) == "c3"  # auto ids skip taken names
        with pytest.raises(StoreError, match="already exists"):
            new_sweep(st, res, name="c2")
        with pytest.raises(StoreError, match="not valid"):
            new_sweep(st, res, name="bad name!")
        fine = sweep_config(kind="fine", parent="c1")
        f = st.create_sweep("fine", fine, {}, {"lr": [1e-2, 1e-1]}, 1, 10, parent="c1")
        assert f == "f1"
        res.sweep_id, res.kind, res.parent = f, "fine", "c1"
        st.save_results(res)
        assert st.load_sweep("f1").parent_spaces == [("c1", res.space)]
        with pytest.raises(StoreError, match="no sweep 'zz'"):
            st.load_sweep("zz")


class State(NamedTuple):
    w: np.ndarray
    alive: np.ndarray
    step: np.ndarray


def test_checkpoint_round_trip_exact_and_replaced(tmp_path):
    rng = np.random.default_rng(1)
    states = State(
        rng.normal(size=(5, 3, 2)).astype(np.float32),
        np.array([1, 0, 1, 1, 0], bool),
        np.arange(5, dtype=np.int32),
    )
    curves = Curves(np.array([10, 20]), *(rng.random((5, 2), dtype=np.float32) for _ in range(5)))
    with Store.open(tmp_path / "s.db", create=True) as st:
        sid = new_sweep(st, make_result("x", m=5))
        assert st.load_checkpoint(sid, states) is None
        # A scheduler's state: members 1 and 3 stopped at step 10, a PBT copy recorded.
        hp = HParams.create(lr=np.geomspace(1e-3, 1, 5), l2=1e-4)
        sched = ScheduleState.start(hp)._replace(
            active=np.array([0, 2, 4]),
            stopped_at=np.array([-1, 10, -1, 10, -1], np.int32),
            lineage=np.array([[10, 4, 0]], np.int64),
        )
        st.save_checkpoint(sid, Checkpoint(10, states, curves, sched))
        st.save_checkpoint(sid, Checkpoint(20, states, curves, sched))
        ck = st.load_checkpoint(sid, states)
        assert ck.step == 20 and st.sweep_row(sid).steps_done == 20
        for a, b in zip(ck.schedule, sched, strict=True):
            for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
                np.testing.assert_array_equal(x, y)  # HParams' fields, the user's included
        # A compacted population (fewer rows than members) loads too.
        few = State(states.w[:3], states.alive[:3], states.step[:3])
        st.save_checkpoint(sid, Checkpoint(30, few, curves, sched))
        assert st.load_checkpoint(sid, states).states.w.shape == (3, 3, 2)
        st.save_checkpoint(sid, Checkpoint(20, states, curves, sched))
        ck = st.load_checkpoint(sid, states)
        for a, b in zip(ck.states, states, strict=True):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        for a, b in zip(ck.curves, curves, strict=True):
            np.testing.assert_array_equal(a, b)
        assert st.conn.execute("SELECT COUNT(*) FROM checkpoints").fetchone()[0] == 1
        with pytest.raises(StoreError, match="does not match"):
            st.load_checkpoint(sid, State(states.w[:, :2], states.alive, states.step))


def test_large_sweep_is_written_in_one_transaction(tmp_path):
    """1000 members x 50 evaluations (curves, members) commit as ONE transaction: one
    BEGIN, one COMMIT, so the write costs one sync whatever the population (a structural
    claim; how fast that is belongs to the benchmarks, not to a timed test)."""
    res = make_result("x", m=1000, e=50)
    with Store.open(tmp_path / "s.db", create=True) as st:
        res.sweep_id = new_sweep(st, res)
        stmts: list[str] = []
        st.conn.set_trace_callback(stmts.append)
        st.save_results(res)
        st.conn.set_trace_callback(None)
        back = st.load_sweep(res.sweep_id)
    words = [s.split()[0].upper() for s in stmts if s.strip()]
    assert words.count("BEGIN") == 1 and words.count("COMMIT") == 1, words[:5]
    assert words[0] == "BEGIN" and words[-1] == "COMMIT"
    np.testing.assert_array_equal(back.curves.val_acc, res.curves.val_acc)


def test_failed_write_leaves_sweep_unfinished(tmp_path):
    """A crash in the middle of writing results never leaves a finished-looking sweep."""
    res = make_result("x")
    with Store.open(tmp_path / "s.db", create=True) as st:
        res.sweep_id = new_sweep(st, res)
        bad = make_result(res.sweep_id)
        bad.members.append(bad.members[0])  # duplicate (sweep, id): fails mid-transaction
        bad.curves = None
        with pytest.raises(sqlite3.IntegrityError):
            st.save_results(bad)
        back = st.load_sweep(res.sweep_id)
        assert back.status == "running" and back.members == [] and back.winner is None


def test_readers_see_committed_state_while_a_writer_holds_a_transaction(tmp_path):
    path = tmp_path / "s.db"
    with Store.open(path, create=True) as writer, Store.open(path) as reader:
        res = make_result("x")
        res.sweep_id = new_sweep(writer, res)
        with writer.transaction() as c:
            c.execute("UPDATE sweeps SET status='finished' WHERE id=?", (res.sweep_id,))
            # WAL: the reader is not blocked and sees the last committed state
            assert [r.status for r in reader.list_sweeps()] == ["running"]
        assert [r.status for r in reader.list_sweeps()] == ["finished"]
        assert writer.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_refusals_leave_files_untouched(tmp_path):
    missing = tmp_path / "none.db"
    with pytest.raises(StoreError, match="no sweepjax store"):
        Store.open(missing)
    assert not missing.exists()

    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    other = tmp_path / "other.db"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE t (x)")
    con.commit()
    con.close()
    newer = tmp_path / "newer.db"
    Store.open(newer, create=True).close()
    con = sqlite3.connect(newer)
    con.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    con.commit()
    con.close()
    for path, msg in (
        (junk, "not an SQLite"),
        (other, "not a sweepjax store"),
        (newer, "newer than this sweepjax"),
    ):
        before = path.read_bytes()
        for create in (False, True):
            with pytest.raises(StoreError, match=msg):
                Store.open(path, create=create)
        assert path.read_bytes() == before


def test_a_version_1_store_is_migrated_on_open(tmp_path):
    """Stores written before schedulers (no stopped_at, no lineage) open and read as
    before: their members were never stopped by a scheduler."""
    path = tmp_path / "old.db"
    res = stored(path)
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE members DROP COLUMN stopped_at")
    conn.execute("ALTER TABLE sweeps DROP COLUMN schedule")
    for table, col in _V3_COLUMNS:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Store.open(path) as st:
        assert st.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        back = st.load_sweep(res.sweep_id)
    assert [m.stopped_at for m in back.members] == [None, None, None]
    assert back.lineage == [] and [m.id for m in back.members] == [0, 1, 2]


_V5_COLUMNS = tuple(
    ("members", c) for c in ("hidden", "dropout", "init_scale", "momentum", "hparams")
)
_V4_COLUMNS = (("members", "config"), ("members", "replica"), *_V5_COLUMNS)
_V3_COLUMNS = (
    ("members", "val_acc_se"),
    ("sweeps", "verdict"),
    ("sweeps", "refit"),
    *_V4_COLUMNS,
)


def test_a_version_2_store_is_migrated_and_its_scores_get_their_se(tmp_path):
    """A v2 store (before SEs, tied sets and verdicts) opens as v3: every member's SE is
    the binomial one on the stored validation size, sqrt(p (1 - p) / n) with p shrunk by
    half an example; no tied set, no verdict; the new fields round-trip afterwards."""
    path = tmp_path / "v2.db"
    res = make_result("x", m=3)
    res.dataset = {"name": "toy", "sha256": "ab", "n_val": 400}
    stored(path, res)
    conn = sqlite3.connect(path)
    for table, col in _V3_COLUMNS:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store.open(path) as st:
        assert st.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        back = st.load_sweep(res.sweep_id)
        assert back.tied == [] and back.verdict is None and back.winner.refit_test_acc is None
        for m in back.members:
            p = (m.best_val_acc * 400 + 0.5) / 401
            assert m.val_acc_se == pytest.approx(np.sqrt(p * (1 - p) / 400), rel=1e-12)
        # New results written after the migration keep the new fields.
        res.tied = [0, 2]
        res.members = [
            dataclasses.replace(m, val_acc_se=0.01 * (i + 1)) for i, m in enumerate(res.members)
        ]
        st.save_results(res)
        st.set_refit(res.sweep_id, 123, 0.875)
        back = st.load_sweep(res.sweep_id)
    assert back.tied == [0, 2]
    assert [m.val_acc_se for m in back.members] == [0.01, 0.02, 0.03]
    assert (back.winner.refit_steps, back.winner.refit_test_acc) == (123, 0.875)


def test_a_version_3_store_is_migrated_and_replicas_reload_grouped(tmp_path):
    """A v3 store (before replicas) opens as v4 with no configs; a sweep with replicas
    round-trips its grouping: the configs reloaded (mean, std, rank, member ids) equal
    those computed from the records before storing, and the winner is its config's mean."""
    from sweepjax.results.config_groups import configs_of

    path = tmp_path / "v3.db"
    res = make_result("x", m=3)
    res.dataset = {"name": "toy", "sha256": "ab", "n_val": 400, "n_train": 1000}
    stored(path, res)
    conn = sqlite3.connect(path)
    for table, col in _V4_COLUMNS:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    conn.execute("PRAGMA user_version = 3")
    conn.commit()
    conn.close()
    with Store.open(path) as st:
        assert st.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        back = st.load_sweep(res.sweep_id)
        assert back.configs == [] and all(m.config is None for m in back.members)
        # Now as 2 configs x 2 replicas (ids c * 2 + r).
        res2 = make_result("y", m=4)
        res2.dataset = res.dataset
        res2.config = dataclasses.replace(res2.config, replicas=2)
        res2.members = [
            dataclasses.replace(m, config=m.id // 2, replica=m.id % 2) for m in res2.members
        ]
        res2.sweep_id = new_sweep(st, res2)
        want = configs_of(res2.members, res2.config, res2.dataset)
        st.save_results(res2)
        back = st.load_sweep(res2.sweep_id)
    assert back.configs == want and [c.members for c in want] == [[0, 1], [2, 3]]
    accs = [[m.best_val_acc for m in res2.members[2 * c : 2 * c + 2]] for c in range(2)]
    for c, a in zip(want, accs, strict=True):
        assert c.mean_val_acc == pytest.approx(np.mean(a)) and c.std_val_acc == pytest.approx(
            np.std(a)
        )
    assert back.winner.config == 0 and back.winner.val_acc == pytest.approx(np.mean(accs[0]))


def test_a_version_4_store_is_migrated_and_members_read_their_fixed_axes(tmp_path):
    """A v4 store (before the width / dropout / init scale / momentum columns) opens as v5:
    each old member reads the values it trained with, from its sweep's config (an MLP's
    full width, no dropout, init scale 1, the optimizer's momentum; no width for softmax,
    no momentum for sgd). Members written afterwards round-trip their own values."""
    path = tmp_path / "v4.db"
    mlp = make_result("x", m=3)
    mlp.config = sweep_config(
        model=ModelConfig("mlp", hidden=64), train=TrainConfig(optimizer="momentum", momentum=0.95)
    )
    soft = make_result("y", m=2)
    soft.config = sweep_config(model=ModelConfig("softmax"), train=TrainConfig(optimizer="sgd"))
    with Store.open(path, create=True) as st:
        for res in (mlp, soft):
            res.sweep_id = new_sweep(st, res)
            st.save_results(res)
    conn = sqlite3.connect(path)
    for table, col in _V5_COLUMNS:
        conn.execute(f"ALTER TABLE {table} DROP COLUMN {col}")
    conn.execute("PRAGMA user_version = 4")
    conn.commit()
    conn.close()
    with Store.open(path) as st:
        assert st.conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 7
        a, b = st.load_sweep(mlp.sweep_id), st.load_sweep(soft.sweep_id)
        axes = ("hidden", "dropout", "init_scale", "momentum")
        assert {tuple(getattr(m, n) for n in axes) for m in a.members} == {(64, 0.0, 1.0, 0.95)}
        assert {tuple(getattr(m, n) for n in axes) for m in b.members} == {(None, 0.0, 1.0, None)}
        # Everything else reads as before the migration.
        strip = dict.fromkeys(axes)
        assert [dataclasses.replace(m, **strip) for m in a.members] == mlp.members
        # New members keep their own values, ints stay ints.
        mlp.members = [
            dataclasses.replace(m, hidden=8 + i, dropout=0.1 * i, init_scale=0.5, momentum=0.6)
            for i, m in enumerate(mlp.members)
        ]
        st.save_results(mlp)
        back = st.load_sweep(mlp.sweep_id)
    assert back.members == mlp.members
    assert [type(m.hidden) for m in back.members] == [int] * 3


def _big_checkpoint(m: int = 5, mb: float = 4.0) -> Checkpoint:
    """A checkpoint of about ``mb`` MB (random floats: msgpack cannot shrink them)."""
    rng = np.random.default_rng(2)
    n = int(mb * 1e6 / 4 / m)
    states = State(
        rng.normal(size=(m, n)).astype(np.float32), np.ones(m, bool), np.arange(m, dtype=np.int32)
    )
    curves = Curves(np.array([10]), *(rng.random((m, 1), dtype=np.float32) for _ in range(5)))
    return Checkpoint(10, states, curves, ScheduleState.start(HParams.create(lr=np.ones(m), l2=0)))


def _files(path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def test_the_store_gives_back_a_finished_sweeps_checkpoint(tmp_path):
    """A finished sweep's checkpoint is dropped with its results; give_back returns its
    pages to the disk and truncates the WAL: the files shrink from ~8 MB (the checkpoint
    in the WAL and in the database) to what the rows take."""
    path = tmp_path / "s.db"
    res = make_result("x", m=5)
    with Store.open(path, create=True) as st:
        assert st.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
        res.sweep_id = new_sweep(st, res)
        st.save_checkpoint(res.sweep_id, _big_checkpoint())
        st.conn.execute("PRAGMA wal_checkpoint(PASSIVE)")  # as auto-checkpoints do
        sizes = space.sizes(st.conn)
        assert 4.0e6 <= sizes["c1"] <= 4.2e6  # its checkpoint's bytes
        st.save_results(res)
        full = _files(path)
        assert full > 4e6  # today's store keeps this: the pages of a dropped checkpoint
        given = space.give_back(st.conn, st.path)
        assert st.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert space.sizes(st.conn)["c1"] < 20_000  # rows and curves only
    assert given >= 4e6 and _files(path) < 200_000
    assert not (tmp_path / "s.db-wal").exists() or (tmp_path / "s.db-wal").stat().st_size == 0


def test_a_store_without_auto_vacuum_is_converted_once(tmp_path):
    """A store made before incremental vacuum (auto_vacuum off) is converted by one
    VACUUM when it holds a megabyte of free pages; its sweeps read as before."""
    path = tmp_path / "old.db"
    res = make_result("x", m=5)
    con = sqlite3.connect(path, isolation_level=None)
    from sweepjax.store import schema

    schema.create(con)
    con.execute("PRAGMA auto_vacuum = NONE")
    con.execute("VACUUM")  # as stores were made before
    con.close()
    with Store.open(path) as st:
        assert st.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 0
        res.sweep_id = new_sweep(st, res)
        st.save_checkpoint(res.sweep_id, _big_checkpoint(mb=2))
        st.save_results(res)
        assert space.give_back(st.conn, st.path) > 1e6
        assert st.conn.execute("PRAGMA auto_vacuum").fetchone()[0] == 2
        assert st.conn.execute("PRAGMA freelist_count").fetchone()[0] == 0
        assert st.load_sweep("c1").members == res.members
