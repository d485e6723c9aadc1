"""Any metric, either direction: a regression scored by MSE (lower is better) on a
linear target with known noise, against NumPy, and a user metric with its direction."""

from __future__ import annotations

from contextlib import redirect_stdout
from io import StringIO

import flax.linen as nn
import jax.numpy as jnp
import numpy as np
import pytest

import sweepjax
from sweepjax import engine
from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data import from_arrays
from sweepjax.engine import compact
from sweepjax.engine.hparams import HParams
from sweepjax.engine.member import Task, loss_and_accuracy
from sweepjax.errors import ConfigError
from sweepjax.metric import MSE, Metric, metric_name, resolve
from sweepjax.models import build_network

NOISE = 0.5  # the target's noise SD: the best possible MSE is NOISE**2 = 0.25
SOFTMAX = ModelConfig("softmax")  # with one output: linear regression


def _linear(n=1000, d=5, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    w = rng.normal(size=d)
    return x, 2.0 + 3.0 * (x @ w) + rng.normal(scale=NOISE, size=n)


@pytest.fixture(scope="module")
def reg():
    x, y = _linear()
    return from_arrays(x, y, seed=0)  # non-integral floats: real targets


def _cfg(metric="mse", steps=120):
    return TrainConfig(steps=steps, batch_size=128, chunk_steps=steps, metric=metric, seed=3)


def _hp():
    return HParams.create(lr=np.geomspace(3e-3, 0.5, 6), l2=1e-6)


@pytest.fixture(scope="module")
def pop(reg):
    return engine.train_population(reg, _hp(), SOFTMAX, _cfg())


def _numpy_mse(params, ds):
    """MSE of a one-output linear member in the targets' units: its output is the
    standardised target, mapped back with the training mean and std."""
    k, b = np.asarray(params["out"]["kernel"]), np.asarray(params["out"]["bias"])
    z = ds.x_val.astype(np.float64) @ k.T[:, 0] + b[0]
    pred = z * ds.info.target_scale + ds.info.target_mean
    return float(np.mean((pred - ds.y_val) ** 2))


def test_real_targets_are_a_one_output_regression(reg):
    assert reg.info.real and reg.info.num_classes == 1 and reg.y_train.dtype == np.float32
    np.testing.assert_allclose(reg.info.target_mean, reg.y_train.mean(), rtol=1e-5)
    np.testing.assert_allclose(reg.info.target_scale, reg.y_train.std(), rtol=1e-5)


@pytest.mark.slow
def test_mse_best_checkpoint_is_the_lowest_and_matches_numpy(reg, pop):
    for i in range(6):
        best = engine.member_params(pop, i, best=True)
        np.testing.assert_allclose(pop.best_val_acc[i], _numpy_mse(best, reg), rtol=2e-4)
        # the best checkpoint is the LOWEST error seen (val_subset covers the whole split)
        assert pop.best_val_acc[i] <= np.nanmin(pop.curves.val_acc[i]) * (1 + 1e-5)
    # the winner fits the truth: its error is the noise variance, within its SE
    win = float(np.nanmin(pop.best_val_acc))
    assert abs(win - NOISE**2) < 4 * NOISE**2 * np.sqrt(2 / reg.info.n_val)


@pytest.mark.slow
def test_member_in_population_equals_member_alone(reg, pop):
    i = 4
    alone = engine.train_population(reg, _hp().take([i]), SOFTMAX, _cfg(), member_ids=[i])
    np.testing.assert_allclose(alone.best_val_acc[0], pop.best_val_acc[i], rtol=1e-5)
    np.testing.assert_allclose(alone.curves.val_acc[0], pop.curves.val_acc[i], rtol=1e-5)


def test_npz_float_targets_read_as_a_regression(tmp_path):
    from sweepjax.data.npz import read_npz

    x, y = _linear(n=50)
    path = tmp_path / "r.npz"
    np.savez(path, x_train=x, y_train=y)
    raw = read_npz(path)  # non-whole floats: real targets, not refused as labels
    assert raw.train_labels.dtype == np.float32 and raw.classes is None
    whole = tmp_path / "w.npz"
    np.savez(whole, x_train=x, y_train=np.arange(50.0) % 3)
    assert read_npz(whole).train_labels.dtype.kind == "i"  # whole numbers: class ids
    assert read_npz(whole, targets="real").train_labels.dtype == np.float32  # --metric mse


def test_evaluation_second_moment_and_se_against_numpy(reg):
    net = build_network(SOFTMAX, 1)
    rng = np.random.default_rng(5)
    params = {"out": {"kernel": rng.normal(size=(1, 5)).astype(np.float32) * 0.3,
                      "bias": np.array([0.1], np.float32)}}  # fmt: skip
    task = Task(MSE, (reg.info.target_mean, reg.info.target_scale))
    xs = jnp.asarray(reg.x_val.T[None])
    ys, ms = jnp.asarray(reg.y_val[None]), jnp.ones((1, reg.info.n_val))
    _, mean, mean_sq = loss_and_accuracy(params, xs, ys, ms, net, None, task)
    k, b = np.asarray(params["out"]["kernel"]), np.asarray(params["out"]["bias"])
    pred = (reg.x_val @ k.T[:, 0] + b[0]) * reg.info.target_scale + reg.info.target_mean
    e2 = (pred.astype(np.float64) - reg.y_val) ** 2
    np.testing.assert_allclose(mean, e2.mean(), rtol=1e-4)
    np.testing.assert_allclose(mean_sq, np.mean(e2**2), rtol=1e-4)
    want = np.std(e2, ddof=1) / np.sqrt(len(e2))
    np.testing.assert_allclose(MSE.se(e2.mean(), np.mean(e2**2), len(e2)), want, rtol=1e-9)


def _neg_mse(out, y):
    return -jnp.square(out[:, 0] - y)


NEG_MSE = Metric("neg_mse", _neg_mse, higher_is_better=True, targets="real")
neg_mse = NEG_MSE  # importable by its name: --metric tests.test_metric:neg_mse


def test_a_metric_by_its_importable_name():
    m = resolve("tests.test_metric:neg_mse")
    assert m.name == "neg_mse" and m.higher_is_better and m.real
    assert metric_name("mse") == "mse" and metric_name(None) == "accuracy"


@pytest.mark.slow
def test_user_metric_with_its_direction_picks_the_same_checkpoints(reg, pop):
    """-MSE, higher is better, keeps exactly the checkpoints MSE (lower is better) keeps."""
    name = metric_name(NEG_MSE)
    assert resolve(name) is NEG_MSE
    neg = engine.train_population(reg, _hp(), SOFTMAX, _cfg(name))
    np.testing.assert_array_equal(neg.best_step, pop.best_step)
    np.testing.assert_allclose(neg.best_val_acc, -pop.best_val_acc, rtol=1e-6)


@pytest.mark.slow
def test_halving_keeps_the_lowest_errors_and_the_winner_is_the_lowest(tmp_path, monkeypatch):
    # The policy's cut alone: no riders in the last rung's spare rows (tests/test_riders.py).
    monkeypatch.setattr(compact, "RIDERS", False)
    x, y = _linear(seed=1)
    res = sweepjax.coarse(
        x_train=x, y_train=y, trials=9, steps=90, schedule="halving", eta=3, rungs=1,
        lr=[1e-3, 1.0], store=str(tmp_path / "s.db"), report=False, metric="mse",
    )  # fmt: skip
    mem = res.members
    assert res.config.train.metric == "mse"
    stopped = [m for m in mem if m.status == "stopped"]
    kept = [m for m in mem if m.status == "ok"]
    assert len(kept) == 3 and len(stopped) == 6
    rung = stopped[0].stopped_at
    col = int(np.flatnonzero(res.curves.step == rung)[0])
    at = {m.id: res.curves.val_acc[i, col] for i, m in enumerate(mem)}
    assert max(at[m.id] for m in kept) <= min(at[m.id] for m in stopped) * (1 + 1e-5)
    assert res.winner.val_acc == min(m.best_val_acc for m in kept)
    # the tied set is the best of the ranking: every tied member below every untied one
    tied = [m.best_val_acc for m in kept if m.id in res.tied]
    untied = [m.best_val_acc for m in kept if m.id not in res.tied]
    assert res.winner.id in res.tied and (not untied or max(tied) <= min(untied))
    # the winner's SE is its per-example squared errors' SD / sqrt(n), not a binomial one
    ds = from_arrays(x, y, seed=0)  # the sweep's split (same seed)
    k, b = (np.asarray(res.winner_params["out"][n], np.float64) for n in ("kernel", "bias"))
    pred = (ds.x_val @ k.T[:, 0] + b[0]) * ds.info.target_scale + ds.info.target_mean
    e2 = (pred - ds.y_val) ** 2
    np.testing.assert_allclose(res.winner.val_acc, e2.mean(), rtol=1e-4)
    want = np.std(e2, ddof=1) / np.sqrt(len(e2))
    np.testing.assert_allclose(res.winner.val_acc_se, want, rtol=1e-3)
    # Optuna minimizes it, and its best trial is the winner
    optuna = pytest.importorskip("optuna")
    from sweepjax.store.optuna_export import export_study

    url = f"sqlite:///{tmp_path / 'o.db'}"
    export_study(res, url, "reg")
    study = optuna.load_study(study_name="reg", storage=url)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    assert study.best_trial.value == pytest.approx(res.winner.val_acc)


@pytest.mark.slow
def test_cli_npz_with_float_targets(tmp_path):
    x, y = _linear(n=600, seed=2)
    path = tmp_path / "reg.npz"
    np.savez(path, x_train=x.astype(np.float32), y_train=y.astype(np.float32))
    argv = ["coarse", "--dataset", f"npz:{path}", "--metric", "mse", "--trials", "6"]
    argv += ["--steps", "60", "--store", str(tmp_path / "s.db"), "--no-report"]
    out = StringIO()
    with redirect_stdout(out):
        assert sweepjax.cli.main(argv) == 0
    text = out.getvalue()
    assert "best val mse" in text and "val mse (lowest first)" in text
    assert "winner: try" in text and "test mse" in text


def test_a_metric_that_does_not_fit_the_targets_is_refused(tmp_path):
    x, y = _linear(n=200)
    with pytest.raises(ConfigError, match="metric` accuracy scores class labels"):
        sweepjax.coarse(
            x_train=x, y_train=y, metric="accuracy", trials=2, steps=10,
            store=str(tmp_path / "s.db"), report=False,
        )  # fmt: skip
    with pytest.raises(ConfigError, match="unknown metric"):
        resolve("rmse")


def test_accuracy_stays_the_default_and_unstored():
    from tests.helpers import sweep_config

    cfg = sweep_config()
    assert cfg.metric.name == "accuracy" and "metric" not in cfg.as_dict()["train"]
    assert "targets" not in cfg.as_dict()["data"]


@pytest.mark.slow
def test_asha_and_fine_follow_the_stored_metric(tmp_path):
    x, y = _linear(n=800, seed=4)
    path = tmp_path / "r.npz"
    np.savez(path, x_train=x, y_train=y)
    store = str(tmp_path / "s.db")
    c = sweepjax.coarse(
        dataset=f"npz:{path}", trials=12, steps=90, schedule="asha", store=store,
        report=False, lr=[1e-3, 1.0],
    )  # fmt: skip
    assert c.config.train.metric == "mse"  # non-whole float targets: a regression
    ok = [m for m in c.members if m.status == "ok"]
    assert c.winner.val_acc == min(m.best_val_acc for m in ok)
    f = sweepjax.fine(parent=c.sweep_id, store=store, report=False, trials=6, steps=90)
    assert f.config.train.metric == "mse" and f.spec.metric == "mse"
    ok = [m for m in f.members if m.status == "ok"]
    assert f.winner.val_acc == min(m.best_val_acc for m in ok)
    assert f.winner.refit_test_acc < 2 * NOISE**2  # the refit's test MSE, in data units
    back = sweepjax.load(store, f.sweep_id)
    assert back.config.metric.name == "mse" and back.winner.val_acc == f.winner.val_acc


@pytest.mark.slow
def test_an_interrupted_regression_resumes_exactly(tmp_path):
    from sweepjax.flows.sweep import Callbacks, SweepInterrupted

    x, y = _linear(n=600, seed=6)
    path = tmp_path / "r.npz"
    np.savez(path, x_train=x, y_train=y)
    args = dict(dataset=f"npz:{path}", metric="mse", trials=9, steps=60, report=False)
    whole = sweepjax.coarse(**args, store=str(tmp_path / "a.db"))
    calls = []

    def stop():
        calls.append(1)
        return len(calls) >= 3

    store = str(tmp_path / "b.db")
    with pytest.raises(SweepInterrupted):
        sweepjax.coarse(**args, store=store, callbacks=Callbacks(stop=stop))
    back = sweepjax.coarse(**args, store=store, resume=True)
    assert back.config.train.metric == "mse"
    assert [m.best_val_acc for m in back.members] == [m.best_val_acc for m in whole.members]
    assert [m.val_acc_se for m in back.members] == [m.val_acc_se for m in whole.members]
    assert back.winner.id == whole.winner.id


class _Linear1(nn.Module):
    @nn.compact
    def __call__(self, x):  # [B, D] -> [B, 1]
        return nn.Dense(1)(x)


class _Linear0(nn.Module):
    @nn.compact
    def __call__(self, x):  # [B, D] -> [B]
        return nn.Dense(1)(x)[:, 0]


@pytest.mark.slow
def test_your_model_with_one_output_as_b_or_b1(reg):
    """A user's linen model returning ``[B, 1]`` or ``[B]`` is the same regression."""
    from sweepjax.models.custom import model_config

    got = [
        engine.train_population(reg, _hp(), model_config(m()), _cfg(steps=60)).best_val_acc
        for m in (_Linear1, _Linear0)
    ]
    np.testing.assert_array_equal(got[0], got[1])
    assert np.nanmin(got[0]) < 4 * NOISE**2


def test_tied_set_and_surface_with_lower_is_better():
    """Judged by MSE, the winner is the lowest error, the tied set those within Gupta's
    bound of it on their own SEs, and the verdict's optimum sits where errors are low:
    exactly the judgement of the negated errors as accuracy-like scores."""
    from sweepjax.analysis import verdict as vd
    from sweepjax.config import Range, SearchSpace
    from sweepjax.results.appraise import judge_members
    from sweepjax.results.records import MemberRecord

    space = SearchSpace(lr=Range(1e-3, 1.0), l2=Range(1e-6, 1e-2))
    rng = np.random.default_rng(0)
    u = rng.uniform(size=(40, 2))
    mse = 1.0 + 4.0 * (u[:, 0] - 0.6) ** 2 + 0.02 * rng.normal(size=40)  # best near u = 0.6
    se = 0.03 + 0.01 * rng.uniform(size=40)
    recs = [
        MemberRecord(
            id=i,
            lr=float(space.lr.from_unit(u[i, 0])),
            l2=float(space.l2.from_unit(u[i, 1])),
            lr_decay=1.0,
            status="ok",
            diverged_at=None,
            best_val_acc=float(mse[i]),
            best_step=10,
            final_train_loss=None,
            final_val_loss=float(mse[i]),
            final_train_acc=None,
            final_val_acc=None,
            val_acc_se=float(se[i]),
        )  # fmt: skip
        for i in range(40)
    ]
    a = judge_members(recs, space, 200, metric=MSE)
    assert a.winner == int(np.argmin(mse))
    want = vd.tied_set(-mse, mse, np.ones(40, bool), 200, se, ids=np.arange(40))
    np.testing.assert_array_equal(a.tied, want.tied)
    np.testing.assert_allclose(a.se, se)
    assert abs(a.verdict.optimum["lr"] - 0.6) < 0.2  # unit coordinates: the low-error region


@pytest.mark.slow
def test_pbt_copies_the_lowest_errors(tmp_path):
    x, y = _linear(seed=7)
    res = sweepjax.coarse(
        x_train=x, y_train=y, metric="mse", trials=10, steps=80, schedule="pbt",
        pbt_interval=20, lr=[1e-4, 1.0], store=str(tmp_path / "s.db"), report=False,
    )  # fmt: skip
    assert res.lineage
    row = {m.id: i for i, m in enumerate(res.members)}
    for e in res.lineage:
        col = int(np.flatnonzero(res.curves.step == e["step"])[0])
        src = res.curves.val_acc[row[e["copied_from"]], col]
        dst = res.curves.val_acc[row[e["member"]], col]  # measured before the decision
        # the source (a top member) had the lower error when the bottom member copied it
        assert src < dst or not np.isfinite(dst)


def test_config_se_of_a_regression_takes_the_replicas_per_example_ses():
    from sweepjax.results.config_groups import config_se

    mse, own = np.array([1.0, 1.2, 1.1]), np.array([0.10, 0.12, 0.11])
    seed = np.std(mse, ddof=1) / np.sqrt(3)
    # replicas share the validation rows: their per-example SE adds in quadrature
    np.testing.assert_allclose(config_se(mse, 100, False, MSE, own), np.hypot(seed, 0.11))
    # folds score disjoint rows: the pooled SE (R times the rows) is only a floor
    np.testing.assert_allclose(config_se(mse, 300, True, MSE, own), max(seed, 0.11 / np.sqrt(3)))
    assert np.isfinite(config_se(np.array([25.0, 30.0]), 50, False, MSE))  # no binomial NaN


def test_the_engine_refuses_a_metric_that_does_not_fit(reg):
    with pytest.raises(ConfigError, match=r"metric accuracy does not fit .*metric='mse'"):
        engine.train_population(reg, _hp(), SOFTMAX, TrainConfig(steps=5))
