"""The human-readable text of sweeps: the results table that ``coarse`` / ``fine`` /
``show`` print (the lecture's ``Try i/N Best val accuracy: ..., lr: ..., Lambda: ...``
lines, as a table sorted by best validation accuracy, or grouped by config), the lines
below it (winner, tied set, model, verdicts, counts, timing), the diagnoses of
``show``, and the ``list`` table."""

from __future__ import annotations

import os
import shlex
import time
from typing import TYPE_CHECKING

from sweepjax.config import AXES
from sweepjax.errors import size_text

if TYPE_CHECKING:  # annotations only: both import the engine (jax), which --help skips
    from sweepjax.results.records import SweepResult
    from sweepjax.store.db import SweepRow
    from sweepjax.sweep_config import SweepConfig

TOP_ROWS = 15


def _box(space: dict) -> str:
    return "  ".join(f"{k} [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in space.items())


def _sampling(space: dict, grid: bool) -> str:
    linear = [k for k in space if k in AXES and not AXES[k].log]
    how = "grid" if grid else "random"
    if not linear:
        return f"{how}, log-uniform" if not grid else how
    return f"{how}; {', '.join(linear)} linear, the rest log-uniform"


# The table's columns for searched axes beyond (lr, l2): header, width, format.
AXIS_COLUMNS = {
    "lr_decay": ("decay", 6, "{:>6.3f}"),
    "hidden": ("hidden", 6, "{:>6d}"),
    "dropout": ("drop", 5, "{:>5.2f}"),
    "init_scale": ("init", 6, "{:>6.3g}"),
    "momentum": ("mom", 5, "{:>5.3f}"),
}


def _axis_columns(result: SweepResult) -> list[str]:
    """The searched axes beyond (lr, l2) that get a column (only when searched)."""
    return [a for a in AXIS_COLUMNS if a in result.space]


def _axis_header(axes: list[str]) -> str:
    return "".join(f"{AXIS_COLUMNS[a][0]:>{AXIS_COLUMNS[a][1]}}  " for a in axes)


def _axis_cells(rec, axes: list[str]) -> str:
    out = ""
    for a in axes:
        v, (_, width, fmt) = getattr(rec, a), AXIS_COLUMNS[a]
        out += (fmt.format(v) if v is not None else f"{'-':>{width}}") + "  "
    return out


def store_args(store_path: str | None) -> str:
    """`` --store PATH`` for a next-step hint, so it can be copied as it is; empty for the
    store a bare command opens (``$SWEEPJAX_STORE`` or ``./sweepjax.db``)."""
    from sweepjax.store.db import default_path

    if not store_path:
        return ""
    if os.path.realpath(store_path) == os.path.realpath(default_path()):
        return ""
    return f" --store {shlex.quote(str(store_path))}"


def _verdict_lines(result: SweepResult, store_path: str | None = None) -> list[str]:
    """Edges the model says the optimum may lie past, flat axes, importance, optimum."""
    v = result.verdict
    out = []
    for f in result.boundary:
        lo, hi = result.space[f.param]
        edge = lo if f.side == "low" else hi
        where = "below" if f.side == "low" else "above"
        if f.rise is None:  # a flag stored by the old band rule
            out.append(f"  {f.param} {f.side} edge: a top member in the band (old rule)")
            continue
        out.append(
            f"  {f.param}: accuracy still rises toward the {f.side} edge {edge:.3g} "
            f"(+{f.rise:.4f} +/- {f.rise_se:.4f} across the outer band, p={f.p_value:.1g}); "
            f"the best {f.param} may lie {where} it"
        )
    if result.boundary:
        again = f"sweepjax fine --from {result.sweep_id}{store_args(store_path)}"
        out.append(f"  -> run `{again}` (its box extends past the flagged edges)")
    if v is None:
        return out
    for d in v.diverged_regions:  # a region that diverged is described as such
        where, near = ("above", "below") if d["side"] == "high" else ("below", "above")
        out.append(
            f"  {d['param']} {where} {d['bound']:.3g} diverges: {d['diverged']} of "
            f"{d['members']} members there (a fine box stays {near} it)"
        )
    for name in v.flat:
        lo, hi = result.space[name]
        out.append(
            f"  {name} makes no measurable difference over [{lo:.3g}, {hi:.3g}] "
            f"(model moves < {2 * v.tol:.4f})"
        )
    for name, (lo, hi) in v.flat_ranges.items():
        if name in v.flat or not hi > lo * (1 + 1e-6):
            continue
        box_lo, box_hi = result.space[name]
        at_lo, at_hi = lo <= box_lo * (1 + 1e-9), hi >= box_hi * (1 - 1e-9)
        if at_lo and not at_hi:
            out.append(f"  {name} below {hi:.3g} makes no measurable difference")
        elif at_hi and not at_lo:
            out.append(f"  {name} above {lo:.3g} makes no measurable difference")
    for name, nm in v.not_measured.items():
        lo, hi = nm["range"]
        out.append(
            f"  {name} in [{lo:.3g}, {hi:.3g}]: not measured ({nm['finished']} of the "
            f"{nm['members']} members there trained to the end); no claim"
        )
    return out


def _optimum_line(v) -> str:
    """The model's optimum in words that match its numbers: "inside" only at a confidence
    of at least 50%, else "not established" and the likeliest edge."""
    where = v.optimum_where
    conf = f"confidence inside {v.optimum_confidence:.0%}"
    if where == "not established" and v.edge_confidence:
        edge, p = max(v.edge_confidence.items(), key=lambda kv: kv[1])
        conf += f"; likeliest past the {edge} edge, {p:.0%}"
    line = f"model: optimum {where} ({conf})"
    if v.optimum_sd is not None:
        at = ", ".join(f"{k} {x:.3g}" for k, x in v.optimum.items())
        line += f"; modelled {v.optimum_value:.4f} +/- {v.optimum_sd:.4f} at {at}"
    return line


def _schedule_name(result: SweepResult) -> str:
    return result.spec.schedule or "full"


def _model_name(cfg: SweepConfig) -> str:
    """``softmax`` / ``mlp`` or a custom model's ``package.module:Name``."""
    return cfg.model.spec or cfg.model.kind


def render_result(result: SweepResult, store_path: str | None = None, top: int = TOP_ROWS) -> str:
    """The human-readable summary of a sweep (table, winner, flags, timing, where)."""
    from sweepjax import search  # deferred: it imports the engine (jax)
    from sweepjax.analysis import ranking

    lines = []
    cfg = result.config
    tr = cfg.train
    ds = result.dataset
    lines.append(
        f"{result.kind} sweep {result.sweep_id}"
        + (f" (refines {result.parent})" if result.parent else "")
        + f": {len(result.members)} members x {tr.steps} steps, batch "
        f"{tr.batch_size}, {tr.optimizer}, "
        f"{_model_name(cfg)} on {ds.get('name')} "
        f"({ds.get('n_train')}/{ds.get('n_val')}/{ds.get('n_test')})"
    )
    lines.append(f"box: {_box(result.space)}  ({_sampling(result.space, cfg.grid)})")
    if result.refinement:
        lines.append(f"why: {result.refinement}")
    if result.status != "finished":
        lines.append(f"status: {result.status} (no results yet)")
        return "\n".join(lines)
    if result.configs:
        lines += _config_table(result, top)
        return "\n".join(lines + _summary_lines(result, store_path))
    order = search.ranking(result)
    tied = set(result.tied)
    lines += ["", ranking.ORDER_LINE]  # why a stopped 0.9100 sits below a finished 0.9075
    axes = _axis_columns(result)  # a column per axis searched beyond (lr, l2)
    lines.append(
        f"{'rank':>4}  {'try':>5}  {'best val acc':>12}  {'+/- se':>6}  {'tied':>4}  "
        f"{'at step':>7}  "
        f"{'lr':>9}  {'lambda (l2)':>11}  " + _axis_header(axes) + "status"
    )
    n = len(result.members)
    for r, i in enumerate(order[:top]):
        m = result.members[i]
        status = {
            "ok": "ok",
            "stopped": f"stopped at step {m.stopped_at}",
        }.get(m.status, f"diverged at step {m.diverged_at}")
        se = f"{m.val_acc_se:.4f}" if m.val_acc_se is not None else "n/a"
        mark = "*" if m.id in tied else ""
        lines.append(
            f"{r + 1:>4}  {m.id:>5}  {m.best_val_acc:>12.4f}  {se:>6}  {mark:>4}  "
            f"{m.best_step:>7}  {m.lr:>9.3g}  {m.l2:>11.3g}  " + _axis_cells(m, axes) + status
        )
    if n > top:
        rest = [result.members[i] for i in order[top:]]
        d_rest = sum(m.status == "diverged" for m in rest)
        s_rest = sum(m.status == "stopped" for m in rest)
        lines.append(
            f"   ... and {n - top} more ({d_rest} of them diverged"
            + (f", {s_rest} stopped by the {_schedule_name(result)} schedule)" if s_rest else ")")
        )
    return "\n".join(lines + _summary_lines(result, store_path))


def _axis_values(rec, axes: list[str]) -> str:
    """``  final lr x0.300  hidden 24  dropout 0.12 ...`` for the winner's line."""
    out = ""
    for a in axes:
        v = getattr(rec, a)
        if v is None:
            continue
        if a == "lr_decay":
            out += f"  final lr x{v:.3f}"
        elif a == "hidden":
            out += f"  hidden {v}"
        else:
            out += f"  {a} {v:.3g}"
    return out


def _summary_lines(result: SweepResult, store_path: str | None) -> list[str]:
    """Everything below the table: winner, tied set, model, verdicts, counts, timing."""
    lines: list[str] = []
    n = len(result.members)
    diverged = sum(m.status == "diverged" for m in result.members)
    lines.append("")
    w = result.winner
    if w is not None:
        test = f"{w.test_acc:.4f}" if w.test_acc is not None else "n/a"
        wm = next((m for m in result.members if m.id == w.id), None)
        se = f" +/- {w.val_acc_se:.4f}" if w.val_acc_se is not None else ""
        who = (
            f"config {w.config} (best replica: try {w.id})"
            if w.config is not None
            else f"try {w.id}"
        )
        if not w.finished:
            who += f" (unfinished: {w.steps} of {result.config.train.steps} steps)"
        mean = "mean " if w.config is not None else ""
        lines.append(
            f"winner: {who}  {mean}val acc {w.val_acc:.4f}{se}  test acc {test}  "
            f"lr {w.lr:.3g}  lambda {w.l2:.3g}"
            + (_axis_values(wm, _axis_columns(result)) if wm is not None else "")
        )
        if w.refit_test_acc is not None:
            lines.append(
                f"refit: retrained on train + validation for {w.refit_steps} steps: "
                f"test acc {w.refit_test_acc:.4f}"
            )
        if result.tied:
            unit = "config(s)" if result.configs else "member(s)"
            lines.append(
                f"tied: {len(result.tied)} finished {unit} statistically tied with the "
                "winner (* above; 95% subset selection on the validation SE)"
            )
    else:
        lines.append("winner: none (every member diverged)")
    v = result.verdict
    if v is not None:
        imp = ", ".join(
            f"{k} {val:.3f}" for k, val in sorted(v.importance.items(), key=lambda kv: -kv[1])
        )
        lines.append(_optimum_line(v))
        if v.unsupported_value is not None and v.unsupported_value > v.optimum_value + v.tol:
            lines.append(
                f"model: its mean peaks at {v.unsupported_value:.4f} where members do not "
                "support it (too far from them, or more than 3 SE above those nearby); "
                "the optimum above is the best point they support"
            )
        if not v.optimum_supported:
            lines.append(
                "model: even that point sits more than 3 SE above every member near it; "
                "read its value as an upper bound"
            )
        lines.append(f"model: importance (accuracy range): {imp}")
    verdicts = _verdict_lines(result, store_path)
    if verdicts:
        lines.append("verdict:")
        lines += verdicts
    elif v is not None:
        lines.append("verdict: the score rises toward no edge; no axis is flat")
    lines.append(f"diverged: {diverged} of {n}")
    stopped = sum(m.status == "stopped" for m in result.members)
    if stopped:
        caught = result.in_flight
        by = f"by the {_schedule_name(result)} schedule" + (
            f", {caught} of them still in flight when the budget ran out" if caught else ""
        )
        lines.append(
            f"stopped: {stopped} of {n} {by} (their curves and numbers are kept up to the stop)"
        )
    if result.progress:
        first, last = result.progress[0], result.progress[-1]
        lines.append(
            f"anytime: first finished member (val {first['best_val_acc']:.4f}) at "
            f"{first['elapsed_s']:.1f} s; best so far {last['best_val_acc']:.4f} at "
            f"{last['elapsed_s']:.1f} s ({len(result.progress)} improvements; "
            '"progress" in --format json)'
        )
    if result.lineage:
        lines.append(f"pbt: {len(result.lineage)} copies (lineage in --format json and the report)")
    t = result.timing
    lines.append(
        f"timing: compile {t.compile_s:.1f} s, train {t.train_s:.1f} s, "
        f"{t.model_steps_per_s:,.0f} model-steps/s"
    )
    where = f" in {store_path}" if store_path else ""
    opt = store_args(store_path)
    from sweepjax.results.claims import settled

    if settled(result):  # the data cannot split the winners: another fine would not
        show = f"sweepjax show {result.sweep_id}{opt}"
        lines.append(f"stored: sweep {result.sweep_id}{where} ({show})")
        unit = "configs" if result.configs else "members"
        lines.append(
            f"next: every axis is flat and {len(result.tied)} {unit} are tied; another fine "
            "will not separate them: measure them more precisely (a bigger validation set, "
            "--replicas R or --folds K)"
        )
    else:
        lines.append(
            f"stored: sweep {result.sweep_id}{where} (sweepjax show {result.sweep_id}{opt}; "
            f"refine: sweepjax fine --from {result.sweep_id}{opt})"
        )
    if result.report:
        lines.append(f"report: {result.report}")
    return lines


def _config_table(result: SweepResult, top: int) -> list[str]:
    """The table grouped by config (scikit-learn's ``cv_results_``): mean +/- std of the
    replicas' best validation accuracy, the SE of the mean, rank, tied mark, members."""
    from sweepjax.analysis import ranking  # deferred, as search above

    axes = _axis_columns(result)
    k = result.config.folds
    what = f"{k}-fold cross-validation" if k else f"{result.config.replicas} replicas"
    tied = set(result.tied)
    out = [
        "",
        f"{len(result.configs)} configs x {what}; mean +/- std over replicas, se = SE of the mean",
        ranking.CONFIG_ORDER_LINE,
        f"{'rank':>4}  {'config':>6}  {'mean val acc':>12}  {'+/- std':>7}  {'se':>6}  "
        f"{'tied':>4}  {'lr':>9}  {'lambda (l2)':>11}  "
        + _axis_header(axes)
        + f"{'members':<12}  status",
    ]
    order = sorted(result.configs, key=lambda c: c.rank_val_acc)
    for c in order[:top]:
        status = {"ok": "ok", "stopped": f"stopped at step {c.stopped_at}"}.get(
            c.status, "diverged"
        )
        ids = ",".join(str(i) for i in c.members)
        out.append(
            f"{c.rank_val_acc:>4}  {c.id:>6}  {c.mean_val_acc:>12.4f}  {c.std_val_acc:>7.4f}  "
            f"{c.val_acc_se:>6.4f}  {'*' if c.id in tied else '':>4}  {c.lr:>9.3g}  "
            f"{c.l2:>11.3g}  " + _axis_cells(c, axes) + f"{ids:<12}  {status}"
        )
    if len(order) > top:
        out.append(f"   ... and {len(order) - top} more configs")
    return out


def _when(t: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(t)) if t else "-"


def render_list(rows: list[SweepRow], sizes: dict[str, int] | None = None) -> str:
    """The sweeps, one a line; ``sizes`` (``{id: bytes}``, :meth:`Store.sizes`) adds
    each one's size on disk."""
    if not rows:
        return "no sweeps yet; run `sweepjax coarse`"
    size = "" if sizes is None else f" {'on disk':>8}"
    out = [
        f"{'id':<10} {'kind':<6} {'parent':<8} {'status':<11} {'members':>7} "
        f"{'steps':>11} {'best val':>8}{size}  {'dataset':<14} created"
    ]
    for r in rows:
        steps = f"{r.total_steps}" if r.status == "finished" else f"{r.steps_done}/{r.total_steps}"
        best = f"{r.best_val_acc:.4f}" if r.best_val_acc is not None else "-"
        size = "" if sizes is None else f" {size_text(sizes.get(r.id, 0)):>8}"
        out.append(
            f"{r.id:<10} {r.kind:<6} {r.parent or '-':<8} {r.status:<11} "
            f"{r.num_members:>7} {steps:>11} {best:>8}{size}  "
            f"{str(r.dataset.get('name')):<14} {_when(r.created)}"
        )
    return "\n".join(out)


def render_diagnoses(result: SweepResult, diags: dict, top: int) -> str:
    """The diagnoses of the top members, then a count of each kind over the population."""
    from sweepjax import search  # deferred: it imports the engine (jax)

    lines = ["", "diagnoses (top members):"]
    for i in search.ranking(result)[:top]:
        m = result.members[i]
        for d in diags.get(m.id, []):
            lines.append(f"  try {m.id}: {d.message}")
    if len(lines) == 2:
        lines.append("  none: the top members' curves look healthy")
    counts: dict[str, int] = {}
    for v in diags.values():
        for d in v:
            counts[d.kind] = counts.get(d.kind, 0) + 1
    if counts:
        lines.append(
            "population: "
            + ", ".join(
                f"{k.replace('_', ' ')} {n}"
                for k, n in sorted(counts.items(), key=lambda kv: -kv[1])
            )
        )
    return "\n".join(lines)
