"""What the network learned: its weights as images and its hidden units on data.

Like :mod:`sweepjax.report.figures`, plain arrays in, a ``Figure`` out, no pyplot.
Artists tests count carry a ``gid``: ``"weights"`` (weight image panels).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from sweepjax.analysis import activations


def is_tabular(input_shape) -> bool:
    """Whether examples are feature vectors ``[D]`` (tabular data, e.g. saved as
    ``npz:`` from scikit-learn) rather than images: their weights are drawn per feature,
    not as pictures."""
    return input_shape is not None and len(input_shape) == 1


def class_names(num: int, classes=None) -> list[str]:
    """``"class k"``, or the user's own label when their labels were remapped."""
    if classes is not None and len(classes) == num:
        return [f"class {k} ({c})" for k, c in enumerate(classes)]
    return [f"class {k}" for k in range(num)]


def feature_weights(w: np.ndarray, row_names: list[str], title: str) -> Figure:
    """Weights ``[R, D]`` (a class or a hidden unit per row, an input feature per column)
    as one heat chart on a shared symmetric scale (red +, blue -), so features compare
    across rows: a column blank in every row is a feature the model ignores."""
    w = np.asarray(w, dtype=np.float32)
    r, d = w.shape
    fig = Figure(figsize=(min(max(4.5, 0.28 * d + 2.5), 13), min(0.3 * r + 1.6, 12)), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    v = float(np.abs(w).max()) or 1.0
    im = ax.imshow(
        w, cmap="RdBu_r", vmin=-v, vmax=v, aspect="auto", interpolation="nearest", gid="weights"
    )
    ax.set_yticks(range(r), row_names, fontsize=7 if r <= 40 else 5)
    if d <= 40:
        ax.set_xticks(range(d), [str(j) for j in range(d)], fontsize=7)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("input feature (column of x)")
    fig.colorbar(im, ax=ax, label="weight")
    ax.set_title(title, fontsize=10)
    return fig


def _image_shape(d: int, input_shape=None) -> tuple[int, int]:
    if input_shape is not None and len(input_shape) >= 2 and int(np.prod(input_shape)) == d:
        return int(input_shape[0]), int(np.prod(input_shape[1:]))
    s = math.isqrt(d)
    return (s, s) if s * s == d else (1, d)


def weight_images(
    params,
    input_shape=None,
    max_units: int = 36,
    width: int | None = None,
    who: str = "winner",
    classes=None,
) -> Figure:
    """A member's weights as images. Softmax (``params["out"]["kernel"]`` ``[K, D]``):
    one template per class. MLP: the first ``max_units`` rows of the hidden kernel
    ``[H, D]`` among the member's own ``width`` units (the rest of the compiled width is
    masked zeros). Each panel has its own symmetric color scale (red +, blue -).
    Tabular data (``input_shape`` ``[D]``, :func:`is_tabular`): the same rows as one
    chart of weights per feature (:func:`feature_weights`); ``classes`` names the rows
    with the user's own labels."""
    mlp = "hidden" in params
    w = np.asarray(params["hidden" if mlp else "out"]["kernel"], dtype=np.float32)
    if mlp:
        w = w[: min(max_units, len(w) if width is None else int(width))]
    if is_tabular(input_shape):
        if mlp:
            names = [f"unit {k}" for k in range(len(w))]
            what = f"first-layer weights of {len(w)} hidden units per feature"
        else:
            names = class_names(len(w), classes)
            what = f"softmax weights of {len(w)} classes per feature"
        return feature_weights(w, names, f"{who}'s learned weights: {what}")
    h, wd = _image_shape(w.shape[1], input_shape)
    cols = max(min(len(w), 5 if not mlp else 9), 1)
    rows = max(math.ceil(len(w) / cols), 1)
    size = 1.5 if not mlp else 1.0
    fig = Figure(figsize=(size * cols, (size + 0.15) * rows + 0.4), dpi=100)
    for k, row in enumerate(w):
        ax = fig.add_subplot(rows, cols, k + 1)
        v = float(np.abs(row).max()) or 1.0
        ax.imshow(
            row.reshape(h, wd),
            cmap="RdBu_r",
            vmin=-v,
            vmax=v,
            gid="weights",
            interpolation="nearest",
        )
        ax.set_axis_off()
        name = f"unit {k}" if mlp else class_names(len(w), classes)[k]
        ax.set_title(name, fontsize=7, pad=2)
    if mlp:
        own = int(np.shape(params["hidden"]["kernel"])[0] if width is None else width)
        first = f"the first {len(w)} of its {own}" if own > len(w) else f"its {len(w)}"
        what = f"first-layer weights of {first} hidden units"
    else:
        what = f"{len(w)} class templates (rows of the softmax weights)"
    fig.suptitle(f"{who}'s learned weights: {what}", fontsize=10)
    return fig


def hidden_activations(
    params, x_sample: np.ndarray, width: int | None = None
) -> tuple[np.ndarray, dict]:
    """ReLU activations ``[N, width]`` of the MLP's own hidden units on ``x_sample``
    ``[N, D]`` (:func:`sweepjax.analysis.activations.hidden_activations`, plain numpy: the report
    needs no jit) and their statistics; ``width`` None = every unit."""
    act = activations.hidden_activations(params, x_sample, width)
    active = (act > 0).mean(axis=0)  # [width] fraction of examples each unit fires on
    return act, {
        "active_fraction": active,
        "dead": int((active == 0).sum()),
        "units": int(act.shape[1]),
    }


def hidden_stats(
    params, x_sample: np.ndarray, max_units: int = 64, width: int | None = None
) -> Figure:
    """MLP hidden layer on a data sample: how often each of the member's own units fires
    (dead units never do) and the correlation between units (redundant units correlate)."""
    act, summary = hidden_activations(params, x_sample, width)
    fig = Figure(figsize=(9, 3.8), dpi=100)
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.hist(summary["active_fraction"], bins=20, range=(0, 1), color="#1f77b4")
    ax1.set_xlabel("fraction of examples where the unit is active")
    ax1.set_ylabel("units")
    ax1.set_title(f"dead units: {summary['dead']} of {summary['units']}", fontsize=10)
    ax2 = fig.add_subplot(1, 2, 2)
    a = act[:, :max_units]
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(a, rowvar=False) if a.shape[0] > 1 else np.eye(a.shape[1])
    corr = np.nan_to_num(np.atleast_2d(corr))  # dead units have no variance
    im = ax2.imshow(corr, cmap="RdBu_r", vmin=-1, vmax=1, interpolation="nearest")
    fig.colorbar(im, ax=ax2)
    ax2.set_title(f"correlation between the first {a.shape[1]} units", fontsize=10)
    ax2.set_xlabel("unit")
    ax2.set_ylabel("unit")
    fig.tight_layout()
    return fig


def activation_histograms(stats: list, labels: list[str] | None = None) -> Figure:
    """The lecture's activation pictures, one column per member
    (:class:`sweepjax.analysis.activations.ActivationStats`).

    Top: every hidden activation of the member's own units on the sample, on the shared
    fixed bins (log count; the grey bar is the exact zeros of the ReLU, the rest are
    log-spaced bins of positive values). Bottom: how many units fire on each fraction of
    the sample; dead units (never firing) in red. Titles give the width and the dead
    fraction.

    Artists tests count: ``"act-zero"`` / ``"act-hist"`` (top bars; their heights add up
    to width x rows), ``"dead"`` / ``"firing"`` (bottom bars, adding up to the width).
    """
    n = max(len(stats), 1)
    labels = labels or [f"member {s.member}" for s in stats]
    fig = Figure(figsize=(2.9 * n + 0.4, 5.6), dpi=100)
    for j, (s, label) in enumerate(zip(stats, labels, strict=True)):
        ax, bx = fig.add_subplot(2, n, j + 1), fig.add_subplot(2, n, n + j + 1)
        le = np.log10(s.edges)
        step = float(le[1] - le[0])
        x0 = float(le[0]) - 4 * step  # the zeros' bar, apart, left of the positive bins
        ax.set_yscale("log")
        if s.zeros:
            ax.bar([x0], [s.zeros], width=step * 2, align="edge", color="#999999", gid="act-zero")
        nz = s.counts > 0
        if nz.any():
            ax.bar(
                le[:-1][nz],
                s.counts[nz],
                width=step,
                align="edge",
                color="#1f77b4",
                gid="act-hist",
            )
        decades = np.arange(np.ceil(le[0]), np.floor(le[-1]) + 1)
        ax.set_xticks([x0 + step, *decades], ["0", *(f"1e{int(d)}" for d in decades)], fontsize=7)
        ax.set_xlim(x0 - step, float(le[-1]) + step)
        ax.set_ylim(0.5, max(float(s.zeros), float(s.counts.max(initial=0)), 1.0) * 3)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("activation (0, then log bins)", fontsize=8)
        if j == 0:
            ax.set_ylabel(f"count (units x {s.rows} rows, log)", fontsize=8)
        ax.set_title(f"{label}\nwidth {s.width}, dead {s.dead_fraction:.2f} ({s.dead})", fontsize=9)
        rate = s.firing_rate
        live = rate[rate > 0]
        if s.dead:
            bx.bar([-0.05], [s.dead], width=0.05, align="edge", color="#d62728", gid="dead")
        if live.size:
            counts, edges = np.histogram(live, bins=20, range=(0.0, 1.0))
            keep = counts > 0
            bx.bar(
                edges[:-1][keep],
                counts[keep],
                width=0.05,
                align="edge",
                color="#2ca02c",
                gid="firing",
            )
        bx.set_xlim(-0.07, 1.02)
        bx.yaxis.set_major_locator(MaxNLocator(integer=True))
        bx.tick_params(labelsize=7)
        bx.set_xlabel("fraction of rows the unit fires on", fontsize=8)
        if j == 0:
            bx.set_ylabel("units (red: dead)", fontsize=8)
    fig.tight_layout()
    return fig
