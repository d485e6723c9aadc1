"""--replicas: R seeds of each sampled config as extra members of the same program;
results grouped by config (scikit-learn's ``cv_results_``); schedulers decide whole
configs."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sweepjax import engine
from sweepjax.cli import main
from sweepjax.config import ModelConfig, SearchSpace
from sweepjax.engine import compact
from sweepjax.engine.hparams import HParams
from sweepjax.flows.runner import replicate
from sweepjax.results.config_groups import config_se, group_configs
from sweepjax.results.records import MemberRecord
from sweepjax.schedulers import rules as schedule
from tests.helpers import toy_dataset, toy_train_config

SOFTMAX = ModelConfig(kind="softmax")
CFG = toy_train_config()


@pytest.fixture(scope="module")
def ds():
    return toy_dataset()


def test_replicate_layout():
    """Row c * R + r is replica r of config c: the config's values, id ids[c] * R + r."""
    hp = HParams.create(lr=[0.1, 0.2, 0.3], l2=[1e-3, 1e-4, 1e-5])
    rep, ids = replicate(hp, np.arange(3), 2)
    assert ids.tolist() == [0, 1, 2, 3, 4, 5]
    np.testing.assert_array_equal(rep.lr, np.float32([0.1, 0.1, 0.2, 0.2, 0.3, 0.3]))
    np.testing.assert_array_equal(rep.l2, np.float32([1e-3, 1e-3, 1e-4, 1e-4, 1e-5, 1e-5]))
    same, ids1 = replicate(hp, np.arange(3), 1)
    assert same is hp and ids1.tolist() == [0, 1, 2]


@pytest.mark.slow
def test_replica_equals_a_separate_run_of_its_config_with_its_seed(ds):
    """Replica r of config c, trained among 4 configs x 2 replicas, equals the config
    trained alone with member id c * 2 + r (its seed): params rtol 1e-4 / atol 1e-5,
    curves as tests/test_train.py. Replicas of one config start from different weights
    and end apart."""
    hp = HParams.create(lr=np.geomspace(1e-2, 0.5, 4), l2=np.geomspace(1e-5, 1e-2, 4))
    rep, ids = replicate(hp, np.arange(4), 2)
    pop = engine.train_population(ds, rep, SOFTMAX, CFG, member_ids=ids)
    for c, r in ((1, 0), (2, 1)):
        row = c * 2 + r
        alone = engine.train_population(ds, hp.take([c]), SOFTMAX, CFG, member_ids=[row])
        np.testing.assert_allclose(
            alone.params["out"]["kernel"][0],
            pop.params["out"]["kernel"][row],
            rtol=1e-4,
            atol=1e-5,
        )
        np.testing.assert_allclose(alone.curves.val_acc[0], pop.curves.val_acc[row], atol=1e-6)
        np.testing.assert_allclose(
            alone.curves.train_loss[0], pop.curves.train_loss[row], rtol=1e-4
        )
    k = pop.params["out"]["kernel"]
    assert np.abs(k[2] - k[3]).max() > 1e-3  # replicas 0 and 1 of config 1 differ


def _member(i, acc, status="ok", loss=0.5, config=None, replica=None, stopped_at=None):
    return MemberRecord(
        i, 0.1, 1e-3, 1.0, status, None, acc, 10, 0.4, loss, 0.9, acc, None, stopped_at,
        config=config, replica=replica,
    )  # fmt: skip


