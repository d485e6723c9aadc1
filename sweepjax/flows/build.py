"""The :class:`SweepResult` of a finished population (records, winner, verdicts)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from sweepjax import search
from sweepjax.analysis import activations as act
from sweepjax.analysis import verdict as vd
from sweepjax.config import SearchSpace
from sweepjax.data import Dataset
from sweepjax.engine import PopulationResult, accuracy, member_params, optimizers
from sweepjax.engine.curves import history_names, history_rows
from sweepjax.engine.setup import task_of
from sweepjax.flows.sweep_config import SweepConfig
from sweepjax.results.appraise import Appraisal, judge_sweep
from sweepjax.results.claims import boundary_records, verdict_record
from sweepjax.results.config_groups import configs_of, eval_rows
from sweepjax.results.records import MemberRecord, SweepResult, TimingRecord, Winner

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
    t = res.timing
    result = SweepResult(
        sweep_id=sid,
        kind=cfg.kind,
        parent=cfg.parent,
        dataset=ds.info.as_dict(),
        space=cfg.space.as_dict(),
        config=cfg,
        members=member_records(res, cfg, _rows_scored(cfg, ds)),
        winner=None,
        boundary=[],
        timing=TimingRecord(t.compile_s, t.train_s, t.model_steps_per_s, t.eval_s, t.transfer_s),
        curves=res.curves,
        parent_spaces=parent_spaces or [],
        refinement=refinement,
        lineage=_lineage(res),
        history=_history(res),
    )
    if res.progress is not None:  # an anytime run's best-so-far points (member ids)
        result.progress = _progress(res)
        result.in_flight = int(res.in_flight)
    judge_result(
        result,
        cfg.space,
        ds.info.n_val,
        band=cfg.band,
        margin=cfg.margin,
        seed=cfg.train.seed,
        surface=cfg.schedule.name != "pbt",
    )
    if result.winner is None and cfg.schedule.name == "asha":
        result.winner = unfinished_winner(result)
    top = _kept_rows(result)
    params = {result.members[i].id: member_params(res, i) for i in top}
    if top:  # scored with its own model (a categorical width or activation)
        _test_the_winner(result, top[0], params, cfg.member_config(result.members[top[0]].id), ds)
    if cfg.model.kind == "mlp":  # the built-in MLP's layout (a user's model has its own)
        widths = {result.members[i].id: res.hparams.hidden[i] for i in top}
        result.activations = kept_activations(params, widths, ds)
    return result, params


def _rows_scored(cfg: SweepConfig, ds: Dataset) -> int:
    """The validation rows each member's score is a mean over (its fold's with folds)."""
    n = eval_rows(cfg, ds.info.as_dict())
    return max(n // cfg.folds if cfg.folds > 1 else n, 1)


def member_records(res: PopulationResult, cfg: SweepConfig, n_val: int = 0) -> list[MemberRecord]:
    """One :class:`MemberRecord` per row of ``res``, not yet judged: no SEs, except for a
    metric other than accuracy, whose SE is its per-example values' SD / sqrt(``n_val``)
    (:meth:`~sweepjax.metric.Metric.se` of the mean square the trainer measured)."""
    hp = res.hparams
    metric, sq, acc = cfg.metric, res.best_val_sq, res.best_val_acc

    def se(i: int) -> float | None:
        if metric.binomial or sq is None or not (np.isfinite(sq[i]) and np.isfinite(acc[i])):
            return None
        return float(metric.se(acc[i], sq[i], n_val))

    g = cfg.group  # members per config: member id = config id * g + replica
    mlp = cfg.model.kind == "mlp"
    # With categorical axes each member's own optimizer / width (cfg.member_config).
    own = [cfg.member_config(int(i)) for i in res.member_ids] if cfg.choices else None
    sgd = [
        not optimizers.has_momentum((own[i] if own else cfg).train.optimizer)
        for i in range(res.num_members)
    ]
    width = [(own[i] if own else cfg).model.hidden for i in range(res.num_members)]
    return [
        MemberRecord(
            id=int(res.member_ids[i]),
            lr=float(hp.lr[i]),
            l2=float(hp.l2[i]),
            lr_decay=float(hp.lr_decay[i]),
            # the width it trained at: its own inside the network's (inf = the full width)
            hidden=int(min(hp.hidden[i], width[i])) if mlp else None,
            dropout=float(hp.dropout[i]),
            init_scale=float(hp.init_scale[i]),
            momentum=None if sgd[i] else float(hp.momentum[i]),
            hparams={k: float(v[i]) for k, v in hp.user.items()},
            choice=cfg.member_choice(int(res.member_ids[i])),
            status=res.status[i],
            diverged_at=None if res.alive[i] else int(res.diverged_at[i]),
            best_val_acc=float(res.best_val_acc[i]),
            best_step=int(res.best_step[i]),
            final_train_loss=_num(res.final_train_loss[i]),
            final_val_loss=_num(res.final_val_loss[i]),
            final_train_acc=_num(res.final_train_acc[i]),
            final_val_acc=_num(res.final_val_acc[i]),
            stopped_at=int(res.stopped_at[i]) if res.stopped_at[i] >= 0 else None,
            config=int(res.member_ids[i]) // g if g > 1 else None,
            replica=int(res.member_ids[i]) % g if g > 1 else None,
            val_acc_se=se(i),
        )
        for i in range(res.num_members)
    ]


def _lineage(res: PopulationResult) -> list[dict]:
    """PBT's copies ``(step, member, copied from)``, rows turned into member ids."""
    ids = res.member_ids
    return [
        {"step": int(a), "member": int(ids[b]), "copied_from": int(ids[c])}
        for a, b, c in res.lineage
    ]


