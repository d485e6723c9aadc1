"""The command center: a self-contained HTML report of a sweep, plus its PNGs.

Entry point: :func:`write_report`. Figures are in :mod:`sweepjax.report.figures` (and the
modules it names), the sections on every swept axis and on the network's insides in
:mod:`sweepjax.report.panels`, the page in :mod:`sweepjax.report.html`. The report reads
a ``SweepResult`` (from the flows or the store) and never trains or touches the store.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import matplotlib
import numpy as np

matplotlib.use("Agg")  # before anything imports pyplot; the report never opens windows

from sweepjax.analysis.diagnose import diagnose_sweep  # noqa: E402
from sweepjax.analysis.ranking import ORDER_LINE  # noqa: E402
from sweepjax.report import custom_fig, figures, schedule_fig  # noqa: E402
from sweepjax.report.html import Panel, esc, render, table  # noqa: E402
from sweepjax.report.members import (  # noqa: E402
    NUM_CHOSEN,
    chosen_members,
    schedule_name,
    shared_settings,
    status_labels,
    stopped_by,
)
from sweepjax.report.panels import axes_panel, hidden_unit_stats, network_panels  # noqa: E402

__all__ = ["chosen_members", "hidden_unit_stats", "write_report"]


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
    return buf.getvalue()


def _summary(result, diagnoses) -> str:
    ok = sum(m.status == "ok" for m in result.members)
    stopped = sum(m.status == "stopped" for m in result.members)
    w = result.winner
    ds = result.dataset or {}
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
            else f"id {w.id}: lr {w.lr:.3g}, lambda {w.l2:.3g}, val acc {w.val_acc:.4f}"
            + ("" if w.test_acc is None else f", test acc {w.test_acc:.4f}"),
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


def _optimum_words(v) -> str:
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


def _model(result):
    """``(appraisal, space)`` for the model figure, or None (no verdict, or no fit)."""
    if result.verdict is None or not result.dataset.get("n_val"):
        return None
    from sweepjax.results.appraise import judge_members
    from sweepjax.search import as_space

    space = as_space(result.space)
    seed = result.config.train.seed
    a = judge_members(result.members, space, int(result.dataset["n_val"]), result.curves, seed=seed)
    return None if a.surface is None else (a, space)


def _flag_item(b, band: float) -> str:
    if b.rise is None:  # a flag of the old band rule (stores written before the model)
        return (
            f'<li class="flag">member {b.member} lies in the {esc(b.side)} {band:.0%} of '
            f"{esc(b.param)}: the best value may be outside the box; widen it to the "
            f"{'lower' if b.side == 'low' else 'higher'} side</li>"
        )
    return (
        f'<li class="flag">the modelled accuracy still rises toward the {esc(b.side)} edge '
        f"of {esc(b.param)} (+{b.rise:.4f} +/- {b.rise_se:.4f}, p={b.p_value:.1g}): the "
        f"best value may be outside the box; widen it to the "
        f"{'lower' if b.side == 'low' else 'higher'} side</li>"
    )


def _flags_and_diagnoses(result, diagnoses, rows) -> str:
    parts = []
    if result.boundary:
        band = figures.sweep_band(result)
        items = "".join(_flag_item(b, band) for b in result.boundary)
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


def write_report(result, parents, out_dir, dataset_images=None, x_sample=None) -> str:
    """Write ``index.html`` (self-contained) and one PNG per figure into ``out_dir``.

    Args:
      result: the ``SweepResult`` to show.
      parents: its ancestors' ``SweepResult``s, oldest first (their members are drawn
        faintly on the response surface; may be empty).
      out_dir: created if needed.
      dataset_images: ``[n, H, W]`` raw training images for the data check (the flows
        pass ``dataset.raw_train_images``), or ``[n, D]`` rows of tabular features; the
        panel is skipped with a note when None.
      x_sample: ``[N, D]`` preprocessed examples (e.g. ``dataset.x_val[:1000]``) for the
        winner's hidden-unit correlation, and for its activation statistics when the
        result has none stored (``result.activations``, written by the sweep flows);
        those parts are skipped with a note when None.

    Returns:
      The path of ``index.html``.

    Example::

      path = write_report(result, [], "reports/abc123", dataset.raw_train_images)
    """
    out = Path(out_dir)  # created once every figure is drawn: a failed report leaves none
    diagnoses = diagnose_sweep(result)
    top = figures.top_rows(result, 3)
    fails = figures.failure_rows(result, diagnoses)
    panels: list[Panel] = []
    files: dict[str, bytes] = {}

    def fig(name: str, f) -> tuple[bytes, str]:
        files[name] = _png(f)
        return files[name]

    panels.append(Panel("Summary", [], _summary(result, diagnoses)))

    if dataset_images is not None and len(dataset_images):
        png = fig("data.png", figures.data_grid(dataset_images))
        what = (
            "the first training rows, as loaded (tabular features: no images), each "
            "feature scaled to its own range over these rows: a flat column is a constant "
            "feature, a lone bright cell an outlier; the preprocessing centres every "
            "feature and divides all of them by one scale, so features of very different "
            "ranges are worth standardising yourself"
            if np.ndim(dataset_images) == 2
            else "the first training images, as loaded"
        )
        panels.append(Panel("Data check", [(png, what)]))
    else:
        panels.append(
            Panel(
                "Data check",
                [],
                note="no training images were passed to the "
                "report (the sweep flows pass dataset.raw_train_images)",
            )
        )

    png = fig("response_surface.png", figures.response_surface(result, parents))
    panels.append(
        Panel(
            "Response surface",
            [
                (
                    png,
                    (
                        "every member at its (lr, lambda), colored by best validation "
                        "accuracy (filled = finished"
                        + (
                            f", hollow = {status_labels(result)['stopped']}, on the same scale"
                            if any(m.status == "stopped" for m in result.members)
                            else ""
                        )
                        + "); red x = diverged; solid box = this search, dashed = "
                        "ancestors; shaded = outer "
                        f"{figures.sweep_band(result):.0%} of each log axis, where the "
                        "model measures whether the score still rises toward an edge"
                        + (
                            "; the other swept axes are not shown here (see Every swept axis)"
                            if len(result.space) > 2
                            else ""
                        )
                    ),
                )
            ],
        )
    )

    model = _model(result)
    if model is not None:
        png = fig("model.png", figures.model_surface(result, *model))
        v = result.verdict
        flat = ", ".join(v.flat) if v and v.flat else "none"
        panels.append(
            Panel(
                "Response-surface model",
                [
                    (
                        png,
                        "left: the model's mean accuracy over the two most important axes "
                        "(the others at the modelled optimum), red rings = members "
                        "statistically tied with the winner, star = modelled optimum; "
                        "right: importance of each axis with its posterior SD (flat axes: "
                        f"{esc(flat)}). {esc(_optimum_words(v))} {esc(model[0].fit_note)}",
                    )
                ],
            )
        )

    if len(result.space) > 2:
        panels.append(axes_panel(result, fig))

    sched = schedule_name(result.config)
    if result.history and result.lineage:
        png = fig("schedule.png", schedule_fig.hparam_schedules(result))
        rows_ = [[c["step"], c["member"], c["copied_from"]] for c in result.lineage[:50]]
        panels.append(
            Panel(
                "Schedule (PBT)",
                [(png, "each member's learning rate and lambda over the run; dots = copies")],
                table(["step", "member", "copied from"], rows_)
                + (
                    ""
                    if len(result.lineage) <= 50
                    else f"<p>... {len(result.lineage) - 50} more</p>"
                ),
            )
        )
    elif any(m.stopped_at is not None for m in result.members):
        png = fig("schedule.png", schedule_fig.active_over_time(result))
        panels.append(
            Panel(
                f"Schedule ({sched})",
                [(png, "members still training at each step; each rung keeps the best")],
            )
        )

    if getattr(result, "configs", None):
        png = fig("spread.png", schedule_fig.replica_spread(result))
        panels.append(
            Panel(
                "Spread across replicas and folds",
                [(png, "each config's members (seeds or held-out folds) and their mean +/- SD")],
            )
        )

    if result.curves is not None and len(result.curves.step):
        imgs = [
            (
                fig("loss.png", figures.loss_curves(result, top, fails)),
                "training loss of the top members and of typical failures (log scale)",
            ),
            (
                fig("accuracy.png", figures.accuracy_gap(result, top)),
                "training vs validation accuracy of the top members",
            ),
            (
                fig("update_ratio.png", figures.update_ratio(result, top, fails)),
                "update/weight norm ratio; about 1e-3 is healthy",
            ),
        ]
        panels.append(Panel("Curves", imgs))
    else:
        panels.append(Panel("Curves", [], note="this result holds no curves"))

    own = result.config.model.kind == "custom"
    if result.winner_params is not None and own:  # the user's model: find its first layer
        w = custom_fig.first_layer_images(
            result.winner_params, (result.dataset or {}).get("input_shape")
        )
        imgs = [] if w is None else [(fig("weights.png", w), "the winner's first layer")]
        note = None if w else "no first layer reads the examples directly (dense or conv)"
        panels.append(Panel("Learned weights", imgs, note=note))
    else:
        panels += network_panels(result, x_sample, fig)

    header, rows, classes = chosen_members(result)
    shared = shared_settings(result.config, result.dataset)
    # The one ranking order, said once: why a stopped 0.9100 sits below a finished 0.9075.
    order = f"{ORDER_LINE}; shown: the winner, then the next finished members"
    html_members = f"<p>{esc(order)}</p>" + table(header, rows, classes=classes)
    if shared:
        html_members += "<p><b>Shared configuration</b></p>" + table(
            ["setting", "value"], [list(r) for r in shared]
        )
    panels.append(
        Panel(
            "Chosen members side by side (differences from the winner highlighted)",
            [],
            html_members,
        )
    )
    panels.append(
        Panel(
            "Boundary flags and diagnoses",
            [],
            _flags_and_diagnoses(
                result, diagnoses, figures.top_rows(result, NUM_CHOSEN) + list(fails.values())
            ),
        )
    )

    page = render(
        f"sweepjax command center: {result.kind} sweep {result.sweep_id}",
        f"{len(result.members)} members on {(result.dataset or {}).get('name', '?')}",
        panels,
    )
    out.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (out / name).write_bytes(data)
    index = out / "index.html"
    tmp = out / "index.html.tmp"
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, index)  # a reader never sees half a page
    return str(index)
