"""The store's room on disk: what a full disk looks like (:func:`disk_full`), what is
free, roughly what a write needs, each sweep's size, and giving freed pages back
(:func:`give_back`). :class:`sweepjax.store.db.Store` uses these around its writes."""

from __future__ import annotations

import errno
import os
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sweepjax.errors import DiskFullError
from sweepjax.store import activations as store_activations

if TYPE_CHECKING:
    from sweepjax.results.records import SweepResult

# What a new store takes on disk (its tables, WAL and shared-memory files), roughly.
NEW_STORE_BYTES = 100_000
# What a small write (a status, a timing record) takes in the WAL, roughly: a few pages.
SMALL_WRITE_BYTES = 16_384
# A checkpoint's write passes through the WAL whole; once checkpointed into the
# database, the WAL file is cut back to this (it is reused, not grown). Per connection.
WAL_LIMIT_BYTES = 4 * 2**20
WAL_LIMIT = f"journal_size_limit = {WAL_LIMIT_BYTES}"
# A store without auto-vacuum (made before it) is converted by one VACUUM once it holds
# this many bytes of free pages (and the disk has room for the copy VACUUM writes).
VACUUM_FREE_BYTES = 2**20
# What a member's or a live progress row takes besides its blobs, roughly (:meth:`sizes`).
ROW_BYTES = 150


def disk_full(e: BaseException) -> bool:
    """Whether ``e`` says the disk (or the user's quota) is full: SQLite's SQLITE_FULL,
    or an ``OSError`` with ENOSPC / EDQUOT."""
    if isinstance(e, OSError):
        return e.errno in (errno.ENOSPC, errno.EDQUOT)
    if isinstance(e, sqlite3.Error):
        code = getattr(e, "sqlite_errorcode", None)
        return code == sqlite3.SQLITE_FULL or "database or disk is full" in str(e)
    return False


def free_bytes(path: str | os.PathLike) -> int | None:
    """Free bytes on the filesystem holding ``path`` (None when it cannot be read)."""
    p = Path(path)
    try:
        return shutil.disk_usage(p if p.is_dir() else p.parent).free
    except OSError:
        return None


def full(shown: Path, path: Path, what: str, need: int) -> DiskFullError:
    """The one-line error of a write of ``what`` (about ``need`` bytes) to the store at
    ``path`` (shown as ``shown``) that the disk had no room for."""
    return DiskFullError(shown, what, need, free_bytes(path))


@contextmanager
def on_full(shown: Path, path: Path, what: str, need: int) -> Iterator[None]:
    """Inside it, an error saying the disk is full becomes :func:`full`'s one line."""
    try:
        yield
    except (sqlite3.Error, OSError) as e:
        if not disk_full(e):
            raise
        raise full(shown, path, what, need) from None


def remove_new(path: Path, was_there: bool) -> None:
    """Undo a store that could not be created: its WAL and shared-memory files go, and the
    file itself (a user's empty file stays, empty)."""
    for p in (path.with_name(path.name + x) for x in ("-wal", "-shm")):
        p.unlink(missing_ok=True)
    if was_there:
        path.write_bytes(b"")
    else:
        path.unlink(missing_ok=True)


def result_bytes(result: SweepResult, params: dict[int, Any] | None = None) -> int:
    """Roughly what :meth:`Store.save_results` writes: curves (5 float32 series per member
    and evaluation), ~200 bytes of member row each, and the kept parameters' arrays."""
    m = len(result.members)
    e = 0 if result.curves is None else int(np.asarray(result.curves.step).size)
    leaves = 0
    stack = list((params or {}).values())
    while stack:
        x = stack.pop()
        if isinstance(x, dict):
            stack.extend(x.values())
        elif isinstance(x, list | tuple):
            stack.extend(x)
        else:
            leaves += int(np.asarray(x).nbytes)
    return m * (5 * 4 * e + 200) + leaves + SMALL_WRITE_BYTES


def sizes(conn: sqlite3.Connection) -> dict[str, int]:
    """``{sweep id: bytes}``: roughly what each sweep takes on disk, the lengths of
    its blobs (checkpoint, curves, parameters, live snapshots, activations) plus
    ~``ROW_BYTES`` per member and live row and its own row's JSON. Page overhead
    and free pages are not counted (``PRAGMA freelist_count`` says what is free)."""
    out: dict[str, int] = {}
    queries = (
        "SELECT id, LENGTH(config) + LENGTH(dataset) + LENGTH(space) + "
        "IFNULL(LENGTH(timing), 0) + IFNULL(LENGTH(verdict), 0) + "
        "IFNULL(LENGTH(schedule), 0) + IFNULL(LENGTH(curve_steps), 0) FROM sweeps",
        "SELECT sweep, SUM(LENGTH(blob)) FROM checkpoints GROUP BY sweep",
        "SELECT sweep, SUM(LENGTH(blob)) FROM params GROUP BY sweep",
        "SELECT sweep, SUM(IFNULL(LENGTH(train_loss), 0) + IFNULL(LENGTH(val_loss), 0) + "
        "IFNULL(LENGTH(val_acc), 0) + IFNULL(LENGTH(train_acc), 0) + "
        "IFNULL(LENGTH(update_ratio), 0)) FROM curves GROUP BY sweep",
        f"SELECT sweep, COUNT(*) * {ROW_BYTES} FROM members GROUP BY sweep",
        f"SELECT sweep, COUNT(*) * {ROW_BYTES} + SUM(IFNULL(LENGTH(payload), 0)) "
        "FROM live GROUP BY sweep",
    )
    if store_activations.has_table(conn):
        queries += ("SELECT sweep, SUM(LENGTH(stats)) FROM activations GROUP BY sweep",)
    for q in queries:
        for sid, n in conn.execute(q):
            out[sid] = out.get(sid, 0) + int(n or 0)
    return out


def give_back(conn: sqlite3.Connection, path: Path) -> int:
    """Return free pages to the filesystem and truncate the WAL (at the end of a
    sweep: its checkpoint was dropped with the results). Best effort: a store busy
    with another writer, or a full disk, is left as it is. Returns the bytes the
    store's files shrank by.

    New stores use incremental auto-vacuum (``PRAGMA incremental_vacuum``); an older
    one (auto-vacuum off) is converted by one ``VACUUM`` once it holds
    ``VACUUM_FREE_BYTES`` of free pages and the disk has room for the copy."""
    c = conn
    wal = path.with_name(path.name + "-wal")

    def size() -> int:
        return sum(p.stat().st_size for p in (path, wal) if p.exists())

    before = size()
    c.execute("PRAGMA busy_timeout = 200")  # maintenance never waits on a writer
    try:
        mode = c.execute("PRAGMA auto_vacuum").fetchone()[0]
        page = c.execute("PRAGMA page_size").fetchone()[0]
        free = c.execute("PRAGMA freelist_count").fetchone()[0] * page
        room = free_bytes(path)
        if mode == 2 and free:  # INCREMENTAL
            # executescript steps it to the end (execute frees one page per step)
            c.executescript("PRAGMA incremental_vacuum;")
        elif mode == 0 and free >= VACUUM_FREE_BYTES and room and room > 2 * before:
            c.execute("PRAGMA auto_vacuum = INCREMENTAL")
            c.execute("VACUUM")  # rewrites the file: the setting takes, the pages go
        c.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    except sqlite3.Error:
        pass
    finally:
        c.execute("PRAGMA busy_timeout = 30000")
    return before - size()
