"""Which member is which, as the result says: the groups every panel draws (finished,
stopped by the schedule, diverged, tied, the winner) with their legend labels, the
members chosen to show (the result's winner first, then the CLI's ranking), their table,
and the shared settings that apply to the sweep's model and optimizer.

The report never picks a winner or ranks members itself: the winner and the tied set are
``result.winner`` / ``result.tied`` (what the CLI, the JSON and the store name), the order
:func:`sweepjax.search.ranking` (what the CLI prints). Pure functions of the result.
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from sweepjax import search
from sweepjax.config import is_factory_name
from sweepjax.sweep_config import SweepConfig


class Groups(NamedTuple):
    """Rows of ``result.members`` by how they are drawn."""

    ok: np.ndarray
    stopped: np.ndarray
    diverged: np.ndarray
    tied: np.ndarray  # finished members tied with the winner (the winner excluded)
    winner: np.ndarray  # zero or one row


def member_groups(result) -> Groups:
    """Every member in exactly one of ``ok`` / ``stopped`` / ``diverged`` (by its status);
    ``tied`` and ``winner`` from ``result.tied`` / ``result.winner`` (with replicas or
    folds ``tied`` holds config ids: every finished replica of a tied config)."""
    status = np.array([m.status for m in result.members])
    rows = np.arange(len(result.members))
    w = result.winner.id if result.winner is not None else None
    if getattr(result, "configs", None):  # tied holds config ids
        configs = set(result.tied)
        tied_ids = {m.id for m in result.members if m.config in configs}
    else:
        tied_ids = set(result.tied)
    ids = np.array([m.id for m in result.members])
    return Groups(
        ok=rows[status == "ok"],
        stopped=rows[status == "stopped"],
        diverged=rows[(status != "ok") & (status != "stopped")],
        tied=rows[np.isin(ids, list(tied_ids - {w})) & (status == "ok")],
        winner=rows[ids == w],
    )


def schedule_name(config: SweepConfig) -> str:
    """The schedule a sweep of ``config`` ran under (``"full"``, ``"halving"``, ...)."""
    return config.schedule.name


def stopped_by(config: SweepConfig) -> str:
    """Who stops members early: the schedule's name (``"halving"``), or "the schedule"."""
    sched = schedule_name(config)
    return "the schedule" if sched == "full" else sched


def status_labels(result, g: Groups | None = None) -> dict[str, str]:
    """Legend labels with counts: ``{"ok": "finished (10)", "stopped": "stopped by
    halving (239)", "diverged": "diverged (7)"}``; every panel labels its groups so."""
    g = member_groups(result) if g is None else g
    return {
        "ok": f"finished ({len(g.ok)})",
        "stopped": f"stopped by {stopped_by(result.config)} ({len(g.stopped)})",
        "diverged": f"diverged ({len(g.diverged)})",
    }


def score_label(result, text: str) -> str:
    """``text`` about accuracy in the words of the sweep's metric (an MSE: "mse (lower
    is better)"); accuracy's text as it is."""
    m = result.config.metric
    if m.binomial:
        return text
    way = "higher" if m.higher_is_better else "lower"
    return text.replace("accuracy", f"{m.short} ({way} is better)")


def score_cmap(result, name: str = "viridis") -> str:
    """The colour map of the metric's values: its best end bright (reversed for a
    metric where lower is better)."""
    return name if result.config.metric.higher_is_better else f"{name}_r"


def accuracy_range(result, g: Groups | None = None) -> tuple[float, float]:
    """``(lo, hi)`` of the colour scale: the best validation accuracies of every member
    drawn with a score (finished and stopped; diverged ones have none worth a colour)."""
    g = member_groups(result) if g is None else g
    acc = result.member_array("best_val_acc")
    seen = acc[np.concatenate([g.ok, g.stopped]).astype(np.int64)]
    seen = seen[np.isfinite(seen)]
    lo, hi = (float(seen.min()), float(seen.max())) if seen.size else (0.0, 1.0)
    return lo, (hi if hi > lo else lo + 1e-6)


# --------------------------------------------------------------------------- chosen
def chosen_rows(result, k: int) -> list[int]:
    """Rows of the ``k`` members to show: ``result.winner`` first, then the finished
    members in :func:`sweepjax.search.ranking` order (the CLI's table)."""
    w = result.winner.id if result.winner is not None else None
    rows = [i for i, m in enumerate(result.members) if m.id == w][:1]
    rows += [
        int(i)
        for i in search.ranking(result)
        if result.members[i].status == "ok" and result.members[i].id != w
    ]
    return rows[:k]


def rank_label(result, row: int, position: int) -> str:
    """``"winner"`` for the result's winner, else ``"#n"`` (``position`` 0-based)."""
    w = result.winner.id if result.winner is not None else None
    return "winner" if result.members[row].id == w else f"#{position + 1}"


# Members shown side by side: the winner and the next best.
NUM_CHOSEN = 5
FIELDS = (
    "best_val_acc",
    "best_step",
    "final_train_acc",
    "final_val_acc",
    "final_train_loss",
    "final_val_loss",
    "status",
    "test_acc",
)


def fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if not np.isfinite(v):
            return str(v)
        return f"{v:.4g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"
    return str(v)


