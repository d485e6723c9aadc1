"""The command center: figures from synthetic sweeps, and the page as a browser sees it."""

from __future__ import annotations

import dataclasses
import html
import json
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from sweepjax.analysis.activations import activation_stats
from sweepjax.analysis.ranking import ORDER_LINE
from sweepjax.config import DEFAULT_BAND, ModelConfig, ScheduleConfig, TrainConfig
from sweepjax.engine import Curves
from sweepjax.report import axes_fig, chosen_members, figures, write_report
from sweepjax.results.records import BoundaryFlag, MemberRecord, SweepResult, TimingRecord, Winner
from tests.helpers import sweep_config

M, E = 12, 8
CHROMIUM = "/usr/bin/chromium"


def synthetic(kind="softmax", hidden=16, diverged=(10, 11), parent_spaces=None, seed=0):
    """A fine sweep of M members: lr log-spaced over [1e-4, 3], two diverged at the top,
    validation accuracy peaking near lr 0.1; curves that decay; MNIST-shaped weights."""
    rng = np.random.default_rng(seed)
    lr = np.geomspace(1e-4, 3.0, M)
    l2 = np.exp(rng.uniform(np.log(1e-6), np.log(1.0), M))
    acc = 0.92 - 0.05 * (np.log10(lr) + 1) ** 2 / 4
    step = np.arange(1, E + 1) * 25
    t = np.arange(E) / (E - 1)
    train_loss = np.stack([2.3 * np.exp(-t * min(5 * lr[i] ** 0.3, 4)) for i in range(M)])
    val_acc = np.stack([a * (0.8 + 0.2 * t) for a in acc])
    train_acc = val_acc + 0.03
    ratio = np.stack([np.full(E, 1e-2 * lr[i] ** 0.5) for i in range(M)])
    members = []
    for i in range(M):
        dv = 40 if i in diverged else None
        members.append(
            MemberRecord(
                i,
                float(lr[i]),
                float(l2[i]),
                1.0,
                "diverged" if dv else "ok",
                dv,
                float(acc[i]),
                200,
                float(train_loss[i, -1]),
                float(train_loss[i, -1]),
                float(train_acc[i, -1]),
                float(val_acc[i, -1]),
            )
        )
    for i in diverged:  # NaN after divergence, as the trainer writes them
        for a in (train_loss, val_acc, train_acc, ratio):
            a[i, 2:] = np.nan
    curves = Curves(
        step,
        train_loss.astype(np.float32),
        train_loss.astype(np.float32),
        val_acc.astype(np.float32),
        train_acc.astype(np.float32),
        ratio.astype(np.float32),
    )
    w = int(np.nanargmax(np.where([m.status == "ok" for m in members], acc, -1)))
    if kind == "softmax":
        params = {
            "out": {
                "kernel": rng.normal(size=(10, 784)).astype(np.float32),
                "bias": np.zeros(10, np.float32),
            }
        }
    else:
        params = {
            "hidden": {
                "kernel": rng.normal(size=(hidden, 784)).astype(np.float32),
                "bias": np.zeros(hidden, np.float32),
            },
            "out": {
                "kernel": rng.normal(size=(10, hidden)).astype(np.float32),
                "bias": np.zeros(10, np.float32),
            },
        }
    space = {"lr": [1e-4, 3.0], "l2": [1e-6, 1.0]}
    return SweepResult(
        "fine01",
        "fine",
        "coarse01",
        {
            "name": "synthetic",
            "n_train": 100,
            "n_val": 20,
            "n_test": 20,
            "num_classes": 10,
            "input_shape": [28, 28],
        },
        space,
        sweep_config(model=ModelConfig(kind, hidden=hidden), train=TrainConfig(steps=200)),
        members,
        Winner(w, float(lr[w]), float(l2[w]), float(acc[w]), 0.91),
        [BoundaryFlag("lr", "high", 9)],
        TimingRecord(1.5, 2.5, 1000.0),
        curves=curves,
        winner_params=params,
        parent_spaces=parent_spaces
        if parent_spaces is not None
        else [("coarse01", {"lr": [1e-6, 10.0], "l2": [1e-8, 10.0]})],
        refinement="box shrunk around the top 10%",
    )


# Boxes of the extra axes (hidden within the synthetic MLP's compiled 16 units).
EXTRA_SPACE = {
    "hidden": [4.0, 16.0],
    "dropout": [0.0, 0.5],
    "init_scale": [0.1, 10.0],
    "momentum": [0.5, 0.99],
}
LOG_AXES = {"lr", "l2", "lr_decay", "hidden", "init_scale"}


def many_axes(res, names=tuple(EXTRA_SPACE), seed=0, stopped=(3,)):
    """``res`` with the ``names`` axes swept: members drawn in their boxes (hidden as
    integers, log-uniform on log axes) and ``stopped`` rows stopped by a schedule."""
    rng = np.random.default_rng(seed)
    members = []
    for m in res.members:
        vals = {}
        for n in names:
            lo, hi = EXTRA_SPACE[n]
            u = rng.uniform()
            v = (
                math.exp(math.log(lo) + u * math.log(hi / lo))
                if n in LOG_AXES
                else lo + u * (hi - lo)
            )
            vals[n] = float(round(v)) if n == "hidden" else v
        d = m.as_dict()
        if m.id in stopped:
            d.update(status="stopped", stopped_at=100)
        members.append(MemberRecord(**{**d, **vals}))  # the record's own axis fields
    res.members = members
    res.space = {**res.space, **{n: EXTRA_SPACE[n] for n in names}}
    return res


