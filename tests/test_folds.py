"""--folds K: K-fold cross-validation as a member axis (train + validation pooled; the
shared minibatch with per-member row weights; each member scored on its own fold)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sweepjax import engine
from sweepjax.cli import main
from sweepjax.config import ModelConfig
from sweepjax.data import folds
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError
from sweepjax.flows.sweep_config import group_shape
from tests.helpers import toy_dataset, toy_train_config

SOFTMAX = ModelConfig(kind="softmax")
CFG = toy_train_config()
K = 3


@pytest.mark.parametrize("n,k,seed", [(10, 3, 0), (800, 3, 1), (801, 5, 2), (7, 7, 3), (9, 2, 4)])
def test_folds_partition_the_rows_exactly(n, k, seed):
    """Every row in exactly one fold of [0, k); fold sizes differ by at most 1 and add to
    n; the assignment is a function of the seed alone."""
    f = folds.assign(n, k, seed)
    assert f.shape == (n,) and f.min() >= 0 and f.max() < k
    sizes = np.bincount(f, minlength=k)
    assert sizes.sum() == n and sizes.max() - sizes.min() <= 1
    masks = np.stack([f == j for j in range(k)])
    assert (masks.sum(axis=0) == 1).all()  # disjoint and covering
    np.testing.assert_array_equal(f, folds.assign(n, k, seed))


def test_pool_keeps_the_test_set_and_pools_train_and_validation():
    ds = toy_dataset()
    pooled, spec = folds.pool(ds, K, 0)
    np.testing.assert_array_equal(pooled.x_train, np.concatenate([ds.x_train, ds.x_val]))
    np.testing.assert_array_equal(pooled.y_val, np.concatenate([ds.y_train, ds.y_val]))
    np.testing.assert_array_equal(pooled.x_test, ds.x_test)
    assert spec.k == K and spec.train.shape == (800,) and (spec.train == spec.val).all()


def _pooled_runs():
    ds = toy_dataset()
    pooled, spec = folds.pool(ds, K, 0)
    # Fold 1's rows made distinctive: labels shifted, features replaced by noise.
    held = spec.train == 1
    rng = np.random.default_rng(9)
    x2, y2 = pooled.x_train.copy(), pooled.y_train.copy()
    x2[held] = rng.normal(0.0, 2.0, size=x2[held].shape).astype(np.float32)
    y2[held] = (y2[held] + 1) % 4
    other = pooled._replace(x_train=x2, y_train=y2, x_val=x2, y_val=y2)
    hp = HParams.create(lr=np.full(K, 0.3), l2=1e-4)
    ids = np.arange(K)  # member i holds out fold i
    a = engine.train_population(pooled, hp, SOFTMAX, CFG, member_ids=ids, folds=spec)
    b = engine.train_population(other, hp, SOFTMAX, CFG, member_ids=ids, folds=spec)
    return pooled, spec, a, b


@pytest.fixture(scope="module")
def runs():
    return _pooled_runs()


def test_a_member_never_trains_on_its_held_out_fold(runs):
    """Rewriting every row of fold 1 (labels and features) leaves member 1 (which holds
    it out) bit-identical: its parameters and training-loss curve, i.e. those rows'
    contribution to its loss and gradient is exactly zero. Members 0 and 2, which train
    on fold 1, change."""
    _, _, a, b = runs
    ka, kb = a.params["out"]["kernel"], b.params["out"]["kernel"]
    np.testing.assert_array_equal(ka[1], kb[1])
    np.testing.assert_array_equal(a.curves.train_loss[1], b.curves.train_loss[1])
    np.testing.assert_array_equal(a.curves.train_acc[1], b.curves.train_acc[1])
    for i in (0, 2):
        assert np.abs(ka[i] - kb[i]).max() > 1e-3


def test_a_member_is_scored_on_its_held_out_fold_only(runs):
    """Each member's final validation accuracy equals the accuracy of its final
    parameters on the rows of its own fold (abs 1e-6)."""
    pooled, spec, a, _ = runs
    for i in range(K):
        p = engine.member_params(a, i, best=False)
        rows = spec.val == i
        want = engine.accuracy(p, SOFTMAX, 4, pooled.x_val[rows], pooled.y_val[rows])
        assert a.final_val_acc[i] == pytest.approx(want, abs=1e-6)


@pytest.mark.slow
def test_the_weighted_step_is_the_mean_over_the_rows_a_member_may_see():
    """One SGD step by hand: the member's first minibatch objective is the mean
    cross-entropy over the minibatch rows outside its fold (NumPy), not over all rows."""
    import jax

    from sweepjax.engine import member
    from sweepjax.engine.setup import init_states, root_keys, static

    ds = toy_dataset()
    pooled, spec = folds.pool(ds, K, 0)
    hp = HParams.create(lr=[0.1], l2=0.0)
    st = static(pooled, SOFTMAX, CFG, folds=True)
    s0 = jax.tree.map(lambda a: a[0], init_states(pooled, hp, SOFTMAX, CFG, [2]))
    w = np.random.default_rng(0).normal(size=(4, 20)).astype(np.float32)  # not ~0: spread
    s0 = s0._replace(params={"out": {**s0.params["out"], "kernel": w}})
    _, data_key = root_keys(CFG.seed)
    own = member.Own(s0, hp.take(0), np.int32(2), np.int32(0))
    shared = member.Shared(
        pooled.x_train, pooled.y_train, spec.train, np.int32(0), np.int32(CFG.steps), data_key
    )
    _, metrics = member.step(own, shared, st)
    loss = metrics.loss
    idx = np.asarray(member.minibatch_indices(data_key, 0, st.batch_size, 800))
    keep = spec.train[idx] != 2
    assert 0 < keep.sum() < len(idx)
    z = pooled.x_train[idx] @ w.T + s0.params["out"]["bias"]
    z = z - z.max(axis=1, keepdims=True)
    ce = np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(idx)), pooled.y_train[idx]]
    assert float(loss) == pytest.approx(ce[keep].mean(), rel=1e-5)
    assert abs(ce[keep].mean() - ce.mean()) > 1e-2


def test_folds_flag_checks():
    assert (
        group_shape(None, 3) == (3, 3)
        and group_shape(3, 3) == (3, 3)
        and group_shape(2, None) == (2, 0)
    )
    with pytest.raises(ConfigError, match="one replica per fold"):
        group_shape(2, 3)
    with pytest.raises(ConfigError, match=">= 2"):
        group_shape(None, 1)


@pytest.mark.slow
def test_cli_folds_reports_the_mean_over_folds(tmp_path, capsys):
    """coarse --folds 3 on mnist-sample (4 configs = 12 members): member c * 3 + r holds
    out fold r; each config's mean_val_acc is the mean of its 3 members' best accuracies
    (each on its own fold), std their population SD; the winner is a config; `show`
    names the cross-validation."""
    store = str(tmp_path / "s.db")
    argv = ["coarse", "--dataset", "mnist-sample", "--trials", "4", "--folds", "3",
            "--steps", "60", "--batch-size", "64", "--no-report", "--schedule", "full",
            "--store", store, "--format", "json"]  # fmt: skip
    capsys.readouterr()
    assert main(argv) == 0
    doc = json.loads(capsys.readouterr().out)
    by_id = {m["id"]: m for m in doc["members"]}
    assert len(doc["configs"]) == 4
    for c in doc["configs"]:
        assert [by_id[i]["replica"] for i in c["members"]] == [0, 1, 2]
        a = np.array([by_id[i]["best_val_acc"] for i in c["members"]])
        assert c["mean_val_acc"] == pytest.approx(a.mean(), abs=1e-9)
        assert c["std_val_acc"] == pytest.approx(a.std(), abs=1e-9)
    ok = [c for c in doc["configs"] if c["status"] == "ok"]
    best = max(ok, key=lambda c: c["mean_val_acc"])
    assert doc["winner"]["config"] == best["id"]
    assert doc["winner"]["val_acc"] == pytest.approx(best["mean_val_acc"])
    assert main(["show", doc["sweep_id"], "--store", store]) == 0
    assert "4 configs x 3-fold cross-validation" in capsys.readouterr().out
