"""Categorical axes (``choices``): one compiled program per value inside one sweep.

Claims: a member of a part equals the same member trained alone with that value; one
chunk program per value; the values' verdict on synthetic results with a known truth;
the choice read back from the store; resume inside the second part is exact; ``fine``
keeps the tied values and drops the clearly worse; the MLP's activations against numpy.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import numpy as np
import pytest
from flax import serialization

import sweepjax
from sweepjax.analysis.choices import compare, verdict_line
from sweepjax.cli import main
from sweepjax.cli.formats import to_csv_text
from sweepjax.config import ModelConfig
from sweepjax.engine import PROGRAMS, train_population
from sweepjax.errors import ConfigError
from sweepjax.flows.choices import kept_choices
from sweepjax.flows.runner import Callbacks, SweepInterrupted, write_report_hook
from sweepjax.models import build_network
from sweepjax.results.records import MemberRecord
from sweepjax.spec import SweepSpec
from sweepjax.spec.choices import combos, normalise_choices
from sweepjax.store.db import Store
from sweepjax.store.optuna_export import param_axes, trial_specs
from sweepjax.store.tensorboard_export import hparam_axes, run_specs
from tests.helpers import sweep_config, toy_dataset

OPT = {"optimizer": ["sgd", "adam"]}
# Shapes no other test compiles (d=11, k=3), so the program counts below are this file's.
KW = dict(trials=4, steps=40, batch_size=32, eval_every=10, schedule="full", report=False)


@pytest.fixture(scope="module")
def ds():
    return toy_dataset(n_train=300, n_val=100, n_test=100, d=11, k=3, seed=5)


# The sweeps below compile their own programs (~10 s on 2 cores): the slow tier.
@pytest.fixture(scope="module")
def swept(ds, tmp_path_factory):
    """One choice sweep (sgd, adam) of 4 softmax members, and the chunk programs it
    compiled."""
    store = str(tmp_path_factory.mktemp("ch") / "s.db")
    before = PROGRAMS.counts().get("chunk", 0)
    res = sweepjax.coarse(dataset=ds, choices=OPT, lr=(1e-2, 0.5), store=store, **KW)
    return res, store, PROGRAMS.counts().get("chunk", 0) - before


# ------------------------------------------------------------------------- the options
def test_choices_are_read_the_same_from_a_flag_toml_and_python():
    flag = SweepSpec.create("coarse", choices=["optimizer=sgd,adam", "activation=relu,gelu"])
    py = SweepSpec.create(
        "coarse", choices={"optimizer": ["sgd", "adam"], "activation": ["relu", "gelu"]}
    )
    assert (
        flag.choices
        == py.choices
        == (("optimizer", ("sgd", "adam")), ("activation", ("relu", "gelu")))
    )
    # stored as a list of pairs: the declared order survives JSON with sorted keys
    stored = json.loads(json.dumps(py.to_dict(), sort_keys=True))
    assert SweepSpec.from_dict(stored).choices == py.choices
    cfg = sweep_config(choices=py.choices)
    back = type(cfg).from_dict(json.loads(json.dumps(cfg.as_dict(), sort_keys=True)))
    assert back.choices == py.choices and back.member_choice(1) == cfg.member_choice(1)
    assert combos(py.choices)[1] == {"optimizer": "sgd", "activation": "gelu"}
    assert normalise_choices({"hidden": ["32", 64]}) == (("hidden", (32, 64)),)


@pytest.mark.parametrize(
    "given, says",
    [
        ({"optimizer": ["sgd", "rmsprop"]}, "optimizer takes sgd, momentum, adam"),
        ({"colour": ["red"]}, "takes optimizer, activation, hidden"),
        (["optimizer"], "NAME=V1,V2"),
        ({"hidden": [32, 32]}, "twice"),
        ({"hidden": [0.5]}, "whole widths"),
    ],
)
def test_a_bad_choice_is_one_line(given, says):
    with pytest.raises(ConfigError, match=says) as e:
        SweepSpec.create("coarse", choices=given)
    assert "\n" not in str(e.value)


def test_asha_an_activation_of_the_softmax_and_optimizer_twice_are_refused(ds, tmp_path):
    for extra, says in [
        (dict(schedule="asha"), "ASHA and `budget` refill one program"),
        (dict(choices={"activation": ["relu", "gelu"]}), "built-in MLP's; add `model` mlp"),
        (dict(optimizer="adam"), "drop one"),
        (dict(model="mlp", hidden=32, choices={"hidden": [16, 64]}), "drop `hidden`"),
        (dict(momentum=(0.5, 0.9)), "sgd has no momentum"),
    ]:
        kw = {**KW, "choices": OPT, **extra}
        with pytest.raises(ConfigError, match=says):
            sweepjax.coarse(dataset=ds, store=str(tmp_path / "x.db"), **kw)
    assert not (tmp_path / "x.db").exists() or not Store.open(tmp_path / "x.db").list_sweeps()


# ---------------------------------------------------------------------------- training
@pytest.mark.slow
def test_a_member_of_a_part_equals_it_alone_and_each_value_is_one_program(swept, ds):
    res, _, compiled = swept
    assert compiled == 2  # one chunk program per value (same block length throughout)
    assert [m.choice["optimizer"] for m in res.members] == ["sgd", "adam", "sgd", "adam"]
    cfg = res.config
    for m in res.members[:2]:
        own = cfg.member_config(m.id)
        hp = sweepjax.HParams.of([m])
        alone = train_population(ds, hp, own.model, own.train, member_ids=np.array([m.id]))
        i = [r.id for r in res.members].index(m.id)
        np.testing.assert_allclose(alone.curves.val_acc[0], res.curves.val_acc[i], atol=1e-6)
        np.testing.assert_allclose(alone.curves.train_loss[0], res.curves.train_loss[i], rtol=1e-5)
        assert float(alone.best_val_acc[0]) == pytest.approx(m.best_val_acc, abs=1e-6)


@pytest.mark.slow
def test_the_choice_is_stored_and_read_back(swept):
    res, store, _ = swept
    with Store.open(store) as s:
        back = s.load_sweep(res.sweep_id)
    assert [m.choice for m in back.members] == [m.choice for m in res.members]
    assert back.choices_json() == res.choices_json()
    doc = json.loads(json.dumps(back.to_json()))
    assert doc["choices"]["axes"] == OPT and len(doc["choices"]["values"]) == 2
    assert doc["members"][1]["choice"] == {"optimizer": "adam"}
    html = Path(write_report_hook(back, Store.open(store))).read_text()
    assert "Categorical values: optimizer" in html and "best val acc ± SE" in html


@pytest.mark.slow
def test_resume_inside_the_second_part_is_exact(ds, swept, tmp_path):
    res, _, _ = swept
    calls = []

    def stop():  # 4 blocks per part: stop after the second part's first
        calls.append(1)
        return len(calls) == 5

    store = str(tmp_path / "r.db")
    kw = dict(dataset=ds, choices=OPT, lr=(1e-2, 0.5), store=store, **KW)
    with pytest.raises(SweepInterrupted, match="step 10/40"):
        sweepjax.coarse(callbacks=Callbacks(stop=stop), **kw)
    with Store.open(store) as s:  # the second part's checkpoint carries the first part
        (blob,) = s.conn.execute("SELECT blob FROM checkpoints").fetchone()
    assert len(serialization.msgpack_restore(blob)["parts"]) == 1
    resumed = sweepjax.coarse(resume=True, **kw)
    assert resumed.members == res.members
    np.testing.assert_array_equal(resumed.curves.val_acc, res.curves.val_acc)
    # A kill right after the first part's last checkpoint (stored at its end, before the
    # second part wrote one): resume rebuilds the first part from it and trains the second.
    first = serialization.msgpack_restore(serialization.msgpack_restore(blob)["parts"][0])
    with pytest.raises(SweepInterrupted):
        sweepjax.coarse(callbacks=Callbacks(stop=lambda: True), name="k", **kw)
    with Store.open(store) as s:  # the first part's end, as its own throttled save wrote it
        s.conn.execute(
            "UPDATE checkpoints SET step=?, blob=? WHERE sweep='k'",
            (first["step"], first["checkpoint"]),
        )
    again = sweepjax.coarse(resume=True, name="k", **kw)
    assert again.members == res.members
    # Interrupted inside the first part: it continues, and the second trains from scratch.
    calls.clear()
    with pytest.raises(SweepInterrupted, match="step 30/40"):
        sweepjax.coarse(
            callbacks=Callbacks(stop=lambda: len(calls) == 2 or calls.append(1)), name="p", **kw
        )
    assert sweepjax.coarse(resume=True, name="p", **kw).members == res.members


# ---------------------------------------------------------------------------- verdicts
def _scores(accs: list[list[float]], se: float):
    acc = np.concatenate([np.asarray(a) for a in accs])
    value_of = np.concatenate([np.full(len(a), v) for v, a in enumerate(accs)])
    n = len(acc)
    return compare(
        ["sgd", "adam"], value_of, acc, np.zeros(n), np.full(n, se), ["ok"] * n, np.arange(n)
    )


def test_clearly_separated_values_one_is_better_overlapping_ones_are_tied():
    far = _scores([[0.80, 0.85, 0.86], [0.90, 0.95, 0.93]], se=0.005)
    assert [s.verdict for s in far] == ["worse", "best"] and far[1].acc == 0.95
    line = verdict_line("optimizer", far)
    assert line == "optimizer adam vs sgd: adam better by 0.090 (0.950 ± 0.005 vs 0.860 ± 0.005)"
    # 0.912 vs 0.905 with SEs 0.006: the difference is 0.8 SE of a difference (z = 1.645)
    near = _scores([[0.905, 0.80], [0.912, 0.70]], se=0.006)
    assert [s.verdict for s in near] == ["tied", "best"]
    assert verdict_line("optimizer", near) == (
        "optimizer adam vs sgd: tied (0.912 ± 0.006 vs 0.905 ± 0.006)"
    )


def test_the_verdict_over_many_seeds_keeps_the_truth():
    """Two values 0.08 apart (5.7 SE of a difference) measured with SE 0.01: "better"
    every time; the same value twice: "tied" in at least 85% of 200 draws (expected 90%:
    with two values Gupta's constant is 1.645, P(|Z| <= 1.645) = 0.90)."""
    rng = np.random.default_rng(0)
    tied = 0
    for _ in range(200):
        a, b = rng.normal(0.93, 0.01, 3), rng.normal(0.85, 0.01, 3)
        assert [s.verdict for s in _scores([b, a], 0.01)] == ["worse", "best"]
        same = _scores([rng.normal(0.9, 0.01, 1), rng.normal(0.9, 0.01, 1)], 0.01)
        tied += sorted(s.verdict for s in same) == ["best", "tied"]
    assert tied >= 170


def _member(i: int, acc: float, status="ok") -> MemberRecord:
    return MemberRecord(
        i, 0.1, 1e-4, 1.0, status, None, acc, 10, 0.3, 0.3, acc, acc, val_acc_se=0.005
    )


def test_fine_keeps_the_tied_values_and_drops_the_clearly_worse():
    ch = normalise_choices({"optimizer": ["sgd", "momentum", "adam"]})
    cfg = sweep_config(trials=6, choices=ch)
    # ids 0..5: configs 0, 3 sgd; 1, 4 momentum; 2, 5 adam
    accs = [0.80, 0.903, 0.91, 0.81, 0.90, 0.905]
    parent = sweepjax.SweepResult(
        "c1", "coarse", None, {}, {}, cfg, [_member(i, a) for i, a in enumerate(accs)], None,
        [], None,
    )  # fmt: skip
    spec = SweepSpec.create("fine")
    merged = spec.replace(choices={"optimizer": ["sgd", "momentum", "adam"]})
    out, note = kept_choices(spec, merged, parent)
    assert out.choices == (("optimizer", ("momentum", "adam")),) and out.optimizer == "momentum"
    assert note.startswith("fine choices from c1: drops sgd (sgd worse; momentum tied; adam best")
    given = SweepSpec.create("fine", choices={"optimizer": ["sgd"]})
    assert kept_choices(given, given, parent) == (given, None)
    fixed = SweepSpec.create("fine", optimizer="adam")  # an optimizer given fixes it
    out, note = kept_choices(fixed, fixed.replace(choices=merged.choices), parent)
    assert out.choices is None and note == "fine choices: none (optimizer given)"


def test_values_compared_by_a_lower_is_better_metric_keep_its_direction_and_units():
    """With ``metric="mse"`` the value whose best member has the LOWEST error is best,
    and the line shows the errors in their own units (not negated)."""
    from sweepjax.config import TrainConfig
    from sweepjax.results.choice_verdict import choice_line, choice_scores

    ch = normalise_choices({"optimizer": ["sgd", "adam"]})
    cfg = sweep_config(trials=4, choices=ch, train=TrainConfig(metric="mse"))
    errs = [30.0, 21.0, 32.0, 25.0]  # ids 0, 2 sgd (best 30); 1, 3 adam (best 21)
    members = [_member(i, e) for i, e in enumerate(errs)]
    scores = choice_scores(members, cfg)
    assert [(s.label, s.verdict, s.acc) for s in scores] == [
        ("sgd", "worse", 30.0),
        ("adam", "best", 21.0),
    ]
    assert choice_line(members, cfg) == (
        "optimizer adam vs sgd: adam better by 9.000 (21.000 ± 0.005 vs 30.000 ± 0.005)"
    )


def test_the_optuna_export_writes_the_choice_as_a_categorical_parameter():
    cfg = sweep_config(trials=2, choices=normalise_choices(OPT))
    members = [
        dataclasses.replace(_member(i, a), choice=cfg.member_choice(i))
        for i, a in enumerate([0.9, 0.8])
    ]
    res = sweepjax.SweepResult(
        "c1", "coarse", None, {}, {"lr": [1e-3, 1.0], "l2": [1e-6, 1.0]}, cfg, members,
        None, [], None,
    )  # fmt: skip
    assert param_axes(res)["optimizer"].choices == ("sgd", "adam")
    specs = trial_specs(res)
    assert [t.params["optimizer"] for t in specs] == ["sgd", "adam"]
    assert "optimizer" not in specs[0].user_attrs
    # TensorBoard: a string hparam, not an interval; the CSV: a column per axis
    assert [r.hparams["optimizer"] for r in run_specs(res)] == ["sgd", "adam"]
    assert [a.name for a in hparam_axes(res)] == ["lr", "l2"]
    rows = to_csv_text(res).splitlines()
    assert rows[0].endswith(",optimizer") and rows[2].endswith(",adam")


# ----------------------------------------------------------------------- activations
@pytest.mark.parametrize("act", ["relu", "gelu", "tanh"])
def test_the_mlps_activation_against_numpy(act):
    net = build_network(ModelConfig("mlp", hidden=5, activation=act), 3)
    p = net.init(jax.random.key(0), 4, sweepjax.HParams.create(lr=[0.1], l2=0.0).take(0))
    x = np.random.default_rng(0).normal(size=(4, 7)).astype(np.float32)  # [D, B]
    h = np.asarray(p["hidden"]["kernel"]) @ x + np.asarray(p["hidden"]["bias"])[:, None]
    f = {
        "relu": lambda z: np.maximum(z, 0),
        "tanh": np.tanh,
        "gelu": lambda z: 0.5 * z * (1 + np.tanh(np.sqrt(2 / np.pi) * (z + 0.044715 * z**3))),
    }[act]
    want = np.asarray(p["out"]["kernel"]) @ f(h) + np.asarray(p["out"]["bias"])[:, None]
    got = jax.jit(lambda p, x: net.logits_t(p, x, None))(p, x)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-5, atol=1e-6)
    if act != "relu":
        with pytest.raises(ConfigError, match=f"softmax takes activation relu, not {act}"):
            ModelConfig("softmax", activation=act)


