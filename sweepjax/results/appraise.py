"""From a sweep's member records to verdicts in real units: scores with SEs, the tied set,
the fitted response surface, boundary / flat-axis / importance decisions and the next box.

The glue between :mod:`sweepjax.results.records` (records in real units) and
:mod:`sweepjax.analysis.verdict` (pure statistics in unit coordinates). Pure
numpy: nothing here trains, stores or prints.

Which members count where (a scheduled sweep stops most members early):

- **Winner and tied set: members that trained to the end (status ``ok``) only.** A
  stopped member's accuracy comes from shorter training; a tie with it says nothing
  about the full budget.
- **Surface: every non-diverged member, stopped ones down-weighted by what they missed.**
  The finished members alone are few (1/eta^rungs of the population) and crowd into the
  winner's region, so a surface fitted to them alone extrapolates exactly where the edge
  and flat-axis verdicts look. A member stopped at step ``s`` enters with the accuracy it
  had (halving stopped it because it was worse at ``s``), and an SE of
  ``sqrt(binomial^2 + gain(s)^2 + sd(s)^2)``: ``gain(s)`` and ``sd(s)`` are the median
  and SD over finished members of (final best accuracy - best accuracy on their curve up
  to ``s``), i.e. how much a member could still have gained. Members stopped at the
  first rung, with most of their training ahead, then barely pull the fit; those of the
  last rung nearly count as finished. Adding that gain to the stopped members' scores
  instead was tried and rejected: the gain depends on the member (on a box of too-low
  learning rates the finished fast learners gain 0.6 while the slow ones would gain
  nothing), and the offset turned the surface upside down there. Without curves (nothing
  to estimate the gain from) stopped members are left out of the fit.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from sweepjax.analysis import evidence as ev
from sweepjax.analysis import verdict as vd
from sweepjax.analysis.surface import Surface, fit_surface
from sweepjax.config import SearchSpace, axis_of
from sweepjax.engine.curves import Curves
from sweepjax.metric import ACCURACY, Metric
from sweepjax.results.records import ConfigRecord, MemberRecord


@dataclass(frozen=True)
class Appraisal:
    """Everything judged about one sweep.

    Attributes:
      axes: searched axis names, column order.
      se: ``[N]`` binomial SE of each member's accuracy (row order of the members).
      order: rows of the finished members, best first (the one ranking order:
        :func:`sweepjax.analysis.ranking.rank_order`: accuracy, then loss, then id).
      winner: row of the winner, or None when no member finished.
      tied: rows tied with the winner (winner first), empty without a winner.
      x_unit: ``[N, A]`` members in unit coordinates of the searched box.
      surface, verdict, box: the fitted model, its decisions and the next box (unit
        coordinates), or None when too few members are left to fit.
      caps_high, caps_low: ``[A]`` the high / low edge is a hard cap.
      fit_note: which members the surface was fitted on.
      frontiers: the regions at an axis's edge where most members diverged
        (:func:`sweepjax.analysis.evidence.divergence_frontiers`); the next box stays out.
      finished: ``[N]`` bool, the member trained to the end (for "not measured" claims).
    """

    axes: tuple[str, ...]
    se: np.ndarray
    order: np.ndarray
    winner: int | None
    tied: np.ndarray
    x_unit: np.ndarray
    surface: Surface | None
    verdict: vd.Verdict | None
    box: vd.Box | None
    caps_high: np.ndarray
    fit_note: str
    caps_low: np.ndarray | None = None
    frontiers: tuple[ev.Frontier, ...] = ()
    finished: np.ndarray | None = None


def _reaches(v: float, cap: float | None, sign: float) -> bool:
    """``v`` is at (or past) ``cap`` on its side (``sign`` +1: a ceiling, -1: a floor)."""
    return cap is not None and sign * (v - cap) >= -1e-6 * max(1.0, abs(cap))


def caps_high(space: SearchSpace) -> np.ndarray:
    """``[A]`` high edges that are hard caps (:data:`~sweepjax.config.AXES`): the box
    reaches ``lr_decay`` 1 (a constant rate), or ``dropout`` / ``momentum`` their maxima."""
    return np.array([_reaches(r.hi, axis_of(n, r).ceiling, 1.0) for n, r in space.axes().items()])


def caps_low(space: SearchSpace) -> np.ndarray:
    """``[A]`` low edges that are hard caps: ``dropout`` / ``momentum`` at 0, ``hidden`` 1."""
    return np.array([_reaches(r.lo, axis_of(n, r).floor, -1.0) for n, r in space.axes().items()])


def stopped_offsets(
    members: list[MemberRecord], curves: Curves | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Surface scores of the members (see the module docstring).

    Returns ``(score [N], extra_se [N], use [N])``: the accuracy, the SE added to its
    binomial one (a stopped member's possible later gain), and whether it enters the fit.
    """
    n = len(members)
    acc = np.array([m.best_val_acc for m in members], dtype=np.float64)
    score, extra = acc.copy(), np.zeros(n)
    use = np.array([m.status in ("ok", "stopped") for m in members]) & np.isfinite(acc)
    stopped = [i for i, m in enumerate(members) if m.status == "stopped"]
    if not stopped:
        return score, extra, use
    ok = np.array([m.status == "ok" for m in members])
    have = curves is not None and curves.val_acc.shape[1] > 0 and ok.any()
    if not have:
        use[stopped] = False
        return score, extra, use
    va = np.asarray(curves.val_acc, dtype=np.float64)
    steps = np.asarray(curves.step)
    for s in sorted({members[i].stopped_at for i in stopped}):
        upto = steps <= s
        seen = np.where(np.isfinite(va[ok][:, upto]), va[ok][:, upto], -np.inf).max(
            axis=1, initial=-np.inf
        )
        gains = acc[ok] - seen
        gains = gains[np.isfinite(gains)]
        rows = [i for i in stopped if members[i].stopped_at == s]
        if len(gains) == 0:
            use[rows] = False
            continue
        gain = max(float(np.median(gains)), 0.0)
        extra[rows] = float(np.hypot(gain, np.std(gains)))
    return score, extra, use


