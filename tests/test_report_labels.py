"""The report names members as the result does (issue 18): stopped members apart from
diverged ones, one colour scale over every scored member, the result's own winner (ties
in accuracy broken by validation loss, as the CLI and the JSON), and only the settings
that apply to the sweep's model, optimizer and schedule."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import numpy as np
import pytest

from sweepjax import search
from sweepjax.config import DataConfig, ModelConfig, Range, ScheduleConfig, SearchSpace, TrainConfig
from sweepjax.report import axes_fig, chosen_members, figures, members, sections, write_report
from sweepjax.spec import SweepSpec
from tests.helpers import sweep_config
from tests.test_report import M, many_axes, synthetic

STOPPED = (0, 1, 2, 3, 4)  # the low-lr rows: lower accuracies than any finished member


def halved(name: str = "halving"):
    """The synthetic sweep under a schedule that stopped the ``STOPPED`` rows (rows 10
    and 11 diverged)."""
    res = synthetic()
    res.members = [
        dataclasses.replace(m, status="stopped", stopped_at=50) if m.id in STOPPED else m
        for m in res.members
    ]
    res.config = dataclasses.replace(res.config, schedule=ScheduleConfig(name, eta=3, rungs=3))
    return res


def _gid(ax, gid):
    return sum(len(c.get_offsets()) for c in ax.collections if c.get_gid() == gid)


def _legend(ax) -> list[str]:
    leg = ax.get_legend()
    return [] if leg is None else [t.get_text() for t in leg.get_texts()]


def _winner_label(fig) -> tuple[float, float]:
    """Where the response surface writes "winner"."""
    (a,) = [t for t in fig.axes[0].texts if t.get_text().startswith("winner ")]
    return a.xy


# --------------------------------------------------------------------------- statuses
def test_stopped_members_are_counted_and_drawn_apart_from_diverged_ones():
    res = halved()
    g = members.member_groups(res)
    assert (len(g.ok), len(g.stopped), len(g.diverged)) == (M - 7, 5, 2)
    labels = members.status_labels(res)
    assert labels == {
        "ok": f"finished ({M - 7})",
        "stopped": "stopped by halving (5)",
        "diverged": "diverged (2)",
    }
    fig = figures.response_surface(res, parents=[])
    ax = fig.axes[0]
    assert (_gid(ax, "members"), _gid(ax, "stopped"), _gid(ax, "diverged")) == (M - 7, 5, 2)
    assert _legend(ax) == [labels["ok"], labels["stopped"], labels["diverged"]]
    # One colour scale over every member shown with a score, the stopped ones included
    # (they hold the lowest accuracies here).
    acc = np.array([m.best_val_acc for m in res.members if m.status != "diverged"])
    lo, hi = fig.axes[1].get_ylim()  # the colorbar
    assert (lo, hi) == pytest.approx((acc.min(), acc.max()))
    assert lo < min(m.best_val_acc for m in res.members if m.status == "ok")
    # The every-axis view labels its groups the same way.
    pc = axes_fig.parallel_coordinates(many_axes(halved(), ("hidden",), stopped=STOPPED))
    legend = _legend(pc.axes[0])
    assert "stopped by halving (5)" in legend and "diverged (2)" in legend


def test_a_full_sweep_names_no_stopped_members():
    res = synthetic()
    fig = figures.response_surface(res, parents=[])
    assert _legend(fig.axes[0]) == [f"finished ({M - 2})", "diverged (2)"]
    assert members.status_labels(res)["stopped"] == "stopped by the schedule (0)"


# --------------------------------------------------------------------------- the winner
def tied_sweep():
    """The synthetic sweep judged as the flows do, where the two best finished members
    share their best accuracy and the later row has the lower validation loss: the
    winner rule (ties broken by validation loss) picks it, not the first by accuracy."""
    from sweepjax.flows.build import judge_result

    res = synthetic()
    ok = [i for i, m in enumerate(res.members) if m.status == "ok"]
    first, second = sorted(ok, key=lambda i: -res.members[i].best_val_acc)[:2]
    a, b = sorted((first, second))
    top = res.members[first].best_val_acc
    res.members[a] = dataclasses.replace(res.members[a], best_val_acc=top, final_val_loss=0.5)
    res.members[b] = dataclasses.replace(res.members[b], best_val_acc=top, final_val_loss=0.3)
    res.dataset = {**res.dataset, "n_val": 400}
    judge_result(res, search.as_space(res.space), 400)
    w = next(i for i, m in enumerate(res.members) if m.id == res.winner.id)
    res.members[w] = dataclasses.replace(res.members[w], test_acc=0.9)  # as the flows do
    return res, a, b


def test_a_tie_in_accuracy_names_the_results_winner_everywhere():
    res, a, b = tied_sweep()
    w = res.winner.id
    assert w == res.members[b].id != res.members[a].id  # broken by the lower loss
    # The order the report shows is the CLI's: its ranking of the finished members.
    rows = figures.top_rows(res, 5)
    ranking = [int(i) for i in search.ranking(res) if res.members[i].status == "ok"]
    assert rows == ranking[:5] and res.members[rows[0]].id == w
    header, table, _ = chosen_members(res, 3)
    assert header[1] == f"winner (id {w})"
    assert header[2] == f"#2 (id {res.members[a].id})"
    by = {r[0]: r for r in table}
    assert by["test_acc"][1:] == ["0.9", "-", "-"]  # only the winner is tested
    fig = figures.response_surface(res, parents=[])
    assert _winner_label(fig) == pytest.approx((res.members[b].lr, res.members[b].l2))
    loss = figures.loss_curves(res, rows[:3])
    labels = [ln.get_label() for ln in loss.axes[0].get_lines()]
    assert labels[0].startswith(f"winner #{w} ") and labels[1].startswith("#2 ")
    rings = figures.model_surface(res, *sections.model_fit(res))
    tied = [c for c in rings.axes[0].collections if c.get_gid() == "tied"]
    assert len(tied[0].get_offsets()) == len(res.tied)  # the result's tied set, winner included


def test_without_a_winner_no_member_is_called_the_winner():
    res = synthetic()
    res.winner = None
    header, _, _ = chosen_members(res, 3)
    assert header[1].startswith("#1 ") and not any(h.startswith("winner") for h in header)


def test_the_page_names_the_winner_of_a_tie(tmp_path):
    res, _, _ = tied_sweep()
    res.curves = None  # the table and the summary are what is checked
    page = Path(write_report(res, [], tmp_path)).read_text()
    winners = re.findall(r"<th>winner \(id (\d+)\)</th>", page)
    assert winners == [str(res.winner.id)]
    assert f"<td>id {res.winner.id}: lr" in page


# --------------------------------------------------------------------------- settings
def _keys(config) -> set[str]:
    return {k for k, _ in members.shared_settings(config)}


def test_shared_settings_show_only_what_applies():
    train = TrainConfig(optimizer="sgd", momentum=0.9, dropout=0.2, init_scale=0.5)
    base = sweep_config(
        model=ModelConfig("softmax", hidden=100),
        train=train,
        schedule=ScheduleConfig("halving", eta=3, rungs=3),
        spec=SweepSpec.create("coarse", hidden=100, momentum=0.9, pbt_interval=5, eta=3),
    )
    keys = _keys(base)
    assert not keys & {"model.hidden", "train.momentum", "train.dropout", "spec.hidden"}
    assert not keys & {"spec.momentum", "schedule.interval", "spec.pbt_interval"}
    assert {"model.kind", "train.init_scale", "schedule.eta", "schedule.rungs"} <= keys
    mlp = dataclasses.replace(
        base, model=ModelConfig("mlp", hidden=100), train=train.replace(optimizer="momentum")
    )
    assert {"model.hidden", "train.momentum", "train.dropout", "spec.hidden"} <= _keys(mlp)
    box = SearchSpace(momentum=Range(0.5, 0.99, log=False), dropout=Range(0.0, 0.5, log=False))
    swept = dataclasses.replace(mlp, space=box)
    assert not _keys(swept) & {"train.momentum", "train.dropout"}  # each member's own value
    pbt = dataclasses.replace(base, schedule=ScheduleConfig("pbt", eta=3, rungs=3, interval=5))
    assert "schedule.interval" in _keys(pbt) and "schedule.eta" not in _keys(pbt)
    adam = dataclasses.replace(base, train=train.replace(optimizer="adam"))
    assert "train.momentum" in _keys(adam)  # adam's b1


# --------------------------------------------------------------------------- real runs
@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A tiny halving sweep and a tiny PBT sweep on the bundled sample, with reports."""
    import sweepjax

    d = tmp_path_factory.mktemp("runs")
    kw = dict(dataset="mnist-sample", trials=16, steps=60, batch_size=64, report=False)
    out = {}
    for name in ("halving", "pbt"):
        res = sweepjax.coarse(**kw, schedule=name, store=d / f"{name}.db")
        page = Path(write_report(res, [], d / name)).read_text()
        out[name] = (res, page)
    return out