@pytest.mark.slow
def test_the_cli_sweeps_two_optimizers_on_the_bundled_sample(tmp_path, capsys):
    """``coarse --choice optimizer=sgd,adam --trials 16 --steps 60``: 8 members each, the
    choice in every member's JSON, the values judged; `show` prints the column and line."""
    store = str(tmp_path / "c.db")
    argv = ["coarse", "--dataset", "mnist-sample", "--choice", "optimizer=sgd,adam"]
    argv += ["--trials", "16", "--steps", "60", "--store", store, "--no-report"]
    assert main([*argv, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["choice"]["optimizer"] for m in doc["members"]] == ["sgd", "adam"] * 8
    values = {v["label"]: v for v in doc["choices"]["values"]}
    assert values["sgd"]["members"] == values["adam"]["members"] == 8
    assert {v["verdict"] for v in values.values()} <= {"best", "tied", "worse"}
    assert doc["choices"]["verdict"].startswith("optimizer ")
    assert doc["winner"]["val_acc"] > 0.8
    assert main(["show", "c1", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "choice  status" in out and "choices: optimizer " in out


@pytest.mark.slow
def test_widths_and_activations_under_halving_then_fine(ds, tmp_path):
    """Four programs (two compiled widths x two activations) under halving inside each
    part: a part that ends early merges with NaN columns; each member's width is its
    choice; the winner is scored and refit with its own network; fine runs on."""
    store = str(tmp_path / "w.db")
    ch = {"hidden": [4, 8], "activation": ["relu", "tanh"]}
    kw = {**KW, "schedule": "halving", "trials": 8}
    c = sweepjax.coarse(dataset=ds, model="mlp", choices=ch, store=store, **kw)
    assert all(m.hidden == m.choice["hidden"] for m in c.members)
    assert np.isfinite(c.winner.test_acc) and len(c.choices_json()["values"]) == 4
    f = sweepjax.fine(dataset=ds, store=store, steps=40, report=False)
    kept = dict(f.config.choices)
    assert set(kept) == {"hidden", "activation"} and all(kept.values())
    assert np.isfinite(f.winner.refit_test_acc)


@pytest.mark.slow
def test_the_worked_example_runs(tmp_path, capsys):
    """examples/categorical.py, shortened: four programs in each round, fine keeps tied."""
    from examples import categorical

    c, f = categorical.main(str(tmp_path / "e.db"), trials=8, steps=30, fine_steps=30)
    assert len(c.choices_json()["values"]) == 4 and f.parent == c.sweep_id
    assert "optimizer+activation" in capsys.readouterr().out


@pytest.mark.slow
def test_a_choice_sweep_carries_own_hyperparameters_and_a_regressions_se(tmp_path):
    """The parts merge every column a member has: a user's own hyperparameter, and for
    a regression the per-example SE of each member's MSE; the winner is the lowest
    error of the finished members."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 5)).astype(np.float32)
    y = (x @ np.arange(1.0, 6.0) + rng.normal(0.0, 0.5, 400)).astype(np.float32)
    res = sweepjax.coarse(
        x_train=x, y_train=y, metric="mse", choices={"optimizer": ["sgd", "adam"]},
        hparams={"temper": (0.5, 2.0, "log")}, trials=8, steps=40, lr=(1e-3, 1e-1),
        store=str(tmp_path / "s.db"), report=False, schedule="full",
    )  # fmt: skip
    ms = res.members
    assert sorted({m.choice["optimizer"] for m in ms}) == ["adam", "sgd"]
    assert all(0.5 <= m.hparams["temper"] <= 2.0 for m in ms)
    done = [m for m in ms if m.status == "ok"]
    assert all(m.val_acc_se is not None and m.val_acc_se > 0 for m in done)
    assert res.winner.val_acc == min(m.best_val_acc for m in done)
    back = sweepjax.load(str(tmp_path / "s.db"), res.sweep_id)
    assert [m.hparams for m in back.members] == [m.hparams for m in ms]


@pytest.mark.slow
def test_live_views_show_each_parts_members_under_the_sweeps_ids(ds, tmp_path):
    """While a choice sweep (sgd, adam; halving) runs, watch's snapshot names the
    running part's members by the sweep's ids with their own lr, and the live Optuna
    study gets each pruned member as it is stopped, with its categorical value: the
    rows the finished sweep stores."""
    import sqlite3

    from sweepjax.store.live import newest_payload

    optuna = pytest.importorskip("optuna")
    store, url = tmp_path / "s.db", f"sqlite:///{tmp_path / 'o.db'}"
    seen, studied = [], []

    def progress(sid, rep):
        with sqlite3.connect(store) as conn:
            snap = newest_payload(conn, sid).snapshot
        seen.append((snap.member, snap.lr, [c.member for c in snap.curves]))
        studied.extend(optuna.load_study(study_name=sid, storage=url).get_trials())

    kw = {**KW, "schedule": "halving", "trials": 8}
    res = sweepjax.coarse(
        dataset=ds, choices=OPT, lr=(1e-2, 0.5), store=store, optuna_storage=url,
        callbacks=Callbacks(progress=progress), **kw,
    )  # fmt: skip
    by_id = {m.id: m for m in res.members}
    parts = []  # each snapshot: one part's members (one optimizer), their lr (4 digits)
    for ids, lrs, drawn in seen:
        assert ids and set(drawn) <= set(ids)
        parts.append({by_id[i].choice["optimizer"] for i in ids})
        for i, lr in zip(ids, lrs, strict=True):
            assert lr == pytest.approx(by_id[i].lr, rel=1e-3)
    assert sorted(parts[0] | parts[-1]) == ["adam", "sgd"] and all(len(p) == 1 for p in parts)
    # written live: pruned members of both parts, as the finished sweep has them
    live = {t.user_attrs["member"]: t for t in studied}
    assert {by_id[i].choice["optimizer"] for i in live} == {"sgd", "adam"}
    for i, t in live.items():
        assert by_id[i].status == "stopped" and t.state.name == "PRUNED"
        assert t.params["optimizer"] == by_id[i].choice["optimizer"]
        assert t.params["lr"] == pytest.approx(by_id[i].lr, rel=1e-6)
    final = optuna.load_study(study_name=res.sweep_id, storage=url).get_trials()
    assert sorted(t.user_attrs["member"] for t in final) == sorted(by_id)
