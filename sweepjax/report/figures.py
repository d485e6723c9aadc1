"""The command center's pictures: one function per figure, each returning a Figure.

Inputs are plain arrays or a :class:`sweepjax.results.records.SweepResult`; nothing here trains,
reads the store or writes files. Figures are built with ``matplotlib.figure.Figure``
directly (no pyplot), so there is no global state and no GUI backend involved.

Here: the selections of members, the data check, the lr x lambda response surface and
the curves. The learned weights and hidden units are in :mod:`.network_fig`, the
response-surface model in :mod:`.model_fig`, the view of every swept axis in
:mod:`.axes_fig`; every figure name stays importable from here.

Artists that tests count carry a ``gid``: ``"members"`` / ``"stopped"`` / ``"diverged"``
(response surface points: finished, stopped by the schedule, diverged), ``"band"``
(boundary strips), ``"box"`` (searched boxes).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib import colormaps
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from sweepjax.config import DEFAULT_BAND
from sweepjax.report.members import (
    accuracy_range,
    chosen_rows,
    member_groups,
    rank_label,
    score_cmap,
    score_label,
    status_labels,
)

# The figures of the network and of the model live in their own modules; their names
# stay importable from here.
from sweepjax.report.model_fig import model_surface
from sweepjax.report.network_fig import (
    activation_histograms,
    hidden_activations,
    hidden_stats,
    weight_images,
)

# The lecture's target update/weight ratio and the band diagnose.py accepts around it.
RATIO_TARGET, RATIO_BAND = 1e-3, (1e-4, 1e-2)
BAND_FRACTION = DEFAULT_BAND  # outer fraction of each axis's log width: the edge band
TOP_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#17becf", "#8c564b")
FAIL_COLORS = {"too low": "#7f7f7f", "exploded": "#d62728"}


# --------------------------------------------------------------------------- selections
def top_rows(result, k: int = 3) -> list[int]:
    """Rows of the ``k`` members to show: ``result.winner`` first, then the finished
    members in the CLI's ranking order (:func:`sweepjax.report.members.chosen_rows`)."""
    return chosen_rows(result, k)


def failure_rows(result, diagnoses: dict | None = None) -> dict[str, int]:
    """Typical failures: ``{"too low": row, "exploded": row}`` where present.

    "too low" is the lowest-lr member diagnosed ``lr_too_low`` (or, without diagnoses,
    the lowest-lr member that did not diverge); "exploded" is the diverged member with
    the lowest lr (the one just past the edge).
    """
    lr = result.member_array("lr")
    out = {}
    if diagnoses is not None:
        low = [
            i
            for i, m in enumerate(result.members)
            if any(d.kind == "lr_too_low" for d in diagnoses.get(m.id, []))
        ]
    else:
        low = [i for i, m in enumerate(result.members) if m.status == "ok"]
    if low:
        out["too low"] = min(low, key=lambda i: lr[i])
    boom = [i for i, m in enumerate(result.members) if m.status == "diverged"]
    if boom:
        out["exploded"] = min(boom, key=lambda i: lr[i])
    return out


def _label(m) -> str:
    return f"#{m.id} lr={m.lr:.2g} l2={m.l2:.2g}"


# --------------------------------------------------------------------------- data
def data_grid(images: np.ndarray, n: int = 36, labels=None) -> Figure:
    """The data check: the first ``n`` training images ``[n, H, W]`` (or ``[n, H, W, C]``)
    in a square grid; for tabular data ``[n, D]`` the first rows instead
    (:func:`feature_rows`), since feature vectors are no pictures."""
    images = np.asarray(images)[:n]
    if images.ndim == 2:
        return feature_rows(images)
    side = math.ceil(math.sqrt(len(images)))
    fig = Figure(figsize=(0.9 * side, 0.9 * side + 0.3), dpi=100)
    for i, img in enumerate(images):
        ax = fig.add_subplot(side, side, i + 1)
        ax.imshow(_picture(img), cmap="gray", interpolation="nearest")
        ax.set_axis_off()
        if labels is not None:
            ax.set_title(str(labels[i]), fontsize=7, pad=1)
    fig.suptitle(f"first {len(images)} training images", fontsize=10)
    return fig


