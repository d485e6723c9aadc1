"""The store's ``activations`` table: the kept MLP members' hidden-activation statistics.

One row per kept member: its :class:`~sweepjax.analysis.activations.ActivationStats` as JSON (a
few hundred integer counts: the histogram, the per-unit firing counts), in kept order
(winner first). The table is created by the first sweep that writes statistics, inside
the transaction that stores its results, so a store that never held an MLP sweep has
none and older stores read as having none: no schema version is needed for it.
"""

from __future__ import annotations

import json
import sqlite3

from sweepjax.analysis.activations import ActivationStats

TABLE = """
CREATE TABLE IF NOT EXISTS activations (
    sweep TEXT NOT NULL REFERENCES sweeps(id),
    member INTEGER NOT NULL,
    rank INTEGER NOT NULL,
    stats TEXT NOT NULL,
    PRIMARY KEY (sweep, member)
)
"""


def has_table(c: sqlite3.Connection) -> bool:
    q = "SELECT 1 FROM sqlite_master WHERE type='table' AND name='activations'"
    return c.execute(q).fetchone() is not None


def write(c: sqlite3.Connection, sweep_id: str, stats: dict[int, ActivationStats]) -> None:
    """Replace a sweep's statistics (inside the caller's transaction)."""
    if not stats and not has_table(c):
        return
    c.execute(TABLE)
    c.execute("DELETE FROM activations WHERE sweep=?", (sweep_id,))
    c.executemany(
        "INSERT INTO activations VALUES (?,?,?,?)",
        [
            (sweep_id, int(mid), rank, json.dumps(s.as_dict()))
            for rank, (mid, s) in enumerate(stats.items())
        ],
    )


def read(c: sqlite3.Connection, sweep_id: str) -> dict[int, ActivationStats]:
    """``{member id: ActivationStats}`` in kept order; empty when there are none."""
    if not has_table(c):
        return {}
    rows = c.execute(
        "SELECT member, stats FROM activations WHERE sweep=? ORDER BY rank", (sweep_id,)
    ).fetchall()
    return {int(m): ActivationStats.from_dict(json.loads(t)) for m, t in rows}
