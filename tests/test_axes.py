"""The per-member axes beyond (lr, lambda): hidden width (masked inside the widest
network), dropout, init scale and momentum, all traced in one compiled program."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sweepjax import engine
from sweepjax.config import ModelConfig
from sweepjax.engine import program
from sweepjax.engine.hparams import HParams
from sweepjax.models import build_network
from sweepjax.models.network import keep_uniform
from tests.helpers import toy_dataset, toy_train_config

WIDEST = 16
CFG = toy_train_config()


@pytest.fixture(scope="module")
def ds():
    return toy_dataset(n_train=600, n_val=200, n_test=200, d=20, k=4, seed=0)


def _population():
    """Four members that differ on every axis at once."""
    return HParams.create(
        lr=[0.05, 0.1, 0.02, 0.03],
        l2=[1e-4, 1e-3, 1e-5, 1e-2],
        lr_decay=[1.0, 0.5, 0.1, 1.0],
        hidden=[4, 9, 16, 11],
        dropout=[0.0, 0.3, 0.5, 0.1],
        init_scale=[1.0, 0.5, 2.0, 0.25],
        momentum=[0.9, 0.5, 0.99, 0.8],
    )


@pytest.fixture(scope="module")
def populations(ds):
    """The width-16 population trained once per optimizer (shared by the members)."""
    cache = {}

    def get(optimizer):
        if optimizer not in cache:
            cfg = CFG.replace(optimizer=optimizer)
            mlp = ModelConfig("mlp", WIDEST)
            cache[optimizer] = engine.train_population(
                ds, _population(), mlp, cfg, member_ids=np.arange(4) + 40
            )
        return cache[optimizer]

    return get


# Each member alone compiles a program of its own width: member 1 (width 9, off its
# default on every axis: dropout 0.3, init scale 0.5, momentum 0.5, decay 0.5) and the
# other three (4 without dropout, 16 unmasked, 11), all in the slow run (~10 s a case).
@pytest.mark.parametrize(
    "members", [(1,), pytest.param((0, 2, 3), marks=pytest.mark.slow)], ids=["9", "4-16-11"]
)
# Adam by default (it uses the momentum axis too, as b1); the momentum optimizer in the
# slow run (each optimizer's step against optax: tests/test_optimizer_reference.py).
@pytest.mark.parametrize("optimizer", [pytest.param("momentum", marks=pytest.mark.slow), "adam"])
@pytest.mark.slow  # ~10 s: each member alone compiles its own width (default tier budget)
def test_member_masked_in_the_population_equals_it_alone_at_its_width(
    ds, populations, optimizer, members
):
    """Each member trained in a width-16 population (masked to its own width, with its
    own dropout rate, init scale and momentum) equals the same member trained alone in an
    UNMASKED network of exactly its width: same weights on its units (rtol 1e-4 / atol
    1e-5: float32, a wider product rounds differently), exact zeros on the others, same
    curves and best step."""
    cfg = CFG.replace(optimizer=optimizer)
    hp = _population()
    ids = np.arange(4) + 40
    pop = populations(optimizer)
    assert pop.alive.all()
    for i in members:
        h = int(hp.hidden[i])
        alone_hp = hp.take([i])._replace(hidden=np.array([np.inf], np.float32))
        alone = engine.train_population(
            ds, alone_hp, ModelConfig("mlp", h), cfg, member_ids=[ids[i]]
        )
        p, q = pop.params, alone.params
        np.testing.assert_allclose(
            p["hidden"]["kernel"][i, :h], q["hidden"]["kernel"][0], rtol=1e-4, atol=1e-5
        )
        np.testing.assert_allclose(p["out"]["kernel"][i, :, :h], q["out"]["kernel"][0], atol=1e-5)
        np.testing.assert_allclose(p["out"]["bias"][i], q["out"]["bias"][0], atol=1e-5)
        # Units beyond the member's width never move from exactly zero.
        assert not np.any(p["hidden"]["kernel"][i, h:]) and not np.any(p["out"]["kernel"][i, :, h:])
        np.testing.assert_allclose(pop.curves.train_loss[i], alone.curves.train_loss[0], rtol=1e-4)
        np.testing.assert_allclose(pop.curves.val_acc[i], alone.curves.val_acc[0], atol=1e-6)
        assert pop.best_step[i] == alone.best_step[0]


def test_new_values_of_every_axis_compile_nothing(ds):
    mlp = ModelConfig("mlp", WIDEST)
    hp = _population()
    engine.train_population(ds, hp, mlp, CFG)
    before = program.compile_counts()
    rng = np.random.default_rng(0)
    hp2 = HParams.create(
        lr=rng.uniform(0.01, 0.1, 4),
        l2=rng.uniform(1e-5, 1e-2, 4),
        lr_decay=rng.uniform(0.1, 1, 4),
        hidden=rng.integers(2, WIDEST, 4),
        dropout=rng.uniform(0.05, 0.7, 4),
        init_scale=rng.uniform(0.3, 3, 4),
        momentum=rng.uniform(0, 0.99, 4),
    )
    engine.train_population(ds, hp2, mlp, CFG)
    assert program.compile_counts() == before


def test_init_scale_multiplies_the_initial_weights(ds):
    hp = HParams.create(lr=[0.1, 0.1], l2=0.0, init_scale=[1.0, 3.0])
    st = engine.init_states(ds, hp, ModelConfig("mlp", 8), CFG, member_ids=[7, 7])
    for layer in ("hidden", "out"):
        k = st.params[layer]["kernel"]
        np.testing.assert_allclose(k[1], 3.0 * k[0], rtol=1e-6)
    # He initialisation of the hidden layer: std sqrt(2 / fan_in) with fan_in = 20 inputs.
    assert np.std(st.params["hidden"]["kernel"][0]) == pytest.approx(np.sqrt(2 / 20), rel=0.25)


def test_dropout_keeps_one_minus_rate_of_units_and_rescales(ds):
    """Inverted dropout: over a [16, 4000] draw, a rate-0.3 mask keeps 70% +- 3 SE of the
    units and scales them by 1 / 0.7, so the expected activation is unchanged; rate 0 is
    the identity."""
    net = build_network(ModelConfig("mlp", 16), 4, dropout=True)
    key = jax.random.key(3)
    u = np.asarray(keep_uniform(key, 16, 4000))
    kept = (u >= 0.3).mean()
    assert abs(kept - 0.7) < 3 * np.sqrt(0.7 * 0.3 / u.size)
    # A unit's draws do not depend on the layer's width (prefix-stable, as the weights).
    np.testing.assert_array_equal(np.asarray(keep_uniform(key, 5, 4000)), u[:5])
    params = net.init(jax.random.key(0), 20, HParams.create(lr=[0.1], l2=0.0).take(0))
    x_t = np.asarray(ds.x_val[:64].T)
    h0 = np.asarray(net.hidden_t(params, x_t))
    for rate in (0.0, 0.3):
        hp = HParams.create(lr=[0.1], l2=0.0, dropout=[rate]).take(0)
        logits_drop = net.logits_t(params, x_t, hp, jax.random.key(5))
        logits_eval = net.logits_t(params, x_t, hp)  # no key: evaluation, no dropout
        assert np.all(np.isfinite(logits_drop))
        if rate == 0.0:
            np.testing.assert_array_equal(logits_drop, logits_eval)
        else:
            assert not np.allclose(logits_drop, logits_eval)
    assert (h0 >= 0).all()