# --------------------------------------------------------------------------- figures
def _gid(fig, gid):
    ax = fig.axes[0]
    return [a for a in ax.get_children() if a.get_gid() == gid]


def test_response_surface_plots_every_member_once():
    res = synthetic()
    fig = figures.response_surface(res, parents=[])
    pts = sum(len(c.get_offsets()) for c in _gid(fig, "members") + _gid(fig, "diverged"))
    assert pts == M
    assert sum(len(c.get_offsets()) for c in _gid(fig, "diverged")) == 2
    assert len(_gid(fig, "box")) == 1 + len(res.parent_spaces)
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"


@pytest.mark.parametrize("band", [None, 0.25])
def test_band_is_the_sweeps_band_of_log_width(band):
    """The shaded strips are the sweep's --band (for a config without one, the one default
    the verdicts use: config.DEFAULT_BAND, 20%; it was 10% here)."""
    res = synthetic()
    if band is not None:
        res.config = dataclasses.replace(res.config, band=band)
    frac = DEFAULT_BAND if band is None else band
    fig = figures.response_surface(res)
    assert f"boundary band ({frac:.0%})" in fig.axes[0].get_title()
    bands = _gid(fig, "band")
    assert len(bands) == 4
    (xl, xh), (yl, yh) = res.space["lr"], res.space["l2"]
    wx, wy = math.log10(xh / xl), math.log10(yh / yl)
    for r in bands:
        x0, y0 = r.get_x(), r.get_y()
        x1, y1 = x0 + r.get_width(), y0 + r.get_height()
        dx, dy = math.log10(x1 / x0), math.log10(y1 / y0)
        # Each strip spans the band's fraction of one axis and all of the other.
        assert (dx == pytest.approx(frac * wx) and dy == pytest.approx(wy)) or (
            dy == pytest.approx(frac * wy) and dx == pytest.approx(wx)
        )
    sides = {(a, s) for a, s, _ in figures.band_rects(res.space)}
    assert sides == {("lr", "low"), ("lr", "high"), ("l2", "low"), ("l2", "high")}


def test_softmax_weights_are_ten_28x28_templates():
    res = synthetic()
    fig = figures.weight_images(res.winner_params, res.dataset["input_shape"])
    ims = [im for ax in fig.axes for im in ax.get_images() if im.get_gid() == "weights"]
    assert len(ims) == 10
    assert all(im.get_array().shape == (28, 28) for im in ims)
    # Row k of the [K, D] kernel is class k's template.
    np.testing.assert_array_equal(
        ims[3].get_array(), res.winner_params["out"]["kernel"][3].reshape(28, 28)
    )
    # Without input_shape the side comes from sqrt(D).
    fig2 = figures.weight_images(res.winner_params, None)
    assert fig2.axes[0].get_images()[0].get_array().shape == (28, 28)


def test_mlp_first_layer_images_and_hidden_stats():
    res = synthetic("mlp", hidden=16)
    fig = figures.weight_images(res.winner_params, [28, 28])
    ims = [im for ax in fig.axes for im in ax.get_images()]
    assert len(ims) == 16 and ims[0].get_array().shape == (28, 28)
    params = res.winner_params
    params["hidden"]["bias"][:5] = -1e6  # five units that can never fire
    x = np.random.default_rng(1).normal(size=(50, 784)).astype(np.float32)
    act, st = figures.hidden_activations(params, x)
    assert act.shape == (50, 16)
    assert st["dead"] == 5 and st["units"] == 16
    np.testing.assert_allclose(
        act, np.maximum(x @ params["hidden"]["kernel"].T + params["hidden"]["bias"], 0)
    )
    fig = figures.hidden_stats(params, x)
    assert "dead units: 5 of 16" in fig.axes[0].get_title()
    assert fig.axes[1].get_images()[0].get_array().shape == (16, 16)


def _segments_y(fig, gids):
    """``{gid: [n, A]}`` line ordinates of the parallel-coordinates collections."""
    out = {}
    for c in fig.axes[0].collections:
        if c.get_gid() in gids:
            segs = c.get_segments()
            for seg in segs:  # every line visits the axes in order, at x = 0 .. A-1
                np.testing.assert_array_equal(seg[:, 0], np.arange(len(seg)))
            out[c.get_gid()] = np.array([seg[:, 1] for seg in segs]).reshape(len(segs), -1)
    return out


def _expected_units(res) -> np.ndarray:
    """Members' coordinates in the searched box, computed here from first principles."""
    cols = []
    for name, (lo, hi) in res.space.items():
        v = np.array([getattr(m, name) for m in res.members], float)
        if name in LOG_AXES:
            cols.append((np.log(v) - np.log(lo)) / (np.log(hi) - np.log(lo)))
        else:
            cols.append((v - lo) / (hi - lo))
    return np.stack(cols, axis=1)


def _rows_sorted(a):
    return np.array(sorted(map(tuple, np.asarray(a))))


