"""How the store's records become SQLite values and back: member rows, float32 curve
blobs, msgpack parameters and checkpoints, and the JSON summary fields.

Pure conversions (no connection): :class:`sweepjax.store.db.Store` runs the SQL.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from sweepjax.engine.curves import Checkpoint, Curves, ScheduleState
from sweepjax.errors import StoreError
from sweepjax.results.records import MemberRecord, SweepResult, VerdictRecord
from sweepjax.store.schema import MEMBER_COLUMNS

CURVE_FIELDS = Curves._fields[1:]  # train_loss, val_loss, val_acc, train_acc, update_ratio


def _f(x) -> float | None:
    """A float for SQLite/JSON: NaN and None become NULL."""
    if x is None:
        return None
    x = float(x)
    return x if np.isfinite(x) else None


def _nan(x) -> float:
    return float("nan") if x is None else float(x)


def _blob(a: np.ndarray) -> bytes:
    return np.ascontiguousarray(a, dtype=np.float32).tobytes()


def unblob(b: bytes | None) -> np.ndarray:
    return np.frombuffer(b, dtype=np.float32) if b is not None else np.zeros(0, np.float32)


# ------------------------------------------------------------------------------ members
_FLOATS = {
    "best_val_acc",
    "final_train_loss",
    "final_val_loss",
    "final_train_acc",
    "final_val_acc",
    "test_acc",
    "val_acc_se",
    "dropout",
    "init_scale",
    "momentum",
}


def member_row(sweep_id: str, m: MemberRecord) -> tuple:
    """The ``members`` row of ``m`` (values in :data:`MEMBER_COLUMNS` order; NaN -> NULL)."""
    d = m.as_dict()
    d["sweep"] = sweep_id
    d["hparams"] = json.dumps(d["hparams"], sort_keys=True) if d["hparams"] else None
    return tuple(_f(d[c]) if c in _FLOATS else d[c] for c in MEMBER_COLUMNS)


def member_record(row: tuple, n_val: int | None) -> MemberRecord:
    """Inverse of :func:`member_row` (a row read in :data:`MEMBER_COLUMNS` order); a score
    stored before v3 gets its binomial SE on ``n_val``."""
    d = dict(zip(MEMBER_COLUMNS, row, strict=True))
    del d["sweep"]
    d["id"], d["best_step"] = int(d["id"]), int(d["best_step"])
    d["best_val_acc"] = _nan(d["best_val_acc"])
    if d["val_acc_se"] is None:
        d["val_acc_se"] = _binomial_se(row[MEMBER_COLUMNS.index("best_val_acc")], n_val)
    if d["hidden"] is not None:
        d["hidden"] = int(d["hidden"])
    d["hparams"] = json.loads(d["hparams"]) if d["hparams"] else {}
    return MemberRecord(**d)


def _binomial_se(acc, n_val) -> float | None:
    """A stored accuracy's binomial SE (sweeps stored before v3 did not keep it)."""
    if acc is None or not n_val:
        return None
    from sweepjax.analysis.surface import binomial_se

    return float(binomial_se(np.array([acc]), int(n_val))[0])


# ------------------------------------------------------------------------ pytrees, blobs
def _tree_to_dict(tree: Any) -> dict[str, np.ndarray]:
    """A pytree's leaves as ``{"0": leaf0, "1": leaf1, ...}`` (tree order), for msgpack."""
    import jax

    return {str(i): np.asarray(x) for i, x in enumerate(jax.tree.leaves(tree))}


def _tree_from_dict(stored: dict, like: Any) -> Any:
    """Inverse of :func:`_tree_to_dict`, given a pytree ``like`` of the same structure
    (per-member shapes and dtypes are checked, so a checkpoint of another config is
    refused; the number of rows may differ)."""
    import jax

    leaves, treedef = jax.tree.flatten(like)
    mismatch = StoreError(
        "the stored checkpoint does not match this configuration; run without `resume`"
    )
    if len(stored) != len(leaves):
        raise mismatch
    out = []
    for i, ref in enumerate(leaves):
        a = np.asarray(stored[str(i)])
        # The leading (member) axis may differ: a scheduler compacts the population.
        if a.shape[1:] != np.shape(ref)[1:] or a.dtype != np.asarray(ref).dtype:
            raise mismatch
        out.append(a)
    return jax.tree.unflatten(treedef, out)


def dump_params(params: Any) -> bytes:
    """A flax params dict (nested dict of arrays) -> msgpack bytes, keeping its keys."""
    from flax import serialization  # deferred (here and below): flax takes ~0.4 s to import

    return serialization.msgpack_serialize(serialization.to_state_dict(params))


def checkpoint_blob(ckpt: Checkpoint) -> bytes:
    """A population checkpoint as msgpack bytes (states, curves so far, scheduler state)."""
    from flax import serialization

    return serialization.msgpack_serialize(
        {
            "states": _tree_to_dict(ckpt.states),
            "curves": {
                "step": np.asarray(ckpt.curves.step, np.int64),
                **{f: np.asarray(getattr(ckpt.curves, f)) for f in CURVE_FIELDS},
            },
            "schedule": ckpt.schedule.as_arrays(),
            "size": np.int64(ckpt.size),
            **({"parts": list(ckpt.parts)} if ckpt.parts else {}),
        }
    )


def checkpoint_from_blob(sweep_id: str, step: int, blob: bytes, like_states: Any) -> Checkpoint:
    """Inverse of :func:`checkpoint_blob` (``states`` shaped like ``like_states``)."""
    from flax import serialization

    d = serialization.msgpack_restore(blob)
    states = _tree_from_dict(d["states"], like_states)
    c = d["curves"]
    curves = Curves(np.asarray(c["step"]), *(np.asarray(c[f]) for f in CURVE_FIELDS))
    if "schedule" not in d:
        raise StoreError(
            f"the checkpoint of sweep {sweep_id} was written by an older sweepjax; "
            "run without `resume`"
        )
    sched = ScheduleState.from_arrays(d["schedule"])
    parts = d.get("parts") or ()  # finished parts of a choice sweep (msgpack: a list)
    parts = tuple(parts.values() if isinstance(parts, dict) else parts)
    return Checkpoint(int(step), states, curves, sched, int(d.get("size", 0)), parts)


# --------------------------------------------------------------------- JSON summaries
def refit_json(result: SweepResult) -> dict:
    w = result.winner
    if w is None or w.refit_test_acc is None:
        return {}
    return {"steps": w.refit_steps, "test_acc": w.refit_test_acc}


def verdict_fields(text: str | None) -> dict:
    """``tied`` and ``verdict`` of a stored sweep (none for sweeps stored before v3)."""
    data = json.loads(text) if text else {}
    v = data.get("verdict")
    return {"tied": list(data.get("tied") or []), "verdict": VerdictRecord(**v) if v else None}


def schedule_fields(text: str | None) -> dict:
    """``lineage``, ``history`` and an anytime run's ``progress`` / ``in_flight`` of a
    stored sweep (empty for sweeps without them)."""
    d = json.loads(text) if text else {}
    keys = {"lineage": [], "history": [], "progress": [], "in_flight": 0}
    return {k: d.get(k, v) for k, v in keys.items()}
