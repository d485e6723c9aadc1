"""The small programs around the population's (engine/aot.py): compiled once per shape,
held, and computing what the eager JAX calls they replace computed."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepjax.config import ModelConfig
from sweepjax.engine import aot, setup
from sweepjax.engine.hparams import HParams
from sweepjax.engine.population import accuracy
from sweepjax.engine.program_cache import PROGRAMS
from sweepjax.models import build_network
from tests.helpers import toy_dataset, toy_train_config


@pytest.mark.parametrize("seed", [0, 1, 1207218338, 2**31, 2**32 - 1, 2**32 + 5, -1, 2**63 - 1])
def test_root_bits_are_the_bits_of_the_root_keys(seed):
    init_key, data_key = setup.root_keys(seed)  # jax.random's own path, eager
    init_bits, data_bits = setup.root_bits(seed)
    assert init_bits.dtype == data_bits.dtype == np.uint32
    np.testing.assert_array_equal(init_bits, jax.random.key_data(init_key))
    np.testing.assert_array_equal(data_bits, jax.random.key_data(data_key))


def _scaled(x, y, k):
    return x * k + y


def test_a_program_compiles_once_per_shape_and_settings():
    x, y = np.arange(6, dtype=np.float32), np.ones(6, np.float32)
    before = PROGRAMS.counts().get("test-scaled", 0)
    first = aot.call("test-scaled", functools.partial(_scaled, k=2.0), (x, y), 2.0)
    again = aot.call("test-scaled", functools.partial(_scaled, k=2.0), (x + 1, y), 2.0)
    assert PROGRAMS.counts()["test-scaled"] - before == 1  # new values: no compile
    np.testing.assert_array_equal(first, x * 2 + 1)
    np.testing.assert_array_equal(again, (x + 1) * 2 + 1)
    aot.call("test-scaled", functools.partial(_scaled, k=3.0), (x, y), 3.0)
    aot.call("test-scaled", functools.partial(_scaled, k=2.0), (x[:4], y[:4]), 2.0)
    assert PROGRAMS.counts()["test-scaled"] - before == 3  # a setting, a shape: one each
    # A setting that cannot key a cache is compiled on the spot, not held.
    got = aot.call("test-scaled", functools.partial(_scaled, k=2.0), (x, y), [2.0])
    np.testing.assert_array_equal(got, x * 2 + 1)
    assert PROGRAMS.counts()["test-scaled"] - before == 3


def test_accuracy_is_the_float32_mean_eager_jax_computed():
    ds = toy_dataset(n_train=60, n_val=30, n_test=777, d=12, k=5, seed=3)
    cfg = ModelConfig("softmax")
    hp = HParams.create(lr=np.array([0.1, 0.2]), l2=1e-4)
    states = setup.init_states(ds, hp, cfg, toy_train_config())
    # Weights drawn at random: an untrained member scores near chance, not exactly it.
    rng = np.random.default_rng(0)
    params = jax.tree.map(lambda a: rng.normal(size=a.shape[1:]).astype(a.dtype), states.params)
    x, y = ds.x_test, ds.y_test
    net = build_network(cfg, 5)
    logits_t = net.logits_t(params, jnp.asarray(x).T, None)
    want = float(jnp.mean(jnp.argmax(logits_t, 0) == jnp.asarray(y)))
    got = accuracy(params, cfg, 5, x, y)
    assert got == want and 0.05 < got < 0.95
    assert accuracy(params, cfg, 5, x, y) == got