@pytest.mark.parametrize("names", [("hidden",), ("hidden", "dropout", "momentum")])
def test_parallel_coordinates_place_members_in_the_searched_box(names):
    """3 and 5 axes: every member is one line whose ordinates are its unit coordinates in
    the box (log axes in log units, linear ones linear); the winner and the tied set
    are overlays; diverged and stopped members are their own (grey / faint) lines."""
    res = many_axes(synthetic("mlp"), names)
    w = res.winner.id
    res.tied = [w, 6, 9]
    axes = axes_fig.swept_axes(res)
    assert [a.name for a in axes] == ["lr", "l2", *names]
    assert [a.log for a in axes] == [a.name in LOG_AXES for a in axes]
    want = _expected_units(res)
    np.testing.assert_allclose(axes_fig.unit_coords(res), want, rtol=1e-12)
    assert (want >= 0).all() and (want <= 1).all()

    fig = axes_fig.parallel_coordinates(res)
    got = _segments_y(fig, {"pc-members", "pc-stopped", "pc-diverged", "pc-tied", "pc-winner"})
    assert len(got["pc-diverged"]) == 2 and len(got["pc-stopped"]) == 1
    drawn = np.concatenate([got["pc-members"], got["pc-stopped"], got["pc-diverged"]])
    np.testing.assert_allclose(_rows_sorted(drawn), _rows_sorted(want), rtol=1e-12)
    np.testing.assert_allclose(got["pc-diverged"], want[[10, 11]])  # rows 10, 11 diverged
    np.testing.assert_allclose(got["pc-stopped"], want[[3]])
    np.testing.assert_allclose(got["pc-winner"], want[[w]])
    np.testing.assert_allclose(_rows_sorted(got["pc-tied"]), _rows_sorted(want[[6, 9]]))
    # Finished members are coloured by their best validation accuracy.
    (ok,) = [c for c in fig.axes[0].collections if c.get_gid() == "pc-members"]
    acc = res.member_array("best_val_acc")
    by_line = {
        tuple(np.round(s[:, 1], 12)): a
        for s, a in zip(ok.get_segments(), ok.get_array(), strict=True)
    }
    for i in range(len(res.members)):
        if res.members[i].status == "ok":
            assert by_line[tuple(np.round(want[i], 12))] == pytest.approx(acc[i])
    # Tick labels: decades on lr, integers on hidden, tick marks at their unit places.
    lr, hidden = axes[0], axes[2]
    assert [lr.label(v) for v in lr.ticks()] == ["1e-4", "1e-3", "1e-2", "1e-1", "1e0"]
    assert all(hidden.label(v).isdigit() for v in hidden.ticks())
    assert hidden.ticks() == [4.0, 6.0, 8.0, 11.0, 16.0]
    assert hidden.to_unit(8.0) == pytest.approx(0.5)  # log: 8 is halfway from 4 to 16
    labels = {t.get_text() for t in fig.axes[0].texts}
    assert {"1e-4", "1e0", "4", "16"} <= labels


def test_pairwise_panels_are_the_lower_triangle_in_unit_coordinates():
    res = many_axes(synthetic("mlp"), ("hidden", "dropout", "init_scale"))
    want = _expected_units(res)
    fig = axes_fig.pairwise_panels(res)
    panels = [a for a in fig.axes if any(c.get_gid() == "pair-members" for c in a.collections)]
    n = len(res.space) - 1  # 5 axes: a 4 x 4 lower triangle
    assert len(panels) == n * (n + 1) // 2
    pairs = [(c, r + 1) for r in range(n) for c in range(r + 1)]
    for ax, (jx, jy) in zip(panels, pairs, strict=True):
        pts = np.concatenate(
            [
                c.get_offsets()
                for c in ax.collections
                if c.get_gid() in ("pair-members", "pair-stopped", "pair-diverged")
            ]
        )
        np.testing.assert_allclose(_rows_sorted(pts), _rows_sorted(want[:, [jx, jy]]))
    # More axes than panels allow: the verdict's most important ones, in box order.
    import types

    res = many_axes(synthetic("mlp"))
    res.space = {"lr_decay": [0.01, 1.0], **res.space}
    res.members = [dataclasses.replace(m, lr_decay=0.1) for m in res.members]
    imp = {"lr_decay": 0.0, "lr": 0.05, "l2": 0.01, "hidden": 0.02, "dropout": 0.001}
    res.verdict = types.SimpleNamespace(importance={**imp, "init_scale": 0.03, "momentum": 0.04})
    names = [a.name for a in axes_fig.pair_axes(res)]
    assert names == ["lr", "l2", "hidden", "dropout", "init_scale", "momentum"]
    assert "6 most important of 7" in axes_fig.pairwise_panels(res)._suptitle.get_text()


def test_activation_histograms_hold_every_activation_of_each_member():
    res = synthetic("mlp", hidden=16)
    params = res.winner_params
    params["hidden"]["bias"][:3] = -1e6  # three units that can never fire
    x = np.random.default_rng(1).normal(size=(50, 784)).astype(np.float32)
    stats = [activation_stats(params, x, width=w, member=i) for i, w in ((4, None), (5, 10))]
    fig = figures.activation_histograms(stats, ["winner", "#2"])
    tops, bottoms = fig.axes[0::2], fig.axes[1::2]  # each member: its top, its bottom
    for ax, bx, st in zip(tops, bottoms, stats, strict=True):
        heights = [p.get_height() for p in ax.patches if p.get_gid() in ("act-zero", "act-hist")]
        assert sum(heights) == st.width * 50
        units = [p.get_height() for p in bx.patches if p.get_gid() in ("dead", "firing")]
        assert sum(units) == st.width
        assert [p.get_height() for p in bx.patches if p.get_gid() == "dead"] == [3]
        assert ax.get_yscale() == "log"
    assert "width 16, dead 0.19 (3)" in tops[0].get_title()
    assert "width 10, dead 0.30 (3)" in tops[1].get_title()
    # The first-layer images show the member's own units only, at most 36.
    ims = figures.weight_images(params, [28, 28], width=10).axes
    assert len([a for a in ims if a.get_images()]) == 10
    wide = {"hidden": {"kernel": np.ones((40, 784), np.float32)}}
    assert len(figures.weight_images(wide, [28, 28]).axes) == 36


