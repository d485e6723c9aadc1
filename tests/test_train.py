"""The population trainer: numerical claims about one member, the population, masks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweepjax import engine
from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.engine import member, program
from sweepjax.engine.hparams import HParams
from sweepjax.models import build_network
from tests.helpers import toy_dataset, toy_train_config

SOFTMAX = ModelConfig("softmax")
# One config shape for most tests so the compiled program is reused across tests.
CFG = toy_train_config()


@pytest.fixture(scope="module")
def ds():
    return toy_dataset(n_train=600, n_val=200, n_test=200, d=20, k=4, seed=0)


def _np_objective(w, b, x, y, l2):
    """Reference: mean softmax cross-entropy + l2 * sum(w**2)/2 in float64 NumPy."""
    logits = x.astype(np.float64) @ w.T.astype(np.float64) + b
    logits -= logits.max(axis=1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y].mean() + l2 * 0.5 * np.sum(w.astype(np.float64) ** 2)


def test_objective_matches_numpy_reference(ds):
    net = build_network(SOFTMAX, 4)
    rng = np.random.default_rng(1)
    params = {
        "out": {
            "kernel": rng.normal(size=(4, 20)).astype(np.float32),
            "bias": rng.normal(size=4).astype(np.float32),
        }
    }
    x, y = ds.x_train[:50], ds.y_train[:50]
    got = float(member.objective(params, x, y, HParams.create(lr=1.0, l2=0.3).take(0), net))
    want = _np_objective(params["out"]["kernel"], params["out"]["bias"], x, y, 0.3)
    assert got == pytest.approx(want, rel=1e-5)


def test_one_sgd_step_matches_numpy_gradient(ds):
    cfg = CFG.replace(steps=1, eval_every=1, chunk_steps=1)
    hp = HParams.create(lr=[0.5], l2=[0.1])
    res = engine.train_population(ds, hp, SOFTMAX, cfg)
    w0 = engine.init_states(ds, hp, SOFTMAX, cfg).params["out"]["kernel"][0].astype(np.float64)
    b0 = np.zeros(4)
    _, data_key = engine.root_keys(cfg.seed)
    idx = np.asarray(engine.minibatch_indices(data_key, 0, cfg.batch_size, 600))
    x, y = ds.x_train[idx].astype(np.float64), ds.y_train[idx]
    logits = x @ w0.T
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(len(y)), y] -= 1.0
    gw = p.T @ x / len(y) + 0.1 * w0
    gb = p.mean(0)
    np.testing.assert_allclose(res.params["out"]["kernel"][0], w0 - 0.5 * gw, atol=1e-6)
    np.testing.assert_allclose(res.params["out"]["bias"][0], b0 - 0.5 * gb, atol=1e-6)
    assert res.initial_loss[0] == pytest.approx(_np_objective(w0, b0, x, y, 0.1), rel=1e-5)


def test_member_in_population_equals_member_alone(ds):
    """Tolerance: rtol 1e-4 / atol 1e-5 (float32; the population's matmul is one wider
    product, so its rounding differs from the one-member program)."""
    lrs = np.geomspace(1e-3, 1.0, 8)
    hp = HParams.create(lr=lrs, l2=np.geomspace(1e-5, 1e-1, 8))
    pop = engine.train_population(ds, hp, SOFTMAX, CFG, member_ids=np.arange(8) + 100)
    for i in (0, 5):
        alone = engine.train_population(ds, hp.take([i]), SOFTMAX, CFG, member_ids=[100 + i])
        np.testing.assert_allclose(
            alone.params["out"]["kernel"][0], pop.params["out"]["kernel"][i], rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(alone.curves.val_acc[0], pop.curves.val_acc[i], atol=1e-6)
        np.testing.assert_allclose(alone.curves.train_loss[0], pop.curves.train_loss[i], rtol=1e-4)
        assert alone.best_step[0] == pop.best_step[i]


def test_new_hyperparameter_values_do_not_recompile(ds):
    hp = HParams.create(lr=np.full(8, 0.1), l2=np.full(8, 1e-3))
    engine.train_population(ds, hp, SOFTMAX, CFG)
    before = program.compile_counts()
    for seed_lr in (0.01, 0.3):
        hp2 = HParams.create(
            lr=np.geomspace(seed_lr, 1.0, 8),
            l2=np.geomspace(1e-6, 1, 8),
            lr_decay=np.linspace(0.5, 1.0, 8),
        )
        engine.train_population(ds, hp2, SOFTMAX, CFG)
    assert program.compile_counts() == before


def test_diverged_member_is_frozen_and_does_not_touch_others(ds):
    """A NaN/exploding member (lr 1e4) is masked; every other member's results are
    bit-identical to the same population with that member's lr replaced by a sane one."""
    lrs = np.geomspace(1e-2, 1.0, 8).astype(np.float32)
    bad = lrs.copy()
    bad[3] = 1e4
    r_bad = engine.train_population(ds, HParams.create(lr=bad, l2=1e-4), SOFTMAX, CFG)
    r_ok = engine.train_population(ds, HParams.create(lr=lrs, l2=1e-4), SOFTMAX, CFG)
    assert not r_bad.alive[3] and r_bad.diverged_at[3] >= 0
    assert r_bad.alive[[0, 1, 2, 4, 5, 6, 7]].all() and r_ok.alive.all()
    # Frozen: curves after divergence are NaN, the parameters stay finite-or-frozen.
    e = np.searchsorted(r_bad.curves.step, r_bad.diverged_at[3] + 1)
    assert np.isnan(r_bad.curves.val_acc[3, e:]).all()
    others = np.array([0, 1, 2, 4, 5, 6, 7])
    np.testing.assert_array_equal(
        r_bad.params["out"]["kernel"][others], r_ok.params["out"]["kernel"][others]
    )
    for f in ("train_loss", "val_loss", "val_acc", "train_acc", "update_ratio"):
        np.testing.assert_array_equal(
            getattr(r_bad.curves, f)[others], getattr(r_ok.curves, f)[others]
        )
    np.testing.assert_array_equal(r_bad.best_val_acc[others], r_ok.best_val_acc[others])


