"""What the network learned: its weights as images and its hidden units on data.

Like :mod:`sweepjax.report.figures`, plain arrays in, a ``Figure`` out, no pyplot.
Artists tests count carry a ``gid``: ``"weights"`` (weight image panels).
"""

from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure


def _image_shape(d: int, input_shape=None) -> tuple[int, int]:
    if input_shape is not None and len(input_shape) >= 2 and int(np.prod(input_shape)) == d:
        return int(input_shape[0]), int(np.prod(input_shape[1:]))
    s = math.isqrt(d)
    return (s, s) if s * s == d else (1, d)


def weight_images(params, input_shape=None, max_units: int = 36) -> Figure:
    """The winner's weights as images. Softmax (``params["out"]["kernel"]`` ``[K, D]``):
    one template per class. MLP: the first ``max_units`` rows of the hidden kernel
    ``[H, D]``. Each panel has its own symmetric color scale (red +, blue -)."""
    mlp = "hidden" in params
    w = np.asarray(params["hidden" if mlp else "out"]["kernel"], dtype=np.float32)
    w = w[:max_units] if mlp else w
    h, wd = _image_shape(w.shape[1], input_shape)
    cols = min(len(w), 5 if not mlp else 9)
    rows = math.ceil(len(w) / cols)
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
        ax.set_title(f"unit {k}" if mlp else f"class {k}", fontsize=7, pad=2)
    what = (
        f"first-layer weights of {len(w)} hidden units"
        if mlp
        else f"{len(w)} class templates (rows of the softmax weights)"
    )
    fig.suptitle(f"winner's learned weights: {what}", fontsize=10)
    return fig


def hidden_activations(params, x_sample: np.ndarray) -> tuple[np.ndarray, dict]:
    """ReLU activations ``[N, H]`` of the MLP's hidden layer on ``x_sample`` ``[N, D]`` and
    their statistics. Plain numpy (``relu(x @ W.T + b)``, the models.MLP hidden layer)
    so the report needs no jit."""
    w = np.asarray(params["hidden"]["kernel"], np.float32)
    b = np.asarray(params["hidden"]["bias"], np.float32)
    act = np.maximum(np.asarray(x_sample, np.float32) @ w.T + b, 0.0)
    active = (act > 0).mean(axis=0)  # [H] fraction of examples each unit fires on
    return act, {
        "active_fraction": active,
        "dead": int((active == 0).sum()),
        "units": int(w.shape[0]),
    }


def hidden_stats(params, x_sample: np.ndarray, max_units: int = 64) -> Figure:
    """MLP hidden layer on a data sample: how often each unit fires (dead units never do)
    and the correlation between units (redundant units correlate)."""
    act, st = hidden_activations(params, x_sample)
    fig = Figure(figsize=(9, 3.8), dpi=100)
    ax1 = fig.add_subplot(1, 2, 1)
    ax1.hist(st["active_fraction"], bins=20, range=(0, 1), color="#1f77b4")
    ax1.set_xlabel("fraction of examples where the unit is active")
    ax1.set_ylabel("units")
    ax1.set_title(f"dead units: {st['dead']} of {st['units']}", fontsize=10)
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
