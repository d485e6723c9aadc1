"""The sections of the report's page, in order: one function each, each given the
:class:`Page` and the ``fig`` callback that keeps a figure's PNG (``fig(name, figure) ->
png``) and returning its panels (none when the result has nothing to show there).

:func:`sweepjax.report.write_report` runs :data:`SECTIONS` and writes the page.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from sweepjax.analysis.diagnose import diagnose_sweep
from sweepjax.analysis.ranking import order_line
from sweepjax.report import custom_fig, figures, schedule_fig
from sweepjax.report.choices_fig import categorical
from sweepjax.report.html import Panel, esc, table
from sweepjax.report.members import (
    NUM_CHOSEN,
    chosen_members,
    schedule_name,
    score_label,
    shared_settings,
    status_labels,
    stopped_by,
)
from sweepjax.report.panels import axes_panel, network_panels

Fig = Callable[[str, Any], bytes]  # keeps a figure as ``name`` and returns its PNG


class Page(NamedTuple):
    """What the sections read: the result, its ancestors, what is computed once for
    several sections, and the caller's data samples."""

    result: Any  # the SweepResult shown
    parents: list  # its ancestors' SweepResults, oldest first
    diagnoses: dict  # {member id: [Diagnosis]}
    top: list[int]  # rows of the three best members (their curves are drawn)
    fails: dict  # typical failures' rows by kind (their curves are drawn too)
    dataset_images: Any  # [n, H, W] raw training images, [n, D] tabular rows, or None
    x_sample: Any  # [N, D] preprocessed examples, or None


def page(result, parents, dataset_images=None, x_sample=None) -> Page:
    """The :class:`Page` of ``result``: its diagnoses, and the rows its curves show."""
    diagnoses = diagnose_sweep(result)
    top = figures.top_rows(result, 3)
    fails = figures.failure_rows(result, diagnoses)
    return Page(result, parents, diagnoses, top, fails, dataset_images, x_sample)


def _summary_table(result, diagnoses) -> str:
    ok = sum(m.status == "ok" for m in result.members)
    stopped = sum(m.status == "stopped" for m in result.members)
    w = result.winner
    ds = result.dataset or {}
    metric = result.config.metric
    rows = [
        ["sweep", f"{result.sweep_id} ({result.kind}, {result.status})"],
        ["parent", result.parent or "-"],
        [
            "dataset",
            f"{ds.get('name', '?')}: {ds.get('n_train', '?')} train / "
            f"{ds.get('n_val', '?')} val / {ds.get('n_test', '?')} test",
        ],
        [
            "searched box",
            ", ".join(f"{k} [{v[0]:.3g}, {v[1]:.3g}]" for k, v in result.space.items()),
        ],
        [
            "members",
            f"{len(result.members)} ({ok} trained to the end, {stopped} stopped by "
            f"{stopped_by(result.config)}, {len(result.members) - ok - stopped} diverged)",
        ],
        [
            "winner",
            "-"
            if w is None
            else f"id {w.id}: lr {w.lr:.3g}, lambda {w.l2:.3g}, val {metric.short} "
            f"{metric.fmt(w.val_acc)}"
            + ("" if w.test_acc is None else f", test {metric.short} {metric.fmt(w.test_acc)}"),
        ],
        [
            "timing",
            f"compile {result.timing.compile_s:.1f} s, train "
            f"{result.timing.train_s:.1f} s, "
            f"{result.timing.model_steps_per_s:,.0f} model-steps/s",
        ],
    ]
    if result.refinement:
        rows.append(["refinement", result.refinement])
    counts: dict[str, int] = {}
    for ds_list in diagnoses.values():
        for d in ds_list:
            counts[d.kind] = counts.get(d.kind, 0) + 1
    if counts:
        rows.append(["diagnoses", ", ".join(f"{k}: {v}" for k, v in sorted(counts.items()))])
    return table(None, rows)


def optimum_words(v) -> str:
    """The optimum as the text output says it: status, confidence, value with its SD."""
    if v is None or v.optimum_sd is None:
        return ""
    out = (
        f"Modelled optimum {v.optimum_where} (confidence inside {v.optimum_confidence:.0%}): "
        f"{v.optimum_value:.4f} +/- {v.optimum_sd:.4f}."
    )
    for d in v.diverged_regions:
        where = "above" if d["side"] == "high" else "below"
        out += (
            f" {d['param']} {where} {d['bound']:.3g} diverges ({d['diverged']} of "
            f"{d['members']} members; hatched/crossed)."
        )
    return out