@pytest.mark.slow
def test_stored_activations_give_every_kept_member_a_column(tmp_path):
    """With stored statistics (as the flows write them) the panel draws each kept member,
    winner first, and the members table has their dead units; a 2-axis softmax sweep has
    neither the hidden-units nor the every-axis panel."""
    res = many_axes(synthetic("mlp"), ("hidden",))
    x = np.random.default_rng(0).normal(size=(30, 784)).astype(np.float32)
    rows = figures.top_rows(res, 3)
    kept = [res.members[i] for i in rows]
    res.activations = {
        m.id: activation_stats(res.winner_params, x, width=m.hidden, member=m.id) for m in kept
    }
    from sweepjax.report.panels import stat_columns

    cols, labels = stat_columns(res, res.activations)
    assert [c.member for c in cols] == [m.id for m in kept]
    assert labels[0] == f"winner (id {res.winner.id})" and labels[1].startswith("#2 ")
    page = Path(write_report(res, [], tmp_path / "m")).read_text()
    assert "Hidden-unit activations" in page and "on the first 30 validation rows" in page
    assert "Every swept axis (3)" in page and "dead hidden units" in page
    header, table_rows, _ = chosen_members(res, 3)
    by = {r[0]: r for r in table_rows}
    assert by["hidden"][1:] == [f"{m.hidden:.4g}" for m in kept]
    assert by["dead hidden units"][1:] == [
        f"{res.activations[m.id].dead} of {res.activations[m.id].width}" for m in kept
    ]
    names = {f.name for f in (tmp_path / "m").glob("*.png")}
    assert {"activations.png", "axes.png", "pairs.png"} <= names

    page = Path(write_report(synthetic(), [], tmp_path / "s")).read_text()
    assert "Every swept axis" not in page and "Hidden-unit activations" not in page
    names = {f.name for f in (tmp_path / "s").glob("*.png")}
    assert not names & {"activations.png", "axes.png", "pairs.png"}


def test_curve_figures_show_top_members_and_failures():
    res = synthetic()
    top = figures.top_rows(res, 3)
    # Best validation accuracy peaks near lr 0.1 (rows 7 and 8 of the grid).
    assert res.members[top[0]].best_val_acc == max(
        m.best_val_acc for m in res.members if m.status == "ok"
    )
    fails = figures.failure_rows(res)
    assert fails == {"too low": 0, "exploded": 10}
    fig = figures.loss_curves(res, top, fails)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log"
    curves = [ln for ln in ax.get_lines() if len(ln.get_xdata()) > 1]
    assert len(curves) == 5
    exploded = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 1]
    assert exploded[0].get_xdata()[0] == 40  # the x at the divergence step
    fig = figures.accuracy_gap(res, top)
    assert len(fig.axes[0].get_lines()) == 2 * len(top)
    fig = figures.update_ratio(res, top, fails)
    refs = [ln for ln in fig.axes[0].get_lines() if ln.get_label() == "1e-3 reference"]
    assert refs and refs[0].get_ydata()[0] == 1e-3
    assert figures.data_grid(np.zeros((40, 28, 28))).axes.__len__() == 36


def test_chosen_members_highlight_differences():
    res = synthetic()
    header, rows, classes = chosen_members(res, 3)
    assert header[1].startswith("winner")
    by = {r[0]: (r, c) for r, c in zip(rows, classes, strict=True)}
    # Learning rates differ between members; lr_decay is 1.0 everywhere.
    assert by["lr"][1][2:] == ["diff", "diff"]
    assert by["lr_decay"][1][1:] == ["", "", ""]


# --------------------------------------------------------------------------- the page
class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls = []

    def handle_starttag(self, tag, attrs):
        self.urls += [v for k, v in attrs if k in ("src", "href") and v]


@pytest.fixture(scope="module")
def mlp_report(tmp_path_factory):
    """One full MLP report over six swept axes (every panel) shared by the page tests."""
    x = np.random.default_rng(0).normal(size=(40, 784)).astype(np.float32)
    out = tmp_path_factory.mktemp("report")
    return Path(
        write_report(
            many_axes(synthetic("mlp"), stopped=()),
            [synthetic(seed=1)],
            out / "r",
            dataset_images=np.zeros((36, 28, 28)),
            x_sample=x,
        )
    )


PNGS = [
    "accuracy.png",
    "activations.png",
    "axes.png",
    "data.png",
    "hidden.png",
    "loss.png",
    "pairs.png",
    "response_surface.png",
    "update_ratio.png",
    "weights.png",
]


