"""Live progress of a running sweep: the ``live`` table (schema v6), written between
chunks by :class:`LiveWriter` and read by another process (``sweepjax watch``) while
the sweep trains (the store is in WAL mode, so readers never block the writer).

One row per written chunk: step, elapsed seconds, ETA, members active and alive, best
validation accuracy so far; only the newest row of a sweep keeps a ``payload`` (a
:class:`~sweepjax.store.live_snapshot.Snapshot` as zlib-compressed JSON, a few tens of
kB whatever the population), so a long sweep adds ~100 bytes a second.

Example::

  live = LiveWriter(store, "c1", member_ids=ids)
  train_population(..., on_chunk=live.update)   # writes at most ~once a second
  live.flush()                                  # the last chunk, if it was skipped
  rows = progress(store.conn, "c1")             # from any process
"""

from __future__ import annotations

import json
import math
import os
import socket
import sqlite3
import time
import zlib
from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from sweepjax.engine.outcome import ChunkReport
from sweepjax.errors import StoreError
from sweepjax.store import live_snapshot
from sweepjax.store.db import Store, SweepRow
from sweepjax.store.live_snapshot import Snapshot

# Live writes may take at most this share of the wall time, and come at most once per
# LIVE_INTERVAL_S (the first and the last chunk are always written).
LIVE_SHARE = 0.02
LIVE_INTERVAL_S = 1.0
# How many progress points a reader gets back (evenly spread, the newest always).
PROGRESS_POINTS = 200


class Throttle:
    """The one write throttle (live progress, checkpoints): a write is due when the time
    since the last one ended is at least ``interval`` and at least ``(1 - share) /
    share`` times what the last write cost, so writes take at most ``share`` of the wall
    time. Before the first write, ``first_cost`` (an estimate) stands for that cost, and
    the gap counts from ``start`` (``-inf``: the first write is due at once)."""

    def __init__(
        self,
        share: float,
        interval: float = 0.0,
        clock: Callable[[], float] = time.perf_counter,
        start: float = -math.inf,
    ):
        self.share, self.interval, self.clock = share, interval, clock
        self.last_end = start
        self.cost: float | None = None
        self.spent = 0.0  # seconds spent writing
        self.count = 0

    def due(self, first_cost: float = 0.0) -> bool:
        cost = self.cost if self.cost is not None else first_cost
        gap = max(self.interval, (1 - self.share) / self.share * cost)
        return self.clock() - self.last_end >= gap

    def wrote(self, t0: float) -> None:
        """Record a write that started at ``t0`` (on ``clock``) and just ended."""
        self.last_end = self.clock()
        self.cost = self.last_end - t0
        self.spent += self.cost
        self.count += 1


class LiveRow(NamedTuple):
    """One written chunk. ``elapsed_s`` counts the sweep's earlier parts (resume);
    ``eta_s`` is None until a rate is known; ``spent`` is the share of an anytime
    budget (None for a fixed-length sweep)."""

    seq: int
    wall: float  # time.time() when written
    step: int
    total_steps: int
    elapsed_s: float
    eta_s: float | None
    active: int
    alive: int
    num_members: int
    best_val_acc: float | None
    best_full_val_acc: float | None
    spent: float | None


_COLUMNS = ", ".join(LiveRow._fields)