@pytest.mark.slow
def test_explode_factor_rule(ds):
    """Diverged exactly when the minibatch loss exceeds explode_factor x the initial loss
    (or is not finite); a member with a moderate lr never trips it."""
    hp = HParams.create(lr=[0.1, 30.0], l2=0.0)
    res = engine.train_population(ds, hp, SOFTMAX, CFG)
    assert res.alive[0] and res.diverged_at[0] == -1
    assert not res.alive[1]
    t = int(res.diverged_at[1])
    # Replay member 1 for t steps: its loss at step t is the first above 3x initial.
    cfg_t = CFG.replace(steps=t + 1, eval_every=t + 1, chunk_steps=t + 1) if t >= 0 else None
    replay = engine.train_population(ds, hp.take([1]), SOFTMAX, cfg_t, member_ids=[1])
    assert replay.diverged_at[0] == t
    if t > 0:
        before = engine.train_population(
            ds,
            hp.take([1]),
            SOFTMAX,
            CFG.replace(steps=t, eval_every=t, chunk_steps=t),
            member_ids=[1],
        )
        assert before.alive[0]


@pytest.mark.slow  # also in tests/test_sanity.py's fast tier
def test_initial_loss_is_ln_num_classes_and_l2_raises_it(ds):
    hp = HParams.create(lr=[1e-3, 1e-3], l2=[0.0, 1e4])
    res = engine.train_population(
        ds, hp, SOFTMAX, CFG.replace(steps=10, eval_every=10, chunk_steps=10)
    )
    assert res.initial_loss[0] == pytest.approx(math.log(4), abs=0.01)
    assert res.initial_loss[1] > res.initial_loss[0] + 0.01


@pytest.mark.slow  # also in tests/test_sanity.py's fast tier
def test_overfits_20_examples_to_100_percent(ds):
    tiny = ds._replace(
        x_train=ds.x_train[:20],
        y_train=ds.y_train[:20],
        x_val=ds.x_train[:20],
        y_val=ds.y_train[:20],
    )
    cfg = TrainConfig(steps=200, batch_size=20, eval_every=50, chunk_steps=200, seed=0)
    res = engine.train_population(tiny, HParams.create(lr=[1.0], l2=[0.0]), SOFTMAX, cfg)
    assert res.final_train_acc[0] == 1.0
    assert res.final_train_loss[0] < 0.05


@pytest.mark.slow
def test_mlp_learns_toy_problem(ds):
    cfg = CFG.replace(optimizer="adam", steps=100, eval_every=50, chunk_steps=100)
    res = engine.train_population(
        ds, HParams.create(lr=[1e-2, 3e-2], l2=1e-4), ModelConfig("mlp", hidden=16), cfg
    )
    assert res.alive.all()
    assert res.best_val_acc.min() > 0.7  # chance is ~0.25