def test_group_configs_mean_std_rank_and_se():
    """Per config: mean and population std (ddof 0, as scikit-learn) over replicas; rank 1
    = best mean among finished configs; SE = hypot(sample SD / sqrt(R), binomial SE of
    the mean on the n shared validation rows); with folds max(SD / sqrt(K), binomial on
    all pooled rows)."""
    accs = {0: [0.80, 0.84, 0.82], 1: [0.90, 0.86, 0.88], 2: [0.95, 0.97, 0.96]}
    members = [
        _member(c * 3 + r, a, config=c, replica=r, status="stopped" if c == 2 else "ok")
        for c, row in accs.items()
        for r, a in enumerate(row)
    ]
    got = group_configs(members, 1000, folds=False)
    assert [c.members for c in got] == [[0, 1, 2], [3, 4, 5], [6, 7, 8]]
    # SEs by hand. Config 0: sample SD 0.02 -> 0.02 / sqrt(3) = 0.0115470; binomial with
    # p = (0.82 * 1000 + 0.5) / 1001 = 0.8196803: sqrt(p (1 - p) / 1000) = 0.0121575;
    # hypot -> 0.0167672. Config 1: SD 0.02, p = 880.5 / 1001 -> 0.0102902 -> 0.0154668.
    # Config 2: SD 0.01 -> 0.0057735, p = 960.5 / 1001 -> 0.0062308 -> 0.0084945.
    want_se = {0: 0.0167672, 1: 0.0154668, 2: 0.0084945}
    for c in got:
        a = np.array(accs[c.id])
        assert c.mean_val_acc == pytest.approx(a.mean(), abs=1e-12)
        assert c.std_val_acc == pytest.approx(a.std(), abs=1e-12)
        assert c.val_acc_se == pytest.approx(want_se[c.id], rel=1e-5)
    # config 2 has the best mean but was stopped: finished configs rank first
    assert [c.rank_val_acc for c in got] == [2, 1, 3]
    assert [c.status for c in got] == ["ok", "ok", "stopped"]
    # Folds: max(SD / sqrt(K), binomial on 3000 pooled rows). Config 1: the SD term
    # 0.0115470 beats p = 2640.5 / 3001 -> 0.0059357; two equal folds leave the floor.
    assert config_se(np.array(accs[1]), 3000, folds=True) == pytest.approx(0.0115470, rel=1e-5)
    assert config_se(np.array([0.88, 0.88]), 3000, folds=True) == pytest.approx(0.0059357, rel=1e-4)
    assert group_configs([_member(0, 0.5)], 1000, False) == []  # plain sweep: no configs


