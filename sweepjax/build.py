"""The :class:`SweepResult` of a finished population (records, winner, verdicts)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sweepjax import search
from sweepjax import verdict as vd
from sweepjax.appraise import Appraisal, appraise, boundary_records, verdict_record
from sweepjax.config import SearchSpace
from sweepjax.data import Dataset
from sweepjax.results import MemberRecord, SweepResult, TimingRecord, Winner
from sweepjax.sweep_config import SweepConfig
from sweepjax.train import PopulationResult, accuracy, member_params

PARAMS_KEPT = 5  # members whose learned weights are stored (winner first)


def _num(x) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def build_result(
    sid: str,
    cfg: SweepConfig,
    res: PopulationResult,
    ds: Dataset,
    refinement: str | None = None,
    parent_spaces: list | None = None,
) -> tuple[SweepResult, dict[int, Any]]:
    """The :class:`SweepResult` of a finished population, and ``{member id: params}`` of
    the best few surviving members (winner first)."""
    hp = res.hparams
    status = res.status
    members = [
        MemberRecord(
            id=int(res.member_ids[i]),
            lr=float(hp.lr[i]),
            l2=float(hp.l2[i]),
            lr_decay=float(hp.lr_decay[i]),
            status=status[i],
            diverged_at=None if res.alive[i] else int(res.diverged_at[i]),
            best_val_acc=float(res.best_val_acc[i]),
            best_step=int(res.best_step[i]),
            final_train_loss=_num(res.final_train_loss[i]),
            final_val_loss=_num(res.final_val_loss[i]),
            final_train_acc=_num(res.final_train_acc[i]),
            final_val_acc=_num(res.final_val_acc[i]),
            stopped_at=int(res.stopped_at[i]) if res.stopped_at[i] >= 0 else None,
        )
        for i in range(res.num_members)
    ]
    ids = res.member_ids
    t = res.timing
    result = SweepResult(
        sweep_id=sid,
        kind=cfg.kind,
        parent=cfg.parent,
        dataset=ds.info.as_dict(),
        space=cfg.space.as_dict(),
        config=cfg.as_dict(),
        members=members,
        winner=None,
        boundary=[],
        timing=TimingRecord(t.compile_s, t.train_s, t.model_steps_per_s, t.eval_s, t.transfer_s),
        curves=res.curves,
        parent_spaces=parent_spaces or [],
        refinement=refinement,
        lineage=[
            {"step": int(a), "member": int(ids[b]), "copied_from": int(ids[c])}
            for a, b, c in res.lineage
        ],
        history=[
            {
                "step": int(a),
                "member": int(ids[int(b)]),
                "lr": float(c),
                "l2": float(d),
                "lr_decay": float(e),
            }
            for a, b, c, d, e in res.history
        ],
    )
    judge_result(
        result,
        cfg.space,
        ds.info.n_val,
        band=cfg.band,
        margin=cfg.margin,
        seed=cfg.train.seed,
        surface=cfg.schedule.name != "pbt",
    )
    members = result.members
    by_id = {m.id: i for i, m in enumerate(members)}
    top = [by_id[i] for i in ([result.winner.id] if result.winner else [])]
    top += [i for i in search.top_members(result, PARAMS_KEPT) if i not in top]
    top = top[: max(PARAMS_KEPT, 1)]
    params = {members[i].id: member_params(res, i) for i in top}
    if top:
        w = top[0]
        test = accuracy(params[members[w].id], cfg.model, ds.num_classes, ds.x_test, ds.y_test)
        members[w] = dataclasses.replace(members[w], test_acc=test)
        result.winner = dataclasses.replace(result.winner, test_acc=test)
        result.winner_params = params[members[w].id]
    return result, params


def judge_result(
    result: SweepResult,
    space: SearchSpace,
    n_val: int,
    band: float = vd.DEFAULT_BAND,
    margin: float = vd.DEFAULT_MARGIN,
    seed: int = 0,
    surface: bool = True,
) -> Appraisal:
    """Fill ``result``'s scores-with-SEs, winner, tied set, boundary flags and verdict from
    :func:`sweepjax.appraise.appraise` (in place); returns the appraisal.

    The winner is the best member that trained to the end (ties in accuracy broken by
    lower validation loss); ``tied`` the finished members statistically tied with it.

    ``surface=False`` skips the response-surface verdicts (no boundary, flat or optimum
    claims): under PBT a member's score comes from a schedule of hyperparameters, not
    from the final values it ends with, so a surface over those values would mislead.
    """
    a = appraise(result.members, space, n_val, result.curves, band=band, margin=margin, seed=seed)
    if not surface:
        a = dataclasses.replace(a, surface=None, verdict=None, box=None)
    result.members = [
        dataclasses.replace(m, val_acc_se=float(a.se[i])) for i, m in enumerate(result.members)
    ]
    result.tied = [result.members[i].id for i in a.tied]
    result.boundary = boundary_records(a)
    result.verdict = verdict_record(a, space)
    result.winner = None
    if a.winner is not None:
        m = result.members[a.winner]
        result.winner = Winner(
            m.id, m.lr, m.l2, m.best_val_acc, m.test_acc, val_acc_se=m.val_acc_se
        )
    return a