@pytest.mark.slow
def test_results_do_not_depend_on_chunking(ds):
    hp = HParams.create(lr=np.geomspace(1e-2, 1.0, 6), l2=1e-3)
    base = engine.train_population(ds, hp, SOFTMAX, CFG)
    other_chunks = engine.train_population(ds, hp, SOFTMAX, CFG.replace(chunk_steps=10))
    np.testing.assert_allclose(
        other_chunks.params["out"]["kernel"], base.params["out"]["kernel"], rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(other_chunks.curves.val_acc, base.curves.val_acc, atol=1e-6)


@pytest.mark.slow
def test_results_do_not_depend_on_groups():
    """A 1 MB budget splits a population of 400-feature members over several programs;
    each member's results equal those of the same population run as one program.
    Tolerance as the member-alone test: the groups' matmuls are narrower products."""
    big = toy_dataset(n_train=600, n_val=200, n_test=200, d=400, k=10, seed=1)
    cfg = CFG.replace(steps=20, eval_every=10, chunk_steps=20)
    fit = engine.group_size(10**6, SOFTMAX, cfg.replace(memory_budget_mb=1), 400, 10)
    m = 2 * fit + 3  # three groups, the last one padded
    hp = HParams.create(lr=np.geomspace(1e-3, 0.3, m), l2=np.geomspace(1e-5, 1e-1, m))
    whole = engine.train_population(big, hp, SOFTMAX, cfg)
    grouped = engine.train_population(big, hp, SOFTMAX, cfg.replace(memory_budget_mb=1))
    assert whole.timing.num_groups == 1
    assert grouped.timing.num_groups == 3 and grouped.timing.group_size == fit
    np.testing.assert_allclose(
        grouped.params["out"]["kernel"], whole.params["out"]["kernel"], rtol=1e-4, atol=1e-5
    )
    for f in ("train_loss", "val_loss", "val_acc"):
        np.testing.assert_allclose(
            getattr(grouped.curves, f), getattr(whole.curves, f), rtol=1e-4, atol=1e-5
        )
    np.testing.assert_array_equal(grouped.best_step, whole.best_step)


@pytest.mark.slow
def test_population_is_split_by_memory_budget(ds):
    cfg = CFG.replace(memory_budget_mb=1)
    # Properties of the split, not its formula: a group never exceeds the budget nor
    # the population, a bigger budget never shrinks it, one member always fits.
    for d, k in ((20, 4), (400, 10), (3000, 10)):
        per = engine.member_bytes(SOFTMAX, cfg, d, k)
        for mb in (1, 4, 64):
            g = engine.group_size(10**6, SOFTMAX, cfg.replace(memory_budget_mb=mb), d, k)
            assert g >= 1 and (g == 1 or g * per <= mb * 2**20)
            assert (g + 1) * per > mb * 2**20  # and it fills the budget
            assert g <= engine.group_size(
                10**6, SOFTMAX, cfg.replace(memory_budget_mb=2 * mb), d, k
            )
        assert engine.group_size(5, SOFTMAX, cfg.replace(memory_budget_mb=64), d, k) <= 5
    assert engine.group_size(1, SOFTMAX, cfg, 10**6, 10) == 1  # too big for the budget: alone
    # A wider member needs more bytes (parameters, optimizer slots, activations).
    assert engine.member_bytes(SOFTMAX, cfg, 400, 10) > engine.member_bytes(SOFTMAX, cfg, 20, 4)
    assert engine.member_bytes(SOFTMAX, cfg.replace(optimizer="adam"), 20, 4) > (
        engine.member_bytes(SOFTMAX, cfg, 20, 4)
    )
    big = toy_dataset(n_train=600, n_val=200, n_test=200, d=400, k=10, seed=1)
    per_big = engine.member_bytes(SOFTMAX, cfg, 400, 10)
    m = 2**20 // per_big + 3  # just over one group
    res = engine.train_population(
        big,
        HParams.create(lr=np.full(m, 0.05), l2=0.0),
        SOFTMAX,
        cfg.replace(steps=20, eval_every=10, chunk_steps=20),
    )
    assert res.timing.num_groups == 2
    assert res.alive.all() and res.curves.val_acc.shape == (m, 2)
    # Identical members (same id) in different groups give identical results.
    res2 = engine.train_population(
        big,
        HParams.create(lr=np.full(m, 0.05), l2=0.0),
        SOFTMAX,
        cfg.replace(steps=20, eval_every=10, chunk_steps=20),
        member_ids=np.zeros(m, int),
    )
    np.testing.assert_allclose(res2.curves.val_acc[0], res2.curves.val_acc[-1], atol=1e-6)


@pytest.mark.slow
def test_stop_and_resume_equals_uninterrupted(ds):
    hp = HParams.create(lr=np.geomspace(1e-2, 1.0, 6), l2=1e-3)
    full = engine.train_population(ds, hp, SOFTMAX, CFG)
    seen = []

    def stop_after_first(report):
        seen.append(report.step)
        return False

    part = engine.train_population(ds, hp, SOFTMAX, CFG, on_chunk=stop_after_first)
    # A compiled call ends at every evaluation (every 10 steps): stopped after the first.
    assert not part.completed and seen == [10] and part.curves.step.tolist() == [10]
    rest = engine.train_population(ds, hp, SOFTMAX, CFG, resume=part.checkpoint)
    assert rest.completed
    np.testing.assert_array_equal(rest.params["out"]["kernel"], full.params["out"]["kernel"])
    for f in engine.Curves._fields:
        np.testing.assert_array_equal(getattr(rest.curves, f), getattr(full.curves, f))


# Slow tier: the fast tier checks the cosine schedule through the Adam reference
# (tests/test_optimizer_reference.py, lr_decay 0.3).
@pytest.mark.slow
@pytest.mark.parametrize("n_train", [300, 3000])
def test_lr_schedule_is_relative_to_the_run_not_the_dataset(n_train):
    """SGD with lr_decay=f follows lr * (f + (1-f)(1+cos(pi t/T))/2) whatever the
    dataset's size: the trained weights equal a NumPy loop with that rate."""
    data = toy_dataset(n_train=n_train, n_val=100, n_test=10, d=20, k=4, seed=2)
    cfg = CFG.replace(steps=20, eval_every=10, chunk_steps=20)
    lr, floor = 0.5, 0.05
    res = engine.train_population(
        data, HParams.create(lr=[lr], l2=0.0, lr_decay=[floor]), SOFTMAX, cfg
    )
    w = engine.init_states(data, HParams.create(lr=[lr], l2=0.0), SOFTMAX, cfg).params
    w, b = (np.asarray(w["out"][k][0], np.float64) for k in ("kernel", "bias"))
    _, key = engine.root_keys(cfg.seed)
    for t in range(20):
        idx = np.asarray(engine.minibatch_indices(key, t, cfg.batch_size, n_train))
        x, y = data.x_train[idx].astype(np.float64), data.y_train[idx]
        p = np.exp(x @ w.T + b - (x @ w.T + b).max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        p[np.arange(len(y)), y] -= 1.0
        mult = floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * t / 20))
        w, b = w - lr * mult * p.T @ x / len(y), b - lr * mult * p.mean(0)
    np.testing.assert_allclose(res.params["out"]["kernel"][0], w, rtol=1e-4, atol=1e-6)


