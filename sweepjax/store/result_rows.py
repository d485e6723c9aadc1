"""A whole :class:`SweepResult` to rows and back: members, curves, parameters and the
summary columns of ``sweeps`` (the store's biggest write and read; :mod:`.db` wraps
them in its transaction and its error handling)."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import time
from typing import Any

import numpy as np

from sweepjax.engine.curves import Curves
from sweepjax.results.config_groups import configs_of
from sweepjax.results.records import BoundaryFlag, SweepResult, TimingRecord, Winner
from sweepjax.store import activations as store_activations
from sweepjax.store.codec import (
    CURVE_FIELDS,
    dump_params,
    member_record,
    member_row,
    refit_json,
    schedule_fields,
    unblob,
    verdict_fields,
)
from sweepjax.store.schema import MEMBER_COLUMNS
from sweepjax.sweep_config import SweepConfig


def write_result(c: sqlite3.Connection, result: SweepResult, params: dict[int, Any] | None) -> None:
    """Inside the caller's transaction: replace the sweep's members, curves and params,
    and mark it finished with its summary (one transaction: all visible or none)."""
    sid = result.sweep_id
    members = [member_row(sid, m) for m in result.members]
    curve_rows = []
    if result.curves is not None:
        cols = [np.asarray(getattr(result.curves, f), np.float32) for f in CURVE_FIELDS]
        curve_rows = [
            (sid, m.id, *(col[i].tobytes() for col in cols)) for i, m in enumerate(result.members)
        ]
    steps = (
        np.asarray(result.curves.step, np.int64).tobytes() if result.curves is not None else None
    )
    param_rows = [
        (sid, int(mid), rank, dump_params(p))
        for rank, (mid, p) in enumerate((params or {}).items())
    ]
    now = time.time()
    for table in ("members", "curves", "params"):
        c.execute(f"DELETE FROM {table} WHERE sweep=?", (sid,))
    c.executemany(
        f"INSERT INTO members ({', '.join(MEMBER_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(MEMBER_COLUMNS))})",
        members,
    )
    c.executemany("INSERT INTO curves VALUES (?,?,?,?,?,?,?)", curve_rows)
    c.executemany("INSERT INTO params VALUES (?,?,?,?)", param_rows)
    store_activations.write(c, sid, result.activations)
    c.execute("DELETE FROM checkpoints WHERE sweep=?", (sid,))
    c.execute(
        "UPDATE sweeps SET status='finished', finished=?, updated=?, space=?, "
        "dataset=?, winner=?, boundary=?, timing=?, refinement=?, curve_steps=?, "
        "report=?, schedule=?, verdict=?, refit=?, steps_done=total_steps, num_members=? "
        "WHERE id=?",
        (
            now,
            now,
            json.dumps(result.space),
            json.dumps(result.dataset),
            result.winner.id if result.winner else None,
            json.dumps([b.as_dict() for b in result.boundary]),
            json.dumps(result.timing.as_dict()),
            result.refinement,
            steps,
            result.report,
            json.dumps(result.schedule_json()),
            json.dumps(result.verdict_json()),
            json.dumps(refit_json(result)),
            len(result.members),  # an anytime run knows its count only at the end
            sid,
        ),
    )


def read_result(store, row: sqlite3.Row, curves: bool) -> SweepResult:
    """The :class:`SweepResult` of the ``sweeps`` row ``row`` of ``store`` (a
    :class:`~sweepjax.store.db.Store`); ``curves=False`` skips the curve blobs."""
    sweep_id = row["id"]
    n_val = json.loads(row["dataset"]).get("n_val")
    members = [
        member_record(r, n_val)
        for r in store.conn.execute(
            f"SELECT {', '.join(MEMBER_COLUMNS)} FROM members WHERE sweep=? ORDER BY id",
            (sweep_id,),
        )
    ]
    by_id = {m.id: m for m in members}
    config = SweepConfig.from_dict(json.loads(row["config"]))  # typed once, defaults filled
    if config.choices:  # a member's categorical values follow from its id
        members = [dataclasses.replace(m, choice=config.member_choice(m.id)) for m in members]
    configs = configs_of(members, config, json.loads(row["dataset"]))
    winner = None
    if row["winner"] is not None and row["winner"] in by_id:
        w = by_id[row["winner"]]
        refit = json.loads(row["refit"] or "{}")
        winner = Winner(
            w.id,
            w.lr,
            w.l2,
            w.best_val_acc,
            w.test_acc,
            val_acc_se=w.val_acc_se,
            refit_test_acc=refit.get("test_acc"),
            refit_steps=refit.get("steps"),
            finished=w.status == "ok",
            steps=None if w.status == "ok" else w.stopped_at,
        )
        c = next((c for c in configs if c.id == w.config), None)
        if c is not None:  # the winner is a config: its mean and the SE of the mean
            winner = dataclasses.replace(
                winner, val_acc=c.mean_val_acc, val_acc_se=c.val_acc_se, config=c.id
            )
    curve_obj = None
    if curves and members and row["curve_steps"] is not None:
        data = {
            int(r[0]): r[1:]
            for r in store.conn.execute(
                "SELECT member, train_loss, val_loss, val_acc, train_acc, update_ratio "
                "FROM curves WHERE sweep=?",
                (sweep_id,),
            )
        }
        steps = np.frombuffer(row["curve_steps"], dtype=np.int64)
        cols_ = [
            np.stack([unblob(data[m.id][j]) for m in members])
            if data
            else np.zeros((len(members), 0), np.float32)
            for j in range(len(CURVE_FIELDS))
        ]
        curve_obj = Curves(steps, *cols_)
    params = store.load_params(sweep_id) if winner is not None else {}
    timing = json.loads(row["timing"]) if row["timing"] else {}
    parent_spaces = []
    p = row["parent"]
    seen = set()
    while p is not None and p not in seen and store.exists(p):
        seen.add(p)
        prow = store.conn.execute("SELECT space, parent FROM sweeps WHERE id=?", (p,)).fetchone()
        parent_spaces.insert(0, (p, json.loads(prow[0])))
        p = prow[1]
    return SweepResult(
        sweep_id=row["id"],
        kind=row["kind"],
        parent=row["parent"],
        dataset=json.loads(row["dataset"]),
        space=json.loads(row["space"]),
        config=config,
        members=members,
        winner=winner,
        boundary=[BoundaryFlag(**b) for b in json.loads(row["boundary"] or "[]")],
        timing=TimingRecord(**{k: timing.get(k, 0.0) for k in TimingRecord.__dataclass_fields__}),
        curves=curve_obj,
        winner_params=params.get(winner.id) if winner else None,
        parent_spaces=parent_spaces,
        refinement=row["refinement"],
        status=row["status"],
        report=row["report"],
        **schedule_fields(row["schedule"]),
        **verdict_fields(row["verdict"]),
        configs=configs,
        activations=store.load_activations(sweep_id),
    )
