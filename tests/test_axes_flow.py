"""The per-member axes beyond (lr, lambda) above the engine: the axes table, sampling
(whole log-uniform widths, linear dropout and momentum), refinement that never crosses a
cap, the verdicts with up to seven axes, refit, and the command line end to end on the
bundled sample (JSON, table, store round trip, one-line errors)."""

from __future__ import annotations

import dataclasses
import json
from contextlib import redirect_stdout
from io import StringIO

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sweepjax.flows.refit as refit_mod
from sweepjax.cli import main
from sweepjax.cli.inspect import json_clean
from sweepjax.config import AXES, DROPOUT_MAX, MOMENTUM_MAX, ModelConfig, Range, SearchSpace
from sweepjax.errors import ConfigError
from sweepjax.flows.sweep_config import SweepConfig
from sweepjax.results.appraise import judge_members
from sweepjax.results.claims import next_space
from sweepjax.results.records import MemberRecord, SweepResult, TimingRecord
from sweepjax.search import as_space, ranking, refine, sample
from sweepjax.store.db import Store
from tests.helpers import sweep_config, toy_dataset, toy_train_config

# Every axis, boxes touching every cap (dropout from 0, momentum up to its maximum,
# lr_decay up to 1, hidden from 1).
FULL = SearchSpace(
    lr=Range(1e-3, 1.0),
    l2=Range(1e-6, 1e-2),
    lr_decay=Range(0.01, 1.0),
    hidden=Range(1, 64),
    dropout=Range(0.0, DROPOUT_MAX, log=False),
    init_scale=Range(0.25, 4.0),
    momentum=Range(0.5, MOMENTUM_MAX, log=False),
)
NAMES = tuple(FULL.axes())


def _records(space: SearchSpace, u: np.ndarray, acc: np.ndarray) -> list[MemberRecord]:
    """Members at unit positions ``u [N, A]`` of ``space`` (hidden rounded to whole units)."""
    out = []
    for i, (row, a) in enumerate(zip(u, acc, strict=True)):
        v = {n: float(space.axes()[n].from_unit(x)) for n, x in zip(space.axes(), row, strict=True)}
        if "hidden" in v:
            v["hidden"] = int(np.clip(round(v["hidden"]), space.hidden.lo, space.hidden.hi))
        out.append(
            MemberRecord(
                id=i,
                lr=v["lr"],
                l2=v["l2"],
                lr_decay=v.get("lr_decay", 1.0),
                status="ok",
                diverged_at=None,
                best_val_acc=float(a),
                best_step=10,
                final_train_loss=0.5,
                final_val_loss=1.5 - float(a),
                final_train_acc=float(a),
                final_val_acc=float(a),
                **{n: v.get(n) for n in ("hidden", "dropout", "init_scale", "momentum")},
            )
        )
    return out


def _result(space: SearchSpace, members: list[MemberRecord]) -> SweepResult:
    return SweepResult(
        "c1",
        "coarse",
        None,
        {},
        space.as_dict(),
        sweep_config(space=space),
        members,
        None,
        [],
        TimingRecord(0, 0, 0),
    )


# --------------------------------------------------------------------------- the table
def test_axes_table_scales_and_caps():
    """dropout and momentum are linear, the rest log; hidden whole; the caps as documented."""
    assert [n for n, a in AXES.items() if not a.log] == ["dropout", "momentum"]
    assert [n for n, a in AXES.items() if a.integer] == ["hidden"]
    assert (AXES["lr_decay"].ceiling, AXES["hidden"].floor) == (1.0, 1.0)
    assert AXES["dropout"].floor == 0.0 and AXES["dropout"].ceiling == DROPOUT_MAX < 1.0
    assert AXES["momentum"].floor == 0.0 and AXES["momentum"].ceiling == MOMENTUM_MAX < 1.0
    # The stored (dict) form reads back on each axis's scale.
    assert as_space(FULL.as_dict()) == FULL
    assert list(FULL.axes()) == list(AXES)  # the draw's column order