def _picture(img: np.ndarray) -> np.ndarray:
    """One example as imshow takes it: ``[H, W]``, or ``[H, W, 3|4]`` scaled to [0, 1];
    a single channel is dropped and any other layout is flattened to ``[H, rest]``."""
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 3 and img.shape[-1] in (3, 4):
        f = img.astype(np.float32)
        lo, hi = float(f.min()), float(f.max())
        return (f - lo) / (hi - lo) if hi > lo else np.zeros_like(f)
    return img.reshape(img.shape[0], -1) if img.ndim != 2 else img


def feature_rows(rows: np.ndarray) -> Figure:
    """Tabular data's check: the first training rows ``[n, D]`` as a heat chart, each
    feature scaled to its own range over these rows (so a constant feature is one flat
    colour, an outlier a lone bright cell), with each feature's raw range underneath."""
    rows = np.asarray(rows, dtype=np.float64)
    n, d = rows.shape
    lo, hi = rows.min(axis=0), rows.max(axis=0)
    span = np.where(hi > lo, hi - lo, 1.0)
    fig = Figure(figsize=(min(max(4.5, 0.28 * d + 2.0), 13), 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(
        (rows - lo) / span,
        cmap="viridis",
        vmin=0,
        vmax=1,
        aspect="auto",
        interpolation="nearest",
        gid="data",
    )
    if d <= 40:
        ax.set_xticks(
            range(d),
            [f"{j}: {a:.3g}..{b:.3g}" for j, (a, b) in enumerate(zip(lo, hi, strict=True))],
            fontsize=6,
            rotation=90,
        )
    ax.set_xlabel("feature (its range over these rows)" if d <= 40 else "feature")
    ax.set_ylabel("training row")
    ax.set_title(
        f"first {n} training rows, {d} features, each scaled to its own range", fontsize=10
    )
    return fig


# --------------------------------------------------------------------------- search
def sweep_band(result) -> float:
    """The boundary band the sweep was flagged with (``--band``, in its resolved config;
    the default for results stored without one)."""
    return float(result.config.band)


def band_rects(space: dict, fraction: float = BAND_FRACTION) -> list[tuple[str, str, tuple]]:
    """The boundary band of a log lr x log l2 box: ``(axis, side, (x0, x1, y0, y1))`` for
    the outer ``fraction`` of each axis's log width."""
    (xl, xh), (yl, yh) = space["lr"], space["l2"]
    fx, fy = (xh / xl) ** fraction, (yh / yl) ** fraction
    return [
        ("lr", "low", (xl, xl * fx, yl, yh)),
        ("lr", "high", (xh / fx, xh, yl, yh)),
        ("l2", "low", (xl, xh, yl, yl * fy)),
        ("l2", "high", (xl, xh, yh / fy, yh)),
    ]


def _box(ax, space, **kw):
    (xl, xh), (yl, yh) = space["lr"], space["l2"]
    ax.add_patch(Rectangle((xl, yl), xh - xl, yh - yl, fill=False, gid="box", **kw))


def response_surface(result, parents=(), top: int = 3) -> Figure:
    """log lr x log lambda: every member a point colored by best validation accuracy
    (finished filled, stopped by the schedule hollow, on one colour scale), diverged
    members as red x, the searched boxes (this sweep solid, ancestors dashed), the
    boundary band shaded and the chosen members labeled (the result's winner, then #2 ...)."""
    fig = Figure(figsize=(7.5, 5.8), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_xscale("log")
    ax.set_yscale("log")
    for p in parents:  # ancestors' members, faint, for context
        ax.scatter(
            p.member_array("lr"),
            p.member_array("l2"),
            s=8,
            c="#c8c8c8",
            gid="parent-members",
            zorder=1,
        )
    for _, side_space in result.parent_spaces:
        _box(ax, side_space, ls="--", lw=1.2, ec="#555555", zorder=2)
    for sid, side_space in result.parent_spaces:
        ax.annotate(
            f"searched by {sid}",
            (side_space["lr"][0], side_space["l2"][1]),
            xytext=(3, -11),
            textcoords="offset points",
            fontsize=8,
            color="#555555",
        )
    _box(ax, result.space, ls="-", lw=1.8, ec="black", zorder=2)
    band = sweep_band(result)
    for _, _, (x0, x1, y0, y1) in band_rects(result.space, band):
        ax.add_patch(
            Rectangle(
                (x0, y0), x1 - x0, y1 - y0, fc="#ffb000", alpha=0.15, lw=0, gid="band", zorder=0
            )
        )
    lr, l2 = result.member_array("lr"), result.member_array("l2")
    acc = result.member_array("best_val_acc")
    g, labels = member_groups(result), status_labels(result)
    norm, cmap = Normalize(*accuracy_range(result, g)), colormaps[score_cmap(result)]
    # Stopped by the schedule: hollow, ringed in the colour of the accuracy they reached.
    edge = cmap(norm(acc[g.stopped]))
    edge[~np.isfinite(acc[g.stopped])] = (0.5, 0.5, 0.5, 1.0)
    styles = {
        "ok": dict(c=acc[g.ok], cmap=cmap, norm=norm, edgecolors="k", linewidths=0.3),
        "stopped": dict(facecolors="none", edgecolors=edge, linewidths=1.1, gid="stopped"),
        "diverged": dict(marker="x", c="#d62728", linewidths=1.2, s=30, gid="diverged"),
    }
    handles = []
    for kind, kw in styles.items():
        rows = getattr(g, kind)
        h = ax.scatter(
            lr[rows], l2[rows], **{"s": 28, "gid": "members", "zorder": 3, **kw}, label=labels[kind]
        )
        handles += [h] if len(rows) else []
    if len(g.ok) or len(g.stopped):
        fig.colorbar(
            ScalarMappable(norm, cmap),
            ax=ax,
            label=score_label(result, "best validation accuracy")
            + (" (filled: finished, ring: stopped)" if len(g.stopped) else ""),
        )
    flagged = {b.member for b in result.boundary}
    for pos, i in enumerate(top_rows(result, top)):
        m = result.members[i]
        name = rank_label(result, i, pos)
        ec = "#d62728" if m.id in flagged else "black"
        ax.scatter([m.lr], [m.l2], s=140, facecolors="none", edgecolors=ec, lw=1.5, zorder=4)
        ax.annotate(
            f"{name} {m.best_val_acc:.3f}",
            (m.lr, m.l2),
            xytext=(8, 6),
            textcoords="offset points",
            fontsize=9,
            fontweight="bold" if name == "winner" else "normal",
            zorder=5,
        )
    # Show every box in full.
    boxes = [result.space] + [s for _, s in result.parent_spaces]
    xs = [v for b in boxes for v in b["lr"]] + list(lr)
    ys = [v for b in boxes for v in b["l2"]] + list(l2)
    ax.set_xlim(min(xs) / 1.6, max(xs) * 1.6)
    ax.set_ylim(min(ys) / 1.6, max(ys) * 1.6)
    ax.set_xlabel("learning rate (log)")
    ax.set_ylabel("L2 lambda (log)")
    n_flag = len(result.boundary)
    ax.set_title(
        f"{result.kind} sweep {result.sweep_id}: {len(result.members)} members; "
        f"shaded = boundary band ({band:.0%})"
        + (f"; {n_flag} boundary flag(s), red ring" if n_flag else ""),
        fontsize=9,
    )
    if len(g.stopped) or len(g.diverged):
        ax.legend(handles=handles, loc="lower left", fontsize=8)
    return fig


# --------------------------------------------------------------------------- curves
def _curve_members(result, rows_top, failures):
    out = [
        (
            r,
            TOP_COLORS[k % len(TOP_COLORS)],
            "-",
            f"{rank_label(result, r, k)} {_label(result.members[r])}",
        )
        for k, r in enumerate(rows_top)
    ]
    out += [
        (r, FAIL_COLORS[name], ":", f"{name}: {_label(result.members[r])}")
        for name, r in failures.items()
    ]
    return out


def _curve(ax, x, y, label: str, **kw) -> bool:
    """Plot the finite points of one curve; whether anything was drawn. A single point is
    drawn as a dot (a line through one point shows nothing), and a curve with none is
    left out of the legend: legends list only what is drawn."""
    fin = np.isfinite(y)
    if not fin.any():
        return False
    if fin.sum() == 1:
        kw = {**kw, "marker": "o", "ms": 4}
    ax.plot(x[fin], y[fin], label=label, **kw)
    return True


def loss_curves(result, rows_top, failures: dict[str, int] | None = None) -> Figure:
    """Training loss (log scale) of the top members and of typical failures; an exploded
    member ends in an x at the step it diverged (placed at 3x its start: the rule)."""
    c = result.curves
    fig = Figure(figsize=(7.5, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_yscale("log")
    for r, color, ls, label in _curve_members(result, rows_top, failures or {}):
        y = c.train_loss[r]
        fin = np.isfinite(y)
        drawn = _curve(ax, c.step, y, label, color=color, ls=ls, lw=1.6)
        m = result.members[r]
        if m.diverged_at is not None and m.diverged_at >= 0:
            start = y[fin][0] if fin.any() else math.log(result.dataset.get("num_classes") or 10)
            x_label = "_nolegend_" if drawn else label  # the x alone stands for it
            ax.plot(
                [max(m.diverged_at, 1)], [3 * start], "x", color=color, ms=10, mew=2, label=x_label
            )
            ax.annotate(
                f"exploded at step {m.diverged_at}",
                (max(m.diverged_at, 1), 3 * start),
                xytext=(8, -4),
                textcoords="offset points",
                fontsize=8,
                color=color,
            )
    ax.set_xlabel("step")
    ax.set_ylabel("training loss (log)")
    ax.set_title("loss curves: top members and typical failures", fontsize=10)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, loc="best")
    ax.grid(True, which="both", alpha=0.25)
    return fig


def accuracy_gap(result, rows_top) -> Figure:
    """Training (dashed) vs validation (solid) accuracy of the top members: the gap."""
    c = result.curves
    fig = Figure(figsize=(7.5, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    for k, r in enumerate(rows_top):
        color = TOP_COLORS[k % len(TOP_COLORS)]
        m = result.members[r]
        _curve(ax, c.step, c.val_acc[r], f"val   {_label(m)}", color=color, lw=1.8)
        _curve(ax, c.step, c.train_acc[r], f"train {_label(m)}", color=color, lw=1.4, ls="--")
    ax.set_xlabel("step")
    ax.set_ylabel(score_label(result, "accuracy"))
    ax.set_title(
        score_label(result, "training (dashed) vs validation (solid) accuracy")
        + ": big gap -> raise lambda; no gap -> more capacity",
        fontsize=9,
    )
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7.5, loc="lower right", ncol=1)
    ax.grid(True, alpha=0.25)
    return fig


def update_ratio(result, rows_top, failures: dict[str, int] | None = None) -> Figure:
    """||update|| / ||weights|| over time (log), with the 1e-3 reference and its band."""
    c = result.curves
    fig = Figure(figsize=(7.5, 4.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_yscale("log")
    ax.axhspan(*RATIO_BAND, color="#2ca02c", alpha=0.08, lw=0)
    ax.axhline(RATIO_TARGET, color="k", ls="--", lw=1, label="1e-3 reference")
    for r, color, ls, label in _curve_members(result, rows_top, failures or {}):
        y = np.where(c.update_ratio[r] > 0, c.update_ratio[r], np.nan)  # a log axis
        _curve(ax, c.step, y, label, color=color, ls=ls, lw=1.5)
    ax.set_xlabel("step")
    ax.set_ylabel("update / weight norm (log)")
    ax.set_title("update/weight ratio (shaded: 1e-4..1e-2)", fontsize=10)
    ax.legend(fontsize=7.5, loc="best")
    ax.grid(True, which="both", alpha=0.25)
    return fig


__all__ = [
    "accuracy_gap",
    "activation_histograms",
    "band_rects",
    "data_grid",
    "failure_rows",
    "feature_rows",
    "hidden_activations",
    "hidden_stats",
    "loss_curves",
    "model_surface",
    "response_surface",
    "sweep_band",
    "top_rows",
    "update_ratio",
    "weight_images",
]
