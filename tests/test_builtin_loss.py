"""A user's loss on the built-in softmax and MLP (``coarse(model="mlp", loss=...)``):
the same contract as a custom model's loss (per example, the member's own
hyperparameters at training steps), stored by name so fine and resume rebuild it.

Data: the trainer tests' toy problem (20 features, 4 classes) and the blobs."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sweepjax import engine
from sweepjax.config import DataConfig, ModelConfig, SearchSpace
from sweepjax.engine.hparams import HParams
from sweepjax.engine.member import minibatch_indices
from sweepjax.engine.setup import init_states, root_keys
from sweepjax.errors import ConfigError
from sweepjax.models import build_network
from sweepjax.models.custom import model_config, prepare
from sweepjax.models.loss_ref import loss_name, resolve_loss
from sweepjax.sweep_config import SweepConfig
from tests.helpers import toy_dataset, toy_train_config


def smoothed(logits, labels, hp):
    """Cross-entropy against labels smoothed by ``hp["label_smoothing"]`` (optax's rule)."""
    k = logits.shape[-1]
    eps = hp["label_smoothing"]
    target = jax.nn.one_hot(labels, k) * (1.0 - eps) + eps / k
    return -jnp.sum(target * jax.nn.log_softmax(logits), axis=-1)


def test_the_loss_is_stored_by_name_and_resolved_again():
    cfg = model_config("mlp", 16, smoothed)
    assert cfg.loss == "tests.test_builtin_loss:smoothed" and resolve_loss(cfg.loss) is smoothed
    sweep = SweepConfig("coarse", DataConfig(), cfg, toy_train_config(), SearchSpace(), trials=4)
    back = SweepConfig.from_dict(sweep.as_dict()).model
    assert back == cfg and build_network(back, 4).loss_fn is smoothed
    assert "loss" not in ModelConfig("mlp").as_dict()  # older configs read the same
    # a lambda is named with a digest of its code: the same in every process
    a, b = (lambda z, y: z[:, 0] * 0.0), (lambda z, y: z[:, 0] * 0.0)  # noqa: E731
    assert loss_name(a) == loss_name(b) and loss_name(a).startswith(f"{__name__}:")
    c = lambda z, y: z[:, 0] * 1.0  # noqa: E731
    assert loss_name(c) != loss_name(a)


def test_an_object_of_another_session_and_a_bad_loss_are_one_line():
    with pytest.raises(ConfigError, match="another session") as e:
        resolve_loss("__main__:<lambda>#0123456789")
    assert "\n" not in str(e.value)
    with pytest.raises(ConfigError, match="cannot import loss"):
        resolve_loss("tests.nowhere:loss")
    bad = ModelConfig("softmax", loss=loss_name(lambda z, y: z.sum()))
    with pytest.raises(ConfigError, match=r"one loss per example, \[B\]"):
        prepare(bad, toy_dataset())


def _by_hand(x, y, eps, l2):
    """The MLP's objective written out with optax's smooth_labels and
    softmax_cross_entropy, and the L2 term on the two kernels."""

    def f(p):
        h = jax.nn.relu(x @ p["hidden"]["kernel"].T + p["hidden"]["bias"][None, :])
        logits = h @ p["out"]["kernel"].T + p["out"]["bias"][None, :]
        target = optax.smooth_labels(jax.nn.one_hot(y, logits.shape[-1]), eps)
        kernels = p["hidden"]["kernel"], p["out"]["kernel"]
        penalty = 0.5 * sum(jnp.sum(k**2) for k in kernels)
        return optax.softmax_cross_entropy(logits, target).mean() + l2 * penalty

    return f


def test_the_mlps_objective_and_gradient_equal_optax_label_smoothing_by_hand():
    """The trainer's objective of a built-in MLP with the smoothed loss (eps 0.1 from the
    member's hyperparameters, l2 1e-3) and its gradient equal the hand-written ones;
    evaluation (no hyperparameters) scores plain cross-entropy."""
    net = build_network(model_config("mlp", 16, smoothed), 4)
    hp = HParams.create(lr=[0.5], l2=1e-3, user={"label_smoothing": 0.1})
    hp = jax.tree.map(lambda a: a[0], hp)
    rng = np.random.default_rng(0)
    shapes = {
        "hidden": {"kernel": (16, 20), "bias": (16,)},
        "out": {"kernel": (4, 16), "bias": (4,)},
    }
    p0 = jax.tree.map(
        lambda s: jnp.asarray(0.3 * rng.normal(size=s), jnp.float32),
        shapes,
        is_leaf=lambda s: isinstance(s, tuple),
    )
    x, y = jnp.asarray(rng.normal(size=(32, 20)), jnp.float32), jnp.asarray(rng.integers(0, 4, 32))
    by_hand = jax.jit(jax.value_and_grad(_by_hand(x, y, 0.1, 1e-3)))
    obj = jax.jit(jax.value_and_grad(lambda p: engine.member.objective(p, x, y, hp, net)))
    (want_v, want), (got_v, got) = by_hand(p0), obj(p0)
    np.testing.assert_allclose(got_v, want_v, rtol=1e-6)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-7)
    # evaluation (no hyperparameters): plain cross-entropy, against numpy
    ev = jax.jit(lambda p: (net.loss_t(net.logits_t(p, x.T, None), y), net.logits_t(p, x.T, None)))
    ce, logits_t = map(np.asarray, ev(p0))
    logp = logits_t.T - np.log(np.exp(logits_t.T).sum(1, keepdims=True))
    np.testing.assert_allclose(ce, -logp[np.arange(32), np.asarray(y)], rtol=1e-5)


