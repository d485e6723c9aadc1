"""The machine-readable text of a sweep: its JSON document (NaN and inf as null, numpy
scalars as Python numbers), its members as CSV and its configs as scikit-learn's
``cv_results_`` CSV, as ``--format json`` and ``sweepjax export`` write them."""

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
    own = sorted({n for m in result.members for n in m.hparams})  # the user's own
    names = [n for n, _ in result.config.choices]  # a column per categorical axis
    w.writerow((*CSV_COLUMNS, *own, *names))
    for m in result.members:
        d = json_clean({**m.as_dict(), "tied": int(m.id in result.tied)})
        d.update(json_clean({n: m.hparams.get(n) for n in own}))
        w.writerow(
            ["" if d[c] is None else d[c] for c in (*CSV_COLUMNS, *own)]
            + [m.choice[n] for n in names]
        )
    return buf.getvalue()


# scikit-learn's ``cv_results_`` names: its "test score" is the held-out score, here the
# validation accuracy (with --folds, each replica's held-out fold); the test set is unused.
CV_PARAMS = ("lr", "l2", "lr_decay", "hidden", "dropout", "init_scale", "momentum")


def to_cv_results_text(result: SweepResult) -> str:
    """The configs of a ``--replicas`` / ``--folds`` sweep as CSV, one row per config in
    scikit-learn's ``cv_results_`` shape: ``config``, ``param_<axis>``, ``status``,
    ``split<r>_test_score`` (replica r's best validation accuracy), ``mean_test_score``,
    ``std_test_score`` (ddof 0), ``rank_test_score``, then ``val_acc_se``,
    ``mean_val_loss``, ``stopped_at`` and ``members`` (ids joined by spaces). The
    user's own hyperparameters follow the built-in ``param_`` columns, by name (a
    config's replicas share its values: its first member's)."""
    by_id = {m.id: m for m in result.members}
    own = sorted({n for m in result.members for n in m.hparams})
    splits = max((len(c.members) for c in result.configs), default=0)
    cols = (
        "config",
        *(f"param_{p}" for p in (*CV_PARAMS, *own)),
        "status",
        *(f"split{r}_test_score" for r in range(splits)),
        "mean_test_score",
        "std_test_score",
        "rank_test_score",
        "val_acc_se",
        "mean_val_loss",
        "stopped_at",
        "members",
    )
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for c in result.configs:
        accs = [by_id[i].best_val_acc for i in c.members]
        row = json_clean(
            [
                c.id,
                *(getattr(c, p) for p in CV_PARAMS),
                *(by_id[c.members[0]].hparams.get(n) for n in own),
                c.status,
                *accs,
                *([None] * (splits - len(accs))),
                c.mean_val_acc,
                c.std_val_acc,
                c.rank_val_acc,
                c.val_acc_se,
                c.mean_val_loss,
                c.stopped_at,
                " ".join(str(i) for i in c.members),
            ]
        )
        w.writerow(["" if v is None else v for v in row])
    return buf.getvalue()
