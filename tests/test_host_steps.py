"""The chunk as host-driven steps (``Static.host_steps``): a convolutional model on a
CPU trains each member's step as one call of one compiled program (XLA:CPU runs a
convolution inside a loop 1.5-2.5x slower than alone; docs/performance.md). Same
arithmetic as the in-program loop, no recompiles for new values, members independent."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sweepjax.config import ModelConfig
from sweepjax.engine import active, program, setup
from sweepjax.engine.distributed import SINGLE, put_members
from sweepjax.engine.hparams import HParams
from tests.helpers import blob_dataset, toy_train_config

CNN = ModelConfig(kind="custom", spec="examples.my_cnn:SmallCNN")
DENSE = ModelConfig(kind="custom", spec="tests.custom_models:TinyMLP")
HP = HParams.create(lr=[0.01, 0.05, 0.2], l2=[1e-4, 1e-3, 1e-2], momentum=[0.5, 0.9, 0.8])


def chunk(model, st, hp, rows, ids, n_steps=7, start=3):
    """One block (``n_steps`` steps from global step ``start``, then the evaluation) of
    members ``rows`` of ``hp`` through ``active.run_chunk``: (params, best, metrics)."""
    ds = blob_dataset()
    cfg = toy_train_config().replace(optimizer="momentum")
    states = setup.init_states(ds, hp.take(rows), model, cfg, member_ids=ids)
    act = active.Active(put_members(states, SINGLE), len(rows), len(rows), True)
    data = program.device_data(ds, cfg)
    key = np.asarray(jax.random.key_data(setup.root_keys(cfg.seed)[1]))
    folds, born = np.full(len(rows), -1, np.int32), np.zeros(len(rows), np.int32)
    act, met, _, _ = active.run_chunk(
        act, hp.take(rows), folds, data, start, n_steps, 40, key, st, SINGLE, born
    )
    s = act.states
    return jax.tree.map(np.asarray, (s.params, s.best.acc, s.opt_state, met))


def statics(model):
    ds = blob_dataset()
    st = setup.static(ds, model, toy_train_config().replace(optimizer="momentum"), hparams=HP)
    return st._replace(host_steps=False), st._replace(host_steps=True)


def test_the_rule_host_steps_for_a_conv_net_on_a_cpu_only():
    ds = blob_dataset()
    cfg = toy_train_config()
    cpu = jax.default_backend() == "cpu"
    assert setup.static(ds, CNN, cfg, hparams=HP).host_steps == cpu
    for other in (ModelConfig(kind="softmax"), ModelConfig(kind="mlp"), DENSE):
        assert not setup.static(ds, other, cfg, hparams=HP).host_steps


@pytest.mark.parametrize(
    "model", [CNN, pytest.param(DENSE, marks=pytest.mark.slow)], ids=["cnn", "dense"]
)
def test_host_driven_equals_in_program_and_each_member_alone(model):
    """Params, optimizer state, best accuracy and every metric (train loss/accuracy as
    the block's mean, the last step's update ratio, the evaluation) agree with the
    in-program loop to float tolerance (the step is compiled alone, not inside a loop:
    XLA may fuse and round it differently), and each member's results do not depend on
    its neighbours or its row: the population in another order gives every member
    exactly the same results (one program size, so nothing compiles again)."""
    in_program, host = statics(model)
    rows, ids = np.arange(3), np.arange(3) + 7
    a = chunk(model, in_program, HP, rows, ids)
    b = chunk(model, host, HP, rows, ids)
    assert np.all(np.isfinite(b[3].val_acc)) and np.all(b[3].update_ratio > 0)
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=1e-6)
    order = np.array([2, 0, 1])
    moved = chunk(model, host, HP, order, ids[order])
    for x, y in zip(jax.tree.leaves(moved), jax.tree.leaves(b), strict=True):
        np.testing.assert_array_equal(x, y[order])


@pytest.mark.slow  # CNN compiles, ~6 s
def test_new_values_blocks_and_steps_never_recompile():
    _, host = statics(CNN)
    rows, ids = np.arange(3), np.arange(3)
    chunk(CNN, host, HP, rows, ids)
    before = program.compile_counts()
    hp2 = HParams.create(lr=[0.3, 0.001, 0.02], l2=0.0, momentum=[0.1, 0.2, 0.95])
    chunk(CNN, host, hp2, rows, ids, n_steps=2, start=11)
    assert program.compile_counts() == before
    assert before.get("step", 0) >= 2 and before.get("finish", 0) >= 1


@pytest.mark.slow  # the in-program block's guard is in the default tier (test_footprint)
def test_host_driven_block_no_implicit_transfer_and_state_donated():
    """Under ``jax.transfer_guard("disallow")`` the host-driven block moves data only by
    explicit puts and gets, and the state passed in is donated (gone afterwards)."""
    _, host = statics(DENSE)
    ds = blob_dataset()
    cfg = toy_train_config().replace(optimizer="momentum")
    states = setup.init_states(ds, HP, DENSE, cfg)
    act = active.Active(put_members(states, SINGLE), 3, 3, True)
    data = program.device_data(ds, cfg)
    key = np.asarray(jax.random.key_data(setup.root_keys(cfg.seed)[1]))
    rest = (HP, np.full(3, -1, np.int32), data, 0, 5, 40, key, host, SINGLE)
    before = jax.tree.leaves(act.states)
    with jax.transfer_guard("disallow"):
        act, met, _, _ = active.run_chunk(act, *rest)
        act, met2, _, _ = active.run_chunk(act, *rest[:3], 5, *rest[4:])
    assert all(a.is_deleted() for a in before)
    assert np.isfinite(met2.train_loss).all() and (met2.train_loss < met.train_loss).any()
