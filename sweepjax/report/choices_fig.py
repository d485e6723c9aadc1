"""The categorical values side by side (a sweep with ``choices``): each value's best
validation accuracy with its SE, its verdict against the best value, its members and
the share that diverged, and the validation curves of every value's members."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from sweepjax.report.html import Panel, esc, table
from sweepjax.results.choice_verdict import choice_line, choice_name, choice_scores
from sweepjax.spec.choices import combo_index

COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def values_curves(result, scores) -> Figure:
    """Validation accuracy of every value's members (thin) and its best member (thick),
    one colour per value."""
    c, cfg = result.curves, result.config
    fig = Figure(figsize=(7.5, 4.2), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    which = np.array([combo_index(m.id // cfg.group, cfg.choices) for m in result.members])
    ids = [m.id for m in result.members]
    for v, s in enumerate(scores):
        color = COLORS[v % len(COLORS)]
        for r in np.flatnonzero(which == v):
            ax.plot(c.step, c.val_acc[r], color=color, lw=0.6, alpha=0.35)
        if s.best_id >= 0:
            r = ids.index(s.best_id)
            ax.plot(
                c.step, c.val_acc[r], color=color, lw=2.0, label=f"{s.label} (best: {s.best_id})"
            )
    ax.set_xlabel("step")
    ax.set_ylabel("validation accuracy (subset)")
    ax.set_title(f"{choice_name(cfg)}: every member (thin), each value's best (thick)", fontsize=9)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="lower right")
    ax.grid(True, alpha=0.25)
    return fig


def categorical(page, fig) -> list[Panel]:
    """The report's section for a sweep with ``choices`` (none without)."""
    result = page.result
    if not result.config.choices or not result.members:
        return []
    scores = choice_scores(result.members, result.config)
    rows = [
        [
            s.label,
            f"{s.acc:.4f} ± {s.se:.4f}" if np.isfinite(s.acc) else "-",
            s.verdict,
            str(s.best_id) if s.best_id >= 0 else "-",
            str(s.members),
            f"{s.diverged:.0%}",
        ]
        for s in scores
    ]
    head = ["value", "best val acc ± SE", "verdict", "best member", "members", "diverged"]
    html = f"<p>{esc(choice_line(result.members, result.config))}</p>" + table(head, rows)
    html += (
        "<p>One compiled program per value, trained one after another in this sweep; "
        "a value is tied when its best member is within the 95% subset-selection "
        "band of the best value's (their SEs).</p>"
    )
    imgs = []
    if result.curves is not None and len(result.curves.step):
        png = fig("choices.png", values_curves(result, scores))
        imgs.append((png, "validation accuracy per value"))
    return [Panel(f"Categorical values: {choice_name(result.config)}", imgs, html)]
