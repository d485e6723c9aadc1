"""The schedule's pictures: how many members trained at each step (halving, hyperband),
and each member's hyperparameters over time with its copies (PBT)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from sweepjax.report.members import score_label


def active_over_time(result) -> Figure:
    """Members still training at each step (stairs down at every rung), by outcome."""
    total = result.config.train.steps
    stops = np.array([m.stopped_at for m in result.members if m.stopped_at is not None], float)
    steps = np.unique(np.concatenate([[0.0, float(total)], stops]))
    n = len(result.members)
    active = [n - int(np.sum(stops <= s)) for s in steps]
    fig = Figure(figsize=(6.0, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.step(steps, active, where="post", color="#1f77b4", gid="active")
    for s in np.unique(stops):
        ax.axvline(s, color="0.8", lw=0.8, zorder=0)
    ax.set_xlabel("step")
    ax.set_ylabel("members training")
    ax.set_yscale("log")
    ax.set_title(
        f"{result.config.schedule.name}: "
        f"{sum(m.status == 'ok' for m in result.members)} of {n} trained to the end"
    )
    return fig


def hparam_schedules(result, max_members: int = 64) -> Figure:
    """PBT: each member's learning rate and lambda over the run (steps in the history),
    and each of the user's own axes that PBT perturbed, with a dot where it copied
    another member."""
    total = result.config.train.steps
    by_member: dict[int, list[dict]] = {}
    for h in result.history:
        by_member.setdefault(h["member"], []).append(h)
    copies = {(c["member"], c["step"]) for c in result.lineage}
    winner = result.winner.id if result.winner is not None else None
    panels = [("lr", "learning rate", True), ("l2", "lambda (L2)", True)]
    space = getattr(result.config, "space", None)
    scales = space.scales() if space is not None else {}
    own = {k for h in result.history for k in h} - {"step", "member", "lr", "l2", "lr_decay"}
    for name in sorted(own):
        if name in scales and len({h[name] for h in result.history if name in h}) > 1:
            panels.append((name, name, scales[name] == "log"))  # a user axis PBT perturbed
    fig = Figure(figsize=(4.5 * len(panels), 3.4), layout="constrained")
    axes = fig.subplots(1, len(panels))
    for ax, (name, label, log) in zip(axes, panels, strict=True):
        for mid, rows in list(by_member.items())[:max_members]:
            rows = sorted(rows, key=lambda h: h["step"])
            rows = [h for h in rows if name in h]  # (a user axis: rows that record it)
            if not rows:
                continue
            xs = [h["step"] for h in rows] + [total]
            ys = [h[name] for h in rows] + [rows[-1][name]]
            hot = mid == winner
            ax.step(
                xs,
                ys,
                where="post",
                lw=2.0 if hot else 0.7,
                alpha=1.0 if hot else 0.35,
                color="#d62728" if hot else "#1f77b4",
                gid="schedule",
            )
            for h in rows:
                if (mid, h["step"]) in copies:
                    ax.plot(h["step"], h[name], ".", color="k", ms=3, gid="copy")
        ax.set_yscale("log" if log else "linear")
        ax.set_xlabel("step")
        ax.set_ylabel(label)
    axes[0].set_title(f"PBT: {len(result.lineage)} copies; red = the winner's schedule")
    return fig


def replica_spread(result, top: int = 12) -> Figure:
    """Replicas / folds: each of the best ``top`` configs' members' accuracies (dots) with
    the config's mean and its standard deviation (bar), ranked as the table."""
    by_id = {m.id: m for m in result.members}
    cfgs = sorted(result.configs, key=lambda c: c.rank_val_acc)[:top]
    fig = Figure(figsize=(max(4.0, 0.55 * len(cfgs) + 2.0), 3.4), layout="constrained")
    ax = fig.add_subplot()
    for x, c in enumerate(cfgs):
        accs = [by_id[i].best_val_acc for i in c.members if i in by_id]
        ax.plot([x] * len(accs), accs, ".", color="#1f77b4", alpha=0.7, gid="replica")
        ax.errorbar(
            x,
            c.mean_val_acc,
            yerr=c.std_val_acc,
            fmt="_",
            color="k",
            ms=14,
            capsize=3,
            gid="config",
        )
    ax.set_xticks(range(len(cfgs)), [str(c.id) for c in cfgs])
    ax.set_xlabel("config (best first)")
    ax.set_ylabel(score_label(result, "best validation accuracy"))
    folds = result.config.folds
    what = f"{folds} folds" if folds > 1 else f"{len(cfgs[0].members) if cfgs else 0} replicas"
    ax.set_title(f"spread over {what}: dots = members, bar = mean +/- SD")
    return fig
