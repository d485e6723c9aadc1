"""The results store: one SQLite file (stdlib ``sqlite3``), the only module that writes it.

:class:`Store` opens, writes and reads it; the tables, the version checks and the
migrations are in :mod:`sweepjax.store.schema`, the conversions between records and rows
(member rows, curve blobs, msgpack parameters and checkpoints) in
:mod:`sweepjax.store.codec`.

Every write is one transaction, and ``status = 'finished'`` is set in the same
transaction as the results, so a crash never leaves a half-written sweep that looks
finished. WAL journaling lets ``list`` / ``show`` / ``report`` read while a sweep runs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

from sweepjax.engine.curves import Checkpoint
from sweepjax.errors import StoreError
from sweepjax.results.records import SweepResult
from sweepjax.store import activations, schema, space
from sweepjax.store.codec import (
    CURVE_FIELDS,
    checkpoint_blob,
    checkpoint_from_blob,
    dump_params,
)
from sweepjax.store.result_rows import read_result, write_result
from sweepjax.store.schema import APPLICATION_ID, SCHEMA_VERSION
from sweepjax.sweep_config import SweepConfig

DEFAULT_PATH = "sweepjax.db"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class SweepRow(NamedTuple):
    """A sweep's summary row (what ``list`` shows; cheap to read while it runs)."""

    id: str
    kind: str
    parent: str | None
    status: str
    config: SweepConfig  # typed: a key an older version did not store has its default
    dataset: dict
    space: dict
    versions: dict
    created: float
    updated: float
    finished: float | None
    host: str | None
    pid: int | None
    num_members: int
    total_steps: int
    steps_done: int
    winner: int | None
    best_val_acc: float | None
    report: str | None