@pytest.mark.slow
def test_write_report_is_self_contained(mlp_report):
    path = mlp_report
    assert path.name == "index.html" and path.exists()
    page = path.read_text()
    p = _Links()
    p.feed(page)
    assert p.urls and all(u.startswith("data:image/png;base64,") for u in p.urls)
    assert not re.search(r"https?://", page)
    assert sorted(f.name for f in path.parent.glob("*.png")) == PNGS
    assert len(p.urls) == len(PNGS)
    # The config holds no band: the one default (config.DEFAULT_BAND, 20%; it said 10%).
    assert "member 9 lies in the high 20% of lr" in page
    assert not list(path.parent.glob("*.tmp"))
    assert "Every swept axis (6)" in page and "Hidden-unit activations" in page
    assert "dead fraction above ~0.3 suggests a lower learning rate" in page


def test_missing_inputs_give_notes(tmp_path):
    res = synthetic("mlp")
    res.curves = None
    page = Path(write_report(res, [], tmp_path)).read_text()
    assert "the sweep flows pass dataset.raw_train_images" in page
    assert "this result holds no curves" in page
    assert "hidden-activation statistics are not shown" in page
    assert ORDER_LINE in page  # the members table says its order (one ranking)
    assert sorted(f.name for f in tmp_path.glob("*.png")) == ["response_surface.png", "weights.png"]


