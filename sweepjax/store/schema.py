"""The store's SQLite schema: the tables, the version checks on open, and the migrations
that bring an older store up to date (:class:`sweepjax.store.db.Store` reads and writes it).

Tables (schema version in ``PRAGMA user_version``, sweepjax files marked by
``PRAGMA application_id``):

- ``sweeps``: id, kind, parent, the resolved config (JSON), dataset identity, library
  versions, status (``running`` | ``interrupted`` | ``finished``), times, and the
  summary (space, winner, boundary flags, timing, refinement, report path, the tied set
  and the response-surface verdict, the winner's refit).
- ``members``: one row per member: hyperparameters (every per-member axis: lr, l2,
  lr_decay; v5: hidden, dropout, init_scale, momentum), status, metrics (accuracy SE),
  test accuracy (winner only), the config it is a replica of (v4; NULL without replicas
  or folds); v7: the user's own hyperparameters (``hparams``, JSON; NULL: none).
- ``curves``: one row per member; every evaluation as float32 blobs ``[E]`` (the
  evaluation steps are stored once per sweep). A 1000 x 50 sweep is ~1000 small rows.
- ``params``: learned parameters (msgpack) of the winner and the next few members.
- ``checkpoints``: the latest population checkpoint of an unfinished sweep, replaced
  between chunks (throttled: see ``runner.CHECKPOINT_SHARE``) and dropped when the sweep
  finishes.
- Space: new stores use incremental auto-vacuum; at the end of each sweep
  :func:`~sweepjax.store.space.give_back` returns the free pages (a finished sweep's
  dropped checkpoint) to the filesystem and truncates the WAL. A store made before this
  (no auto-vacuum) is converted by one ``VACUUM`` at the end of a sweep once it holds a
  megabyte of free pages and the disk has room for the copy.
- ``live`` (v6): a running sweep's progress, one row per written chunk (throttled to
  about one a second: see :mod:`sweepjax.store.live`): step, elapsed seconds, ETA,
  members active and alive, best so far; the newest row also holds a decimated
  snapshot of the members (``payload``: zlib-compressed JSON) for ``sweepjax watch``.

Migrations only add columns and tables (old sweeps read as before), in one transaction.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from sweepjax.errors import StoreError
from sweepjax.results.records import EXTRA_AXES, fixed_axes
from sweepjax.sweep_config import SweepConfig

SCHEMA_VERSION = 7
APPLICATION_ID = 0x53574A58  # "SWJX"

# The members table's columns, in the order rows are written and read (by name, so a
# migrated table whose added columns sit at its end reads the same).
MEMBER_COLUMNS = (
    "sweep",
    "id",
    "lr",
    "l2",
    "lr_decay",
    "status",
    "diverged_at",
    "best_val_acc",
    "best_step",
    "final_train_loss",
    "final_val_loss",
    "final_train_acc",
    "final_val_acc",
    "test_acc",
    "stopped_at",
    "val_acc_se",
    "config",
    "replica",
    *EXTRA_AXES,
    "hparams",
)

SCHEMA = """
CREATE TABLE sweeps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    parent TEXT,
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    dataset TEXT NOT NULL,
    space TEXT NOT NULL,
    versions TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    finished REAL,
    host TEXT,
    pid INTEGER,
    num_members INTEGER NOT NULL,
    total_steps INTEGER NOT NULL,
    steps_done INTEGER NOT NULL DEFAULT 0,
    winner INTEGER,
    boundary TEXT,
    timing TEXT,
    refinement TEXT,
    curve_steps BLOB,
    report TEXT,
    schedule TEXT,
    verdict TEXT,
    refit TEXT
);
CREATE TABLE members (
    sweep TEXT NOT NULL REFERENCES sweeps(id),
    id INTEGER NOT NULL,
    lr REAL NOT NULL, l2 REAL NOT NULL, lr_decay REAL NOT NULL,
    status TEXT NOT NULL,
    diverged_at INTEGER,
    best_val_acc REAL, best_step INTEGER,
    final_train_loss REAL, final_val_loss REAL, final_train_acc REAL, final_val_acc REAL,
    test_acc REAL,
    stopped_at INTEGER,
    val_acc_se REAL,
    config INTEGER,
    replica INTEGER,
    hidden INTEGER, dropout REAL, init_scale REAL, momentum REAL,
    hparams TEXT,
    PRIMARY KEY (sweep, id)
);
CREATE TABLE curves (
    sweep TEXT NOT NULL REFERENCES sweeps(id),
    member INTEGER NOT NULL,
    train_loss BLOB, val_loss BLOB, val_acc BLOB, train_acc BLOB, update_ratio BLOB,
    PRIMARY KEY (sweep, member)
);
CREATE TABLE params (
    sweep TEXT NOT NULL REFERENCES sweeps(id),
    member INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    blob BLOB NOT NULL,
    PRIMARY KEY (sweep, member)
);
CREATE TABLE checkpoints (
    sweep TEXT PRIMARY KEY REFERENCES sweeps(id),
    step INTEGER NOT NULL,
    blob BLOB NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE live (
    sweep TEXT NOT NULL REFERENCES sweeps(id),
    seq INTEGER NOT NULL,
    wall REAL NOT NULL,
    step INTEGER NOT NULL,
    total_steps INTEGER NOT NULL,
    elapsed_s REAL NOT NULL,
    eta_s REAL,
    active INTEGER NOT NULL,
    alive INTEGER NOT NULL,
    num_members INTEGER NOT NULL,
    best_val_acc REAL,
    best_full_val_acc REAL,
    spent REAL,
    payload BLOB,
    PRIMARY KEY (sweep, seq)
);
"""

# (IF NOT EXISTS: a store whose version was lowered by hand may hold it already.)
LIVE_TABLE = (
    SCHEMA[SCHEMA.index("CREATE TABLE live") :]
    .strip()
    .rstrip(";")
    .replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1)
)

_EXTRA_AXIS_TYPES = {
    "hidden": "INTEGER",
    "dropout": "REAL",
    "init_scale": "REAL",
    "momentum": "REAL",
}


def check(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a file that is not a sweepjax store or has a newer schema (nothing written);
    migrate an older one."""
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        ver = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError:
        raise StoreError(
            f"{path} is not a sweepjax store (not an SQLite database); pass another `store`"
        ) from None
    if app != APPLICATION_ID:
        raise StoreError(f"{path} is an SQLite file but not a sweepjax store; pass another `store`")
    if ver > SCHEMA_VERSION:
        raise StoreError(
            f"store {path} has schema version {ver}, newer than this sweepjax supports "
            f"({SCHEMA_VERSION}); upgrade sweepjax (pip install -U sweepjax)"
        )
    if ver < SCHEMA_VERSION:
        migrate(conn, ver)


def migrate(conn: sqlite3.Connection, ver: int) -> None:
    """Bring an older store up to date in one transaction (columns and tables are only
    added, so older sweeps read as before: not stopped by a scheduler, no lineage, no
    live progress)."""
    with transaction(conn):
        if ver < 2:
            conn.execute("ALTER TABLE members ADD COLUMN stopped_at INTEGER")
            conn.execute("ALTER TABLE sweeps ADD COLUMN schedule TEXT")
        if ver < 3:  # v3: scores with SEs, the tied set and the model's verdict, refit
            conn.execute("ALTER TABLE members ADD COLUMN val_acc_se REAL")
            conn.execute("ALTER TABLE sweeps ADD COLUMN verdict TEXT")
            conn.execute("ALTER TABLE sweeps ADD COLUMN refit TEXT")
        if ver < 4:  # v4: replicas / folds (the config a member is a replica of)
            conn.execute("ALTER TABLE members ADD COLUMN config INTEGER")
            conn.execute("ALTER TABLE members ADD COLUMN replica INTEGER")
        if ver < 5:  # v5: width, dropout, init scale, momentum per member
            for name in EXTRA_AXES:
                conn.execute(f"ALTER TABLE members ADD COLUMN {name} {_EXTRA_AXIS_TYPES[name]}")
            _fill_fixed_axes(conn)
        if ver < 6:  # v6: live progress of running sweeps (``sweepjax watch``)
            conn.execute(LIVE_TABLE)
        if ver < 7:  # v7: the user's own hyperparameters per member (JSON; NULL: none)
            have = {row[1] for row in conn.execute("PRAGMA table_info(members)")}
            if "hparams" not in have:
                conn.execute("ALTER TABLE members ADD COLUMN hparams TEXT")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


def _fill_fixed_axes(conn: sqlite3.Connection) -> None:
    """Members stored before v5 trained every one of them at the sweep's fixed value
    (its network's width, no dropout, init scale 1, the optimizer's momentum): write
    those, so an old member reads as what it was."""
    sets = ", ".join(f"{n}=?" for n in EXTRA_AXES)
    for sid, config in conn.execute("SELECT id, config FROM sweeps").fetchall():
        vals = fixed_axes(SweepConfig.from_dict(json.loads(config)))
        conn.execute(
            f"UPDATE members SET {sets} WHERE sweep=?", (*(vals[n] for n in EXTRA_AXES), sid)
        )


def create(conn: sqlite3.Connection) -> None:
    """A new store: incremental auto-vacuum (set before any table exists, so the pages of
    dropped checkpoints can be given back: :func:`sweepjax.store.space.give_back`), WAL
    journaling, the tables, the marks."""
    conn.execute("PRAGMA auto_vacuum = INCREMENTAL")
    conn.execute("PRAGMA journal_mode = WAL")
    with transaction(conn):
        for stmt in SCHEMA.split(";"):
            if stmt.strip():
                conn.execute(stmt)
        conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")


@contextmanager
def transaction(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception (autocommit connection),
    a failed COMMIT included (a full disk fails there). SQLite may already have rolled
    back on its own (it does on SQLITE_FULL): the first error is the one raised."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            with suppress(sqlite3.Error):
                conn.execute("ROLLBACK")
        raise
