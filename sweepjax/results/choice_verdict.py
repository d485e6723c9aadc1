"""A sweep's categorical values judged (:mod:`sweepjax.analysis.choices`) from its member
records: what ``coarse`` prints, the JSON's ``choices`` and the report's side-by-side
table read."""

from __future__ import annotations

import numpy as np

from sweepjax.analysis.choices import ValueScore, compare, verdict_line
from sweepjax.spec.choices import combo_index, label
from sweepjax.sweep_config import SweepConfig


def choice_name(config: SweepConfig) -> str:
    """``optimizer`` (``optimizer+activation`` for several categorical axes)."""
    return "+".join(n for n, _ in config.choices)


def choice_scores(members, config: SweepConfig) -> list[ValueScore]:
    """Each combination of values judged (empty without choices); ``members`` are
    :class:`~sweepjax.results.records.MemberRecord` with their SEs."""
    if not config.choices or not members:
        return []
    g = config.group
    value_of = np.array([combo_index(m.id // g, config.choices) for m in members])

    def col(name, missing=np.nan):
        return np.array([missing if (v := getattr(m, name)) is None else v for m in members])

    # Compared as scores (higher is better: an MSE negated), shown in the metric's units.
    orient = config.metric.orient
    scores = compare(
        [label(c) for c in config.combos()],
        value_of,
        orient(col("best_val_acc").astype(np.float64)),
        col("final_val_loss").astype(np.float64),
        col("val_acc_se").astype(np.float64),
        [m.status for m in members],
        np.array([m.id for m in members], np.int64),
    )
    return [s._replace(acc=float(orient(s.acc))) for s in scores]


def choice_line(members, config: SweepConfig) -> str | None:
    """The one-line verdict over the values (None without choices)."""
    scores = choice_scores(members, config)
    return verdict_line(choice_name(config), scores) if scores else None