def _chromium(args, cwd):
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={cwd / 'profile'}",
        # Any host name fails to resolve: nothing can leave the machine.
        "--host-resolver-rules=MAP * ~NOTFOUND",
    ]
    return subprocess.run(
        [CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


@pytest.mark.slow
@pytest.mark.skipif(
    not Path(CHROMIUM).exists(),
    reason=f"{CHROMIUM} is missing (CI installs it with apt-get install chromium)",
)
def test_report_in_headless_chromium(tmp_path, mlp_report):
    url = mlp_report.as_uri()
    dom = _chromium(["--virtual-time-budget=5000", "--dump-dom", url], tmp_path).stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    total = int(re.search(r'data-images-total="(\d+)"', body).group(1))
    ok = int(re.search(r'data-images-ok="(\d+)"', body).group(1))
    resources = re.search(r'data-resources="([^"]*)"', body).group(1)
    assert total == ok == len(PNGS)
    assert all(u.startswith("data:") for u in json.loads(html.unescape(resources)))
    shot = tmp_path / "report.png"
    _chromium([f"--screenshot={shot}", "--window-size=1280,2000", url], tmp_path)
    assert shot.exists() and shot.stat().st_size > 10_000
    print(f"screenshot: {shot}")
    shutil.rmtree(tmp_path / "profile", ignore_errors=True)  # the browser profile is big


@pytest.mark.slow
def test_report_command_with_the_store_api(tmp_path, monkeypatch, capsys):
    """`sweepjax report` against the store's API (Store.open, newest, load_sweep): the
    newest sweep, its ancestors, and the default output next to the store."""
    import sys
    import types

    from sweepjax.cli import main

    fine = synthetic()
    fine.curves = None  # keep it quick: the page itself is tested above
    coarse = synthetic(seed=1, parent_spaces=[])
    coarse.sweep_id, coarse.kind, coarse.parent = "coarse01", "coarse", None
    sweeps = {"fine01": fine, "coarse01": coarse}
    loaded = []

    class FakeStore:
        @classmethod
        def open(cls, path):
            return cls()

        def newest(self, kind):
            return {"fine": "fine01", "coarse": "coarse01"}[kind]

        def load_sweep(self, sweep_id):
            loaded.append(sweep_id)
            return sweeps[sweep_id]

    from sweepjax.cli import build_parser

    build_parser()  # import every command module with the real store before the fake
    import sweepjax.flows.sweep  # noqa: F401  (the command's deferred import: the real store)

    monkeypatch.setitem(
        sys.modules,
        "sweepjax.store.db",
        types.SimpleNamespace(Store=FakeStore, default_path=lambda: "unused.db"),
    )
    rc = main(["report", "--store", str(tmp_path / "s.db")])
    out, err = capsys.readouterr()
    assert rc == 0
    assert out.strip() == str(tmp_path / "s-reports" / "fine01" / "index.html")
    assert "coarse01" in loaded  # the parent was read for the response surface
    assert "data pictures skipped" in err  # "synthetic" is no dataset on disk
    page = Path(out.strip()).read_text()
    assert "fine sweep fine01" in page


# --------------------------------------------------------------------------- the model
def judged(n_val: int = 400):
    """The synthetic sweep with its verdict (tied set, model) filled as the flows do."""
    from sweepjax.flows.build import judge_result
    from sweepjax.search import as_space

    res = synthetic()
    res.dataset = {**res.dataset, "n_val": n_val}
    judge_result(res, as_space(res.space), n_val)
    return res


def test_model_figure_contours_the_surface_and_rings_the_tied_set():
    """Ringed points are exactly the tied members; one importance bar per axis, lr first
    in importance (the synthetic accuracy depends on lr only); contours span the box."""
    from sweepjax.report import sections

    res = judged()
    model = sections.model_fit(res)
    assert model is not None
    fig = figures.model_surface(res, *model)
    ax, bx = fig.axes[0], fig.axes[1]  # (the colorbar is the third)
    rings = [c for c in ax.get_children() if c.get_gid() == "tied"]
    assert len(rings) == 1 and len(rings[0].get_offsets()) == len(res.tied) >= 1
    ring_lrs = sorted(float(x) for x in rings[0].get_offsets()[:, 0])
    by_id = {m.id: m for m in res.members}
    assert ring_lrs == pytest.approx(sorted(by_id[i].lr for i in res.tied), rel=1e-6)
    bars = [c for c in bx.get_children() if c.get_gid() == "importance"]
    assert len(bars) == 2
    assert res.verdict.importance["lr"] > res.verdict.importance["l2"]
    assert ax.get_xlabel() == "lr" and ax.get_xscale() == "log"
    # Diverged members are drawn (red crosses: the fit reads them at its floor), and the
    # caption states the optimum with its SD as the text output does.
    crosses = [c for c in ax.get_children() if c.get_gid() == "diverged"]
    n_div = sum(m.status == "diverged" for m in res.members)
    assert n_div >= 1 and sum(len(c.get_offsets()) for c in crosses) == n_div
    words = sections.optimum_words(res.verdict)
    v = res.verdict
    assert f"{v.optimum_value:.4f} +/- {v.optimum_sd:.4f}" in words
    assert f"Modelled optimum {v.optimum_where}" in words


@pytest.mark.slow
def test_report_has_the_model_panel_and_its_png_decodes(tmp_path):
    """model.png is written, embedded, and decodes to a non-blank RGBA image."""
    import matplotlib.image as mpimg

    res = judged()
    page = Path(write_report(res, [], tmp_path)).read_text()
    assert "Response-surface model" in page and "tied with the winner" in page
    img = mpimg.imread(tmp_path / "model.png")
    assert img.ndim == 3 and img.shape[0] > 200 and img.shape[1] > 400
    assert float(img[..., :3].std()) > 0.05  # not a blank canvas
    assert "model.png" in sorted(f.name for f in tmp_path.glob("*.png"))


@pytest.mark.slow
def test_schedule_panels_show_rungs_and_pbt_schedules(tmp_path):
    """Halving: the number of members training steps down at each rung; PBT: every
    member's lr over time is drawn, with one dot per copy, and the lineage table lists
    each copy."""
    import dataclasses

    from sweepjax.report import schedule_fig

    res = synthetic()
    stops = {i: (50 if i < 4 else 150) for i in range(M - 4)}  # rows 10, 11 diverged
    res.members = [
        dataclasses.replace(m, status="stopped", stopped_at=stops[m.id])
        if m.id in stops and m.status == "ok"
        else m
        for m in res.members
    ]
    res.config = dataclasses.replace(
        res.config, train=TrainConfig(steps=300), schedule=ScheduleConfig("halving")
    )
    fig = schedule_fig.active_over_time(res)
    (line,) = [a for a in fig.axes[0].get_lines() if a.get_gid() == "active"]
    n = len(res.members)
    stopped50 = sum(m.stopped_at == 50 for m in res.members)
    stopped150 = sum(m.stopped_at == 150 for m in res.members)
    assert list(line.get_ydata()) == [
        n,
        n - stopped50,
        n - stopped50 - stopped150,
        n - stopped50 - stopped150,
    ]
    page = Path(write_report(res, [], tmp_path / "h")).read_text()
    assert "Schedule (halving)" in page and (tmp_path / "h" / "schedule.png").exists()

    pbt = synthetic()
    pbt.config = dataclasses.replace(
        pbt.config, train=TrainConfig(steps=300), schedule=ScheduleConfig("pbt")
    )
    pbt.history = [
        {"step": 0, "member": m.id, "lr": m.lr, "l2": m.l2, "lr_decay": 1.0} for m in pbt.members
    ] + [{"step": 100, "member": 1, "lr": 0.2, "l2": 1e-4, "lr_decay": 1.0}]
    pbt.lineage = [{"step": 100, "member": 1, "copied_from": 5}]
    fig = schedule_fig.hparam_schedules(pbt)
    drawn = [a for a in fig.axes[0].get_lines() if a.get_gid() == "schedule"]
    dots = [a for a in fig.axes[0].get_lines() if a.get_gid() == "copy"]
    assert len(drawn) == len(pbt.members) and len(dots) == 1
    page = Path(write_report(pbt, [], tmp_path / "p")).read_text()
    assert "Schedule (PBT)" in page and "copied from" in page


@pytest.mark.slow
def test_replica_spread_shows_each_configs_members_and_mean(tmp_path):
    """With replicas, the report draws every member of the best configs as a dot and each
    config's mean +/- SD; the page has the panel."""
    from sweepjax.report import schedule_fig
    from sweepjax.results.records import ConfigRecord

    res = synthetic(diverged=())
    accs = np.array([m.best_val_acc for m in res.members])
    cfgs = []
    for c in range(M // 3):
        rows = [3 * c, 3 * c + 1, 3 * c + 2]
        a = accs[rows]
        cfgs.append(
            ConfigRecord(
                c, 0.1, 1e-4, 1.0, "ok", float(a.mean()), float(a.std()), 0, 0.01, None, rows
            )  # fmt: skip
        )
    order = np.argsort([-c.mean_val_acc for c in cfgs])
    res.configs = [dataclasses.replace(cfgs[j], rank_val_acc=r + 1) for r, j in enumerate(order)]
    fig = schedule_fig.replica_spread(res)
    dots = [a for a in fig.axes[0].get_lines() if a.get_gid() == "replica"]
    assert sum(len(d.get_xdata()) for d in dots) == M
    best = res.configs[int(order[0])]
    assert best.mean_val_acc == pytest.approx(accs[best.members].mean())
    page = Path(write_report(res, [], tmp_path)).read_text()
    assert "Spread across replicas and folds" in page and (tmp_path / "spread.png").exists()


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_mlp_sweep_on_the_sample_reports_its_kept_members_activations(tmp_path, capsys):
    """A small MLP sweep on the bundled sample stores the kept members' activation
    statistics (equal to a recomputation from their stored parameters on the first
    validation rows) and its report draws them."""
    from sweepjax.analysis.activations import SAMPLE_ROWS
    from sweepjax.cli import main
    from sweepjax.config import DataConfig
    from sweepjax.data import load_dataset
    from sweepjax.flows.build import PARAMS_KEPT
    from sweepjax.store.db import Store

    store = tmp_path / "s.db"
    argv = ["coarse", "--dataset", "mnist-sample", "--model", "mlp", "--hidden", "16"]
    argv += ["--trials", "6", "--steps", "20", "--batch-size", "32", "--schedule", "full"]
    argv += ["--store", str(store)]
    assert main([*argv, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    with Store.open(store) as st:
        res = st.load_sweep(doc["sweep_id"])
        kept = st.load_params(doc["sweep_id"])
    finished = sum(m.status == "ok" for m in res.members)
    assert list(res.activations) == list(kept) and len(kept) == min(PARAMS_KEPT, finished) > 1
    assert next(iter(res.activations)) == res.winner.id
    x = load_dataset(DataConfig(dataset="mnist-sample")).x_val[:SAMPLE_ROWS]
    for mid, st in res.activations.items():
        assert (st.width, st.units, st.rows) == (16, 16, len(x))
        again = activation_stats(kept[mid], x, member=mid)
        np.testing.assert_array_equal(st.fires, again.fires)
        np.testing.assert_array_equal(st.counts, again.counts)
        assert st.zeros + st.counts.sum() == 16 * len(x)
    page = Path(doc["report"]).read_text()
    assert "Hidden-unit activations" in page and f"the first {len(x)} validation rows" in page
    assert (Path(doc["report"]).parent / "activations.png").exists()
    assert "Every swept axis" not in page  # lr x lambda only


# --------------------------------------------------------------------------- tabular data
def tabular(kind="softmax", d=13, k=3, classes=(1, 2, 3)):
    """The synthetic sweep on feature vectors ``[D]`` (e.g. scikit-learn's wine)."""
    res = synthetic(kind)
    rng = np.random.default_rng(3)
    res.dataset = {**res.dataset, "input_shape": [d], "num_classes": k, "classes": classes}
    if kind == "softmax":
        res.winner_params = {"out": {"kernel": rng.normal(size=(k, d)).astype(np.float32)}}
    else:
        res.winner_params = {
            "hidden": {
                "kernel": rng.normal(size=(16, d)).astype(np.float32),
                "bias": np.zeros(16, np.float32),
            },
            "out": {"kernel": rng.normal(size=(k, 16)).astype(np.float32)},
        }
    return res


def test_tabular_weights_are_one_chart_per_feature():
    """[N, D] data has no images: the softmax weights are drawn as one class x feature
    chart (the kernel itself), rows named with the user's own labels."""
    res = tabular()
    fig = figures.weight_images(res.winner_params, [13], classes=(1, 2, 3))
    ims = [im for ax in fig.axes for im in ax.get_images() if im.get_gid() == "weights"]
    assert len(ims) == 1
    np.testing.assert_array_equal(ims[0].get_array(), res.winner_params["out"]["kernel"])
    ax = ims[0].axes
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "class 0 (1)",
        "class 1 (2)",
        "class 2 (3)",
    ]
    assert len(ax.get_xticks()) == 13
    mlp = tabular("mlp").winner_params
    ims = [im for ax in figures.weight_images(mlp, [13], width=10).axes for im in ax.get_images()]
    assert len(ims) == 1 and ims[0].get_array().shape == (10, 13)  # its own 10 units


def test_tabular_data_check_draws_rows_not_images():
    rows = np.arange(36 * 5, dtype=np.float64).reshape(36, 5)
    rows[:, 2] = 7.0  # a constant feature
    fig = figures.data_grid(rows)
    (im,) = fig.axes[0].get_images()
    a = np.asarray(im.get_array())
    assert a.shape == (36, 5) and a.min() == 0.0 and a.max() == 1.0
    assert np.all(a[:, 2] == 0.0)  # flat column: one colour
    # channel-last images still draw: one grey channel is dropped
    assert len(figures.data_grid(np.zeros((4, 6, 6, 1))).axes) == 4


def test_custom_model_on_tabular_data_draws_its_dense_layer_per_feature():
    from sweepjax.report.custom_fig import first_layer_images

    k = np.random.default_rng(0).normal(size=(13, 8)).astype(np.float32)  # [D, F]
    fig = first_layer_images({"Dense_0": {"kernel": k}}, [13])
    (im,) = [im for ax in fig.axes for im in ax.get_images()]
    np.testing.assert_array_equal(im.get_array(), k.T)


def test_a_tabular_report_is_complete(tmp_path):
    """It failed on `imshow` of a [D] row ("Invalid shape (13,) for image data")."""
    res = tabular("mlp")
    res.curves = None  # the curves' figures are tested above; keep the page quick
    x = np.random.default_rng(1).normal(size=(40, 13)).astype(np.float32)
    page = Path(write_report(res, [], tmp_path, dataset_images=x[:36], x_sample=x)).read_text()
    assert "tabular features: no images" in page and "weights per input feature" in page
    names = {f.name for f in tmp_path.glob("*.png")}
    assert {"data.png", "weights.png", "hidden.png", "response_surface.png"} <= names


@pytest.mark.slow
def test_a_tabular_npz_through_coarse_and_report(tmp_path, capsys):
    """scikit-learn style features [N, D] with labels 1..3: coarse writes the whole report
    (it said "report not written (TypeError: Invalid shape (13,) for image data)"), and
    `sweepjax report` rewrites it with exit 0 (it ended in a traceback)."""
    from sweepjax.cli import main

    rng = np.random.default_rng(0)
    y = np.arange(150) % 3 + 1
    x = rng.normal(size=(150, 13)) + 2.0 * np.eye(13)[y] * 3  # separable-ish
    p = tmp_path / "wine.npz"
    np.savez(p, x_train=x, y_train=y)
    store = tmp_path / "s.db"
    argv = ["coarse", "--dataset", f"npz:{p}", "--trials", "6", "--steps", "20"]
    assert main([*argv, "--store", str(store), "--format", "json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    assert "report not written" not in err and "labels [1, 2, 3]" in err
    assert doc["dataset"]["classes"] == [1, 2, 3] and doc["dataset"]["num_classes"] == 3
    folder = Path(doc["report"]).parent
    assert {"data.png", "weights.png"} <= {f.name for f in folder.glob("*.png")}
    (folder / "weights.png").unlink()
    assert main(["report", doc["sweep_id"], "--store", str(store)]) == 0
    assert capsys.readouterr().out.strip() == doc["report"]
    assert (folder / "weights.png").exists()


def _drawn(line) -> bool:
    """Whether a line shows on the page: two points or more, or a marker."""
    x = np.asarray(line.get_xdata(), float)
    return len(x) >= 2 or (len(x) == 1 and line.get_marker() not in (None, "", "None", " "))


def test_legends_list_only_what_is_drawn():
    """A halving run's "too low" member stopped after one evaluation and an "exploded"
    member with no finite loss were listed in the legend with nothing drawn."""
    res = synthetic(diverged=(10, 11))
    c = res.curves
    c.train_loss[0, 1:] = np.nan  # the lowest-lr member: one evaluation, then stopped
    c.update_ratio[0, 1:] = np.nan
    c.train_loss[10, :] = np.nan  # diverged before any evaluation
    c.update_ratio[10, :] = np.nan
    fails = {"too low": 0, "exploded": 10}
    top = figures.top_rows(res, 3)
    for fig in (
        figures.loss_curves(res, top, fails),
        figures.update_ratio(res, top, fails),
        figures.accuracy_gap(res, top),
    ):
        ax = fig.axes[0]
        handles, labels = ax.get_legend_handles_labels()
        shown = [t.get_text() for t in ax.get_legend().get_texts()]
        assert shown == labels and all(_drawn(h) for h in handles), labels
    loss = figures.loss_curves(res, top, fails).axes[0]
    labels = loss.get_legend_handles_labels()[1]
    assert any(s.startswith("too low:") for s in labels)  # its one point, as a dot
    handles, labels = loss.get_legend_handles_labels()
    (boom,) = [h for h, s in zip(handles, labels, strict=True) if s.startswith("exploded")]
    assert boom.get_marker() == "x" and boom.get_xdata()[0] == 40  # the x stands for it
    ratio = figures.update_ratio(res, top, fails).axes[0]
    assert not any(s.startswith("exploded") for s in ratio.get_legend_handles_labels()[1])


def test_a_report_that_fails_leaves_no_folder(tmp_path, monkeypatch):
    """A figure that raised left an empty report folder behind ("nothing half-written")."""

    def broken(*a, **k):
        raise TypeError("Invalid shape (64,) for image data")

    monkeypatch.setattr(figures, "data_grid", broken)
    with pytest.raises(TypeError):
        write_report(synthetic(), [], tmp_path / "r", dataset_images=np.zeros((4, 8)))
    assert not (tmp_path / "r").exists()


def test_png_is_drawn_once_and_cut_as_savefig_tight_cuts_it():
    """``report._png`` draws a figure once and crops it to its drawn extent plus the pad:
    the same picture as ``savefig(bbox_inches="tight")`` (which draws it twice), within
    a pixel of rounding per side, with no ink lost; a title wider than the canvas still
    widens the page (savefig's way)."""
    import io

    import matplotlib.image as mpimg
    from matplotlib.figure import Figure

    from sweepjax.report import _png

    ink = lambda im: int((im[..., :3].min(axis=-1) < 0.5).sum())  # noqa: E731
    for title in ("loss curves: top members", "a title far wider than its figure " * 3):
        fig = Figure(figsize=(5.0, 3.0), dpi=100)
        ax = fig.add_subplot()
        ax.plot(np.arange(10.0), np.arange(10.0) ** 2)
        ax.set_title(title, fontsize=12)
        ax.set_ylabel("a long y label (log)")
        fig.text(0.01, 0.01, "corner note")
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=fig.dpi, bbox_inches="tight")
        want = mpimg.imread(io.BytesIO(buf.getvalue()))
        got = mpimg.imread(io.BytesIO(_png(fig)))
        assert abs(got.shape[0] - want.shape[0]) <= 2 and abs(got.shape[1] - want.shape[1]) <= 2
        assert ink(want) > 1000 and abs(ink(got) - ink(want)) <= 0.01 * ink(want)
