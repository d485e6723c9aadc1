"""Sections of the page beyond the lr x lambda core: every swept axis at once, and what
the network learned (its weights and its hidden units)."""

from __future__ import annotations

import numpy as np

from sweepjax.analysis import activations
from sweepjax.report import axes_fig, figures
from sweepjax.report.html import Panel
from sweepjax.report.members import stopped_by
from sweepjax.report.network_fig import is_tabular


def hidden_unit_stats(result, x_sample=None) -> tuple[dict, str | None]:
    """``({member id: ActivationStats}, note)`` for the hidden-units panel: the kept
    members' stored statistics; for a result without them (an older store) the winner's,
    computed from its parameters on ``x_sample``; else a note saying why there are none
    (``None`` for models without the MLP's hidden layer)."""
    stats = dict(getattr(result, "activations", None) or {})
    params = result.winner_params
    if stats or params is None or not activations.is_mlp(params):
        return stats, None
    if x_sample is not None and not activations.is_mlp(params, np.shape(x_sample)[-1]):
        return {}, None  # a sample of another shape than the model's inputs
    if x_sample is None or result.winner is None:
        return {}, (
            "this sweep stored no activation statistics and no data sample was passed "
            "(x_sample), so hidden-activation statistics are not shown"
        )
    w = result.winner.id
    m = next((m for m in result.members if m.id == w), None)
    x = np.asarray(x_sample)[: activations.SAMPLE_ROWS]
    s = activations.activation_stats(params, x, width=getattr(m, "hidden", None), member=w)
    return {w: s}, None


def _winner_width(result, stats: dict) -> int | None:
    """The winner's own hidden width: from its statistics, else its ``hidden`` value."""
    w = result.winner.id if result.winner is not None else None
    if w in stats:
        return stats[w].width
    m = next((m for m in result.members if m.id == w), None)
    hidden = getattr(m, "hidden", None)
    units = np.shape(result.winner_params["hidden"]["kernel"])[0]
    return None if hidden is None else activations.own_width(hidden, units)


def stat_columns(result, stats: dict) -> tuple[list, list[str]]:
    """The statistics in kept order (winner first) and their column titles."""
    w = result.winner.id if result.winner is not None else None
    cols = list(stats.values())
    labels = [
        f"winner (id {s.member})" if s.member == w else f"#{k + 1} (id {s.member})"
        for k, s in enumerate(cols)
    ]
    return cols, labels


def axes_panel(result, fig) -> Panel:
    """Parallel coordinates and pairwise panels over every swept axis (> 2 of them)."""
    n = len(result.space)
    return Panel(
        f"Every swept axis ({n})",
        [
            (
                fig("axes.png", axes_fig.parallel_coordinates(result)),
                "one line per member through every swept axis, each scaled to the searched "
                "box (log axes in log units, linear axes linear, hidden widths as "
                "integers); colour = best validation accuracy (one scale), faint = "
                f"stopped by {stopped_by(result.config)}, grey dashed = diverged; black = "
                "winner, red = tied with it. "
                "Bright lines bunching on an axis: it matters there; spread over the whole "
                "axis: it barely matters; bunching at an end: the best value may lie "
                "outside the box",
            ),
            (
                fig("pairs.png", axes_fig.pairwise_panels(result)),
                "every pair of swept axes (lower triangle), members as points in the "
                "searched box: where the bright points sit shows how two axes interact "
                "(e.g. a larger learning rate wanting a smaller init scale)",
            ),
        ],
    )


def network_panels(result, x_sample, fig) -> list[Panel]:
    """The "Learned weights" and "Hidden-unit activations" sections; ``fig(name, figure)``
    saves a figure and returns its PNG bytes."""
    panels: list[Panel] = []
    stats, note = hidden_unit_stats(result, x_sample)
    if result.winner_params is not None:
        params = result.winner_params
        shape = (result.dataset or {}).get("input_shape")
        width = _winner_width(result, stats) if activations.is_mlp(params) else None
        classes = (result.dataset or {}).get("classes")
        drawn = figures.weight_images(params, shape, width=width, classes=classes)
        if is_tabular(shape):
            caption = (
                "the winner's learned weights per input feature (softmax: one row per "
                "class; MLP: the rows of its first-layer kernel, its own units only), on "
                "one scale, red + and blue -: a feature whose column is pale in every row "
                "barely counts; one large weight dominating suggests too little "
                "regularisation or an unscaled feature"
            )
        else:
            caption = (
                "the winner's learned weights as images (MLP: the rows of its first-layer "
                "kernel, its own units only): smooth, stroke-like templates are healthy; "
                "salt-and-pepper noise suggests too high a learning rate or too little "
                "regularisation; blank panels are units that never learned"
            )
        imgs = [(fig("weights.png", drawn), caption)]
        if x_sample is not None and activations.is_mlp(params, np.shape(x_sample)[-1]):
            imgs.append(
                (
                    fig("hidden.png", figures.hidden_stats(params, x_sample, width=width)),
                    "the winner's hidden units on a data sample: how often each fires, and "
                    "their correlation (strongly correlated units are redundant)",
                )
            )
        panels.append(Panel("Learned weights", imgs))
    else:
        panels.append(
            Panel("Learned weights", [], note="the winner's parameters are not in this result")
        )
    if stats:
        rows_ = next(iter(stats.values())).rows
        png = fig("activations.png", figures.activation_histograms(*stat_columns(result, stats)))
        panels.append(
            Panel(
                "Hidden-unit activations",
                [
                    (
                        png,
                        "the winner and the other kept members on the first "
                        f"{rows_} validation rows, their own units only. Top: every hidden "
                        "activation (log count; grey = exact zeros, where the ReLU is off). "
                        "Bottom: how many units fire on each fraction of the rows; red = "
                        "dead units, which fire on none. A dead fraction above ~0.3 "
                        "suggests a lower learning rate or a smaller init scale; units "
                        "firing on nearly every row make the layer almost linear; "
                        "activations piling up far right (above ~10) suggest a smaller "
                        "init scale",
                    )
                ],
            )
        )
    elif note:
        panels.append(Panel("Hidden-unit activations", [], note=note))
    return panels
