"""fine from the model: the box past a rising edge (CLI, end to end), the samplers, the
refit on train + validation."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

import sweepjax
import sweepjax.flows.refit as refit_mod
from sweepjax.cli import main
from sweepjax.config import ModelConfig
from sweepjax.results.records import MemberRecord
from tests.helpers import toy_dataset, toy_train_config

# Slow tier (whole coarse -> fine flows); CI runs it with `-m slow`.
pytestmark = pytest.mark.slow


def _json(capsys, argv) -> dict:
    capsys.readouterr()
    assert main([*argv, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


@pytest.fixture(scope="module")
def low_lr_store(tmp_path_factory):
    """The issue's case: lr 1e-6..1e-4 is too low on the sample, accuracy climbs steadily
    toward the upper lr edge. The coarse sweep runs here, so every test that uses the
    store finds it, whichever worker runs it and in whatever order."""
    store = str(tmp_path_factory.mktemp("low") / "s.db")
    argv = ["coarse", "--dataset", "mnist-sample", "--lr", "1e-6", "1e-4", "--l2", "1e-6"]
    # 128 members (5 finish the halving): with 64 only 3 finished, and the flag hung on
    # which 3 (with rungs ranked by accuracy first, lr-high's edge confidence fell from
    # 0.988 to 0.969, no flag; with 128 it is 1.0 under either rung order).
    argv += ["1e1", "--trials", "128", "--steps", "200", "--seed", "3", "--store", store]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main([*argv, "--no-report", "--format", "json"]) == 0
    return store, json.loads(out.getvalue())


def test_fine_box_extends_past_the_edge_the_score_climbs_to(low_lr_store, capsys):
    """The coarse sweep flags lr's high edge from the model (p < 0.01) and not l2's; fine's
    lr box then reaches past 1e-4, and contains the coarse winner."""
    store, c = low_lr_store
    assert [(b["param"], b["side"]) for b in c["boundary"]] == [("lr", "high")]
    assert c["boundary"][0]["p_value"] < 0.01 and c["boundary"][0]["rise"] > 0
    assert c["optimum_inside"] is False
    # A short fine round: only the box matters here.
    fine = ["fine", "--store", store, "--steps", "10", "--trials", "8", "--no-report"]
    f = _json(capsys, [*fine, "--no-refit"])
    lo, hi = f["space"]["lr"]
    assert hi > 1e-4 * 1.2 and lo <= c["winner"]["lr"] <= hi
    assert f["winner"]["refit_test_acc"] is None  # --no-refit
    assert f["timing"]["refit_s"] == 0.0


def test_fine_draws_half_its_parents_members_unless_told(low_lr_store, capsys):
    """With no --trials a fine round trains half its 128-member parent's, and stores that
    count (a fine of it starts from 64); --trials still decides when given."""
    store, c = low_lr_store
    fine = ["fine", "--from", c["sweep_id"], "--store", store, "--steps", "10"]
    f = _json(capsys, [*fine, "--no-report", "--no-refit"])
    assert len(c["members"]) == 128 and len(f["members"]) == 64
    assert sweepjax.load(store, f["sweep_id"], curves=False).spec.trials == 64
    f = _json(capsys, [*fine, "--trials", "100", "--no-report", "--no-refit"])
    assert len(f["members"]) == 100


@pytest.mark.parametrize("sampler", ["thompson", "ei"])
def test_model_samplers_draw_inside_the_new_box(low_lr_store, capsys, sampler):
    """Every member of a thompson / ei round lies in the box; they are not the uniform
    round's draws; the sampler is part of the stored config."""
    store, _ = low_lr_store
    fine = ["fine", "--from", "c1", "--store", store, "--steps", "10", "--trials", "8"]
    fine += ["--no-report", "--no-refit"]
    uni = _json(capsys, fine)
    f = _json(capsys, [*fine, "--sampler", sampler])
    assert f["space"] == uni["space"]
    for m in f["members"]:
        for axis, (lo, hi) in f["space"].items():
            assert lo * (1 - 1e-6) <= m[axis] <= hi * (1 + 1e-6)
    assert [m["lr"] for m in f["members"]] != [m["lr"] for m in uni["members"]]
    with pytest.raises(SystemExit):
        main([*fine, "--sampler", "bogus"])


def test_refit_trains_on_train_plus_val_for_the_scaled_steps_and_never_reads_test(
    monkeypatch,
):
    """The refit's training run sees train + validation (600 + 200 rows) and a NaN test
    set, for round(30 * 800 / 600) = 40 steps; the reported test accuracy is the final
    parameters' accuracy on the real test set (well above chance 0.25 on the toy task)."""
    ds = toy_dataset()
    seen = {}
    real = refit_mod.train_population

    def spy(data, hp, model, cfg, **kw):
        seen.update(x=np.asarray(data.x_train), y=np.asarray(data.y_train), cfg=cfg)
        seen.update(test=np.asarray(data.x_test), hp=hp, kw=kw)
        out = real(data, hp, model, cfg, **kw)
        seen["res"] = out
        return out

    monkeypatch.setattr(refit_mod, "train_population", spy)
    m = MemberRecord(7, 0.3, 1e-4, 0.5, "ok", None, 0.8, 30, 0.5, 0.5, 0.8, 0.8)
    r = refit_mod.refit_member(ds, m, ModelConfig(), toy_train_config())
    assert r.steps == seen["cfg"].steps == 40 == round(30 * 800 / 600)
    np.testing.assert_array_equal(seen["x"], np.concatenate([ds.x_train, ds.x_val]))
    np.testing.assert_array_equal(seen["y"], np.concatenate([ds.y_train, ds.y_val]))
    assert np.isnan(seen["test"]).all()
    assert float(seen["hp"].lr[0]) == np.float32(0.3) and float(seen["hp"].l2[0]) == np.float32(
        1e-4
    )
    assert float(seen["hp"].lr_decay[0]) == 0.5 and seen["kw"].get("scheduler") is None
    from sweepjax.engine import accuracy, member_params

    final = member_params(seen["res"], 0, best=False)
    assert r.test_acc == accuracy(final, ModelConfig(), 4, ds.x_test, ds.y_test) > 0.6


def test_fine_fallback_box_takes_the_band_flag(tmp_path, capsys):
    """4 members are too few for a model: fine's box is the top-K span rule, with the
    round's ``--band`` (:func:`sweepjax.flows.fine_space.fine_space` gets it from the
    plan). With ``--band 0.5`` the winner is in a band of every axis and the box extends
    past the parent's on one side of each; with ``--band 0.01`` it stays inside."""
    store = str(tmp_path / "s.db")
    tiny = ["--dataset", "mnist-sample", "--trials", "4", "--steps", "30", "--batch-size", "64"]
    tiny += ["--schedule", "full", "--store", store, "--no-report"]
    parent = _json(capsys, ["coarse", *tiny, "--seed", "1"])
    box = {}
    for band in ("0.01", "0.5"):
        out = _json(capsys, ["fine", *tiny, "--no-refit", "--band", band])
        box[band] = {a: out["space"][a] for a in ("lr", "l2")}
    for a, (lo, hi) in parent["space"].items():
        assert lo <= box["0.01"][a][0] and box["0.01"][a][1] <= hi
        assert box["0.5"][a][0] < lo or box["0.5"][a][1] > hi
