"""Every swept axis at once: parallel coordinates and pairwise panels.

With more than two swept axes (lr, lambda, and some of lr_decay, hidden, dropout,
init_scale, momentum) the lr x lambda response surface is one slice of the box. These
figures show them all, each axis scaled to the searched box: log axes in log units,
linear axes linear, the integer ``hidden`` labelled as integers.

Artists tests count carry a ``gid``: ``"pc-members"`` / ``"pc-stopped"`` /
``"pc-diverged"`` (one line per member, every member in exactly one of them),
``"pc-tied"`` / ``"pc-winner"`` (overlays); ``"pair-members"`` / ``"pair-stopped"`` /
``"pair-diverged"`` / ``"pair-tied"`` / ``"pair-winner"`` in the pairwise panels.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator

from sweepjax.report.members import (
    Groups,
    accuracy_range,
    member_groups,
    score_cmap,
    score_label,
    status_labels,
)

# Scales of axes the search module cannot tell (stored boxes are plain [lo, hi] lists):
# these are searched linearly, every other positive axis in log space.
LINEAR_AXES = frozenset({"dropout", "momentum"})
INTEGER_AXES = frozenset({"hidden"})
MAX_PAIR_AXES = 6  # pairwise panels grow as axes^2: beyond this the most important ones
CMAP = "viridis"
DIVERGED = "#b0b0b0"
TIED = "#ff3030"


class Axis(NamedTuple):
    """One swept axis as drawn: its searched box ``[lo, hi]`` and its scale."""

    name: str
    lo: float
    hi: float
    log: bool
    integer: bool = False

    def to_unit(self, x) -> np.ndarray:
        """Values -> [0, 1] over the searched box (log space on a log axis)."""
        x = np.asarray(x, np.float64)
        if self.log:
            with np.errstate(divide="ignore", invalid="ignore"):
                return (np.log(x) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return (x - self.lo) / (self.hi - self.lo)

    def ticks(self) -> list[float]:
        """A few values to label, in real units: integers on ``hidden``, decades on a log
        axis that spans two or more (else its ends and middle), the box's ends and round
        values inside it on a linear one."""
        lo, hi = self.lo, self.hi
        if self.integer and self.log:
            return [float(v) for v in sorted({int(round(v)) for v in np.geomspace(lo, hi, 5)})]
        if not self.log:
            inner = MaxNLocator(nbins=4, integer=self.integer).tick_values(lo, hi)
            gap = 0.08 * (hi - lo)
            return [lo, *(float(v) for v in inner if lo + gap < v < hi - gap), hi]
        d = np.arange(math.ceil(math.log10(lo) - 1e-9), math.floor(math.log10(hi) + 1e-9) + 1)
        if len(d) < 2:
            return [lo, math.sqrt(lo * hi), hi]
        while len(d) > 6:
            d = d[::2]
        return [float(10.0**k) for k in d]

    def label(self, v: float) -> str:
        if self.integer:
            return str(int(round(v)))
        if self.log and v > 0 and abs(math.log10(v) - round(math.log10(v))) < 1e-9:
            return f"1e{int(round(math.log10(v)))}"
        return f"{v:.3g}"

    @property
    def scale(self) -> str:
        return ("integer, " if self.integer else "") + ("log" if self.log else "linear")


def _search_scales(space: dict) -> dict[str, bool]:
    """``{axis: log}`` as the search module reads the stored box, or {} when it cannot
    read it (an axis it does not know, or a linear axis starting at 0)."""
    from sweepjax.errors import SweepjaxError
    from sweepjax.search import as_space

    try:
        return {k: r.log for k, r in as_space(space).axes().items()}
    except (TypeError, SweepjaxError):
        return {}


def swept_axes(result) -> list[Axis]:
    """The axes of ``result.space`` in its order, each with its scale."""
    known = _search_scales(result.space)
    typed = getattr(getattr(result, "config", None), "space", None)
    if typed is not None:  # the user's own axes' scales are the config's, not guessed
        known.update({k: r.log for k, r in typed.axes().items()})
    out = []
    for name, (lo, hi) in result.space.items():
        lo, hi = float(lo), float(hi)
        log = known.get(name, name not in LINEAR_AXES) and lo > 0
        out.append(Axis(name, lo, hi, bool(log), name in INTEGER_AXES))
    return out


def unit_coords(result, axes: list[Axis] | None = None) -> np.ndarray:
    """``[M, A]``: every member's place on each axis in [0, 1] of the searched box (log
    units on log axes); NaN where a member has no value for the axis."""
    axes = swept_axes(result) if axes is None else axes
    u = np.full((len(result.members), len(axes)), np.nan)
    for j, a in enumerate(axes):
        v = np.array([_value(m, a.name) for m in result.members], np.float64)
        u[:, j] = a.to_unit(v)
    return u


def _value(m, name: str) -> float:
    v = getattr(m, name, None)
    return np.nan if v is None else float(v)


def _accuracy_norm(result, g: Groups) -> tuple[np.ndarray, Normalize]:
    return result.member_array("best_val_acc"), Normalize(*accuracy_range(result, g))


def _segments(u: np.ndarray, rows) -> list[np.ndarray]:
    x = np.arange(u.shape[1], dtype=np.float64)
    return [np.column_stack([x, u[i]]) for i in rows]


def parallel_coordinates(result) -> Figure:
    """One line per member across every swept axis (each scaled to the searched box),
    coloured by best validation accuracy; finished members solid, members a schedule
    stopped faint, diverged ones grey dashed; the winner black, its tied set red."""
    axes = swept_axes(result)
    u = unit_coords(result, axes)
    g = member_groups(result)
    acc, norm = _accuracy_norm(result, g)
    n_ax = len(axes)
    fig = Figure(figsize=(max(6.5, 1.7 * n_ax + 2.5), 5.0), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    ok = g.ok[np.argsort(np.nan_to_num(acc[g.ok], nan=-1.0), kind="stable")]  # best on top
    layers = [
        (g.diverged, dict(colors=DIVERGED, linestyles="--", lw=0.7, alpha=0.6), "pc-diverged", 1),
        (
            g.stopped,
            dict(cmap=score_cmap(result, CMAP), norm=norm, lw=0.7, alpha=0.25),
            "pc-stopped",
            2,
        ),
        (ok, dict(cmap=score_cmap(result, CMAP), norm=norm, lw=1.1, alpha=0.9), "pc-members", 3),
        (g.tied, dict(colors=TIED, lw=1.8), "pc-tied", 4),
        (g.winner, dict(colors="black", lw=3.0), "pc-winner", 5),
    ]
    mappable = None
    for rows, kw, gid, z in layers:
        lc = LineCollection(_segments(u, rows), gid=gid, zorder=z, **kw)
        if "cmap" in kw:
            lc.set_array(acc[rows])
            if gid == "pc-members" or mappable is None:
                mappable = lc
        ax.add_collection(lc)
    for j, a in enumerate(axes):
        ax.plot([j, j], [0, 1], color="black", lw=0.9, zorder=6, gid="pc-axis")
        for v in a.ticks():
            y = float(a.to_unit(v))
            ax.plot([j - 0.03, j], [y, y], color="black", lw=0.9, zorder=6)
            ax.text(j - 0.05, y, a.label(v), ha="right", va="center", fontsize=7, zorder=7)
    ax.set_xlim(-0.45, n_ax - 0.6)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(range(n_ax), [f"{a.name}\n({a.scale})" for a in axes], fontsize=8)
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    if mappable is not None and (len(g.ok) or len(g.stopped)):
        fig.colorbar(
            mappable, ax=ax, label=score_label(result, "best validation accuracy"), pad=0.02
        )
    lab = status_labels(result, g)
    handles = [
        Line2D([], [], color="black", lw=3, label="winner"),
        Line2D([], [], color=TIED, lw=1.8, label=f"tied with the winner ({len(g.tied)})"),
        Line2D([], [], color="#777777", lw=0.7, alpha=0.4, label=lab["stopped"]),
        Line2D([], [], color=DIVERGED, ls="--", lw=0.8, label=lab["diverged"]),
    ]
    ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.13), ncol=4, fontsize=7)
    ax.set_title(
        f"{result.kind} sweep {result.sweep_id}: {len(result.members)} members over "
        f"{n_ax} axes, each scaled to the searched box",
        fontsize=9,
    )
    return fig


def pair_axes(result, max_axes: int = MAX_PAIR_AXES) -> list[Axis]:
    """The axes of the pairwise panels: all of them, or the ``max_axes`` the verdict ranks
    most important (in box order)."""
    axes = swept_axes(result)
    imp = result.verdict.importance if result.verdict is not None else {}
    if len(axes) <= max_axes:
        return axes
    keep = sorted(axes, key=lambda a: -imp.get(a.name, 0.0))[:max_axes]
    return [a for a in axes if a in keep]


def pairwise_panels(result, max_axes: int = MAX_PAIR_AXES) -> Figure:
    """Every pair of axes (lower triangle): members as points in the searched box,
    coloured by best validation accuracy, stopped faint, diverged grey x, the tied set
    ringed red, the winner a star."""
    axes = pair_axes(result, max_axes)
    u = unit_coords(result, axes)
    g = member_groups(result)
    acc, norm = _accuracy_norm(result, g)
    cmap = score_cmap(result, CMAP)
    n = len(axes) - 1
    fig = Figure(figsize=(2.1 * n + 1.4, 2.1 * n + 0.6), dpi=100)
    fig.subplots_adjust(left=0.1, right=0.86, bottom=0.08, top=0.93, wspace=0.08, hspace=0.08)
    grid = fig.add_gridspec(n, n)
    panels, sc = [], None
    for r in range(n):
        for c in range(r + 1):
            ax = fig.add_subplot(grid[r, c])
            xa, ya = axes[c], axes[r + 1]
            x, y = u[:, c], u[:, r + 1]
            ax.scatter(x[g.diverged], y[g.diverged], marker="x", s=12, c=DIVERGED, lw=0.8,
                       gid="pair-diverged")  # fmt: skip
            ax.scatter(x[g.stopped], y[g.stopped], c=acc[g.stopped], cmap=cmap, norm=norm,
                       s=8, alpha=0.3, lw=0, gid="pair-stopped")  # fmt: skip
            sc = ax.scatter(x[g.ok], y[g.ok], c=acc[g.ok], cmap=cmap, norm=norm, s=14,
                            edgecolors="k", linewidths=0.2, gid="pair-members")  # fmt: skip
            ax.scatter(x[g.tied], y[g.tied], s=55, facecolors="none", edgecolors=TIED, lw=1.2,
                       gid="pair-tied")  # fmt: skip
            ax.scatter(x[g.winner], y[g.winner], marker="*", s=130, c="#ffd000",
                       edgecolors="k", lw=0.8, zorder=5, gid="pair-winner")  # fmt: skip
            ax.set_xlim(-0.05, 1.05)
            ax.set_ylim(-0.05, 1.05)
            for a, setter, show, name in (
                (xa, ax.set_xticks, r == n - 1, ax.set_xlabel),
                (ya, ax.set_yticks, c == 0, ax.set_ylabel),
            ):
                t = a.ticks()
                setter([float(a.to_unit(v)) for v in t], [a.label(v) for v in t] if show else [])
                if show:
                    name(f"{a.name} ({a.scale})", fontsize=8)
            ax.tick_params(labelsize=7, length=2)
            panels.append(ax)
    if sc is not None and (len(g.ok) or len(g.stopped)):  # the shared norm: both groups
        label = score_label(result, "best validation accuracy")
    fig.colorbar(sc, ax=panels, label=label, fraction=0.04)
    n_all = len(result.space)
    fig.suptitle(
        "every pair of swept axes"
        + (f" (the {len(axes)} most important of {n_all})" if len(axes) < n_all else "")
        + ": star = winner, red ring = tied"
        + (f", faint = {status_labels(result, g)['stopped']}" if len(g.stopped) else "")
        + ", grey x = diverged",
        fontsize=9,
    )
    return fig


__all__ = [
    "Axis",
    "Groups",
    "member_groups",
    "pair_axes",
    "pairwise_panels",
    "parallel_coordinates",
    "swept_axes",
    "unit_coords",
]
