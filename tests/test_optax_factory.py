"""Any optax optimizer factory as the members' optimizer (sweepjax/engine/optimizers.py):
``optax.adamw`` traced through ``inject_hyperparams`` equals a plain Python loop of
``optax.adamw(lr, weight_decay=wd)``; a member in the population equals it alone;
new values never recompile; bad names and a momentum the factory lacks are one line."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sweepjax import engine
from sweepjax.cli import main
from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.engine import member, optimizers, program
from sweepjax.engine.hparams import HParams
from sweepjax.engine.setup import static
from sweepjax.errors import ConfigError
from sweepjax.spec import SweepSpec
from tests.helpers import toy_dataset, toy_train_config

STEPS = 15


def _member_loop(ds, hp_row, cfg):
    """``STEPS`` steps of member.step for one member (no population), jitted."""
    st = static(ds, ModelConfig(), cfg)
    key = jax.random.key(5)
    state = member.init(key, hp_row, ds.num_features, st)
    x, y = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    shared = member.Shared(x, y, jnp.zeros(x.shape[0], jnp.int32), 0, STEPS, key)
    step = jax.jit(lambda s, t: member.step(member.Own(s, hp_row, 0, 0), shared._replace(t=t), st))
    params0 = state.params
    for t in range(STEPS):
        state, _ = step(state, t)
    return params0, state.params, st


@pytest.mark.slow
def test_adamw_member_equals_a_plain_optax_loop():
    """A constant schedule, l2 0: the member's update is optax.adamw's, float tolerance
    (rtol 1e-4, atol 1e-6 on weights ~0.3: the member step computes its loss through its
    own objective and Adam divides by small second moments, so rounding shows)."""
    ds = toy_dataset()
    cfg = toy_train_config().replace(optimizer="optax.adamw", momentum=0.85)
    hp = HParams.create(lr=[0.03], l2=0.0, momentum=0.85, user={"weight_decay": [0.05]})
    row = hp.map(lambda a: a[0])
    params0, got, st = _member_loop(ds, row, cfg)
    tx = optax.adamw(0.03, b1=0.85, weight_decay=0.05)  # the loop a user writes
    key = jax.random.key(5)

    @jax.jit
    def plain_step(p, s, t):
        idx = member.minibatch_indices(key, t, st.batch_size, ds.x_train.shape[0])
        x, y = jnp.asarray(ds.x_train)[idx], jnp.asarray(ds.y_train)[idx]
        grads = jax.grad(member.objective)(p, x, y, row, st.network)
        updates, s = tx.update(grads, s, p)
        return optax.apply_updates(p, updates), s

    p, s = params0, tx.init(params0)
    for t in range(STEPS):
        p, s = plain_step(p, s, t)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(p), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    # and weight decay is really wired: another value moves the weights elsewhere
    other = row._replace(user={"weight_decay": np.float32(0.5)})
    _, moved, _ = _member_loop(ds, other, cfg)
    assert not np.allclose(jax.tree.leaves(moved)[0], jax.tree.leaves(got)[0])


@pytest.mark.slow
def test_adamw_member_in_population_equals_alone_and_new_values_do_not_recompile():
    ds, cfg = toy_dataset(), toy_train_config().replace(optimizer="optax.adamw")
    hp = HParams.create(
        lr=np.geomspace(1e-3, 3e-2, 4),
        l2=1e-5,
        momentum=np.linspace(0.8, 0.95, 4),
        user={"weight_decay": np.geomspace(1e-3, 1e-1, 4)},
    )
    pop = engine.train_population(ds, hp, ModelConfig(), cfg, member_ids=np.arange(4))
    alone = engine.train_population(ds, hp.take([2]), ModelConfig(), cfg, member_ids=[2])
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(pop.params), strict=True):
        np.testing.assert_allclose(a[0], b[2], rtol=1e-4, atol=1e-6)
    before = program.compile_counts()
    engine.train_population(
        ds, hp._replace(user={"weight_decay": np.full(4, 0.2)}), ModelConfig(), cfg
    )
    assert program.compile_counts() == before


def test_factory_names_and_refusals():
    assert SweepSpec.create("coarse", optimizer=optax.adamw).optimizer == "optax.adamw"
    assert SweepSpec.create("coarse", optimizer="pkg.mod:fn").optimizer == "pkg.mod:fn"
    assert TrainConfig(optimizer="optax.adamw").optimizer == "optax.adamw"
    assert optimizers.momentum_arg("optax.adamw") == ("b1", 0.9)
    assert optimizers.momentum_arg("optax.sgd") == ("momentum", None)
    with pytest.raises(ConfigError, match="must be one of sgd, momentum, adam"):
        SweepSpec.create("coarse", optimizer="adamw")
    with pytest.raises(ConfigError, match="has no importable name"):
        SweepSpec.create("coarse", optimizer=lambda learning_rate: None)
    with pytest.raises(ConfigError, match="cannot import nosuchpkg"):
        optimizers.factory("nosuchpkg.mod:fn")
    with pytest.raises(ConfigError, match="optax has no adamz"):
        optimizers.factory("optax.adamz")
    with pytest.raises(ConfigError, match="not an optax optimizer factory"):
        optimizers.factory("numpy.zeros")


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--optimizer", "nosuchpkg.mod:fn"], "cannot import nosuchpkg"),
        (["--optimizer", "optax.sgd", "--momentum", "0.5"], "optax.sgd has its momentum off"),
    ],
)
def test_cli_refuses_in_one_line_before_anything_is_written(flags, message, capsys, tmp_path):
    store = tmp_path / "s.db"
    code = main(["coarse", "--dataset", "mnist-sample", *flags, "--store", str(store)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not store.exists()