def test_lr_multiplier_reaches_the_floor_at_the_end_of_the_run():
    for horizon in (100, 5000):
        got = [float(engine.lr_multiplier(f * horizon, horizon, 0.1)) for f in (0, 0.5, 1, 2)]
        assert got == pytest.approx([1.0, 0.55, 0.1, 0.1], abs=1e-6)


@pytest.mark.parametrize(
    "steps",
    [pytest.param(997, marks=pytest.mark.slow), pytest.param(101, marks=pytest.mark.slow), 40],
)
def test_about_twenty_evaluations_for_any_step_count(ds, steps):
    """Prime step counts no longer evaluate at every step: the last block is longer."""
    cfg = CFG.replace(steps=steps, eval_every=None, chunk_steps=steps)
    res = engine.train_population(ds, HParams.create(lr=[0.1], l2=0.0), SOFTMAX, cfg)
    assert 19 <= len(res.curves.step) <= 21
    assert res.curves.step[-1] == steps and np.all(np.diff(res.curves.step) > 0)


def test_update_ratio_is_norm_of_last_update_over_weights(ds):
    cfg = CFG.replace(steps=10, eval_every=10, chunk_steps=10)
    hp = HParams.create(lr=[0.1], l2=0.0)
    before = engine.train_population(
        ds, hp, SOFTMAX, cfg.replace(steps=9, eval_every=9, chunk_steps=9)
    )
    after = engine.train_population(ds, hp, SOFTMAX, cfg)
    upd = np.sqrt(
        sum(
            np.sum((after.params[k][n][0] - before.params[k][n][0]) ** 2)
            for k in after.params
            for n in after.params[k]
        )
    )
    w = np.sqrt(
        sum(np.sum(before.params[k][n][0] ** 2) for k in before.params for n in before.params[k])
    )
    assert after.curves.update_ratio[0, -1] == pytest.approx(upd / w, rel=1e-3)


def test_best_params_reproduce_best_val_accuracy(ds):
    hp = HParams.create(lr=np.geomspace(1e-2, 3.0, 6), l2=1e-3)
    res = engine.train_population(ds, hp, SOFTMAX, CFG)
    for i in range(6):
        acc = engine.accuracy(engine.member_params(res, i), SOFTMAX, 4, ds.x_val, ds.y_val)
        assert acc == pytest.approx(res.best_val_acc[i], abs=1e-6)
        assert res.best_val_acc[i] == pytest.approx(np.nanmax(res.curves.val_acc[i]), abs=1e-7)