def model_fit(result):
    """``(appraisal, space)`` for the model figure, or None (no verdict, or no fit)."""
    if result.verdict is None or not result.dataset.get("n_val"):
        return None
    from sweepjax.results.appraise import judge_members
    from sweepjax.search import as_space

    space = getattr(result.config, "space", None) or as_space(result.space)
    seed = result.config.train.seed
    n_val = int(result.dataset["n_val"])
    metric = result.config.metric
    a = judge_members(result.members, space, n_val, result.curves, seed=seed, metric=metric)
    return None if a.surface is None else (a, space)


def _flag_item(b, band: float, metric=None) -> str:
    if b.rise is None:  # a flag of the old band rule (stores written before the model)
        return (
            f'<li class="flag">member {b.member} lies in the {esc(b.side)} {band:.0%} of '
            f"{esc(b.param)}: the best value may be outside the box; widen it to the "
            f"{'lower' if b.side == 'low' else 'higher'} side</li>"
        )
    what, way, rise, se = "accuracy still rises", "+", f"{b.rise:.4f}", f"{b.rise_se:.4f}"
    if metric is not None and not metric.binomial:  # the rise is the score's
        what = f"{esc(metric.short)} still {'rises' if metric.higher_is_better else 'falls'}"
        way = "+" if metric.higher_is_better else "-"
        rise, se = f"{b.rise:.4g}", f"{b.rise_se:.4g}"
    return (
        f'<li class="flag">the modelled {what} toward the {esc(b.side)} edge '
        f"of {esc(b.param)} ({way}{rise} +/- {se}, p={b.p_value:.1g}): the "
        f"best value may be outside the box; widen it to the "
        f"{'lower' if b.side == 'low' else 'higher'} side</li>"
    )


def _flags_and_diagnoses(result, diagnoses, rows) -> str:
    parts = []
    if result.boundary:
        band = figures.sweep_band(result)
        items = "".join(_flag_item(b, band, result.config.metric) for b in result.boundary)
        parts.append(f"<p><b>Boundary flags</b></p><ul>{items}</ul>")
    else:
        parts.append("<p><b>Boundary flags</b>: none (the modelled score rises toward no edge)</p>")
    items = []
    for i in rows:
        m = result.members[i]
        ds = diagnoses.get(m.id, [])
        txt = "; ".join(esc(d.message) for d in ds) or "healthy: no diagnosis"
        items.append(f"<li>member {m.id} (lr {m.lr:.3g}, lambda {m.l2:.3g}): {txt}</li>")
    parts.append(f"<p><b>Diagnoses of the chosen members</b></p><ul>{''.join(items)}</ul>")
    return "".join(parts)


def summary(page: Page, fig: Fig) -> list[Panel]:
    return [Panel("Summary", [], _summary_table(page.result, page.diagnoses))]


def data_check(page: Page, fig: Fig) -> list[Panel]:
    images = page.dataset_images
    if images is None or not len(images):
        return [
            Panel(
                "Data check",
                [],
                note="no training images were passed to the "
                "report (the sweep flows pass dataset.raw_train_images)",
            )
        ]
    png = fig("data.png", figures.data_grid(images))
    # Stores written before `scaling` was recorded scaled every feature by one std.
    per_feature = (page.result.dataset or {}).get("scaling") == "feature"
    scaled = (
        "the sweep centred every feature and divided each by its own training std"
        if per_feature
        else "the sweep centred every feature and divided all of them by one scale, so "
        "features of very different ranges are worth standardising (`scaling feature`)"
    )
    what = (
        "the first training rows, as loaded (tabular features: no images), each "
        "feature scaled to its own range over these rows: a flat column is a constant "
        f"feature, a lone bright cell an outlier; {scaled}"
        if np.ndim(images) == 2
        else "the first training images, as loaded"
    )
    return [Panel("Data check", [(png, what)])]


def response_surface(page: Page, fig: Fig) -> list[Panel]:
    result = page.result
    png = fig("response_surface.png", figures.response_surface(result, page.parents))
    stopped = any(m.status == "stopped" for m in result.members)
    what = (
        "every member at its (lr, lambda), colored by "
        + score_label(result, "best validation accuracy")
        + " (filled = finished"
        + (f", hollow = {status_labels(result)['stopped']}, on the same scale" if stopped else "")
        + "); red x = diverged; solid box = this search, dashed = "
        "ancestors; shaded = outer "
        f"{figures.sweep_band(result):.0%} of each log axis, where the "
        "model measures whether the score still rises toward an edge"
        + (
            "; the other swept axes are not shown here (see Every swept axis)"
            if len(result.space) > 2
            else ""
        )
    )
    return [Panel("Response surface", [(png, what)])]