def chosen_members(
    result, k: int = NUM_CHOSEN
) -> tuple[list[str], list[list[str]], list[list[str]]]:
    """The chosen members (:func:`chosen_rows`) side by side: ``(header, rows, classes)``
    where a cell's class is ``"diff"`` when it differs from the first column's value
    (the winner's)."""
    rows_idx = chosen_rows(result, k)
    members = [result.members[i] for i in rows_idx]
    header = ["field"] + [
        f"{rank_label(result, i, j)} (id {result.members[i].id})" for j, i in enumerate(rows_idx)
    ]
    extra = [a for a in result.space if a not in ("lr", "l2", "lr_decay")]
    rows, classes = [], []
    for f in ["lr", "l2", "lr_decay", *extra, *FIELDS]:
        # Highlight what differs from the winner: hyperparameters at 3 significant digits.
        key = [fmt(getattr(m, f, None)) for m in members]
        rows.append([f] + key)
        classes.append([""] + ["diff" if j and v != key[0] else "" for j, v in enumerate(key)])
    gap = [
        m.final_train_acc - m.final_val_acc
        if m.final_train_acc is not None and m.final_val_acc is not None
        else None
        for m in members
    ]
    rows.append([f"train - val {result.config.metric.short}"] + [fmt(g) for g in gap])
    classes.append([""] * (len(members) + 1))
    stats = getattr(result, "activations", None) or {}
    if stats:
        rows.append(
            ["dead hidden units"]
            + [
                f"{stats[m.id].dead} of {stats[m.id].width}" if m.id in stats else "-"
                for m in members
            ]
        )
        classes.append([""] * (len(members) + 1))
    return header, rows, classes


# --------------------------------------------------------------------------- settings
# Settings that only some models / optimizers / schedules read, by their last name in the
# flattened config (``model.hidden``, ``train.momentum``, ``spec.hidden`` ...).
MLP_ONLY = frozenset({"hidden", "dropout"})
MOMENTUM_OPTIMIZERS = frozenset({"momentum", "adam"})  # momentum: the trace decay / b1
SCHEDULE_SETTINGS = {
    "eta": {"halving", "hyperband", "asha"},
    "rungs": {"halving", "hyperband", "asha"},
    "interval": {"pbt"},
    "pbt_interval": {"pbt"},
    "budget": {"asha"},
    "width": {"asha"},
    "brackets": {"asha"},
}
PER_MEMBER = frozenset({"momentum", "dropout", "init_scale"})  # train.X: the unswept value


def applies(key: str, config: SweepConfig) -> bool:
    """Whether the flattened setting ``key`` (e.g. ``"train.momentum"``) acts in a sweep
    of ``config``: ``hidden`` and ``dropout`` only for the built-in mlp, ``momentum`` only
    for the momentum and adam optimizers, each schedule's own settings only under it,
    and a fixed value of a per-member axis (``train.momentum``) only when not swept."""
    section, _, name = key.rpartition(".")
    if section in ("train", "model", "spec") and name in dict(config.choices):
        return False  # a categorical axis: each member's own value (the choice column)
    if name in MLP_ONLY and config.model.kind != "mlp":
        return False
    if name == "momentum" and not (
        config.train.optimizer in MOMENTUM_OPTIMIZERS
        or (is_factory_name(config.train.optimizer) and _factory_momentum(config.train.optimizer))
    ):
        return False
    if section == "train" and name in PER_MEMBER and name in config.space.axes():
        return False  # each member's own value applies (the members table shows it)
    if section in ("schedule", "spec") and name in SCHEDULE_SETTINGS:
        return config.schedule.name in SCHEDULE_SETTINGS[name]
    return True


def flatten(d, prefix: str = "") -> list[tuple[str, str]]:
    """``[(dotted key, formatted value)]`` of a nested dict, lists as JSON."""
    out = []
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out += flatten(v, f"{prefix}{k}.")
        else:
            out.append((f"{prefix}{k}", json.dumps(v) if isinstance(v, list | tuple) else fmt(v)))
    return out


# Sources found on disk or downloaded: the only ones `download` and `data_dir` act on.
DOWNLOADABLE = frozenset({"mnist", "fashion-mnist"})


def data_used(rows: list[tuple[str, str]], dataset: dict) -> list[tuple[str, str]]:
    """The data rows as the sweep really used them (``dataset``, its ``DatasetInfo``): the
    source used (and the one asked for, after the offline fallback), where it was read
    from, and ``download`` / ``data_dir`` only for a source they act on."""
    used, asked = dataset.get("name"), dataset.get("requested")
    if not used:
        return rows
    shown = used if not asked or asked == used else f"{used} (asked for {asked})"
    out = []
    for k, v in rows:
        name = k.rpartition(".")[2]
        if name in ("download", "data_dir") and k.startswith("data.") and used not in DOWNLOADABLE:
            continue
        if name == "dataset" and k in ("data.dataset", "spec.dataset"):
            v = shown
        out.append((k, v))
        if k == "data.dataset" and dataset.get("origin"):
            out.append(("data.origin", str(dataset["origin"])))
    return out


def shared_settings(config: SweepConfig, dataset: dict | None = None) -> list[tuple[str, str]]:
    """The "Shared configuration" rows: every stored setting (``config.as_dict()``, as the
    store keeps it) that applies (:func:`applies`), the data as really used when
    ``dataset`` (the result's) is given (:func:`data_used`)."""
    rows = [(k, v) for k, v in flatten(config.as_dict()) if applies(k, config)]
    return data_used(rows, dataset) if dataset else rows


__all__ = [
    "Groups",
    "accuracy_range",
    "score_cmap",
    "score_label",
    "applies",
    "chosen_members",
    "chosen_rows",
    "member_groups",
    "rank_label",
    "schedule_name",
    "shared_settings",
    "status_labels",
    "stopped_by",
]


def _factory_momentum(name: str) -> bool:
    """Whether an optax factory has a momentum axis (deferred: it imports optax and jax,
    which the live page's index never needs)."""
    from sweepjax.engine.optimizers import has_momentum

    return has_momentum(name)
