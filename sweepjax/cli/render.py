"""The human-readable text of sweeps: what ``coarse`` / ``fine`` / ``show`` print (a
header, the results table of :mod:`sweepjax.cli.tables`, the lines below it: winner,
tied set, model, verdicts, counts, timing), the diagnoses of ``show``, and the ``list``
table."""

from __future__ import annotations

import os
import shlex
import time
from typing import TYPE_CHECKING

from sweepjax.cli.tables import axis_columns, config_table, member_table, schedule_name
from sweepjax.config import AXES
from sweepjax.errors import size_text
from sweepjax.metric import ACCURACY, Metric

if TYPE_CHECKING:  # annotations only: both import the engine (jax), which --help skips
    from sweepjax.results.records import SweepResult
    from sweepjax.store.db import SweepRow
    from sweepjax.sweep_config import SweepConfig

TOP_ROWS = 15


def _box(space: dict) -> str:
    return "  ".join(f"{k} [{lo:.3g}, {hi:.3g}]" for k, (lo, hi) in space.items())


def _sampling(space: dict, grid: bool, scales: dict | None = None) -> str:
    linear = [k for k in space if k in AXES and not AXES[k].log]
    linear += [k for k, s in (scales or {}).items() if s == "linear"]
    how = "grid" if grid else "random"
    if not linear:
        return f"{how}, log-uniform" if not grid else how
    return f"{how}; {', '.join(linear)} linear, the rest log-uniform"


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
        m = result.config.metric  # the rise is the score's: accuracy's, or an MSE's fall
        moves = "rises" if m.binomial else ("rises" if m.higher_is_better else "falls")
        what = "accuracy" if m.binomial else f"val {m.short}"
        out.append(
            f"  {f.param}: {what} still {moves} toward the {f.side} edge {edge:.3g} "
            f"({'+' if m.higher_is_better else '-'}{m.fmt(f.rise)} +/- {m.fmt(f.rise_se)} "
            f"across the outer band, p={f.p_value:.1g}); "
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


def _optimum_line(v, metric: Metric = ACCURACY) -> str:
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
        val = metric.orient(v.optimum_value)  # the verdict's scores: higher is better
        line += f"; modelled {metric.fmt(val)} +/- {metric.fmt(v.optimum_sd)} at {at}"
    return line


def _model_name(cfg: SweepConfig) -> str:
    """``softmax`` / ``mlp`` or a custom model's ``package.module:Name``."""
    return cfg.model.spec or cfg.model.kind


def render_result(result: SweepResult, store_path: str | None = None, top: int = TOP_ROWS) -> str:
    """The human-readable summary of a sweep (table, winner, flags, timing, where)."""
    lines = []
    cfg = result.config
    tr = cfg.train
    ds = result.dataset
    lines.append(
        f"{result.kind} sweep {result.sweep_id}"
        + (f" (refines {result.parent})" if result.parent else "")
        + f": {len(result.members)} members x {tr.steps} steps, batch "
        f"{tr.batch_size}, {'|'.join(dict(cfg.choices).get('optimizer', [tr.optimizer]))}, "
        f"{_model_name(cfg)} on {ds.get('name')} "
        f"({ds.get('n_train')}/{ds.get('n_val')}/{ds.get('n_test')})"
    )
    lines.append(
        f"box: {_box(result.space)}  ({_sampling(result.space, cfg.grid, cfg.space.scales())})"
    )
    if result.refinement:
        lines.append(f"why: {result.refinement}")
    if result.status != "finished":
        lines.append(f"status: {result.status} (no results yet)")
        return "\n".join(lines)
    lines += config_table(result, top) if result.configs else member_table(result, top)
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
        elif a == "choice":  # its categorical values, e.g. optimizer adam
            out += "".join(f"  {k} {x}" for k, x in v.items())
        else:
            out += f"  {a} {v:.3g}"
    return out


def _summary_lines(result: SweepResult, store_path: str | None) -> list[str]:
    """Everything below the table: winner, tied set, model, verdicts, counts, timing."""
    v = result.verdict
    metric = result.config.metric
    lines = ["", *_winner_lines(result), *([] if v is None else _model_lines(v, metric))]
    if result.config.choices:  # the categorical values compared, with their SEs
        lines.append(f"choices: {result.choices_json()['verdict']}")
    verdicts = _verdict_lines(result, store_path)
    if verdicts:
        lines.append("verdict:")
        lines += verdicts
    elif v is not None:
        lines.append("verdict: the score rises toward no edge; no axis is flat")
    lines += _count_lines(result)
    t = result.timing
    lines.append(
        f"timing: compile {t.compile_s:.1f} s, train {t.train_s:.1f} s, "
        f"{t.model_steps_per_s:,.0f} model-steps/s"
    )
    lines += _stored_lines(result, store_path)
    if result.report:
        lines.append(f"report: {result.report}")
    return lines


def _winner_lines(result: SweepResult) -> list[str]:
    """The winner (a config's mean with replicas or folds), its refit, the tied set."""
    w = result.winner
    if w is None:
        return ["winner: none (every member diverged)"]
    metric = result.config.metric
    test = metric.fmt(w.test_acc)
    wm = next((m for m in result.members if m.id == w.id), None)
    se = f" +/- {metric.fmt(w.val_acc_se)}" if w.val_acc_se is not None else ""
    who = f"config {w.config} (best replica: try {w.id})" if w.config is not None else f"try {w.id}"
    if not w.finished:
        who += f" (unfinished: {w.steps} of {result.config.train.steps} steps)"
    mean = "mean " if w.config is not None else ""
    lines = [
        f"winner: {who}  {mean}val {metric.short} {metric.fmt(w.val_acc)}{se}  "
        f"test {metric.short} {test}  "
        f"lr {w.lr:.3g}  lambda {w.l2:.3g}"
        + (_axis_values(wm, axis_columns(result)) if wm is not None else "")
    ]
    if w.refit_test_acc is not None:
        lines.append(
            f"refit: retrained on train + validation for {w.refit_steps} steps: "
            f"test {metric.short} {metric.fmt(w.refit_test_acc)}"
        )
    if result.tied:
        unit = "config(s)" if result.configs else "member(s)"
        lines.append(
            f"tied: {len(result.tied)} finished {unit} statistically tied with the "
            "winner (* above; 95% subset selection on the validation SE)"
        )
    return lines


def _model_lines(v, metric: Metric = ACCURACY) -> list[str]:
    """The response-surface model's optimum, where its support ends, and importance
    (the verdict holds scores, higher is better: shown in the metric's own values)."""
    lines = [_optimum_line(v, metric)]
    if v.unsupported_value is not None and v.unsupported_value > v.optimum_value + v.tol:
        peak = "peaks" if metric.higher_is_better else "bottoms out"
        lines.append(
            f"model: its mean {peak} at {metric.fmt(metric.orient(v.unsupported_value))} "
            "where members do not "
            "support it (too far from them, or more than 3 SE above those nearby); "
            "the optimum above is the best point they support"
        )
    if not v.optimum_supported:
        lines.append(
            "model: even that point sits more than 3 SE above every member near it; "
            "read its value as an upper bound"
        )
    imp = ", ".join(
        f"{k} {val:.3f}" for k, val in sorted(v.importance.items(), key=lambda kv: -kv[1])
    )
    what = "accuracy" if metric.binomial else metric.short
    lines.append(f"model: importance ({what} range): {imp}")
    return lines


def _count_lines(result: SweepResult) -> list[str]:
    """Diverged and stopped members, an anytime run's progress, PBT's copies."""
    n = len(result.members)
    diverged = sum(m.status == "diverged" for m in result.members)
    lines = [f"diverged: {diverged} of {n}"]
    stopped = sum(m.status == "stopped" for m in result.members)
    if stopped:
        caught = result.in_flight
        by = f"by the {schedule_name(result)} schedule" + (
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
    return lines


def _stored_lines(result: SweepResult, store_path: str | None) -> list[str]:
    """Where the sweep is stored, and the next step: refine it, or, when another fine
    round cannot separate the winners, measure them more precisely."""
    from sweepjax.results.claims import settled

    where = f" in {store_path}" if store_path else ""
    opt = store_args(store_path)
    if not settled(result):
        return [
            f"stored: sweep {result.sweep_id}{where} (sweepjax show {result.sweep_id}{opt}; "
            f"refine: sweepjax fine --from {result.sweep_id}{opt})"
        ]
    # The data cannot split the winners: another fine would not.
    show = f"sweepjax show {result.sweep_id}{opt}"
    unit = "configs" if result.configs else "members"
    return [
        f"stored: sweep {result.sweep_id}{where} ({show})",
        f"next: every axis is flat and {len(result.tied)} {unit} are tied; another fine "
        "will not separate them: measure them more precisely (a bigger validation set, "
        "--replicas R or --folds K)",
    ]


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