@pytest.mark.parametrize(
    "kw, match",
    [
        ({"dropout": Range(0.0, 1.5, log=False)}, "dropout bounds must lie in [0, 0.95]"),
        ({"momentum": Range(0.5, 1.0, log=False)}, "momentum bounds must lie in [0, 0.999]"),
        ({"hidden": Range(8.5, 32)}, "whole numbers"),
        ({"hidden": Range(0.5, 32)}, "hidden bounds"),
        ({"lr_decay": Range(0.1, 2.0)}, "lr_decay bounds"),
        ({"dropout": Range(0.1, 0.5)}, "dropout is searched on a linear scale"),
        ({"init_scale": Range(0.5, 2.0, log=False)}, "init_scale is searched on a log scale"),
    ],
)
def test_search_space_refuses_boxes_past_a_cap_or_on_the_wrong_scale(kw, match):
    with pytest.raises(ConfigError, match=match.replace("[", r"\[").replace("]", r"\]")):
        SearchSpace(**kw)


def test_default_configs_store_no_new_keys():
    """A sweep that uses no new axis stores the same config dict as before them, so one
    stored earlier resumes (the configs compare equal); a fixed value is stored."""
    from sweepjax.config import DataConfig, TrainConfig

    cfg = SweepConfig("coarse", DataConfig(), ModelConfig(), TrainConfig(), SearchSpace(), 8)
    train = cfg.as_dict()["train"]
    assert "dropout" not in train and "init_scale" not in train and train["momentum"] == 0.9
    fixed = dataclasses.replace(cfg, train=TrainConfig(dropout=0.25, init_scale=2.0))
    assert fixed.as_dict()["train"]["dropout"] == 0.25
    assert fixed.fixed() == {"momentum": 0.9, "dropout": 0.25, "init_scale": 2.0}


# --------------------------------------------------------------------------- sampling
def test_hidden_is_whole_and_log_uniform_dropout_and_momentum_linear():
    """20000 draws: widths are whole numbers in [8, 512] whose median is the geometric mean
    64 (a linear draw would put it at 260) and whose log is uniform (each of 4 equal
    log-bins holds a quarter, up to the endpoints' half-width bins); dropout and momentum
    are uniform on their linear scales (mean at the midpoint, a quarter per quarter)."""
    space = SearchSpace(
        hidden=Range(8, 512),
        dropout=Range(0.0, 0.5, log=False),
        momentum=Range(0.5, 0.99, log=False),
    )
    hp, _ = sample(space, 20000, 0)
    h = np.asarray(hp.hidden)
    assert np.all(h == np.round(h)) and h.min() == 8 and h.max() == 512
    assert abs(np.median(h) - 64) <= 3
    q = np.histogram(np.log(h), bins=np.linspace(np.log(8), np.log(512), 5))[0] / h.size
    np.testing.assert_allclose(q, 0.25, atol=0.015)
    for name, lo, hi in (("dropout", 0.0, 0.5), ("momentum", 0.5, 0.99)):
        v = np.asarray(getattr(hp, name), np.float64)
        assert lo <= v.min() and v.max() <= hi
        assert abs(v.mean() - (lo + hi) / 2) < 0.01 * (hi - lo)
        q = np.histogram(v, bins=np.linspace(lo, hi, 5))[0] / v.size
        np.testing.assert_allclose(q, 0.25, atol=0.015)


def test_unswept_axes_take_their_fixed_values_and_prefixes_are_stable():
    space = SearchSpace(hidden=Range(4, 16), init_scale=Range(0.5, 2.0))
    hp, _ = sample(space, 50, 3, fixed={"momentum": 0.7, "dropout": 0.2, "init_scale": 9.0})
    assert np.all(hp.momentum == np.float32(0.7)) and np.all(hp.dropout == np.float32(0.2))
    assert hp.init_scale.min() >= 0.5 and hp.init_scale.max() <= 2.0  # swept: fixed ignored
    small, _ = sample(space, 20, 3)
    for a, b in zip(small, hp.take(np.arange(20)), strict=True):
        if a is small.momentum or a is small.dropout:
            continue
        np.testing.assert_array_equal(a, b)