@pytest.mark.slow
def test_a_halving_run_counts_diverged_and_stopped_members_apart(runs):
    res, page = runs["halving"]
    n = {s: sum(m.status == s for m in res.members) for s in ("ok", "stopped", "diverged")}
    assert n["stopped"] > 0 and sum(n.values()) == len(res.members)
    fig = figures.response_surface(res, parents=[])
    legend = _legend(fig.axes[0])
    assert f"diverged ({n['diverged']})" in legend or n["diverged"] == 0
    assert f"stopped by halving ({n['stopped']})" in legend
    assert _gid(fig.axes[0], "diverged") == n["diverged"]
    assert f"hollow = stopped by halving ({n['stopped']})" in page
    assert f"{n['stopped']} stopped by halving, {n['diverged']} diverged" in page
    # softmax with plain SGD: neither the hidden width nor the momentum applies
    assert '<td class="k">model.hidden</td>' not in page
    assert '<td class="k">train.momentum</td>' not in page
    assert '<td class="k">model.kind</td>' in page


@pytest.mark.slow
def test_a_pbt_run_labels_the_results_winner(runs):
    res, page = runs["pbt"]
    w = res.winner.id
    rows = figures.top_rows(res, 5)
    assert res.members[rows[0]].id == w
    header, table, _ = chosen_members(res)
    assert header[1] == f"winner (id {w})"
    assert {r[0]: r for r in table}["test_acc"][1] != "-"  # the winner's column is tested
    assert re.findall(r"<th>winner \(id (\d+)\)</th>", page) == [str(w)]
    m = res.members[rows[0]]
    assert _winner_label(figures.response_surface(res, parents=[])) == pytest.approx((m.lr, m.l2))