def library_versions() -> dict[str, str]:
    """Versions of the libraries that produced a result (recorded with every sweep)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("jax", "jaxlib", "optax", "flax", "numpy", "sweepjax"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def default_path() -> str:
    """``$SWEEPJAX_STORE`` or ``./sweepjax.db``."""
    return os.environ.get("SWEEPJAX_STORE") or DEFAULT_PATH


class Store:
    """A sweepjax SQLite store. Open with :meth:`open`; use as a context manager.

    Example::

      with Store.open("sweepjax.db") as store:
          for row in store.list_sweeps():
              print(row.id, row.status)
          result = store.load_sweep("c1")
    """

    def __init__(self, conn: sqlite3.Connection, path: Path, shown_path: Path | None = None):
        self.conn = conn
        self.path = path
        # The path people see: another process's private copy (a multi-process run)
        # stands for the store at ``shown_path``.
        self.shown_path = shown_path or path

    # ------------------------------------------------------------------ open / close
    @classmethod
    def open(
        cls,
        path: str | os.PathLike | None = None,
        create: bool = False,
        shown_path: str | os.PathLike | None = None,
    ) -> Store:
        """Open the store at ``path`` (default :func:`default_path`).

        With ``create=False`` a missing file is an error; with ``create=True`` it is
        created (schema, WAL). An existing file is checked before anything is written:
        not SQLite, not a sweepjax store, or a newer schema raise :class:`StoreError`
        and leave the file untouched.
        """
        path = Path(path if path is not None else default_path())
        exists = path.exists() and path.stat().st_size > 0
        if path.is_dir():
            raise StoreError(f"store path {path} is a directory; pass `store` FILE.db")
        if not exists and not create:
            raise StoreError(
                f"no sweepjax store at {path}; run `sweepjax coarse` first or pass `store` PATH"
            )
        if not exists and not path.parent.is_dir():
            raise StoreError(
                f"cannot create store {path}: directory {path.parent} does not "
                "exist; create it or pass another `store`"
            )
        was_there = path.exists()
        try:
            conn = sqlite3.connect(path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open store {path} ({e}); pass another `store`") from None
        try:
            if exists:
                cls._check(conn, path)
            else:
                cls._create(conn)
            for pragma in ("foreign_keys = ON", "synchronous = NORMAL", space.WAL_LIMIT):
                conn.execute(f"PRAGMA {pragma}")
        except BaseException as e:
            conn.close()
            if not exists:  # nothing half-created is left behind
                space.remove_new(path, was_there)
            if space.disk_full(e):
                what = "a new store" if not exists else "the store's schema upgrade"
                raise space.full(path, path, what, space.NEW_STORE_BYTES) from None
            raise
        return cls(conn, path, Path(shown_path) if shown_path is not None else None)

    # The schema's checks and migrations (sweepjax.store.schema), kept under their old names.
    _check = staticmethod(schema.check)
    _migrate = staticmethod(schema.migrate)
    _create = staticmethod(schema.create)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self, what="an update", need=space.SMALL_WRITE_BYTES) -> Iterator:
        """One transaction; a full disk rolls it back: one line (:func:`.space.on_full`)."""
        full = space.on_full(self.shown_path, self.path, what, need)
        with full, schema.transaction(self.conn) as c:
            yield c

    # ------------------------------------------------------------------ ids
    def exists(self, sweep_id: str) -> bool:
        return (
            self.conn.execute("SELECT 1 FROM sweeps WHERE id=?", (sweep_id,)).fetchone() is not None
        )

    def next_id(self, kind: str) -> str:
        prefix = kind[0]
        n = self.conn.execute("SELECT COUNT(*) FROM sweeps WHERE kind=?", (kind,)).fetchone()[0]
        while self.exists(f"{prefix}{n + 1}"):
            n += 1
        return f"{prefix}{n + 1}"

    # ------------------------------------------------------------------ writes
    def create_sweep(
        self,
        kind: str,
        config: SweepConfig,
        dataset: dict,
        space: dict,
        num_members: int,
        total_steps: int,
        parent: str | None = None,
        name: str | None = None,
    ) -> str:
        """Insert a ``running`` sweep and return its id (``name``, or ``c<n>``/``f<n>``).

        Raises StoreError when ``name`` is taken or not a short typable name.
        """
        if name is not None and not NAME_RE.match(name):
            raise StoreError(
                f"sweep name {name!r} is not valid; use letters, digits, '_', '.', '-' "
                "(at most 64, starting with a letter or digit)"
            )
        now = time.time()
        with self.transaction("a new sweep") as c:
            if name is not None and self.exists(name):
                raise StoreError(
                    f"a sweep named {name!r} already exists in {self.path}; "
                    "pick another `name`, or add `resume` to continue it"
                )
            sweep_id = name or self.next_id(kind)
            c.execute(
                "INSERT INTO sweeps (id, kind, parent, status, config, dataset, space, "
                "versions, created, updated, host, pid, num_members, total_steps) "
                "VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sweep_id,
                    kind,
                    parent,
                    json.dumps(config.as_dict(), sort_keys=True),
                    json.dumps(dataset),
                    json.dumps(space),
                    json.dumps(library_versions()),
                    now,
                    now,
                    socket.gethostname(),
                    os.getpid(),
                    num_members,
                    total_steps,
                ),
            )
        return sweep_id

    def mark_running(self, sweep_id: str) -> None:
        """Claim an unfinished sweep for this process (on resume)."""
        with self.transaction(f"sweep {sweep_id}'s status") as c:
            c.execute(
                "UPDATE sweeps SET status='running', host=?, pid=?, updated=? WHERE id=?",
                (socket.gethostname(), os.getpid(), time.time(), sweep_id),
            )

    def mark_interrupted(self, sweep_id: str) -> None:
        with self.transaction(f"sweep {sweep_id}'s status") as c:
            c.execute(
                "UPDATE sweeps SET status='interrupted', updated=? WHERE id=?",
                (time.time(), sweep_id),
            )

    def save_checkpoint(self, sweep_id: str, ckpt: Checkpoint, timing: dict | None = None) -> None:
        """Replace the sweep's checkpoint with ``ckpt`` (atomically), and with it the
        ``timing`` so far (see :meth:`set_timing`) when given."""
        blob = checkpoint_blob(ckpt)
        now = time.time()
        what = f"sweep {sweep_id}'s checkpoint at step {int(ckpt.step)}"
        with self.transaction(what, len(blob) + space.SMALL_WRITE_BYTES) as c:
            c.execute(
                "INSERT OR REPLACE INTO checkpoints (sweep, step, blob, updated) "
                "VALUES (?, ?, ?, ?)",
                (sweep_id, int(ckpt.step), blob, now),
            )
            c.execute(
                "UPDATE sweeps SET steps_done=?, updated=? WHERE id=?",
                (int(ckpt.step), now, sweep_id),
            )
            if timing is not None:
                c.execute("UPDATE sweeps SET timing=? WHERE id=?", (json.dumps(timing), sweep_id))

    def set_timing(self, sweep_id: str, timing: dict) -> None:
        """Store an unfinished sweep's run record so far (``compile_s``, ``train_s`` of
        the parts run until now, ``devices``); :meth:`save_results` replaces it with the
        finished sweep's timing."""
        with self.transaction(f"sweep {sweep_id}'s timing") as c:
            c.execute("UPDATE sweeps SET timing=? WHERE id=?", (json.dumps(timing), sweep_id))

    def run_timing(self, sweep_id: str) -> dict:
        """The record :meth:`set_timing` stored (``{}`` when none)."""
        row = self.conn.execute("SELECT timing FROM sweeps WHERE id=?", (sweep_id,)).fetchone()
        return json.loads(row[0]) if row is not None and row[0] else {}

    def load_checkpoint(self, sweep_id: str, like_states: Any) -> Checkpoint | None:
        """The sweep's latest checkpoint (``states`` shaped like ``like_states``), or None."""
        row = self.conn.execute(
            "SELECT step, blob FROM checkpoints WHERE sweep=?", (sweep_id,)
        ).fetchone()
        if row is None:
            return None
        return checkpoint_from_blob(sweep_id, row[0], row[1], like_states)

    def save_results(self, result: SweepResult, params: dict[int, Any] | None = None) -> None:
        """Write members, curves, params and the summary; mark the sweep finished.

        One transaction: either all of it is visible, or the sweep stays unfinished.
        ``params`` maps member id -> parameter pytree (winner first, then the next few).
        """
        what = f"sweep {result.sweep_id}'s results"
        with self.transaction(what, space.result_bytes(result, params)) as c:
            write_result(c, result, params)

    def set_report(self, sweep_id: str, path: str | None) -> None:
        with self.transaction(f"sweep {sweep_id}'s report path") as c:
            c.execute("UPDATE sweeps SET report=? WHERE id=?", (path, sweep_id))

    # ------------------------------------------------------------------ reads
    def _row(self, sweep_id: str) -> sqlite3.Row:
        self.conn.row_factory = sqlite3.Row
        try:
            row = self.conn.execute("SELECT * FROM sweeps WHERE id=?", (sweep_id,)).fetchone()
        finally:
            self.conn.row_factory = None
        if row is None:
            known = [r.id for r in self.list_sweeps()][-5:]
            hint = f" (newest: {', '.join(known)})" if known else " (the store is empty)"
            raise StoreError(
                f"no sweep {sweep_id!r} in {self.path}{hint}; run `sweepjax list` to see the ids"
            )
        return row

    def _summary(self, row: sqlite3.Row) -> SweepRow:
        best = None
        if row["winner"] is not None:
            r = self.conn.execute(
                "SELECT best_val_acc FROM members WHERE sweep=? AND id=?",
                (row["id"], row["winner"]),
            ).fetchone()
            best = r[0] if r else None
        return SweepRow(
            row["id"],
            row["kind"],
            row["parent"],
            row["status"],
            SweepConfig.from_dict(json.loads(row["config"])),
            json.loads(row["dataset"]),
            json.loads(row["space"]),
            json.loads(row["versions"]),
            row["created"],
            row["updated"],
            row["finished"],
            row["host"],
            row["pid"],
            row["num_members"],
            row["total_steps"],
            row["steps_done"],
            row["winner"],
            best,
            row["report"],
        )

    def sweep_row(self, sweep_id: str) -> SweepRow:
        return self._summary(self._row(sweep_id))

    def list_sweeps(self) -> list[SweepRow]:
        """Every sweep, oldest first."""
        self.conn.row_factory = sqlite3.Row
        try:
            rows = self.conn.execute("SELECT * FROM sweeps ORDER BY seq").fetchall()
        finally:
            self.conn.row_factory = None
        return [self._summary(r) for r in rows]

    def newest(self, kind: str | None = None, status: str | None = "finished") -> str | None:
        """Id of the newest sweep of ``kind`` (any kind if None) with ``status``."""
        q, args = "SELECT id FROM sweeps WHERE 1=1", []
        if kind is not None:
            q, args = q + " AND kind=?", [*args, kind]
        if status is not None:
            q, args = q + " AND status=?", [*args, status]
        row = self.conn.execute(q + " ORDER BY seq DESC LIMIT 1", args).fetchone()
        return row[0] if row else None

    def unfinished(self, kind: str | None = None) -> list[SweepRow]:
        """Sweeps that are running or were interrupted, newest first."""
        return [
            r
            for r in reversed(self.list_sweeps())
            if r.status != "finished" and (kind is None or r.kind == kind)
        ]

    def load_params(self, sweep_id: str) -> dict[int, Any]:
        """Stored parameters, ``{member id: pytree of numpy arrays}`` in rank order."""
        from flax import serialization  # deferred: flax takes ~0.4 s to import

        rows = self.conn.execute(
            "SELECT member, blob FROM params WHERE sweep=? ORDER BY rank", (sweep_id,)
        ).fetchall()
        return {int(m): serialization.msgpack_restore(b) for m, b in rows}

    def load_sweep(self, sweep_id: str, curves: bool = True) -> SweepResult:
        """The stored :class:`SweepResult` (members empty while a sweep is unfinished)."""
        return read_result(self, self._row(sweep_id), curves)

    def set_refit(self, sweep_id: str, steps: int, test_acc: float) -> None:
        """Record the winner's refit on train + validation (``steps``, its test accuracy)."""
        with self.transaction(f"sweep {sweep_id}'s refit") as c:
            c.execute(
                "UPDATE sweeps SET refit=? WHERE id=?",
                (json.dumps({"steps": int(steps), "test_acc": float(test_acc)}), sweep_id),
            )

    def load_activations(self, sweep_id: str) -> dict:
        """``{member id: ActivationStats}`` of a sweep's kept MLP members, winner first."""
        return activations.read(self.conn, sweep_id)


__all__ = [
    "APPLICATION_ID",
    "CURVE_FIELDS",
    "DEFAULT_PATH",
    "NAME_RE",
    "SCHEMA_VERSION",
    "Store",
    "SweepRow",
    "default_path",
    "dump_params",
    "library_versions",
]
