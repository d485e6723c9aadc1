"""The explode rule, numerically: a member whose minibatch objective exceeds
``explode_factor`` (3) x its first minibatch objective, or is not finite, is frozen at
exactly that step, with ``diverged_at`` recorded; one that peaks just below 3x is not.

The construction makes the loss trajectory computable in NumPy: every input row is the
zero vector with label 0, so every minibatch is the same and the cross-entropy gradient
of the kernel is exactly 0. Plain SGD at lr 1 then gives ``W_t = (1 - l2)^t W_0`` and an
objective ``CE(b_t) + l2/2 |W_0|^2 (1 - l2)^(2t)``, which grows geometrically once
``l2 > 2``; the bias follows ``b_{t+1} = b_t - (softmax(b_t) - e_0)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset, DatasetInfo
from sweepjax.engine import train_population
from sweepjax.engine.hparams import HParams

D, K, N, T = 6, 3, 16, 40
SOFTMAX = ModelConfig("softmax")
CFG = TrainConfig(steps=T, batch_size=8, eval_every=10, chunk_steps=T, eval_batch_size=8)
IDS = [0, 1, 2]


def zero_dataset() -> Dataset:
    x = np.zeros((N, D), np.float32)
    y = np.zeros(N, np.int32)
    info = DatasetInfo("zeros", "zeros", "memory", N, N, N, K, (D,), "zeros")
    return Dataset(x, y, x, y, x, y, np.zeros(D, np.float32), 1.0, info, x[:4])


def reference(w0: np.ndarray, l2: float, steps: int = T):
    """Float64 objectives ``[steps]`` (each before its step's update) and kernels
    ``[steps + 1, K, D]`` of plain SGD at lr 1 on the zero dataset."""
    w, b = w0.astype(np.float64), np.zeros(K)
    losses, kernels = [], [w]
    for _ in range(steps):
        z = b - b.max()
        p = np.exp(z) / np.exp(z).sum()
        losses.append(-np.log(p[0]) + l2 * 0.5 * np.sum(w**2))
        w, b = w - l2 * w, b - (p - np.eye(K)[0])
        kernels.append(w)
    return np.array(losses), np.array(kernels)


def ratio(w0, l2):
    losses, _ = reference(w0, l2)
    return losses / losses[0]


def solve_l2(w0, target, at_step):
    """The float32-exact l2 (> 2) whose reference ratio at ``at_step`` equals ``target``."""
    lo, hi = 2.0, 3.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if ratio(w0, mid)[at_step] < target else (lo, mid)
    return float(np.float32(lo))


@pytest.fixture(scope="module")
def setup():
    ds = zero_dataset()
    # lr 0 leaves every member at its initial weights: W_0 of each member id.
    still = train_population(ds, HParams.create(lr=[0.0] * 3, l2=0.0), SOFTMAX, CFG, member_ids=IDS)
    return ds, still.params["out"]["kernel"]


def test_member_crossing_3x_is_frozen_exactly_there_and_one_just_below_is_not(setup):
    ds, w0 = setup
    cross_at = 17
    # Member 0 crosses 3x between steps 16 and 17; member 1 peaks (at its last step) at
    # 2.95x; member 2's objective is infinite from the first step.
    l2_cross = solve_l2(w0[0], 3.0 * 1.02, cross_at)
    l2_below = solve_l2(w0[1], 2.95, T - 1)
    r0, r1 = ratio(w0[0], l2_cross), ratio(w0[1], l2_below)
    # The reference itself leaves no float32 ambiguity about where 3x is crossed.
    assert r0[cross_at - 1] < 3.0 * 0.99 and r0[cross_at] > 3.0 * 1.01
    assert np.argmax(r0 > 3.0) == cross_at
    assert 2.9 < r1.max() < 3.0 * 0.99

    hp = HParams.create(lr=[1.0, 1.0, 1.0], l2=[l2_cross, l2_below, np.inf])
    res = train_population(ds, hp, SOFTMAX, CFG, member_ids=IDS)

    assert res.alive.tolist() == [False, True, False]
    assert res.diverged_at.tolist() == [cross_at, -1, 0]
    np.testing.assert_allclose(
        res.initial_loss[:2],
        [reference(w0[i], lam)[0][0] for i, lam in ((0, l2_cross), (1, l2_below))],
        rtol=1e-5,
    )
    # Frozen exactly there: the kernel after 17 updates (step 17's update never applied).
    _, k0 = reference(w0[0], l2_cross)
    np.testing.assert_allclose(res.params["out"]["kernel"][0], k0[cross_at], rtol=1e-4)
    assert not np.allclose(k0[cross_at], k0[cross_at + 1], rtol=1e-2)
    # The member just below trained to the end, along the reference.
    _, k1 = reference(w0[1], l2_below)
    np.testing.assert_allclose(res.params["out"]["kernel"][1], k1[T], rtol=1e-4)
    # Non-finite at step 0: frozen before any update, its weights untouched and finite.
    np.testing.assert_array_equal(res.params["out"]["kernel"][2], w0[2])
    # Curves: evaluations after the divergence are NaN, those before are not.
    before = res.curves.step <= cross_at
    assert np.isfinite(res.curves.val_loss[0, before]).all()
    assert np.isnan(res.curves.val_loss[0, ~before]).all()
    assert np.isnan(res.curves.val_loss[2]).all()
    assert np.isfinite(res.curves.val_loss[1]).all()


@pytest.mark.slow
def test_explode_factor_is_the_threshold(setup):
    """The same member under a factor just above its peak ratio survives; just below, it
    is frozen at the first step past the factor."""
    ds, w0 = setup
    l2 = solve_l2(w0[0], 3.0 * 1.02, 17)
    r = ratio(w0[0], l2)
    hp = HParams.create(lr=[1.0], l2=[l2])
    for factor, alive in ((r.max() * 1.02, True), (r.max() * 0.98, False)):
        res = train_population(
            ds, hp, SOFTMAX, CFG.replace(explode_factor=float(factor)), member_ids=[0]
        )
        assert bool(res.alive[0]) is alive
        want = -1 if alive else int(np.argmax(r > factor))
        assert res.diverged_at[0] == want