def _opt(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


class LiveWriter:
    """Writes a sweep's chunk reports to the ``live`` table, throttled: at most one write
    per ``interval`` seconds and at most ``share`` of the wall time (the gap since the
    last write is at least ``(1 - share) / share`` times what that write cost); the first
    chunk and the last one of a fixed-length sweep are always written. Live progress is
    a view: a failed write (e.g. a full disk) turns the writer off and keeps the sweep
    going; ``error`` then says why. The rule is :class:`Throttle`'s."""

    def __init__(
        self,
        store: Store,
        sweep_id: str,
        member_ids: np.ndarray | None = None,
        clock: Callable[[], float] = time.perf_counter,
        wall: Callable[[], float] = time.time,
        interval: float = LIVE_INTERVAL_S,
        share: float = LIVE_SHARE,
    ):
        self.store, self.sid, self.clock, self.wall = store, sweep_id, clock, wall
        self.ids = None if member_ids is None else np.asarray(member_ids, np.int64)
        last = store.conn.execute(
            "SELECT seq, elapsed_s FROM live WHERE sweep=? ORDER BY seq DESC LIMIT 1",
            (sweep_id,),
        ).fetchone()
        # A resumed sweep continues its sequence and its clock.
        self.seq = 0 if last is None else int(last[0]) + 1
        self.offset = 0.0 if last is None else float(last[1])
        self.first: ChunkReport | None = None  # this part's first report (the ETA's rate)
        self.pending: ChunkReport | None = None
        self.throttle = Throttle(share, interval, clock)
        self.error: str | None = None

    @property
    def spent(self) -> float:
        """Seconds spent building and writing rows."""
        return self.throttle.spent

    @property
    def count(self) -> int:
        return self.throttle.count

    def update(self, rep: ChunkReport) -> bool:
        """Record ``rep`` if a write is due (True when written)."""
        if self.error is not None:
            return False
        if self.first is None:
            self.first = rep
        self.pending = rep
        last = rep.anytime is None and rep.step >= rep.total_steps
        if not last and not self.throttle.due():
            return False
        return self._write(rep)

    def flush(self) -> bool:
        """Write the newest report if it was skipped (the sweep stopped between writes)."""
        if self.pending is None or self.error is not None:
            return False
        return self._write(self.pending)

    def row(self, rep: ChunkReport) -> LiveRow:
        """What ``rep`` is written as."""
        if rep.anytime is not None:
            a = rep.anytime
            elapsed, spent = a.elapsed_s, _opt(a.spent)
            eta = elapsed * (1 - spent) / spent if spent and 0 < spent < 1 else None
        else:
            elapsed, spent, eta = self.offset + rep.elapsed_s, None, None
            f = self.first
            if f is not None and rep.step > f.step and rep.elapsed_s > f.elapsed_s:
                rate = (rep.elapsed_s - f.elapsed_s) / (rep.step - f.step)  # s per step
                eta = rate * max(0, rep.total_steps - rep.step)
        return LiveRow(
            self.seq,
            self.wall(),
            int(rep.step),
            int(rep.total_steps),
            float(elapsed),
            eta,
            int(rep.active),
            int(rep.alive),
            int(rep.num_members),
            _opt(rep.best_val_acc),
            _opt(rep.best_full_val_acc),
            spent,
        )

    def payload(self, rep: ChunkReport) -> bytes:
        """The snapshot of ``rep``'s population (surface and curves when the trainer
        hands its records; progress only otherwise, e.g. an anytime run)."""
        doc: dict = {"snapshot": None, "anytime": None}
        if rep.curves is not None and rep.schedule is not None:
            m = rep.curves.val_acc.shape[0]
            ids = self.ids if self.ids is not None and len(self.ids) == m else np.arange(m)
            ids = ids if getattr(rep, "member_ids", None) is None else rep.member_ids
            doc["snapshot"] = live_snapshot.of_running(
                rep.curves, rep.schedule, ids, rep.step, getattr(rep, "metric", None)
            ).to_json()
        if rep.anytime is not None:
            a = rep.anytime
            doc["anytime"] = {
                "budget": a.budget,
                "finished": int(a.finished),
                "best_member": int(a.best_member),
                "member_steps": int(a.member_steps),
            }
        return zlib.compress(json.dumps(doc, separators=(",", ":")).encode(), 1)

    def _write(self, rep: ChunkReport) -> bool:
        t0 = self.clock()
        try:
            row, blob = self.row(rep), self.payload(rep)
            with self.store.transaction(f"sweep {self.sid}'s live progress", len(blob)) as c:
                c.execute(
                    "UPDATE live SET payload=NULL WHERE sweep=? AND payload IS NOT NULL",
                    (self.sid,),
                )
                c.execute(
                    f"INSERT OR REPLACE INTO live (sweep, {_COLUMNS}, payload) "
                    f"VALUES (?, {', '.join('?' * len(LiveRow._fields))}, ?)",
                    (self.sid, *row, blob),
                )
        except (sqlite3.Error, StoreError) as e:  # StoreError: a full disk
            self.error = f"live progress not written ({e})"
            return False
        self.seq += 1
        self.pending = None
        self.throttle.wrote(t0)
        return True


# --------------------------------------------------------------------------- readers
def progress(
    conn: sqlite3.Connection, sweep_id: str, points: int = PROGRESS_POINTS
) -> list[LiveRow]:
    """The sweep's written chunks, oldest first: at most ``points``, evenly spread over
    the sequence, the newest always included ([] for a sweep with none)."""
    n = conn.execute("SELECT COUNT(*) FROM live WHERE sweep=?", (sweep_id,)).fetchone()[0]
    if n == 0:
        return []
    stride = max(1, math.ceil(n / points))
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM live WHERE sweep=? AND (seq % ? = 0 OR seq = "
        "(SELECT MAX(seq) FROM live WHERE sweep=?)) ORDER BY seq",
        (sweep_id, stride, sweep_id),
    ).fetchall()
    return [LiveRow(*r) for r in rows]


def newest_rows(conn: sqlite3.Connection) -> dict[str, LiveRow]:
    """``{sweep id: its newest row}`` for every sweep with live progress."""
    rows = conn.execute(
        f"SELECT sweep, {_COLUMNS} FROM live WHERE (sweep, seq) IN "
        "(SELECT sweep, MAX(seq) FROM live GROUP BY sweep)"
    ).fetchall()
    return {r[0]: LiveRow(*r[1:]) for r in rows}


def member_statuses(conn: sqlite3.Connection, sweep_id: str) -> tuple[int, int]:
    """``(members, diverged)`` of a sweep's stored result (0, 0 before it is stored)."""
    n, bad = conn.execute(
        "SELECT COUNT(*), COALESCE(SUM(status = 'diverged'), 0) FROM members WHERE sweep=?",
        (sweep_id,),
    ).fetchone()
    return int(n), int(bad)


class LivePayload(NamedTuple):
    """The newest row's payload: the population's snapshot (None when the trainer
    handed none) and an anytime run's standing (``budget``, ``finished``,
    ``best_member``, ``member_steps``; None for a fixed-length sweep)."""

    snapshot: Snapshot | None
    anytime: dict | None


def newest_payload(conn: sqlite3.Connection, sweep_id: str) -> LivePayload | None:
    """The sweep's newest snapshot, or None when it has no live progress."""
    row = conn.execute(
        "SELECT payload FROM live WHERE sweep=? AND payload IS NOT NULL ORDER BY seq DESC LIMIT 1",
        (sweep_id,),
    ).fetchone()
    if row is None:
        return None
    doc = json.loads(zlib.decompress(row[0]))
    snap = doc.get("snapshot")
    return LivePayload(Snapshot.from_json(snap) if snap else None, doc.get("anytime"))


def process_alive(host: str | None, pid: int | None) -> bool:
    """Whether the process ``pid`` on ``host`` still runs. A process on another host
    cannot be checked from here: it counts as running."""
    if not pid:
        return False
    if host != socket.gethostname():
        return True
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_state(row: SweepRow) -> str:
    """``"done"``, ``"running"`` or ``"interrupted"`` (a sweep marked running whose
    process is gone, e.g. killed, is interrupted: ``resume`` continues it)."""
    if row.status == "finished":
        return "done"
    if row.status == "running" and process_alive(row.host, row.pid):
        return "running"
    return "interrupted"


__all__ = [
    "LIVE_INTERVAL_S",
    "LIVE_SHARE",
    "LivePayload",
    "LiveRow",
    "member_statuses",
    "LiveWriter",
    "newest_payload",
    "newest_rows",
    "process_alive",
    "progress",
    "sweep_state",
]