def judge_members(
    members: list[MemberRecord],
    space: SearchSpace,
    n_val: int,
    curves: Curves | None = None,
    band: float = vd.DEFAULT_BAND,
    margin: float = vd.DEFAULT_MARGIN,
    seed: int = 0,
    acc_se: np.ndarray | None = None,
    metric: Metric = ACCURACY,
) -> Appraisal:
    """Judge a sweep: rank, tie, fit, decide, and propose the next box.

    Every judgement reads scores, higher is better: a metric other than accuracy (an
    MSE) is oriented first (:func:`oriented`), with its own SEs.

    Args:
      members: the sweep's records (any order; rows of the arrays returned).
      space: the searched box.
      n_val: validation set size (``best_val_acc`` is measured on all of it).
      curves: the sweep's curves (rows = ``members``), for the stopped-member offsets.
      band, margin: see :func:`sweepjax.analysis.verdict.judge_surface` / :func:`refine_box`.
      seed: seed of the posterior draws behind the confidences.
      acc_se: optional ``[N]`` empirical SEs (configs averaged over replicas or folds:
        :func:`sweepjax.results.config_groups.config_se`) used instead of the binomial ones.
      metric: what ``best_val_acc`` measures (:class:`~sweepjax.metric.Metric`).

    Example::

      a = judge_members(result.members, result.config.space, result.dataset["n_val"])
      [result.members[i].id for i in a.tied], a.verdict.flat
    """
    if metric is not ACCURACY:
        members, curves, acc_se = oriented(members, curves, n_val, metric, acc_se)
    axes = tuple(space.axes())
    ranges = space.axes()
    n = len(members)
    x = np.stack([np.asarray(ranges[a].to_unit([getattr(m, a) for m in members])) for a in axes])
    x = x.T.reshape(n, len(axes))
    acc = np.array([m.best_val_acc for m in members], dtype=np.float64)
    loss = np.array(
        [np.nan if m.final_val_loss is None else m.final_val_loss for m in members], np.float64
    )
    se = (
        vd.accuracy_se(np.nan_to_num(acc, nan=0.0), n_val)
        if acc_se is None
        else np.nan_to_num(np.asarray(acc_se, np.float64), nan=0.5)
    )
    ok = np.array([m.status == "ok" for m in members]) & np.isfinite(acc)
    cap_hi, cap_lo = caps_high(space), caps_low(space)
    empty = np.zeros(0, np.int64)
    diverged = np.array([m.status == "diverged" for m in members])
    frontiers = tuple(ev.divergence_frontiers(x, diverged))
    if not ok.any():
        return Appraisal(
            axes, se, empty, None, empty, x, None, None, None, cap_hi, "", cap_lo, frontiers, ok
        )
    ids = np.array([m.id for m in members], np.int64)
    rank = vd.tied_set(acc, loss, ok, n_val, None if acc_se is None else se, ids=ids)
    score, extra, use = stopped_offsets(members, curves)
    base = vd.accuracy_se(np.nan_to_num(score, nan=0.0), n_val) if acc_se is None else se
    fit_se = np.sqrt(base**2 + extra**2)
    n_stopped = int(np.sum(use & ~ok))
    note = f"surface fitted on {int(use.sum())} members ({int(ok.sum())} finished"
    note += f", {n_stopped} stopped early, down-weighted by the gain they missed"
    n_div = int(diverged.sum())
    note += f"; {n_div} diverged, entered at the floor)" if n_div else ")"
    surface = verdict = box = None
    try:
        surface = fit_surface(
            x, score, use, n_val, axes, acc_se=fit_se, diverged=diverged, exact=ok
        )
    except (ValueError, np.linalg.LinAlgError) as e:
        note = f"no surface ({e})"
    if surface is not None:
        verdict = vd.judge_surface(surface, rank.winner_se, cap_lo, cap_hi, band=band, seed=seed)
        lim_lo, lim_hi = ev.frontier_limits(list(frontiers), len(axes))
        box = vd.refine_box(
            verdict, axes, x[rank.tied], cap_lo, cap_hi, margin=margin,
            limit_low=lim_lo, limit_high=lim_hi,
        )  # fmt: skip
    return Appraisal(
        axes, se, rank.order, rank.winner, rank.tied, x, surface, verdict, box, cap_hi, note,
        cap_lo, frontiers, ok,
    )  # fmt: skip