def _history(res: PopulationResult) -> list[dict]:
    """PBT's hyperparameter changes ``(step, member, lr, l2, lr_decay, *user)``, by member
    id (a user's axis where recorded: not in rows of checkpoints written before)."""
    ids, names = res.member_ids, history_names(res.hparams)
    out = []
    for row in history_rows(res.history, res.hparams):
        h = {"step": int(row[0]), "member": int(ids[int(row[1])])}
        h.update((n, float(v)) for n, v in zip(names, row[2:], strict=True) if np.isfinite(v))
        out.append(h)
    return out


def _progress(res: PopulationResult) -> list[dict]:
    """An anytime run's best-so-far points, by member id."""
    ids = res.member_ids
    return [
        {
            "elapsed_s": float(e),
            "member_steps": int(n),
            "best_val_acc": float(a),
            "member": int(ids[int(r)]),
        }
        for e, n, a, r in res.progress
    ]


def _kept_rows(result: SweepResult) -> list[int]:
    """Rows of the members whose weights are kept: the winner first when it finished
    (an unfinished one has no weights), then the best others, :data:`PARAMS_KEPT` in
    all."""
    members = result.members
    by_id = {m.id: i for i, m in enumerate(members)}
    top = [by_id[i] for i in ([result.winner.id] if result.winner else [])]
    top = [i for i in top if members[i].status == "ok"]
    top += [i for i in search.top_members(result, PARAMS_KEPT) if i not in top]
    return top[: max(PARAMS_KEPT, 1)]


def _test_the_winner(result: SweepResult, w: int, params: dict, cfg: SweepConfig, ds: Dataset):
    """Score row ``w`` (the first kept) on the test set; record it on its member and on
    the winner, whose parameters it becomes (in place)."""
    members = result.members
    p = params[members[w].id]
    test = accuracy(
        p, cfg.model, ds.num_classes, ds.x_test, ds.y_test, ds.info.input_shape,
        task_of(ds, cfg.train),
    )  # fmt: skip
    members[w] = dataclasses.replace(members[w], test_acc=test)
    result.winner = dataclasses.replace(result.winner, test_acc=test)
    result.winner_params = p


