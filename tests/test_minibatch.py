"""The hash minibatch draw (sweepjax.engine.minibatch) behaves as draws with replacement:
uniform over the rows, independent between steps and keys, reproducible, and the same
traced or not. Every check is a statistic against its known expectation, within five of
its standard errors."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sweepjax.config import TrainConfig
from sweepjax.engine.minibatch import minibatch_indices
from sweepjax.errors import ConfigError

N, B, STEPS = 1000, 256, 400


@pytest.fixture(scope="module")
def draws():
    """``[STEPS, B]`` rows of steps 0..STEPS-1 under one key."""
    key = jax.random.key(7)
    fn = jax.jit(jax.vmap(lambda t: minibatch_indices(key, t, B, N)))
    return np.asarray(fn(np.arange(STEPS)))


def pairs_equal(a: np.ndarray, b: np.ndarray) -> int:
    """Pairs ``(i, j)`` with ``a[i] == b[j]``."""
    ca, cb = np.bincount(a, minlength=N), np.bincount(b, minlength=N)
    return int((ca * cb).sum())


def within_5_se(values, expected: float) -> None:
    v = np.asarray(values, float)
    se = v.std(ddof=1) / np.sqrt(len(v))
    assert abs(v.mean() - expected) < 5 * se, (v.mean(), expected, se)


def test_rows_are_in_range_and_uniform(draws):
    assert draws.dtype == np.int32 and draws.min() >= 0 and draws.max() < N
    counts = np.bincount(draws.ravel(), minlength=N)
    e = draws.size / N
    chi2 = ((counts - e) ** 2 / e).sum()
    # chi-square with N - 1 degrees of freedom: mean N - 1, sd sqrt(2 (N - 1))
    assert abs(chi2 - (N - 1)) < 5 * np.sqrt(2 * (N - 1)), chi2


def test_a_batch_repeats_rows_as_draws_with_replacement_do(draws):
    # equal pairs within a batch, i < j: B (B - 1) / 2 pairs, each equal with chance 1/N
    within = [(pairs_equal(r, r) - B) / 2 for r in draws]
    within_5_se(within, B * (B - 1) / 2 / N)


def test_consecutive_steps_and_other_keys_are_independent(draws):
    # shared rows between two independent batches: B^2 pairs, each equal with chance 1/N
    within_5_se([pairs_equal(a, b) for a, b in zip(draws[:-1], draws[1:], strict=True)], B * B / N)
    other = jax.jit(jax.vmap(lambda t: minibatch_indices(jax.random.key(8), t, B, N)))
    other = np.asarray(other(np.arange(STEPS)))
    within_5_se([pairs_equal(a, b) for a, b in zip(draws, other, strict=True)], B * B / N)
    # and a row's position tells nothing: row 0's values are uniform over the rows too
    first = np.bincount(draws[:, 0] % 10, minlength=10)
    assert abs(first - STEPS / 10).max() < 5 * np.sqrt(STEPS / 10)


def test_the_draw_depends_on_key_and_step_only(draws):
    key = jax.random.key(7)
    eager = np.asarray(minibatch_indices(key, 5, B, N))
    np.testing.assert_array_equal(eager, draws[5])  # traced step or not, the same rows
    np.testing.assert_array_equal(np.asarray(minibatch_indices(key, 5, B, N)), eager)
    # a smaller batch is the larger one's first rows (the rows do not depend on B)
    np.testing.assert_array_equal(np.asarray(minibatch_indices(key, 5, 16, N)), eager[:16])


def test_threefry_is_the_old_draw_and_the_config_names_the_draws():
    key = jax.random.key(3)
    old = jax.random.randint(jax.random.fold_in(key, 9), (B,), 0, N)
    np.testing.assert_array_equal(minibatch_indices(key, 9, B, N, "threefry"), old)
    assert TrainConfig().minibatch == "hash"
    with pytest.raises(ConfigError, match="unknown minibatch draw 'philox'; choose hash or"):
        TrainConfig(minibatch="philox")
