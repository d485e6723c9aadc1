"""The machine-readable text of a sweep: its JSON document (NaN and inf as null, numpy
scalars as Python numbers) and its members as CSV, as ``--format json`` and
``sweepjax export`` write them."""

from __future__ import annotations

import csv
import io
import json
import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # an annotation only: the records import the engine (jax)
    from sweepjax.results.records import SweepResult


def json_clean(obj):
    """Replace NaN / inf by None (JSON has no NaN) and numpy scalars by Python numbers."""
    if isinstance(obj, dict):
        return {k: json_clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [json_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def to_json_text(result: SweepResult) -> str:
    return json.dumps(json_clean(result.to_json()), indent=2, allow_nan=False)


CSV_COLUMNS = (
    "id",
    "lr",
    "l2",
    "lr_decay",
    "hidden",
    "dropout",
    "init_scale",
    "momentum",
    "status",
    "diverged_at",
    "best_val_acc",
    "val_acc_se",
    "tied",
    "best_step",
    "final_train_loss",
    "final_val_loss",
    "final_train_acc",
    "final_val_acc",
    "test_acc",
)


def to_csv_text(result: SweepResult) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(CSV_COLUMNS)
    for m in result.members:
        d = json_clean({**m.as_dict(), "tied": int(m.id in result.tied)})
        w.writerow(["" if d[c] is None else d[c] for c in CSV_COLUMNS])
    return buf.getvalue()