def unfinished_winner(result: SweepResult) -> Winner | None:
    """An anytime search that finished no member still answers: its best member so far
    (:func:`sweepjax.search.ranking`'s first that did not diverge), marked unfinished,
    or None when every member diverged."""
    for i in search.ranking(result):
        m = result.members[int(i)]
        if m.status == "diverged" or m.best_val_acc is None:
            continue
        return Winner(
            m.id, m.lr, m.l2, m.best_val_acc, None, val_acc_se=m.val_acc_se, finished=False,
            steps=m.stopped_at if m.stopped_at is not None else m.best_step,
        )  # fmt: skip
    return None


def kept_activations(params: dict[int, Any], widths: dict[int, float], ds: Dataset) -> dict:
    """``{member id: ActivationStats}`` of the kept MLP members on the first
    :data:`~sweepjax.analysis.activations.SAMPLE_ROWS` validation rows (training rows when there
    is no validation set); empty for models without the MLP's hidden layer.

    Computed here, where the data is, so the store keeps a few kilobytes of counts per
    member instead of a data sample, and the report draws them without the dataset."""
    x = ds.x_val if len(ds.x_val) else ds.x_train
    x = np.asarray(x[: act.SAMPLE_ROWS])
    return {
        mid: act.activation_stats(p, x, width=widths.get(mid), member=mid)
        for mid, p in params.items()
        if act.is_mlp(p, x.shape[1]) and len(x)
    }


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
    :func:`sweepjax.results.appraise.judge_members` (in place); returns the appraisal.

    The winner is the best member that trained to the end (ties in accuracy broken by
    lower validation loss); ``tied`` the finished members statistically tied with it.
    With replicas or folds (``result.configs``) the configs are judged instead: their
    mean accuracy with the SE of the mean, ``tied`` holds config ids, the surface is
    fitted to the config means.

    ``surface=False`` skips the response-surface verdicts (no boundary, flat or optimum
    claims): under PBT a member's score comes from a schedule of hyperparameters, not
    from the final values it ends with, so a surface over those values would mislead.
    """
    result.configs = configs_of(result.members, result.config, result.dataset)
    if result.configs:  # the members' own SEs stay binomial (a fold member's on its
        # fold's rows); the configs carry the SEs of their means
        k = result.config.folds
        n_m = max(eval_rows(result.config, result.dataset) // k, 1) if k > 1 else n_val
        metric = result.config.metric
        result.members = [
            dataclasses.replace(
                m,
                val_acc_se=float(vd.accuracy_se(np.array([m.best_val_acc]), n_m)[0])
                if metric.binomial
                else m.val_acc_se,
            )
            for m in result.members
        ]
    a, judged = judge_sweep(
        result.members,
        result.configs,
        space,
        n_val,
        result.curves,
        band=band,
        margin=margin,
        seed=seed,
        metric=result.config.metric,
    )
    if not surface:
        a = dataclasses.replace(a, surface=None, verdict=None, box=None)
    if not result.configs:
        result.members = [
            dataclasses.replace(m, val_acc_se=float(a.se[i])) for i, m in enumerate(result.members)
        ]
        judged = result.members
    result.tied = [judged[i].id for i in a.tied]
    result.boundary = boundary_records(a)
    result.verdict = verdict_record(a, space)
    result.winner = None
    if a.winner is not None:
        w = judged[a.winner]
        if result.configs:  # the winning config; its best replica stands for it
            c = next(c for c in result.configs if c.id == w.id)
            reps = [m for m in result.members if m.id in c.members and m.status == "ok"]
            score = result.config.metric.orient
            best = max(reps, key=lambda m: np.nan_to_num(score(m.best_val_acc), nan=-np.inf))
            result.winner = Winner(
                best.id, c.lr, c.l2, c.mean_val_acc, best.test_acc, c.val_acc_se, config=c.id
            )
        else:
            result.winner = Winner(
                w.id, w.lr, w.l2, w.best_val_acc, w.test_acc, val_acc_se=w.val_acc_se
            )
    return a