def test_the_config_table_shows_the_data_really_used(tmp_path):
    """It said `dataset mnist, download True` when the bundled sample was used."""
    config = sweep_config(
        data=DataConfig(dataset="mnist", download=True, data_dir=None, seed=0),
        spec=SweepSpec.create("coarse", dataset="mnist"),
    )
    fallback = {"name": "mnist-sample", "requested": "mnist", "origin": "bundled"}
    rows = dict(members.shared_settings(config, fallback))
    assert rows["data.dataset"] == rows["spec.dataset"] == "mnist-sample (asked for mnist)"
    assert rows["data.origin"] == "bundled"
    assert "data.download" not in rows and "data.data_dir" not in rows
    full = {"name": "mnist", "requested": "mnist", "origin": "/home/u/.cache/sweepjax/mnist"}
    rows = dict(members.shared_settings(config, full))
    assert rows["data.dataset"] == "mnist" and rows["data.download"] == "True"
    res = synthetic()
    res.config = dataclasses.replace(res.config, data=config.data, spec=config.spec)
    res.dataset = {**res.dataset, **fallback}
    res.curves, res.winner_params = None, None  # the table is what is checked here
    page = Path(write_report(res, [], tmp_path)).read_text()
    assert "<td>mnist-sample (asked for mnist)</td>" in page
    assert "<td>data.download</td>" not in page


def test_the_live_page_has_no_empty_whole_set_row_or_series():
    """Under `--schedule full` the whole validation set is never measured while training:
    the page showed an empty "best val so far (whole set)" row and a legend entry for a
    line with no points."""
    from sweepjax.report.live_page import SweepCard, sweep_body
    from sweepjax.store.db import SweepRow
    from sweepjax.store.live import LiveRow

    row = SweepRow(
        "c1", "coarse", None, "finished", sweep_config(),
        {"name": "mnist-sample"}, {}, {}, 0.0, 9.0, 9.0, None, None, 8, 100, 100, 3, 0.9, None,
    )  # fmt: skip

    def live(full):
        return [
            LiveRow(i, 1.0 + i, 10 * i, 100, 1.0 * i, None, 8, 8, 8, 0.5 + 0.01 * i, full, None)
            for i in range(1, 4)
        ]

    page = sweep_body(SweepCard(row, "done", live(None)[-1], None), live(None), None, None)
    assert "whole set" not in page and "best val so far (subset)" in page
    page = sweep_body(SweepCard(row, "done", live(0.91)[-1], None), live(0.91), None, None)
    assert "best val so far (whole set)" in page and "best val (whole set)" in page
