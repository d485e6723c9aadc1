"""The checkpoint of a sweep with categorical axes (:mod:`sweepjax.flows.choices`): the
current part's, in the one format, carrying the final checkpoints of the parts already
finished as blobs. Which part is current is known only from the blob, so it is read
here in two steps: how many parts it carries, then the states against that part's."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sweepjax.engine.curves import Checkpoint
from sweepjax.store.codec import checkpoint_blob, checkpoint_from_blob


def blob(ckpt: Checkpoint) -> bytes:
    """A finished part's final checkpoint (and its step) as stored inside a later one."""
    from flax import serialization

    inner = checkpoint_blob(ckpt._replace(parts=()))
    return serialization.msgpack_serialize({"step": int(ckpt.step), "checkpoint": inner})


def part_checkpoint(data: bytes, like: Any) -> Checkpoint:
    """A finished part's checkpoint (:func:`blob`), its states shaped like ``like``."""
    from flax import serialization

    d = serialization.msgpack_restore(data)
    return checkpoint_from_blob("part", int(d["step"]), d["checkpoint"], like)


def read_checkpoint(store, sweep_id: str, like_of: Callable[[int], Any]) -> Checkpoint | None:
    """The sweep's checkpoint (None: it has none), its states read against
    ``like_of(k)``, ``k`` the number of finished parts it carries (the current part)."""
    from flax import serialization

    row = store.conn.execute(
        "SELECT step, blob FROM checkpoints WHERE sweep=?", (sweep_id,)
    ).fetchone()
    if row is None:
        return None
    parts = serialization.msgpack_restore(row[1]).get("parts") or ()
    return checkpoint_from_blob(sweep_id, row[0], row[1], like_of(len(parts)))