@settings(max_examples=60, deadline=None)
@given(
    lo=st.integers(1, 200),
    span=st.integers(1, 300),
    d=st.tuples(st.integers(0, 95), st.integers(0, 95)).map(lambda t: (t[0] / 100, t[1] / 100)),
    m=st.tuples(st.integers(0, 999), st.integers(0, 999)).map(lambda t: (t[0] / 1e3, t[1] / 1e3)),
    n=st.integers(1, 64),
    seed=st.integers(0, 2**31 - 1),
    grid=st.booleans(),
)
def test_samples_stay_in_the_box(lo, span, d, m, n, seed, grid):
    if d[0] == d[1] or m[0] == m[1]:
        return
    space = SearchSpace(
        hidden=Range(lo, lo + span),
        dropout=Range(min(d), max(d), log=False),
        momentum=Range(min(m), max(m), log=False),
    )
    hp, ids = sample(space, n, seed, grid=grid)
    for name, r in space.axes().items():
        v = np.asarray(getattr(hp, name), np.float64)
        assert np.all(v >= r.lo) and np.all(v <= r.hi), name
    assert np.all(hp.hidden == np.round(hp.hidden))


# --------------------------------------------------------------------------- refinement
EDGY = st.sampled_from([0.0, 0.01, 0.5, 0.97, 1.0]) | st.floats(0, 1)  # often on an edge


def _inside_caps(space: SearchSpace) -> None:
    for name, r in space.axes().items():
        ax = AXES[name]
        assert r.lo < r.hi
        assert ax.floor is None or r.lo >= ax.floor, (name, r)
        assert ax.ceiling is None or r.hi <= ax.ceiling, (name, r)
        if ax.integer:
            assert float(r.lo).is_integer() and float(r.hi).is_integer(), (name, r)


@settings(max_examples=60, deadline=None)
@given(
    units=st.lists(
        st.lists(
            st.sampled_from([0.0, 0.01, 0.5, 0.97, 1.0]) | st.floats(0, 1), min_size=8, max_size=8
        ),
        min_size=1,
        max_size=20,
    ),
    top_k=st.integers(1, 8),
    margin=st.floats(0, 0.5),
    band=st.floats(0, 0.3),
)
def test_refine_never_crosses_a_cap(units, top_k, margin, band):
    """Members anywhere (often on the capped edges, where the winner's band extends the
    box past them): the refined box stays inside every cap, keeps whole hidden bounds and
    contains the top-K members."""
    u = np.array(units)
    res = _result(FULL, _records(FULL, u[:, :7], u[:, 7]))
    new, why = refine(res, top_k=top_k, margin=margin, band=band)
    _inside_caps(new)
    top = ranking(res)[:top_k]
    for name, r in new.axes().items():
        for i in top:
            v = getattr(res.members[i], name)
            assert r.lo * (1 - 1e-9) <= v <= r.hi * (1 + 1e-9) + 1e-12, (name, v, r)


def test_model_box_with_six_axes_respects_caps_and_flags_only_open_edges():
    """400 members on 6 axes; the score climbs toward the dropout cap (0.95), the momentum
    cap and the high lr edge. The surface fits (5 knots per curve), the lr edge is flagged
    and extended past, the capped edges are never flagged and the next box stops at the
    caps with whole hidden bounds."""
    space = SearchSpace(
        lr=FULL.lr,
        l2=FULL.l2,
        hidden=Range(4, 64),
        dropout=Range(0.3, DROPOUT_MAX, log=False),
        init_scale=FULL.init_scale,
        momentum=Range(0.5, MOMENTUM_MAX, log=False),
    )
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(400, 6))
    acc = 0.6 + 0.15 * u[:, 0] + 0.05 * u[:, 3] + 0.05 * u[:, 5] + rng.normal(0, 0.004, 400)
    a = judge_members(_records(space, u, acc), space, 2000)
    assert a.surface is not None and a.surface.knots == 5
    flags = {(b.param, b.side) for b in a.verdict.flags}
    assert ("lr", "high") in flags
    assert not flags & {("dropout", "high"), ("momentum", "high")}
    capped = {(b.param, b.side) for b in a.verdict.boundaries if b.capped}
    assert {("dropout", "high"), ("momentum", "high")} <= capped
    new, why = next_space(a, space)
    _inside_caps(new)
    assert new.lr.hi > space.lr.hi and new.hidden.lo >= 4 - 1e-9
    assert "model box" in why


def test_too_few_members_for_the_axes_leave_no_surface():
    """7 axes need 29 alive members for the pair terms: with 20 there is no surface (the
    fine round falls back to the top-K span rule) and a note says why."""
    rng = np.random.default_rng(1)
    u = rng.uniform(size=(20, 7))
    a = judge_members(_records(FULL, u, 0.8 + 0.01 * u[:, 0]), FULL, 2000)
    assert a.surface is None and a.box is None
    assert "need at least 29 alive members to fit 7 axes" in a.fit_note


