"""The small programs around the population's (engine/aot.py): compiled once per shape,
held, and computing what the eager JAX calls they replace computed."""

from __future__ import annotations

import contextlib
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepjax.config import ModelConfig
from sweepjax.engine import aot, keys, setup
from sweepjax.engine.hparams import HParams
from sweepjax.engine.population import accuracy
from sweepjax.engine.program_cache import PROGRAMS
from sweepjax.models import build_network
from tests.helpers import toy_dataset, toy_train_config

SEEDS = [0, 1, 1207218338, 2**31 - 1, 2**31, 2**32 - 1, 2**32 + 5, -1, -(2**31), 2**63 - 1]


@pytest.mark.parametrize("seed", SEEDS)
def test_root_bits_are_the_bits_of_the_root_keys(seed):
    init_key, data_key = setup.root_keys(seed)  # jax.random's own path, eager
    init_bits, data_bits = keys.root_bits(seed)  # Threefry on the host
    assert init_bits.dtype == data_bits.dtype == np.uint32
    np.testing.assert_array_equal(init_bits, jax.random.key_data(init_key))
    np.testing.assert_array_equal(data_bits, jax.random.key_data(data_key))


@contextlib.contextmanager
def _config(name, value):
    old = getattr(jax.config, name)
    jax.config.update(name, value)
    try:
        yield
    finally:
        jax.config.update(name, old)


def test_root_bits_follow_jax_in_64_bit_mode_and_with_a_seed_offset():
    with _config("jax_enable_x64", True):  # the seed's high 32 bits are the key's first word
        for seed in (2**32 + 5, 2**40 + 3, -1):
            np.testing.assert_array_equal(
                keys.root_bits(seed)[1], jax.random.key_data(setup.root_keys(seed)[1])
            )
        assert keys.root_bits(2**32 + 5)[1].tolist() != keys.root_bits(5)[1].tolist()
    with _config("jax_random_seed_offset", 7):  # JAX computes what the host would get wrong
        assert not keys._on_host()
        np.testing.assert_array_equal(
            keys.root_bits(3)[0], jax.random.key_data(setup.root_keys(3)[0])
        )
        assert keys.root_bits(3)[0].tolist() != keys.root_bits(10)[0].tolist()


def test_threefry_matches_a_published_vector():
    # The Threefry-2x32 (20 rounds) known-answer vector of the Random123 library's
    # kat_vectors (pi's digits), the one JAX's own tests check.
    assert keys.threefry2x32(0x13198A2E, 0x03707344, 0x243F6A88, 0x85A308D3) == (
        0xC4923A9C,
        0x483DF7A0,
    )


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


def test_evaluation_rows_gathered_on_the_device_equal_those_taken_on_the_host(monkeypatch):
    # A CPU takes an evaluation block's rows in numpy; any other device gathers them in
    # a small program of its own. The numbers must not depend on which.
    from sweepjax import engine
    from sweepjax.engine import active

    ds = toy_dataset(n_train=200, n_val=70, n_test=70, d=10, k=3, seed=4)
    cfg = toy_train_config().replace(steps=20, eval_every=10, chunk_steps=20)
    hp = HParams.create(lr=np.geomspace(1e-2, 1.0, 40), l2=1e-4)  # two 32-row blocks

    def run():
        return engine.train_population(ds, hp, ModelConfig("softmax"), cfg)

    host = run()
    before = PROGRAMS.counts().get("gather", 0)
    monkeypatch.setattr(active, "_on_cpu", lambda a: False)
    device = run()
    assert PROGRAMS.counts().get("gather", 0) > before  # the device path ran
    np.testing.assert_array_equal(device.final_val_loss, host.final_val_loss)
    np.testing.assert_array_equal(device.best_val_acc, host.best_val_acc)
    assert len(np.unique(host.final_val_loss)) > 30  # 40 members, told apart
