"""The response-surface model's picture (:mod:`sweepjax.results.appraise`)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from sweepjax.report.members import member_groups


def model_surface(result, appraisal, space, levels: int = 12, grid: int = 41) -> Figure:
    """The response-surface model (:mod:`sweepjax.results.appraise`): contours of its mean over
    the two most important axes (the others at the modelled optimum), members as dots,
    the result's tied set (``result.tied``, the winner included) ringed, diverged members
    as red crosses (the fit reads them at its floor), the region the members do not
    support hatched, the optimum starred; and a panel of per-axis importance (range of the
    partial-dependence curve, accuracy points) with its posterior SD.

    Artists tests count: ``"tied"`` (ringed members), ``"importance"`` (the bars),
    ``"diverged"`` (the crosses).
    """
    from sweepjax.analysis.evidence import supported_points
    from sweepjax.analysis.surface import predict

    v, s = appraisal.verdict, appraisal.surface
    axes = list(appraisal.axes)
    ranked = sorted(axes, key=lambda a: -v.importance[a])
    ax_x, ax_y = ranked[0], ranked[1] if len(ranked) > 1 else ranked[0]
    jx, jy = axes.index(ax_x), axes.index(ax_y)
    fig = Figure(figsize=(10.0, 4.2), dpi=100)
    ax, bx = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    ranges = space.axes()
    u = np.linspace(0.0, 1.0, grid)
    uu, vv = np.meshgrid(u, u)
    pts = np.tile([v.optimum[a] for a in axes], (grid * grid, 1))
    pts[:, jx], pts[:, jy] = uu.ravel(), vv.ravel()
    mean, sd = predict(s, pts)
    xs, ys = ranges[ax_x].from_unit(u), ranges[ax_y].from_unit(u)
    cs = ax.contourf(xs, ys, mean.reshape(grid, grid), levels=levels, cmap="viridis")
    m = result.config.metric  # the model's values are scores: an MSE's negated
    what = "val accuracy" if m.binomial else f"score ({'' if m.higher_is_better else '-'}{m.short})"
    fig.colorbar(cs, ax=ax, label=f"modelled {what}")
    if s.x is not None:  # hatch where the model knows less than one member would tell
        alive = ~s.diverged
        ok_pts = supported_points(sd, s.noise_se[alive], s.dispersion)
        weak = (~ok_pts).reshape(grid, grid).astype(float)
        if weak.any():
            hatch = ax.contourf(xs, ys, weak, levels=[0.5, 1.5], colors="none", hatches=["////"])
            hatch.set_gid("unsupported")  # contourf takes gid= only from matplotlib 3.11

    def points(ms, **kw):  # members at their (ax_x, ax_y) values
        ax.scatter([getattr(m, ax_x) for m in ms], [getattr(m, ax_y) for m in ms], **kw)

    dead = [m for m in result.members if m.status == "diverged"]
    if dead:
        points(dead, s=14, marker="x", c="#ff3030", lw=0.8, gid="diverged",
               label=f"diverged ({len(dead)}, fitted at the floor)")  # fmt: skip
    ok = [m for m in result.members if m.status != "diverged"]
    points(ok, s=6, c="white", alpha=0.6, lw=0, gid="members")
    g = member_groups(result)  # the result's own tied set and winner, as the JSON names them
    tied = [result.members[i] for i in sorted([*g.winner, *g.tied])]
    points(tied, s=60, facecolors="none", edgecolors="#ff3030", lw=1.5, gid="tied",
           label=f"tied with the winner ({len(tied)})")  # fmt: skip
    ax.scatter(
        [ranges[ax_x].from_unit(v.optimum[ax_x])],
        [ranges[ax_y].from_unit(v.optimum[ax_y])],
        marker="*",
        s=160,
        c="#ffd000",
        edgecolors="k",
        label="modelled optimum",
    )
    for a, setter in ((ranges[ax_x], ax.set_xscale), (ranges[ax_y], ax.set_yscale)):
        setter("log" if a.log else "linear")
    ax.set_xlabel(ax_x)
    ax.set_ylabel(ax_y)
    ax.legend(loc="lower left", fontsize=7)
    ax.set_title("model mean (other axes at the optimum)", fontsize=9)
    imp = [v.importance[a] for a in ranked]
    err = [v.importance_se[a] for a in ranked]
    colors = ["#bbbbbb" if a in v.flat else "#1f77b4" for a in ranked]
    bars = bx.barh(ranked[::-1], imp[::-1], xerr=err[::-1], color=colors[::-1])
    for b in bars:
        b.set_gid("importance")
    bx.axvline(2 * v.tol, color="k", ls=":", lw=1, label="no measurable difference below")
    bx.set_xlabel("importance: accuracy range of the axis's partial dependence")
    bx.legend(loc="lower right", fontsize=7)
    bx.set_title("grey = flat axis", fontsize=9)
    fig.tight_layout()
    return fig