def _view(loss, acc, alive=None, r=3):
    n = len(loss)
    return schedule.RungView(
        step=10,
        rows=np.arange(n),
        val_loss=np.asarray(loss, float),
        val_acc=np.asarray(acc, float),
        alive=np.ones(n, bool) if alive is None else np.asarray(alive),
        hparams=HParams.create(lr=np.repeat(np.geomspace(1e-3, 1, n // r), r), l2=1e-3),
    )


def test_grouped_halving_keeps_or_stops_whole_configs_by_mean_loss():
    """6 configs x 3 replicas, eta 3: the 2 configs of lowest MEAN loss keep all their
    replicas; config 5 holds the single best member (loss 0.1) but the worst-but-one mean
    and is stopped whole; a config with one diverged replica (inf loss) ranks last."""
    loss = np.array(
        [[1.0, 1.1, 1.2], [0.5, 0.6, 0.7], [0.8, 0.8, 0.8], [0.3, 0.4, np.nan], [0.6, 0.5, 0.4],
         [0.1, 2.0, 2.0]]
    )  # fmt: skip
    alive = np.isfinite(loss)
    view = _view(loss.ravel(), 1 - loss.ravel() / 3, alive.ravel())
    g = schedule.Grouped(schedule.Halving(rungs=1, eta=3, total=30), 3)
    d = g.decide(view)
    assert sorted(d.rows.tolist()) == [3, 4, 5, 12, 13, 14]  # configs 1 and 4
    np.testing.assert_array_equal(d.src, d.rows)  # each keeps its own state
    assert set((d.rows // 3).tolist()) == {1, 4}
    for c in (1, 4):  # all replicas of a kept config, none of a stopped one
        assert sum(d.rows // 3 == c) == 3


def test_grouped_pbt_copies_whole_configs_replica_by_replica():
    """PBT over 5 configs x 2 replicas (fraction 0.2: one config copies one): the worst
    config's replica r takes the state of replica r of the best config; both replicas
    get the same perturbed values; every other slot keeps its state and values."""
    loss = np.array([[0.5, 0.6], [0.2, 0.3], [0.9, 0.8], [0.4, 0.4], [0.7, 0.7]]).ravel()
    view = _view(loss, 1 - loss, r=2)
    space = SearchSpace()
    g = schedule.Grouped(schedule.PBT(interval=10, total=40, space=space, seed=0), 2)
    d = g.decide(view)
    np.testing.assert_array_equal(d.rows, np.arange(10))
    want = np.arange(10)
    want[[4, 5]] = [2, 3]  # config 2 (worst mean) <- config 1 (best), replica by replica
    np.testing.assert_array_equal(d.src, want)
    assert d.hparams.lr[4] == d.hparams.lr[5] and d.hparams.l2[4] == d.hparams.l2[5]
    assert d.hparams.lr[4] != view.hparams.lr[2]  # perturbed (0.8x or 1.2x)
    keep = np.setdiff1d(np.arange(10), [4, 5])
    np.testing.assert_array_equal(d.hparams.lr[keep], view.hparams.lr[keep])


def test_grouped_hyperband_deals_configs_to_brackets():
    """Hyperband built over 9 configs x 2 replicas: both replicas of a config share its
    bracket, and a rung keeps or stops them together."""
    hb = schedule.make(
        "hyperband",
        num_members=9,
        total=27,
        space=SearchSpace(),
        seed=0,
        eta=3,
        rungs=2,
        replicas=2,
    )
    assert isinstance(hb, schedule.Grouped)
    rng = np.random.default_rng(0)
    loss = rng.random(18)
    for step in hb.decision_steps():
        view = _view(loss, 1 - loss, r=2)._replace(step=step)
        d = hb.decide(view)
        kept = d.rows // 2
        for c in np.unique(kept):
            assert sorted(d.rows[kept == c] % 2) == [0, 1]


@pytest.mark.slow
def test_cli_replicas_json_and_grouped_show(tmp_path, capsys):
    """coarse --replicas 3 on mnist-sample (4 configs = 12 members): the JSON has a
    "configs" list whose mean/std are those of its members' best_val_acc, member ids
    c * 3 + r; the winner is the finished config of best mean (its val_acc the mean);
    `show` prints the grouped table (mean +/- std per config)."""
    store = str(tmp_path / "s.db")
    argv = ["coarse", "--dataset", "mnist-sample", "--trials", "4", "--replicas", "3",
            "--steps", "60", "--batch-size", "64", "--no-report", "--schedule", "full",
            "--store", store, "--format", "json"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    assert len(doc["members"]) == 12 and len(doc["configs"]) == 4
    by_id = {m["id"]: m for m in doc["members"]}
    for c in doc["configs"]:
        assert c["members"] == [c["id"] * 3 + r for r in range(3)]
        a = np.array([by_id[i]["best_val_acc"] for i in c["members"]])
        assert c["mean_val_acc"] == pytest.approx(a.mean(), abs=1e-9)
        assert c["std_val_acc"] == pytest.approx(a.std(), abs=1e-9)
        assert {by_id[i]["config"] for i in c["members"]} == {c["id"]}
        assert len({(by_id[i]["lr"], by_id[i]["l2"]) for i in c["members"]}) == 1
    ok = [c for c in doc["configs"] if c["status"] == "ok"]
    best = max(ok, key=lambda c: c["mean_val_acc"])
    w = doc["winner"]
    assert w["config"] == best["id"] and w["val_acc"] == pytest.approx(best["mean_val_acc"])
    assert w["val_acc_se"] == pytest.approx(best["val_acc_se"])
    assert w["id"] in best["members"] and best["rank_val_acc"] == 1
    assert doc["tied"][0] == best["id"]
    assert main(["show", doc["sweep_id"], "--store", store]) == 0
    out = capsys.readouterr().out
    assert "4 configs x 3 replicas" in out and "mean val acc" in out
    assert f"winner: config {best['id']}" in out
    # A fine round inherits the parent's replicas (its box judged on the config means).
    fine = ["fine", "--from", doc["sweep_id"], "--trials", "4", "--steps", "60",
            "--no-refit", "--no-report", "--schedule", "full", "--store", store,
            "--format", "json"]  # fmt: skip
    assert main(fine) == 0
    child = json.loads(capsys.readouterr().out)
    assert len(child["members"]) == 12 and [len(c["members"]) for c in child["configs"]] == [3] * 4


def test_trainer_with_grouped_halving_stops_configs_whole(ds, monkeypatch):
    """train_population under Grouped(Halving) over 6 configs x 2 replicas: at the rung
    the best ceil(6/3) = 2 configs by mean whole-validation loss continue, both replicas
    each; every replica of a stopped config has the same stopped_at. (The policy's cut
    alone: no riders in the spare rows, tests/test_riders.py.)"""
    monkeypatch.setattr(compact, "RIDERS", False)
    hp = HParams.create(lr=np.geomspace(1e-3, 1.0, 6), l2=1e-4)
    rep, ids = replicate(hp, np.arange(6), 2)
    sched = schedule.make(
        "halving", num_members=6, total=CFG.steps, space=SearchSpace(), seed=0, rungs=1,
        replicas=2,
    )  # fmt: skip
    res = engine.train_population(ds, rep, SOFTMAX, CFG, member_ids=ids, scheduler=sched)
    stop = res.stopped_at.reshape(6, 2)
    assert (stop[:, 0] == stop[:, 1]).all()
    assert sorted(res.finished.tolist()) == sorted(
        (np.flatnonzero(stop[:, 0] < 0)[:, None] * 2 + np.arange(2)).ravel().tolist()
    )
    assert (stop[:, 0] < 0).sum() == 2
