"""Models with state, as their libraries teach them: a flax linen module with BatchNorm
(mutable ``batch_stats``), dropout and a ``train`` flag (tests/custom_models.py
:class:`BNDropMLP`).

The fast tests check one member's step against the Flax examples' own training step
written out by hand, and the evaluation mode; the slow ones the guarantees of issue 28
item 6: a member in the population equals it alone (params, BatchNorm statistics,
curves), new values never recompile, ``resume`` is exact and ``fine`` inherits the
model.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import sweepjax
from sweepjax import engine
from sweepjax.config import ModelConfig
from sweepjax.engine import member, program
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError
from sweepjax.flows.sweep import Callbacks, SweepInterrupted
from sweepjax.models import custom
from sweepjax.models.custom_net import MEMBER_RNG
from sweepjax.models.eqx_net import from_equinox
from sweepjax.models.network import has_state
from sweepjax.models.nnx_net import from_nnx, replace_by_pure
from tests.custom_models import BNDropMLP, EqxBNDrop, NNXBNDrop, TinyMLP
from tests.helpers import blobs, toy_dataset, toy_train_config

BN = "tests.custom_models:BNDropMLP"
NNX = "tests.custom_models:NNXBNDrop"
EQX = "tests.custom_models:EqxBNDrop"


def _static(net, folds=False):
    return member.Static(net, "momentum", 8, 1e6, folds=folds)


def test_a_step_is_the_flax_examples_training_step():
    """``member.step`` of a BatchNorm + dropout module equals the Flax examples' step
    written by hand: ``apply(train=True, mutable=["batch_stats"], rngs={"dropout": k})``
    with ``k = fold_in(member key, t)``, momentum on ``params`` only, the new running
    statistics kept. Evaluation uses the running statistics and no dropout."""
    net = custom.resolve(BN, 4, (6,))
    assert has_state(net) and not has_state(custom.resolve(custom.qualname(TinyMLP), 4, (6,)))
    hp = HParams.create(lr=[0.3], l2=[1e-2], momentum=[0.9]).take(0)
    key = jax.random.key(7)
    # Everything jitted: eager flax runs one small program per operation (slow to compile).
    state = jax.jit(member.init, static_argnums=(2, 3))(key, hp, 6, _static(net))
    tree = state.params
    assert set(tree) == {"params", "batch_stats", MEMBER_RNG}
    # the optimizer's slots are the trained params' only (no slots for the statistics)
    assert len(jax.tree.leaves(state.opt_state)) == len(jax.tree.leaves(tree["params"]))
    rng = np.random.default_rng(0)
    x_train = jnp.asarray(rng.normal(size=(40, 6)), jnp.float32)
    y_train = jnp.asarray(rng.integers(0, 4, 40), jnp.int32)
    data_key, t = jax.random.key(3), 5
    shared = member.Shared(x_train, y_train, jnp.zeros(40, jnp.int32), t, 100, data_key)
    own = member.Own(state, hp, jnp.int32(-1), jnp.int32(0))
    new, metrics = jax.jit(member.step, static_argnums=2)(own, shared, _static(net))

    module = BNDropMLP()
    idx = np.asarray(member.minibatch_indices(data_key, t, 8, 40))
    x, y = x_train[idx], y_train[idx]
    drop = jax.random.fold_in(jax.random.wrap_key_data(tree[MEMBER_RNG]), t)

    @jax.jit
    def reference(p):
        return jax.value_and_grad(loss_fn, has_aux=True)(p)

    def loss_fn(p):
        logits, upd = module.apply(
            {"params": p, "batch_stats": tree["batch_stats"]},
            x,
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": drop},
        )
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
        l2 = sum(jnp.sum(p[n]["kernel"] ** 2) for n in ("hidden", "out")) / 2
        return ce + hp.l2 * l2, upd

    (loss, upd), g = reference(tree["params"])
    lr = float(hp.lr * member.lr_multiplier(t, 100, hp.lr_decay))
    want = jax.tree.map(lambda p, gi: np.asarray(p) - lr * np.asarray(gi), tree["params"], g)
    np.testing.assert_allclose(metrics.loss, loss, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(new.params["params"]), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    stats = new.params["batch_stats"]["bn"]
    np.testing.assert_allclose(stats["mean"], upd["batch_stats"]["bn"]["mean"], rtol=1e-5)
    np.testing.assert_allclose(stats["var"], upd["batch_stats"]["bn"]["var"], rtol=1e-5)
    assert not np.allclose(stats["mean"], tree["batch_stats"]["bn"]["mean"])  # they moved
    np.testing.assert_array_equal(new.params[MEMBER_RNG], tree[MEMBER_RNG])
    # Evaluation: running statistics, no dropout (deterministic), from the same tree.
    inner = {k: v for k, v in new.params.items() if k != MEMBER_RNG}
    logits_t = jax.jit(net.logits_t)(new.params, x.T, hp)
    want = jax.jit(lambda v: module.apply(v, x, train=False))(inner)
    np.testing.assert_allclose(logits_t.T, want, rtol=1e-5)
    # Folds would let held-out rows into the batch statistics: refused, one line.
    with pytest.raises(ConfigError, match="--folds cannot train a model with BatchNorm"):
        jax.eval_shape(functools.partial(member.step, static=_static(net, folds=True)), own, shared)


def test_each_member_has_its_own_dropout_stream():
    """The dropout key comes from the member's own init key (its id), not the population:
    two members get different keys, the same member the same key."""
    net = custom.resolve(BN, 4, (6,))
    init = jax.jit(lambda k: net.init(k, 6, None))
    ks = [init(jax.random.fold_in(jax.random.key(0), i)) for i in (0, 1, 0)]
    assert not np.array_equal(ks[0][MEMBER_RNG], ks[1][MEMBER_RNG])
    np.testing.assert_array_equal(ks[0][MEMBER_RNG], ks[2][MEMBER_RNG])


def _val(v):
    """A variable's array: ``v[...]`` (newer flax warns on ``.value``); flax 0.10.0's
    VariableState (our floor) takes no index, only ``.value``."""
    try:
        return v[...]
    except TypeError:
        return v.value


def test_nnx_init_step_and_eval_are_nnx_own():
    """An NNX module: a member's weights are its constructor's with
    ``rngs=nnx.Rngs(member key)``; a step equals ``model.train()`` + ``nnx.value_and_grad``
    by hand (params and BatchNorm statistics; dropout rate 0 here, so the reference
    needs no key); evaluation equals ``model.eval()``."""
    from flax import nnx

    def factory(rngs):
        return NNXBNDrop(6, 4, rate=0.0, rngs=rngs)

    net = dataclasses.replace(from_nnx(factory), num_classes=4, input_shape=(6,))
    hp = HParams.create(lr=[0.3], l2=[1e-2], momentum=[0.9]).take(0)
    key = jax.random.key(7)
    state = jax.jit(member.init, static_argnums=(2, 3))(key, hp, 6, _static(net))
    ref = factory(nnx.Rngs(key))
    np.testing.assert_array_equal(
        state.params["params"]["hidden"]["kernel"], _val(ref.hidden.kernel)
    )
    rng = np.random.default_rng(0)
    x_train = jnp.asarray(rng.normal(size=(40, 6)), jnp.float32)
    y_train = jnp.asarray(rng.integers(0, 4, 40), jnp.int32)
    shared = member.Shared(x_train, y_train, jnp.zeros(40, jnp.int32), 5, 100, jax.random.key(3))
    own = member.Own(state, hp, jnp.int32(-1), jnp.int32(0))
    new, metrics = jax.jit(member.step, static_argnums=2)(own, shared, _static(net))
    idx = np.asarray(member.minibatch_indices(jax.random.key(3), 5, 8, 40))
    x, y = x_train[idx], y_train[idx]

    @nnx.jit
    def reference(model):
        def loss_fn(m):
            ce = optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
            return (
                ce
                + hp.l2
                * (jnp.sum(_val(m.hidden.kernel) ** 2) + jnp.sum(_val(m.out.kernel) ** 2))
                / 2
            )

        model.train()
        return nnx.value_and_grad(loss_fn)(model)

    loss, g = reference(ref)  # updates ref's BatchNorm statistics in place
    lr = float(hp.lr * member.lr_multiplier(5, 100, hp.lr_decay))
    np.testing.assert_allclose(metrics.loss, loss, rtol=1e-5)
    want = new.params["params"]["hidden"]["kernel"]
    np.testing.assert_allclose(
        want, _val(ref.hidden.kernel) - lr * _val(g["hidden"]["kernel"]), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        new.params["state"]["bn"]["mean"], _val(ref.bn.mean), rtol=1e-5, atol=1e-7
    )
    np.testing.assert_allclose(new.params["state"]["bn"]["var"], _val(ref.bn.var), rtol=1e-5)
    # evaluation: model.eval() with the member's new params (its statistics: checked above)
    _, params_state, _ = nnx.split(ref, nnx.Param, ...)
    replace_by_pure(params_state, new.params["params"])
    nnx.update(ref, params_state)
    ref.eval()
    logits_t = jax.jit(net.logits_t)(new.params, x.T, hp)
    np.testing.assert_allclose(logits_t.T, nnx.jit(lambda m: m(x))(ref), rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # ~3 s; linen and NNX keep the default tier's claim
def test_equinox_step_and_eval_are_equinox_own():
    """An Equinox module called per example: a member's weights are the constructor's
    with ``key=member key``; a step equals the Equinox docs' BatchNorm step by hand
    (``jax.vmap(model, axis_name="batch", in_axes=(0, None), out_axes=(0, None))``,
    ``eqx.filter_value_and_grad``; dropout rate 0, so no key is needed); evaluation
    equals ``eqx.nn.inference_mode(model)``. L2 acts on the Linear weights only."""
    eqx = pytest.importorskip("equinox")

    def factory(*, key):
        return EqxBNDrop(6, 4, rate=0.0, key=key)

    net = dataclasses.replace(from_equinox(factory), num_classes=4, input_shape=(6,))
    hp = HParams.create(lr=[0.3], l2=[1e-2], momentum=[0.9]).take(0)
    key = jax.random.key(7)
    state = jax.jit(member.init, static_argnums=(2, 3))(key, hp, 6, _static(net))
    model, bn_state = eqx.filter_jit(lambda k: eqx.nn.make_with_state(factory)(key=k))(key)
    kernels = [k for k in state.params["params"].values() if "kernel" in k]
    assert len(kernels) == 2  # the two Linear weights; the BatchNorm weight is not one
    np.testing.assert_array_equal(kernels[0]["kernel"], model.hidden.weight)
    rng = np.random.default_rng(0)
    x_train = jnp.asarray(rng.normal(size=(40, 6)), jnp.float32)
    y_train = jnp.asarray(rng.integers(0, 4, 40), jnp.int32)
    shared = member.Shared(x_train, y_train, jnp.zeros(40, jnp.int32), 5, 100, jax.random.key(3))
    own = member.Own(state, hp, jnp.int32(-1), jnp.int32(0))
    new, metrics = jax.jit(member.step, static_argnums=2)(own, shared, _static(net))
    idx = np.asarray(member.minibatch_indices(jax.random.key(3), 5, 8, 40))
    x, y = x_train[idx], y_train[idx]

    @eqx.filter_jit
    def reference(model, bn_state):
        def loss_fn(m):
            batched = jax.vmap(m, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
            logits, st = batched(x, bn_state)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return ce + hp.l2 * (jnp.sum(m.hidden.weight**2) + jnp.sum(m.out.weight**2)) / 2, st

        return eqx.filter_value_and_grad(loss_fn, has_aux=True)(model)

    (loss, new_bn), g = reference(model, bn_state)
    lr = float(hp.lr * member.lr_multiplier(5, 100, hp.lr_decay))
    np.testing.assert_allclose(metrics.loss, loss, rtol=1e-5)
    got = [k for k in new.params["params"].values() if "kernel" in k][0]["kernel"]
    want = model.hidden.weight - lr * g.hidden.weight
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    floats = [v for v in jax.tree.leaves(new_bn) if v.dtype == jnp.float32]
    stored = [v for v in new.params["state"].values() if v.dtype == jnp.float32]
    for a, b in zip(stored, floats, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
    # evaluation: inference mode (running statistics) on the member's values
    logits_t = jax.jit(net.logits_t)(new.params, x.T, hp)
    assert logits_t.shape == (4, 8)
    first = jax.jit(net.logits_t)(state.params, x.T, hp)  # fresh statistics: mean 0, var 1
    m0 = eqx.nn.inference_mode(model)
    batched = jax.vmap(m0, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    np.testing.assert_allclose(first.T, batched(x, bn_state)[0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("spec", [BN, NNX, EQX])
def test_member_in_population_equals_member_alone_with_batch_stats(spec):
    """Momentum, lr, l2, init_scale and momentum swept per member. Every leaf of the
    final tree (params, BatchNorm statistics, dropout key) and the curves of a member
    alone equal its row of the population within rtol 1e-4 / atol 1e-5 (measured: at
    most 5e-7; the population's matmuls round differently). New values never
    recompile."""
    if spec == EQX:
        pytest.importorskip("equinox")
    ds = toy_dataset()
    cfg = toy_train_config().replace(optimizer="momentum")
    model = ModelConfig(kind="custom", spec=spec)
    hp = HParams.create(
        lr=np.geomspace(1e-3, 0.3, 8),
        l2=np.geomspace(1e-5, 1e-1, 8),
        init_scale=np.linspace(0.5, 2.0, 8),
        momentum=np.linspace(0.5, 0.95, 8),
    )
    pop = engine.train_population(ds, hp, model, cfg, member_ids=np.arange(8) + 100)
    assert pop.alive.all() and pop.best_val_acc.max() > 0.7  # chance: 0.25
    for i in (0, 5):
        alone = engine.train_population(ds, hp.take([i]), model, cfg, member_ids=[100 + i])
        for tree_a, tree_p in ((alone.params, pop.params), (alone.best_params, pop.best_params)):
            for a, b in zip(jax.tree.leaves(tree_a), jax.tree.leaves(tree_p), strict=True):
                np.testing.assert_allclose(a[0], b[i], rtol=1e-4, atol=1e-5, strict=True)
        np.testing.assert_allclose(alone.curves.val_acc[0], pop.curves.val_acc[i], atol=1e-6)
        np.testing.assert_allclose(alone.curves.train_loss[0], pop.curves.train_loss[i], rtol=1e-4)
        assert alone.best_step[0] == pop.best_step[i]
    before = program.compile_counts()
    hp2 = HParams.create(lr=np.full(8, 0.05), l2=1e-4, init_scale=np.linspace(1, 3, 8))
    engine.train_population(ds, hp2, model, cfg)
    assert program.compile_counts() == before


@pytest.mark.slow
@pytest.mark.parametrize(
    "spec", [BN, "tests.custom_models:nnx_blobs", "tests.custom_models:eqx_blobs"]
)
def test_resume_is_exact_and_fine_inherits_the_model(tmp_path, spec):
    if "eqx" in spec:
        pytest.importorskip("equinox")
    """A BatchNorm + dropout sweep named as ``--model`` names it, stopped at a chunk
    boundary and resumed in a "new process" (registry emptied): the members of an
    uninterrupted run. ``fine`` then trains the same model (and its winner reaches the
    accuracy of the coarse round's)."""
    p = tmp_path / "blobs.npz"
    (xtr, ytr), (xte, yte) = blobs(600, 0), blobs(200, 1)
    np.savez(p, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    kw = dict(
        dataset=f"npz:{p}",
        model=spec,
        optimizer="adam",
        lr=(1e-3, 1e-1),
        trials=8,
        steps=60,
        batch_size=32,
        report=False,
    )
    calls = []

    def stop():
        calls.append(1)
        return len(calls) >= 3

    store = str(tmp_path / "r.db")
    with pytest.raises(SweepInterrupted):
        sweepjax.coarse(store=store, callbacks=Callbacks(stop=stop), **kw)
    custom._OBJECTS.clear()
    custom._BOUND.clear()
    resumed = sweepjax.coarse(store=store, resume=True, **kw)
    fresh = sweepjax.coarse(store=str(tmp_path / "f.db"), **kw)
    assert resumed.members == fresh.members
    assert resumed.winner.val_acc > 0.9 and resumed.winner.test_acc > 0.9
    fine = sweepjax.fine(parent=resumed.sweep_id, store=store, steps=60, report=False)
    assert fine.config.model.spec == spec
    assert fine.winner.test_acc > 0.9


def test_nnx_names_a_class_by_name_and_a_ready_instance_with_a_note():
    """An importable NNX class is stored by name (``fine`` / ``--resume`` re-import it
    and build per-member weights); a ready instance is fingerprinted and the plan says
    every member starts from its weights."""
    from flax import nnx

    from sweepjax.models.nnx_net import READY_NOTE

    ds = toy_dataset()
    assert custom.model_config(NNXBNDrop).spec == NNX
    assert custom.prepare(custom.model_config(NNXBNDrop), ds) == []
    ready = custom.model_config(NNXBNDrop(rngs=nnx.Rngs(0)))
    assert ready.spec.startswith("tests.custom_models:NNXBNDrop#")
    assert custom.prepare(ready, ds) == [READY_NOTE.format(spec=ready.spec)]
    net = custom.resolve(ready.spec, 4, (20,))
    init = jax.jit(lambda k: net.init(k, 20, None))
    a, b = (init(jax.random.key(i)) for i in (0, 1))  # every member starts from its weights
    np.testing.assert_array_equal(a["params"]["out"]["kernel"], b["params"]["out"]["kernel"])
    with pytest.raises(ConfigError, match="takes no `rngs`"):
        from_nnx(lambda: None)


def test_equinox_names_a_class_by_name_and_a_ready_instance_with_a_note():
    """As for NNX: an importable Equinox class is stored by name; a ready instance is
    fingerprinted and noted; a constructor without ``key`` is refused in one line."""
    eqx = pytest.importorskip("equinox")
    from sweepjax.models.eqx_net import READY_NOTE

    ds = toy_dataset()
    assert custom.model_config(EqxBNDrop).spec == EQX
    assert custom.prepare(custom.model_config(EqxBNDrop), ds) == []
    made = eqx.filter_jit(lambda k: EqxBNDrop(key=k))(jax.random.key(0))
    ready = custom.model_config(made)
    assert ready.spec.startswith(EQX + "#")
    assert custom.prepare(ready, ds) == [READY_NOTE.format(spec=ready.spec)]
    with pytest.raises(ConfigError, match="takes no `key`"):
        from_equinox(lambda: None)


@pytest.mark.slow  # ~1.5 s: builds and inits an Equinox model (default tier budget)
def test_equinox_first_layer_is_drawn_from_its_own_layout():
    """Equinox keeps a Linear's weight as ``[out, in]`` (flax: ``[in, out]``): the report's
    first-layer images read unit f from row f, for images and for tabular features."""
    pytest.importorskip("equinox")
    from sweepjax.report import custom_fig
    from tests.custom_models import eqx_blobs

    net = from_equinox(eqx_blobs, num_classes=4)
    tree = net.init_fn(jax.random.key(3), jnp.zeros((1, 64)))
    name, imgs = custom_fig.first_layer(tree, [8, 8])
    w = next(v["kernel"] for k, v in tree["params"].items() if "hidden" in k)
    assert w.shape == (16, 64) and "hidden" in name and imgs.shape == (16, 8, 8)
    np.testing.assert_array_equal(imgs[5], np.asarray(w)[5].reshape(8, 8))
    assert custom_fig.first_layer_images(tree, [64]) is not None  # per-feature chart
