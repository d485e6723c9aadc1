"""A sweep's sampled configs and their replicas (``--replicas`` / ``--folds``): each
config's mean score over its members, the SE of that mean and the configs' ranking
(scikit-learn's ``cv_results_`` rows, :class:`~sweepjax.results.records.ConfigRecord`)."""

from __future__ import annotations

import numpy as np

from sweepjax.analysis.ranking import rank_order, status_group
from sweepjax.analysis.surface import binomial_se
from sweepjax.metric import ACCURACY, Metric
from sweepjax.results.records import EXTRA_AXES, ConfigRecord, MemberRecord
from sweepjax.sweep_config import SweepConfig


def config_se(
    accs: np.ndarray,
    n_eval: int,
    folds: bool,
    metric: Metric = ACCURACY,
    member_se: np.ndarray | None = None,
) -> float:
    """SE of a config's mean accuracy over its ``R`` replicas ``accs[R]``.

    The replicas' sample SD over ``sqrt(R)`` measures the seed (and, with folds, the
    held-out rows') noise. Replicas all score on the same ``n_eval`` validation rows, so
    the binomial SE of that one set is added in quadrature (it does not shrink with R).
    Folds score on disjoint rows: their SD already holds it; the binomial SE of all
    ``n_eval`` pooled rows is then only a floor (two identical folds still carry noise).
    A metric other than accuracy takes, instead of the binomial SE, its replicas' own
    per-example SEs ``member_se[R]`` (averaged; for folds, over ``sqrt(R)``: R times the
    rows), or without them :meth:`~sweepjax.metric.Metric.se` of the mean alone.
    """
    a = np.asarray(accs, np.float64)
    a = a[np.isfinite(a)]
    if a.size == 0:
        return float("nan")
    sd = float(np.std(a, ddof=1)) if a.size > 1 else 0.0
    if metric.binomial:
        b = float(binomial_se(np.array([a.mean()]), n_eval)[0])
    else:
        own = np.asarray([] if member_se is None else member_se, np.float64)
        own = own[np.isfinite(own)]
        b = float(own.mean()) / (np.sqrt(own.size) if folds else 1.0) if own.size else 0.0
        b = b or float(metric.se(np.array([a.mean()]), None, n_eval)[0])
    seed = sd / np.sqrt(a.size)
    return float(max(seed, b) if folds else np.hypot(seed, b))


def eval_rows(config: SweepConfig, dataset: dict) -> int:
    """Rows a config's replicas are scored on together: the validation set, or with
    folds every pooled (train + validation) row, each in the fold that holds it out."""
    n_val = int(dataset.get("n_val") or 0)
    if config.folds > 1:
        return n_val + int(dataset.get("n_train") or 0)
    return n_val


def configs_of(
    members: list[MemberRecord], config: SweepConfig, dataset: dict
) -> list[ConfigRecord]:
    """:func:`group_configs` with the sweep's resolved ``config`` and ``dataset`` dict."""
    return group_configs(
        members, max(eval_rows(config, dataset), 1), config.folds > 1, config.metric
    )


def group_configs(
    members: list[MemberRecord], n_eval: int, folds: bool, metric: Metric = ACCURACY
) -> list[ConfigRecord]:
    """The members grouped by ``config`` (empty when no member has one), in config order.

    A config is ``ok`` when any replica trained to the end, ``stopped`` when a scheduler
    stopped it (its replicas stop together), ``diverged`` when every replica diverged.
    Its mean is over every replica's best validation accuracy, a diverged replica's
    included (its best parameters before it diverged): a seed that blows up pulls the
    config down rather than vanishing from its average."""
    by: dict[int, list[MemberRecord]] = {}
    for m in members:
        if m.config is not None:
            by.setdefault(m.config, []).append(m)
    if not by:
        return []
    rows = []
    for cid in sorted(by):
        reps = sorted(by[cid], key=lambda m: m.replica or 0)
        st = {m.status for m in reps}
        status = "ok" if "ok" in st else ("stopped" if "stopped" in st else "diverged")
        acc = np.array([m.best_val_acc for m in reps], np.float64)
        fin = acc[np.isfinite(acc)]
        loss = [m.final_val_loss for m in reps if m.final_val_loss is not None]
        stops = [m.stopped_at for m in reps if m.stopped_at is not None]
        rows.append(
            dict(
                id=int(cid),
                lr=reps[0].lr,
                l2=reps[0].l2,
                lr_decay=reps[0].lr_decay,
                **{a: getattr(reps[0], a) for a in EXTRA_AXES},
                hparams=dict(reps[0].hparams),
                status=status,
                mean_val_acc=float(fin.mean()) if fin.size else float("nan"),
                std_val_acc=float(fin.std()) if fin.size else float("nan"),
                val_acc_se=config_se(
                    acc,
                    n_eval,
                    folds,
                    metric,
                    np.array([np.nan if m.val_acc_se is None else m.val_acc_se for m in reps]),
                ),  # fmt: skip
                mean_val_loss=float(np.mean(loss)) if len(loss) == len(reps) else None,
                members=[int(m.id) for m in reps],
                stopped_at=min(stops) if stops else None,
            )
        )
    # The one ranking order (rank_order): finished, stopped, diverged; mean accuracy, mean
    # loss, id.
    loss = [np.nan if r["mean_val_loss"] is None else r["mean_val_loss"] for r in rows]
    order = rank_order(
        metric.orient(np.array([r["mean_val_acc"] for r in rows], np.float64)),
        np.array(loss, np.float64),
        np.array([r["id"] for r in rows], np.int64),
        status_group(r["status"] for r in rows),
    )
    rank = np.empty(len(rows), np.int64)
    rank[order] = np.arange(1, len(rows) + 1)
    return [ConfigRecord(rank_val_acc=int(rank[i]), **r) for i, r in enumerate(rows)]
