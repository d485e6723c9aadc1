"""The results tables that ``coarse`` / ``fine`` / ``show`` print: one row per member
in the one ranking order (the lecture's ``Try i/N Best val accuracy: ..., lr: ...,
Lambda: ...`` lines, as a table), or one row per config with replicas or folds."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: it imports the engine (jax), which --help skips
    from sweepjax.results.records import SweepResult

# The table's columns for searched axes beyond (lr, l2): header, width, format.
AXIS_COLUMNS = {
    "lr_decay": ("decay", 6, "{:>6.3f}"),
    "hidden": ("hidden", 6, "{:>6d}"),
    "dropout": ("drop", 5, "{:>5.2f}"),
    "init_scale": ("init", 6, "{:>6.3g}"),
    "momentum": ("mom", 5, "{:>5.3f}"),
    "choice": ("choice", 10, "{:>10}"),  # categorical values (``choices``), e.g. adam
}


def axis_columns(result: SweepResult) -> list[str]:
    """The searched axes beyond (lr, l2) that get a column (only when searched), the
    user's own hyperparameters, and the categorical values' column in a sweep with
    ``choices``."""
    own = [a for a in result.space if a not in AXIS_COLUMNS and a not in ("lr", "l2")]
    built_in = [a for a in AXIS_COLUMNS if a in result.space and a != "choice"]
    return built_in + own + (["choice"] if _choices(result) else [])


def _choices(result) -> bool:
    return bool(getattr(result.config, "choices", ()))


def _column(a: str) -> tuple[str, int, str]:
    """An axis's (header, width, format); a user's: its name (cut to 12), ``.3g``."""
    if a in AXIS_COLUMNS:
        return AXIS_COLUMNS[a]
    width = max(7, min(len(a), 12))
    return a[:12], width, "{:>" + str(width) + ".3g}"


def axis_header(axes: list[str]) -> str:
    return "".join(f"{_column(a)[0]:>{_column(a)[1]}}  " for a in axes)


def axis_cells(rec, axes: list[str]) -> str:
    out = ""
    for a in axes:
        v, (_, width, fmt) = getattr(rec, a, None), _column(a)
        if a == "choice" and v is not None:  # {"optimizer": "adam"} -> adam
            v = "+".join(str(x) for x in v.values())
        out += (fmt.format(v) if v is not None else f"{'-':>{width}}") + "  "
    return out


def schedule_name(result: SweepResult) -> str:
    return result.spec.schedule or "full"


def member_table(result: SweepResult, top: int) -> list[str]:
    """The ranked members (the first ``top``), the ranking order said above them, and a
    count of the rest."""
    from sweepjax import search  # deferred: it imports the engine (jax)
    from sweepjax.analysis import ranking

    order = search.ranking(result)
    tied = set(result.tied)
    metric = result.config.metric
    # why a stopped 0.9100 sits below a finished 0.9075
    lines = ["", ranking.order_line(metric)]
    axes = axis_columns(result)  # a column per axis searched beyond (lr, l2)
    lines.append(
        f"{'rank':>4}  {'try':>5}  {'best val ' + metric.short:>12}  {'+/- se':>6}  {'tied':>4}  "
        f"{'at step':>7}  "
        f"{'lr':>9}  {'lambda (l2)':>11}  " + axis_header(axes) + "status"
    )
    n = len(result.members)
    for r, i in enumerate(order[:top]):
        m = result.members[i]
        status = {
            "ok": "ok",
            "stopped": f"stopped at step {m.stopped_at}",
        }.get(m.status, f"diverged at step {m.diverged_at}")
        se = metric.fmt(m.val_acc_se)
        mark = "*" if m.id in tied else ""
        lines.append(
            f"{r + 1:>4}  {m.id:>5}  {metric.fmt(m.best_val_acc, 12)}  {se:>6}  {mark:>4}  "
            f"{m.best_step:>7}  {m.lr:>9.3g}  {m.l2:>11.3g}  " + axis_cells(m, axes) + status
        )
    if n > top:
        rest = [result.members[i] for i in order[top:]]
        d_rest = sum(m.status == "diverged" for m in rest)
        s_rest = sum(m.status == "stopped" for m in rest)
        lines.append(
            f"   ... and {n - top} more ({d_rest} of them diverged"
            + (f", {s_rest} stopped by the {schedule_name(result)} schedule)" if s_rest else ")")
        )
    return lines


def config_table(result: SweepResult, top: int) -> list[str]:
    """The table grouped by config (scikit-learn's ``cv_results_``): mean +/- std of the
    replicas' best validation accuracy, the SE of the mean, rank, tied mark, members."""
    from sweepjax.analysis import ranking  # deferred, as in member_table

    axes = axis_columns(result)
    k = result.config.folds
    what = f"{k}-fold cross-validation" if k else f"{result.config.replicas} replicas"
    tied = set(result.tied)
    metric = result.config.metric
    out = [
        "",
        f"{len(result.configs)} configs x {what}; mean +/- std over replicas, se = SE of the mean",
        ranking.order_line(metric, configs=True),
        f"{'rank':>4}  {'config':>6}  {'mean val ' + metric.short:>12}  {'+/- std':>7}  {'se':>6}  "
        f"{'tied':>4}  {'lr':>9}  {'lambda (l2)':>11}  "
        + axis_header(axes)
        + f"{'members':<12}  status",
    ]
    order = sorted(result.configs, key=lambda c: c.rank_val_acc)
    for c in order[:top]:
        status = {"ok": "ok", "stopped": f"stopped at step {c.stopped_at}"}.get(
            c.status, "diverged"
        )
        ids = ",".join(str(i) for i in c.members)
        out.append(
            f"{c.rank_val_acc:>4}  {c.id:>6}  {metric.fmt(c.mean_val_acc, 12)}  "
            f"{metric.fmt(c.std_val_acc, 7)}  "
            f"{metric.fmt(c.val_acc_se, 6)}  {'*' if c.id in tied else '':>4}  {c.lr:>9.3g}  "
            f"{c.l2:>11.3g}  " + axis_cells(c, axes) + f"{ids:<12}  {status}"
        )
    if len(order) > top:
        out.append(f"   ... and {len(order) - top} more configs")
    return out