def oriented(
    members: list[MemberRecord],
    curves: Curves | None,
    n_val: int,
    metric: Metric,
    acc_se: np.ndarray | None,
) -> tuple[list[MemberRecord], Curves | None, np.ndarray]:
    """The records and curves with the metric's values as scores (higher is better:
    an MSE negated) and their ``[N]`` SEs: ``acc_se`` when given (config means), else
    each member's own ``val_acc_se`` (the per-example SD / sqrt(n) the trainer measured),
    else the metric's SE from its value alone (:meth:`~sweepjax.metric.Metric.se`)."""
    vals = np.array([m.best_val_acc for m in members], np.float64)
    if acc_se is None:
        own = np.array([np.nan if m.val_acc_se is None else m.val_acc_se for m in members])
        acc_se = np.where(np.isfinite(own), own, metric.se(vals, None, n_val))
    recs = [
        dataclasses.replace(m, best_val_acc=float(metric.orient(m.best_val_acc))) for m in members
    ]
    if curves is not None:
        curves = curves._replace(
            val_acc=metric.orient(curves.val_acc), train_acc=metric.orient(curves.train_acc)
        )
    return recs, curves, np.asarray(acc_se, np.float64)


def config_members(
    members: list[MemberRecord], configs: list[ConfigRecord], curves: Curves | None
) -> tuple[list[MemberRecord], Curves | None, np.ndarray]:
    """What the verdicts judge when members are replicas of configs: one record per
    config (its mean accuracy and loss, its status), the curves averaged over its
    replicas (rows in ``configs`` order), and ``[C]`` SEs of the means."""
    rows = {m.id: i for i, m in enumerate(members)}
    recs = [
        MemberRecord(
            id=c.id,
            lr=c.lr,
            l2=c.l2,
            lr_decay=c.lr_decay,
            hidden=c.hidden,
            dropout=c.dropout,
            init_scale=c.init_scale,
            momentum=c.momentum,
            hparams=dict(c.hparams),
            status=c.status,
            diverged_at=None,
            best_val_acc=c.mean_val_acc,
            best_step=0,
            final_train_loss=None,
            final_val_loss=c.mean_val_loss,
            final_train_acc=None,
            final_val_acc=None,
            stopped_at=c.stopped_at,
            val_acc_se=c.val_acc_se,
        )
        for c in configs
    ]
    avg = None
    if curves is not None:

        def mean_rows(a):
            a = np.asarray(a, np.float64)
            out = []
            for c in configs:
                block = a[[rows[i] for i in c.members]]
                seen = np.isfinite(block).sum(axis=0)
                tot = np.where(np.isfinite(block), block, 0.0).sum(axis=0)
                out.append(np.where(seen > 0, tot / np.maximum(seen, 1), np.nan))
            return np.asarray(out, np.float32).reshape(len(configs), a.shape[1])

        avg = Curves(curves.step, *(mean_rows(f) for f in curves[1:]))
    return recs, avg, np.array([c.val_acc_se for c in configs], np.float64)


def judge_sweep(
    members: list[MemberRecord],
    configs: list[ConfigRecord],
    space: SearchSpace,
    n_val: int,
    curves: Curves | None = None,
    band: float = vd.DEFAULT_BAND,
    margin: float = vd.DEFAULT_MARGIN,
    seed: int = 0,
    metric: Metric = ACCURACY,
) -> tuple[Appraisal, list[MemberRecord]]:
    """:func:`judge_members` of a sweep's members, or of its configs when it has replicas or
    folds (config means, their empirical SEs, replica-averaged curves). Returns the
    appraisal and the records it judged (rows of its arrays; the metric's own values)."""
    if not configs:
        a = judge_members(members, space, n_val, curves, band, margin, seed, metric=metric)
        return a, members
    recs, avg, se = config_members(members, configs, curves)
    a = judge_members(recs, space, n_val, avg, band, margin, seed, acc_se=se, metric=metric)
    return a, recs