def surface_model(page: Page, fig: Fig) -> list[Panel]:
    result = page.result
    model = model_fit(result)
    if model is None:
        return []
    png = fig("model.png", figures.model_surface(result, *model))
    v = result.verdict
    flat = ", ".join(v.flat) if v and v.flat else "none"
    what = (
        "left: the model's mean "
        + ("accuracy" if result.config.metric.binomial else "score")
        + " over the two most important axes "
        "(the others at the modelled optimum), red rings = members "
        "statistically tied with the winner, star = modelled optimum; "
        "right: importance of each axis with its posterior SD (flat axes: "
        f"{esc(flat)}). {esc(optimum_words(v))} {esc(model[0].fit_note)}"
    )
    return [Panel("Response-surface model", [(png, what)])]


def every_axis(page: Page, fig: Fig) -> list[Panel]:
    return [axes_panel(page.result, fig)] if len(page.result.space) > 2 else []


def schedule(page: Page, fig: Fig) -> list[Panel]:
    result = page.result
    if result.history and result.lineage:
        png = fig("schedule.png", schedule_fig.hparam_schedules(result))
        rows = [[c["step"], c["member"], c["copied_from"]] for c in result.lineage[:50]]
        more = len(result.lineage) - 50
        return [
            Panel(
                "Schedule (PBT)",
                [(png, "each member's learning rate and lambda over the run; dots = copies")],
                table(["step", "member", "copied from"], rows)
                + ("" if more <= 0 else f"<p>... {more} more</p>"),
            )
        ]
    if any(m.stopped_at is not None for m in result.members):
        png = fig("schedule.png", schedule_fig.active_over_time(result))
        return [
            Panel(
                f"Schedule ({schedule_name(result.config)})",
                [(png, "members still training at each step; each rung keeps the best")],
            )
        ]
    return []


def spread(page: Page, fig: Fig) -> list[Panel]:
    if not getattr(page.result, "configs", None):
        return []
    png = fig("spread.png", schedule_fig.replica_spread(page.result))
    what = "each config's members (seeds or held-out folds) and their mean +/- SD"
    return [Panel("Spread across replicas and folds", [(png, what)])]


def curves(page: Page, fig: Fig) -> list[Panel]:
    result, top, fails = page.result, page.top, page.fails
    if result.curves is None or not len(result.curves.step):
        return [Panel("Curves", [], note="this result holds no curves")]
    imgs = [
        (
            fig("loss.png", figures.loss_curves(result, top, fails)),
            "training loss of the top members and of typical failures (log scale)",
        ),
        (
            fig("accuracy.png", figures.accuracy_gap(result, top)),
            score_label(result, "training vs validation accuracy of the top members"),
        ),
        (
            fig("update_ratio.png", figures.update_ratio(result, top, fails)),
            "update/weight norm ratio; about 1e-3 is healthy",
        ),
    ]
    return [Panel("Curves", imgs)]


def network(page: Page, fig: Fig) -> list[Panel]:
    """The user's model: its first layer; the built-in ones: weights and hidden units."""
    result = page.result
    own = result.config.model.kind == "custom"
    if result.winner_params is None or not own:
        return network_panels(result, page.x_sample, fig)
    w = custom_fig.first_layer_images(
        result.winner_params, (result.dataset or {}).get("input_shape")
    )
    imgs = [] if w is None else [(fig("weights.png", w), "the winner's first layer")]
    note = None if w else "no first layer reads the examples directly (dense or conv)"
    return [Panel("Learned weights", imgs, note=note)]


def chosen(page: Page, fig: Fig) -> list[Panel]:
    result = page.result
    header, rows, classes = chosen_members(result)
    shared = shared_settings(result.config, result.dataset)
    # The one ranking order, said once: why a stopped 0.9100 sits below a finished 0.9075.
    order = f"{order_line(result.config.metric)}; shown: the winner, then the next finished members"
    html = f"<p>{esc(order)}</p>" + table(header, rows, classes=classes)
    if shared:
        html += "<p><b>Shared configuration</b></p>" + table(
            ["setting", "value"], [list(r) for r in shared]
        )
    title = "Chosen members side by side (differences from the winner highlighted)"
    return [Panel(title, [], html)]


def flags_and_diagnoses(page: Page, fig: Fig) -> list[Panel]:
    rows = figures.top_rows(page.result, NUM_CHOSEN) + list(page.fails.values())
    html = _flags_and_diagnoses(page.result, page.diagnoses, rows)
    return [Panel("Boundary flags and diagnoses", [], html)]


SECTIONS = (
    summary,
    data_check,
    response_surface,
    surface_model,
    categorical,
    every_axis,
    schedule,
    spread,
    curves,
    network,
    chosen,
    flags_and_diagnoses,
)
