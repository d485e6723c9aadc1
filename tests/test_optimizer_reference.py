"""Each optimizer against an independent optax reference, with every traced axis of the
built-in softmax at a NON-default value at once.

Why non-default: the earlier reference test trained Adam with optax's default b1 = 0.9,
which is also our default momentum, so an ignored momentum axis (Adam's b1 was never
passed on) could not show. Here momentum = 0.6, lr_decay = 0.3 and init_scale = 2.5, and
the reference is plain optax (``sgd``/``sgd(momentum=)``/``adam(b1=)`` with a cosine
schedule) over a hand-written objective, not the engine's own functions. The MLP-only
axes (hidden, dropout) are covered by tests/test_axes.py (a member at its width equals
that width trained alone).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sweepjax import engine
from sweepjax.config import ModelConfig
from sweepjax.engine.hparams import HParams
from tests.helpers import toy_dataset, toy_train_config

SOFTMAX = ModelConfig("softmax")
CFG = toy_train_config().replace(steps=12, eval_every=6, chunk_steps=12)
LR, L2, DECAY, SCALE, MOMENTUM = 0.05, 3e-3, 0.3, 2.5, 0.6


@pytest.fixture(scope="module")
def ds():
    return toy_dataset(n_train=600, n_val=200, n_test=200, d=20, k=4, seed=0)


def _hp(momentum=MOMENTUM, init_scale=SCALE):
    return HParams.create(
        lr=[LR], l2=[L2], lr_decay=[DECAY], init_scale=[init_scale], momentum=[momentum]
    )


def _reference_tx(optimizer: str, momentum: float) -> optax.GradientTransformation:
    # Cosine from LR at step 0 to DECAY * LR at the last step: what lr_decay promises.
    sched = optax.cosine_decay_schedule(LR, decay_steps=CFG.steps, alpha=DECAY)
    if optimizer == "sgd":
        return optax.sgd(sched)
    if optimizer == "momentum":
        return optax.sgd(sched, momentum=momentum)
    return optax.adam(sched, b1=momentum)


def _reference_objective(p, x, y):
    logits = x @ p["out"]["kernel"].T + p["out"]["bias"][None, :]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
    return ce + L2 * 0.5 * jnp.sum(p["out"]["kernel"] ** 2)


_reference_grad = jax.jit(jax.grad(_reference_objective))


def _reference(ds, optimizer: str, momentum: float):
    # Initial weights at init_scale 1 (the model's own draw) times SCALE, by hand.
    base = engine.init_states(ds, _hp(init_scale=1.0), SOFTMAX, CFG).params
    params = jax.tree.map(lambda a: jnp.asarray(a[0]), base)
    params["out"]["kernel"] = params["out"]["kernel"] * SCALE
    tx = _reference_tx(optimizer, momentum)
    opt = tx.init(params)
    _, data_key = engine.root_keys(CFG.seed)
    for t in range(CFG.steps):
        idx = np.asarray(engine.minibatch_indices(data_key, t, CFG.batch_size, 600))
        g = _reference_grad(params, ds.x_train[idx], ds.y_train[idx])
        upd, opt = tx.update(g, opt, params)
        params = optax.apply_updates(params, upd)
    return params


# Every optimizer in the slow run (~5 s each); the default tier keeps Adam's b1 guard
# (test_momentum_axis_changes_the_trajectory) and sgd against NumPy (tests/test_train.py).
@pytest.mark.slow
@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "adam"])
def test_optimizer_matches_optax_with_every_axis_off_default(ds, optimizer):
    cfg = CFG.replace(optimizer=optimizer)
    got = engine.train_population(ds, _hp(), SOFTMAX, cfg).params
    want = _reference(ds, optimizer, MOMENTUM)
    for name in ("kernel", "bias"):
        np.testing.assert_allclose(
            got["out"][name][0], want["out"][name], rtol=2e-4, atol=1e-6, err_msg=name
        )


@pytest.mark.parametrize("optimizer", [pytest.param("momentum", marks=pytest.mark.slow), "adam"])
def test_momentum_axis_changes_the_trajectory(ds, optimizer):
    """Two momentum values (SGD's trace decay, Adam's b1) give different weights; the
    gap is the reference's own gap, so the axis is neither dead nor mis-scaled."""
    cfg = CFG.replace(optimizer=optimizer)
    hp = HParams.create(
        lr=[LR, LR],
        l2=[L2, L2],
        lr_decay=[DECAY] * 2,
        init_scale=[SCALE] * 2,
        momentum=[MOMENTUM, 0.95],
    )
    # Both members start from member 0's weights, as the reference does.
    got = engine.train_population(ds, hp, SOFTMAX, cfg, member_ids=[0, 0]).params["out"]["kernel"]
    gap = np.abs(np.asarray(got[0]) - np.asarray(got[1])).max()
    ref_gap = np.abs(
        np.asarray(_reference(ds, optimizer, MOMENTUM)["out"]["kernel"])
        - np.asarray(_reference(ds, optimizer, 0.95)["out"]["kernel"])
    ).max()
    assert ref_gap > 1e-3  # the reference itself moves with momentum
    assert gap == pytest.approx(ref_gap, rel=1e-2)