@pytest.mark.slow
def test_one_step_of_the_mlp_equals_optax_label_smoothing_by_hand():
    """One SGD step of the engine (its own minibatch, init and program) equals the step
    computed by hand."""
    ds = toy_dataset()
    cfg = dataclasses.replace(toy_train_config(), steps=1, eval_every=1, chunk_steps=1)
    model = model_config("mlp", 16, smoothed)
    hp = HParams.create(lr=[0.5], l2=1e-3, user={"label_smoothing": 0.1})
    got = engine.train_population(ds, hp, model, cfg, member_ids=[7])
    p0 = jax.tree.map(lambda a: jnp.asarray(a[0]), init_states(ds, hp, model, cfg, [7]).params)
    idx = minibatch_indices(root_keys(cfg.seed)[1], 0, cfg.batch_size, ds.info.n_train)
    x, y = jnp.asarray(ds.x_train)[idx], jnp.asarray(ds.y_train)[idx]
    grads = jax.grad(_by_hand(x, y, 0.1, 1e-3))(p0)
    want = jax.tree.map(lambda a, g: a - 0.5 * g, p0, grads)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got.params), strict=True):
        np.testing.assert_allclose(b[0], a, rtol=1e-5, atol=1e-6)
    assert not np.allclose(want["out"]["kernel"], p0["out"]["kernel"])


@pytest.mark.slow
def test_member_in_population_equals_member_alone():
    """Tolerance rtol 1e-4 / atol 1e-5, as tests/test_custom.py."""
    ds, cfg = toy_dataset(), toy_train_config()
    model = model_config("mlp", 16, smoothed)
    hp = HParams.create(lr=np.full(4, 0.1), l2=1e-4, user={"label_smoothing": [0, 0.05, 0.1, 0.2]})
    pop = engine.train_population(ds, hp, model, cfg, member_ids=np.arange(4) + 10)
    alone = engine.train_population(ds, hp.take([3]), model, cfg, member_ids=[13])
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(pop.params), strict=True):
        np.testing.assert_allclose(a[0], b[3], rtol=1e-4, atol=1e-5)
    # same lr and seed: only the smoothing differs, and it changes the training loss
    assert len(set(np.round(pop.curves.train_loss[:, -1], 5))) == 4


@pytest.mark.slow
def test_coarse_and_fine_keep_the_loss(blobs_npz, tmp_path):
    """From Python: a smoothing of 0 trains the built-in softmax exactly as its own
    cross-entropy; 0.2, declared as a user hyperparameter, changes every member's
    training loss; the stored model names the loss and fine inherits it."""
    from sweepjax import coarse, fine

    where = dict(dataset=f"npz:{blobs_npz}", store=str(tmp_path / "s.db"), report=False)
    kw = dict(where, model="softmax", lr=(0.05, 0.5), trials=4, steps=40, batch_size=32)
    kw |= dict(schedule="full")
    plain = coarse(**kw)
    zero = coarse(loss=smoothed, hparams={"label_smoothing": 0.0}, **kw)
    some = coarse(loss=smoothed, hparams={"label_smoothing": 0.2}, **kw)

    def train_loss(res):
        return np.array([m.final_train_loss for m in res.members])

    np.testing.assert_allclose(train_loss(zero), train_loss(plain), rtol=1e-5)
    assert np.all(np.abs(train_loss(some) - train_loss(plain)) > 1e-3)
    assert some.config.model.loss == "tests.test_builtin_loss:smoothed"
    assert plain.config.model.loss is None
    f = fine(parent=some.sweep_id, trials=4, steps=40, schedule="full", refit=False, **where)
    assert f.config.model.loss == some.config.model.loss