# --------------------------------------------------------------------------- refit
def test_refit_retrains_the_member_with_every_axis(monkeypatch):
    seen = {}

    def spy(data, hp, model, cfg, **kw):
        seen["hp"] = hp
        raise RuntimeError("stop here")

    monkeypatch.setattr(refit_mod, "train_population", spy)
    m = MemberRecord(
        3, 0.1, 1e-4, 0.5, "ok", None, 0.8, 30, 0.5, 0.5, 0.8, 0.8,
        hidden=12, dropout=0.25, init_scale=2.0, momentum=0.8,
    )  # fmt: skip
    with pytest.raises(RuntimeError, match="stop here"):
        refit_mod.refit_member(toy_dataset(), m, ModelConfig("mlp", 32), toy_train_config())
    hp = seen["hp"]
    got = {n: float(getattr(hp, n)[0]) for n in hp._fields if n != "user"}
    assert hp.user == {}  # no hyperparameter of the user's
    want = dict(lr=0.1, l2=1e-4, lr_decay=0.5, hidden=12, dropout=0.25, init_scale=2, momentum=0.8)
    assert got == pytest.approx(want, rel=1e-6)


# --------------------------------------------------------------------------- end to end
BASE = ["--dataset", "mnist-sample", "--trials", "12", "--steps", "30", "--batch-size", "64"]
FULL_RUN = ["--schedule", "full"]  # one population shape: one compiled program per sweep
AXES_FLAGS = [
    "--model", "mlp", "--optimizer", "momentum", "--hidden", "8", "32", "--dropout", "0", "0.5",
    "--momentum", "0.5", "0.95", "--init-scale", "0.5", "2",
]  # fmt: skip


def _run(argv) -> dict:
    buf = StringIO()
    with redirect_stdout(buf):
        assert main([*argv, "--format", "json", "--no-report"]) == 0
    return json.loads(buf.getvalue())


@pytest.fixture(scope="module")
def flow(tmp_path_factory):
    store = str(tmp_path_factory.mktemp("axes") / "s.db")
    c = _run(["coarse", *BASE, *AXES_FLAGS, *FULL_RUN, "--store", store])
    # fine: width replaced by a new box, dropout and init scale fixed; momentum inherited
    f = _run(
        ["fine", "--store", store, "--steps", "30", "--no-refit", *FULL_RUN, "--hidden", "8", "24"]
        + ["--dropout", "0.1", "--init-scale", "0.7"]
    )
    return store, c, f


@pytest.mark.slow  # a whole coarse -> fine flow with every axis
def test_coarse_members_carry_every_axis(flow):
    store, c, _ = flow
    assert c["space"] == {
        "lr": [1e-4, 3.0],
        "l2": [1e-6, 1.0],
        "hidden": [8, 32],
        "dropout": [0.0, 0.5],
        "init_scale": [0.5, 2.0],
        "momentum": [0.5, 0.95],
    }
    hidden = [m["hidden"] for m in c["members"]]
    assert all(isinstance(h, int) and 8 <= h <= 32 for h in hidden) and len(set(hidden)) > 3
    for m in c["members"]:
        assert 0.0 <= m["dropout"] <= 0.5 and 0.5 <= m["init_scale"] <= 2.0
        assert 0.5 <= m["momentum"] <= 0.95 and m["lr_decay"] == 1.0
    # Exactly the seed's draws (one [12, 6] draw, hidden rounded).
    hp, _ = sample(as_space(c["space"]), 12, 0)
    for name in ("hidden", "dropout", "init_scale", "momentum"):
        np.testing.assert_array_equal([m[name] for m in c["members"]], getattr(hp, name))
    with Store.open(store) as st:
        back = st.load_sweep(c["sweep_id"], curves=False)
        assert back.config.model.hidden == 32  # the widest member's width, compiled
    assert json_clean([m.as_dict() for m in back.members]) == c["members"]  # round trip


@pytest.mark.slow  # a whole coarse -> fine flow with every axis
def test_fine_inherits_the_axes_inside_the_caps_and_applies_overrides(flow):
    store, c, f = flow
    space = as_space(f["space"])
    _inside_caps(space)
    # hidden replaced, dropout and init scale fixed (no longer searched), momentum refined
    # from c1's box (lr_decay added by every first fine round).
    assert f["space"]["hidden"] == [8, 24] and not {"dropout", "init_scale"} & set(f["space"])
    assert {"lr", "l2", "momentum", "lr_decay"} <= set(f["space"])
    for m in f["members"]:
        assert isinstance(m["hidden"], int) and 8 <= m["hidden"] <= 24
        assert (m["dropout"], m["init_scale"]) == pytest.approx((0.1, 0.7))
        for axis, (lo, hi) in f["space"].items():
            assert lo <= m[axis] <= hi
    with Store.open(store) as st:
        row = st.sweep_row(f["sweep_id"])
        back = st.load_sweep(f["sweep_id"], curves=False)
    assert row.config.model.hidden == 24 and row.config.train.dropout == 0.1
    assert row.config.train.init_scale == 0.7 and row.config.train.momentum == 0.9
    assert "dropout: fixed at 0.1 by `dropout`" in back.refinement
    assert json_clean([m.as_dict() for m in back.members]) == f["members"]


@pytest.mark.slow  # a whole coarse -> fine flow with every axis
def test_show_has_a_column_per_searched_axis(flow, capsys):
    store, c, _ = flow
    capsys.readouterr()
    assert main(["show", c["sweep_id"], "--store", store]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if line.startswith("rank"))
    assert header.split()[-5:] == ["hidden", "drop", "init", "mom", "status"]
    assert "dropout, momentum linear, the rest log-uniform" in out
    winner = next(line for line in out.splitlines() if line.startswith("winner:"))
    assert "hidden " in winner and "momentum " in winner


def _bad(tmp_path, capsys, argv, match):
    store = tmp_path / "bad.db"
    capsys.readouterr()
    try:
        code = main([*argv, "--store", str(store)])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    assert not store.exists()


def test_bad_axes_exit_2_with_one_line(tmp_path, capsys):
    ms = ["coarse", "--dataset", "mnist-sample"]
    mlp = [*ms, "--model", "mlp"]
    _bad(tmp_path, capsys, [*ms, "--hidden", "8", "32"], "add --model mlp")
    _bad(tmp_path, capsys, [*ms, "--dropout", "0.2"], "add --model mlp")
    _bad(tmp_path, capsys, [*ms, "--momentum", "0.5", "0.9"], "needs --optimizer momentum or adam")
    _bad(tmp_path, capsys, [*mlp, "--dropout", "0", "1.5"], "bounds must lie in [0, 0.95]")
    _bad(tmp_path, capsys, [*mlp, "--hidden", "8.5", "32"], "whole numbers")
    _bad(tmp_path, capsys, [*mlp, "--hidden", "8", "16", "32"], "one number (fixed) or two")
    _bad(tmp_path, capsys, [*ms, "--init-scale", "0", "2"], "--init-scale bounds")
    toml = tmp_path / "c.toml"
    toml.write_text("momentum = [0.5, 0.9]\noptimizer = 'sgd'\n")
    _bad(tmp_path, capsys, [*ms, "--config", str(toml)], "needs --optimizer momentum or adam")


def test_python_api_checks_axes_before_anything_runs(tmp_path):
    """The API takes a number (fixed) or a pair / Range (searched) per axis, and refuses a
    bad combination before touching data or store."""
    import sweepjax

    kw = dict(dataset="mnist-sample", store=tmp_path / "s.db", report=False)
    with pytest.raises(ConfigError, match="sgd has no momentum"):
        sweepjax.coarse(**kw, momentum=0.8)
    # Errors name the Python argument (the CLI shows the same message with the flag).
    with pytest.raises(ConfigError, match="add `model` mlp"):
        sweepjax.coarse(**kw, hidden=Range(8, 32))
    with pytest.raises(ConfigError, match="`dropout` bounds"):
        sweepjax.coarse(**kw, model="mlp", dropout=(0.5, 0.99))
    with pytest.raises(ConfigError, match="`dropout`: dropout is searched on a linear scale"):
        sweepjax.coarse(**kw, model="mlp", dropout=Range(0.1, 0.5))
    assert not (tmp_path / "s.db").exists()
