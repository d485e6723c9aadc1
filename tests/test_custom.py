"""The user's own model (sweepjax/custom.py, custom_net.py): the Network contract against
NumPy, a member in the population equals it alone, names and the registry, one-line errors
(exit 2, nothing stored), the examples end to end (CLI coarse -> fine -> refit ->
report, the notebook script), resume, and four devices.

Data: 8x8 single-channel "blobs", 4 classes (chance 0.25): a bright 3x3 square in the
class's quadrant plus unit Gaussian noise.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import sweepjax
from sweepjax import engine
from sweepjax.cli import main
from sweepjax.config import ModelConfig
from sweepjax.engine import program
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError
from sweepjax.flows.sweep import Callbacks, SweepInterrupted
from sweepjax.models import custom
from sweepjax.models.custom import from_flax, input_shape_for, register, resolve
from sweepjax.store.db import Store
from tests.custom_models import TinyMLP
from tests.helpers import blob_dataset, blobs, toy_dataset, toy_train_config

ROOT = Path(__file__).resolve().parents[1]
TINY = "tests.custom_models:TinyMLP"
CNN = "examples.my_cnn:SmallCNN"
SMALL = ["--trials", "8", "--steps", "60", "--batch-size", "32", "--no-report"]
ADAM = ["--optimizer", "adam", "--lr", "1e-3", "1e-1"]


@pytest.fixture(scope="module")
def npz(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("blobs") / "blobs.npz"
    (xtr, ytr), (xte, yte) = blobs(600, 0), blobs(200, 1)
    np.savez(p, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return p


# --------------------------------------------------------------------------- contract
def test_example_shapes():
    assert input_shape_for((28, 28)) == (28, 28, 1)  # grayscale images gain a channel
    assert input_shape_for((784,)) == (784,)
    assert input_shape_for((8, 8, 3)) == (8, 8, 3)


def test_logits_loss_penalty_and_init_scale_against_numpy():
    net = resolve(TINY, 4, (2, 3))  # examples [2, 3, 1], 6 features
    assert net.input_shape == (2, 3, 1) and net.num_classes == 4
    p = jax.tree.map(np.asarray, net.init(jax.random.key(0), 6, None))
    x = np.random.default_rng(0).normal(size=(5, 6)).astype(np.float32)
    logits_t = np.asarray(net.logits_t(p, jnp.asarray(x.T), None))
    h = np.maximum(x @ p["hidden"]["kernel"] + p["hidden"]["bias"], 0)
    want = h @ p["out"]["kernel"] + p["out"]["bias"]
    np.testing.assert_allclose(logits_t, want.T, rtol=1e-5, atol=1e-6)
    y = np.array([0, 1, 2, 3, 1])
    z = want - want.max(1, keepdims=True)
    ce = np.log(np.exp(z).sum(1)) - z[np.arange(5), y]
    np.testing.assert_allclose(net.loss_t(jnp.asarray(logits_t), y), ce, rtol=1e-5)
    # The L2 term is over the kernels only: biases are not regularised.
    p = jax.tree.map(lambda a: a + 0.5, p)
    kern = sum(np.sum(np.square(p[n]["kernel"])) for n in ("hidden", "out"))
    np.testing.assert_allclose(net.penalty(p), 0.5 * kern, rtol=1e-5)
    # The init-scale axis multiplies the kernels, not the biases.
    hp = HParams.create(lr=[0.1], l2=[0.0], init_scale=[0.25]).take(0)
    a, b = net.init(jax.random.key(1), 6, None), net.init(jax.random.key(1), 6, hp)
    np.testing.assert_allclose(b["out"]["kernel"], 0.25 * a["out"]["kernel"], rtol=1e-6)
    np.testing.assert_array_equal(b["hidden"]["bias"], a["hidden"]["bias"])
    # A custom loss sees logits [B, K] and labels [B].
    sq = from_flax(TinyMLP(), loss=lambda lg, lb: jnp.sum(lg**2, axis=1) + lb)
    sq = dataclass_bind(sq, 4, (2, 3, 1))
    np.testing.assert_allclose(sq.loss_t(jnp.asarray(logits_t), y), (want**2).sum(1) + y, rtol=1e-5)


def dataclass_bind(c, k, shape):
    import dataclasses

    return dataclasses.replace(c, num_classes=k, input_shape=shape)


def test_names_and_registry():
    # An importable name resolves once per (classes, example shape): same object.
    a = resolve(TINY, 4, (20,))
    assert resolve(TINY, 4, (20,)) is a and resolve(TINY, 3, (20,)) is not a
    # A default-constructed module keeps its importable name; equal objects are one.
    m = register(TinyMLP())
    assert m.spec == TINY and register(TinyMLP()) is m
    assert resolve(TINY, 4, (20,)).module is m.module
    # Anything else gets a fingerprint (stable: no memory addresses), so it must be
    # passed again in a new process.
    w8 = register(TinyMLP(hidden=8))
    assert w8.spec.startswith(TINY + "#") and register(TinyMLP(hidden=8)).spec == w8.spec
    lossy = register(TinyMLP(), loss=lambda lg, lb: lg[:, 0])
    assert lossy.spec.startswith(TINY + "#") and lossy.spec != w8.spec
    custom._OBJECTS.pop(w8.spec)
    with pytest.raises(ConfigError, match="from Python, pass the object itself again"):
        resolve(w8.spec, 4, (20,))
    # a built-in takes a loss too, stored by name (tests/test_builtin_loss.py)
    assert custom.model_config("softmax", loss=lambda lg, lb: lg).loss.startswith(__name__)
    with pytest.raises(ConfigError, match="hidden width 50 is the built-in mlp's"):
        custom.model_config(TINY, hidden=50)


@pytest.mark.slow
def test_member_in_population_equals_member_alone_with_traced_axes():
    """A flax MLP, momentum, with lr, l2, init_scale and momentum swept per member.
    Tolerance rtol 1e-4 / atol 1e-5 (as tests/test_train.py: the population's matmuls
    round differently). New values do not recompile."""
    ds = toy_dataset()
    cfg = toy_train_config().replace(optimizer="momentum")
    model = ModelConfig(kind="custom", spec=TINY)
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
        for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(pop.params), strict=True):
            np.testing.assert_allclose(a[0], b[i], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(alone.curves.val_acc[0], pop.curves.val_acc[i], atol=1e-6)
        np.testing.assert_allclose(alone.curves.train_loss[0], pop.curves.train_loss[i], rtol=1e-4)
        assert alone.best_step[0] == pop.best_step[i]
    before = program.compile_counts()
    hp2 = HParams.create(lr=np.full(8, 0.05), l2=1e-4, init_scale=np.linspace(1, 3, 8))
    engine.train_population(ds, hp2, model, cfg)
    assert program.compile_counts() == before
    # hidden / dropout are the built-in MLP's axes
    with pytest.raises(ConfigError, match="hidden is an axis of the built-in mlp"):
        engine.train_population(ds, HParams.create(lr=np.full(8, 0.1), l2=0, hidden=8), model, cfg)


def test_memory_sizing_from_the_models_shapes():
    tiny = ModelConfig(kind="custom", spec=TINY)
    cfg = toy_train_config()
    assert engine.num_params(tiny, 20, 4, (20,)) == 20 * 16 + 16 + 16 * 4 + 4
    # activations of one example: dense 16 (product, bias, sum, relu), dense 4 (product,
    # bias, sum); the largest single one is a hidden layer's, 16
    assert custom.sizes(resolve(TINY, 4, (20,)), 20) == (404, 4 * 16 + 3 * 4, 16)
    # every intermediate twice per training row, the largest twice per evaluation row
    per = engine.member_bytes(tiny, cfg, 20, 4, (20,))
    assert per == 4 * (404 * 5 + 32 * 76 * 2 + 100 * 16 * 2)
    # a conv net's feature maps count: 8 filters on 8x8 -> 512 values per conv output
    sz = custom.sizes(resolve(CNN, 4, (8, 8)), 64)
    assert sz.activations >= 3 * 8 * 8 * 8 and sz.largest == 8 * 8 * 8


def chunk_program_bytes(ds, model: ModelConfig, cfg, m: int, member_batch=None) -> int:
    """What XLA's own memory analysis says the chunk program of ``m`` members needs
    beyond the shared data: its temporaries plus the members' state arguments (lowered
    on abstract states: nothing is initialised or run). ``member_batch``: the layout
    (default: the engine's rule)."""
    import functools

    from sweepjax.engine import setup

    hp = HParams.create(lr=np.full(m, 0.05), l2=1e-4)
    st = setup.static(ds, model, cfg, hparams=hp)
    st = st if member_batch is None else st._replace(member_batch=member_batch)
    init = functools.partial(program._init_block, num_features=ds.num_features, static=st)
    key = np.asarray(jax.random.key_data(jax.random.key(0)))
    states = jax.eval_shape(init, key, np.arange(m, dtype=np.uint32), hp)
    data = program.device_data(ds, cfg)
    z = np.zeros(m, np.int32)
    args = (states, hp, z, z, data, *np.int32([0, 10, 100]), key)
    fn = jax.jit(functools.partial(program._population_block, static=st), donate_argnums=(0,))
    ma = fn.lower(*args).compile().memory_analysis()
    shared = sum(np.asarray(a).nbytes for a in jax.tree.leaves(data))
    return ma.temp_size_in_bytes + ma.argument_size_in_bytes - shared


@pytest.mark.slow  # ~3 s of compiling (default tier budget)
def test_sixteen_small_cnns_are_one_group_and_the_mlp_estimate_is_an_upper_bound():
    """The issue's sweep: 16 examples.my_cnn:SmallCNN on MNIST shapes under the default
    2 GiB budget were split into 3 groups of 7 (272 MiB a member: every intermediate x4
    per training row, x2 per evaluation row); now one group. A conv model's members are
    looped over one at a time, so one member's activations are live and the group grows
    by the members' state only. The MLP's estimate (unchanged) still bounds what XLA's
    memory analysis of its compiled chunk program finds (Adam: the most state)."""
    from sweepjax.config import TrainConfig
    from sweepjax.engine import setup

    cnn, cfg = ModelConfig(kind="custom", spec=CNN), TrainConfig()
    assert cfg.memory_budget_mb == 2048
    assert setup.member_batch(cnn, 784, 10, (28, 28)) == 1
    assert engine.group_size(16, cnn, cfg, 784, 10, (28, 28)) == 16  # one group
    state, acts = setup._bytes(cnn, cfg, 784, 10, (28, 28))
    assert state == 4 * 15_770 * 5  # params, best, gradient, update, new params (SGD)
    # 256 x 23,558 intermediates x 2 + 1,000 x the largest (6,272) x 2, in float32
    assert acts == 4 * (256 * 23_558 * 2 + 1000 * 6272 * 2)
    # even vmapped, with every member's activations live, 16 would fit the budget
    assert 16 * engine.member_bytes(cnn, cfg, 784, 10, (28, 28)) < 2048 * 2**20

    mlp, adam = ModelConfig(kind="mlp", hidden=100), cfg.replace(optimizer="adam")
    assert setup.member_batch(mlp, 784, 10) == 0
    wide = toy_dataset(n_train=600, n_val=1000, n_test=10, d=784, k=10)
    need = chunk_program_bytes(wide, mlp, adam, 8)
    assert 8 * engine.member_bytes(mlp, adam, 784, 10) >= need


@pytest.mark.slow
def test_the_estimate_bounds_xla_for_a_conv_net_in_both_layouts():
    """A conv net looped (one member's activations live) and vmapped (every member's),
    and the MLP with SGD: the estimate is at least XLA's memory analysis of the chunk
    program (temporaries + the members' state), at the default evaluation slices."""
    from sweepjax.config import TrainConfig
    from sweepjax.engine import setup

    cfg = TrainConfig()
    ds, cnn = blob_dataset(n_val=1000), ModelConfig(kind="custom", spec=CNN)
    state, acts = setup._bytes(cnn, cfg, 64, 4, (8, 8))
    assert chunk_program_bytes(ds, cnn, cfg, 16) <= 16 * state + acts
    assert chunk_program_bytes(ds, cnn, cfg, 16, member_batch=0) <= 16 * (state + acts)
    mlp = ModelConfig(kind="mlp", hidden=100)
    wide = toy_dataset(n_train=600, n_val=1000, n_test=10, d=784, k=10)
    assert 8 * engine.member_bytes(mlp, cfg, 784, 10) >= chunk_program_bytes(wide, mlp, cfg, 8)


@pytest.mark.slow  # ~7 s of conv compiles
def test_conv_members_looped_equal_vmapped_and_alone():
    """A conv net's population runs its members one after another inside the program
    (``Static.member_batch = 1``: vmapping the convolution is several times slower on
    XLA:CPU). Same arithmetic: one training block (40 steps of momentum, lr, l2 and
    momentum per member, then an evaluation) of 3 members looped equals the same members
    vmapped to float tolerance (the vmapped convolution sums in another order), and
    each member equals itself trained alone exactly."""
    from sweepjax.engine import setup
    from sweepjax.engine.distributed import SINGLE

    ds = blob_dataset()
    cfg = toy_train_config().replace(optimizer="momentum")
    model = ModelConfig(kind="custom", spec=CNN)
    hp = HParams.create(lr=[0.01, 0.05, 0.2], l2=[1e-4, 1e-3, 1e-2], momentum=[0.5, 0.9, 0.8])
    looped = setup.static(ds, model, cfg, hparams=hp)
    assert looped.member_batch == 1
    # the built-ins and a dense custom model keep vmapping every member at once
    dense = ModelConfig(kind="custom", spec=TINY)
    for other in (ModelConfig(kind="softmax"), ModelConfig(kind="mlp"), dense):
        assert setup.static(ds, other, cfg).member_batch == 0
    states = setup.init_states(ds, hp, model, cfg, member_ids=np.arange(3) + 7)
    data = program.device_data(ds, cfg)
    key = np.asarray(jax.random.key_data(setup.root_keys(cfg.seed)[1]))

    def block(st, rows):
        """40 steps and one evaluation of the members ``rows``: (params, metrics)."""
        z = np.zeros(len(rows), np.int32)
        s = jax.device_put(jax.tree.map(lambda a: a[rows], states))  # donated
        args = (s, hp.take(rows), z, z, data, *np.int32([0, 40, 40]), key)
        exe, _ = program.compiled_block(args, st, SINGLE)
        s, met = exe(*args)
        return jax.tree.map(np.asarray, (s.params, met))

    every = np.arange(3)
    p_loop, m_loop = block(looped, every)
    p_vmap, m_vmap = block(looped._replace(member_batch=0), every)
    assert np.all(m_loop.val_acc > 0.7)  # chance: 0.25
    for a, b in zip(
        jax.tree.leaves((p_vmap, m_vmap)), jax.tree.leaves((p_loop, m_loop)), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for i in every:
        p_one, m_one = block(looped, np.array([i]))
        for a, b in zip(
            jax.tree.leaves((p_one, m_one)), jax.tree.leaves((p_loop, m_loop)), strict=True
        ):
            np.testing.assert_array_equal(a[0], b[i])


# --------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "spec, match",
    [
        ("nosuchpkg_xyz.nets:Net", "cannot import 'nosuchpkg_xyz.nets'"),
        ("tests.custom_models:Nope", "has no attribute 'Nope'"),
        ("tests.custom_models:NOT_A_MODEL", "is a int, not a flax nn.Module"),
        ("tests.custom_models:NeedsArgs", "cannot be built without arguments"),
        ("tests.custom_models:ThreeLogits", "must return logits [B, K] = [2, 4] (4 classes"),
        ("tests.custom_models:WrongShape", "cannot take the data's examples of shape [B, 8, 8, 1]"),
        ("tests.custom_models:WithBatchNorm", "its __call__ takes no `train` flag"),
        ("tests.custom_models:no_kernel", "has no parameter named 'kernel'"),
        ("nocolon", "unknown model 'nocolon'; choose softmax, mlp or package.module:Name"),
    ],
)
def test_bad_model_one_line_exit_2_nothing_stored(npz, tmp_path, capsys, monkeypatch, spec, match):
    monkeypatch.chdir(ROOT)
    store = tmp_path / "bad.db"
    capsys.readouterr()
    argv = ["coarse", "--model", spec, "--dataset", f"npz:{npz}", *SMALL, "--store", str(store)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("sweepjax: error: ") and "\n" not in err and match in err, err
    assert not store.exists()


def test_a_module_in_the_working_directory_and_one_that_fails_to_import(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    (tmp_path / "cwdnets_ok.py").write_text("from tests.custom_models import TinyMLP as Net\n")
    (tmp_path / "cwdnets_bad.py").write_text("raise RuntimeError('boom')\n")
    cfg = custom.model_config("cwdnets_ok:Net")
    assert cfg.spec == "cwdnets_ok:Net" and resolve(cfg.spec, 4, (20,)).module == TinyMLP()
    with pytest.raises(ConfigError, match="importing 'cwdnets_bad' .* RuntimeError: boom"):
        custom.model_config("cwdnets_bad:Net")


# --------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def cnn_sweeps(npz, tmp_path_factory):
    """The README's commands on the blobs: coarse with examples.my_cnn:SmallCNN, then a
    fine round that inherits it (with refit)."""
    store = str(tmp_path_factory.mktemp("cnn") / "cnn.db")
    old = os.getcwd()
    os.chdir(ROOT)
    try:
        for argv in (
            ["coarse", "--model", CNN, "--dataset", f"npz:{npz}", *SMALL, *ADAM],
            ["fine", "--steps", "120", "--no-report"],
        ):
            assert main([*argv, "--store", store, "--format", "json"]) == 0
        return store
    finally:
        os.chdir(old)


# The examples end to end are slow (a conv net's programs, refit, a report, the script);
# the contract, member-alone and resume tests above cover the same code in-process.
@pytest.mark.slow
def test_cnn_example_cli_coarse_fine_refit(cnn_sweeps):
    store = cnn_sweeps
    with Store.open(store) as st:
        c, f = st.load_sweep("c1"), st.load_sweep("f1")
    for r in (c, f):
        assert r.config.model == ModelConfig("custom", hidden=100, spec=CNN)
        assert r.winner.val_acc > 0.9 and r.winner.test_acc > 0.9  # chance: 0.25
    assert f.parent == "c1" and f.winner.refit_test_acc > 0.9
    # the stored winner's params are the CNN's: a 3x3 conv on 1 channel, 8 filters
    k = f.winner_params["Conv_0"]["kernel"]
    assert k.shape == (3, 3, 1, 8) and f.winner_params["Dense_0"]["kernel"].shape == (128, 4)


@pytest.mark.slow
def test_cnn_report_draws_the_first_layer_filters(cnn_sweeps, tmp_path):
    from sweepjax.report import custom_fig, write_report

    with Store.open(cnn_sweeps) as st:
        res = st.load_sweep("f1")
    name, imgs = custom_fig.first_layer(res.winner_params, res.dataset["input_shape"])
    k = res.winner_params["Conv_0"]["kernel"]
    assert name == "Conv_0" and imgs.shape == (8, 3, 3)
    np.testing.assert_array_equal(imgs[5], k[:, :, 0, 5])
    path = write_report(res, [], tmp_path / "rep", dataset_images=np.zeros((4, 8, 8)))
    assert (tmp_path / "rep" / "weights.png").stat().st_size > 0
    assert "first layer" in Path(path).read_text()
    # a dense first layer [D, F]: column f is unit f's image
    p = {"Dense_0": {"kernel": np.arange(64 * 3.0).reshape(64, 3)}}
    name, imgs = custom_fig.first_layer(p, [8, 8])
    np.testing.assert_array_equal(imgs[2], p["Dense_0"]["kernel"][:, 2].reshape(8, 8))
    assert custom_fig.first_layer({"w": {"kernel": np.zeros((5, 5))}}, [8, 8]) is None


@pytest.mark.slow
def test_own_model_script_coarse_then_fine_with_its_loss(npz, tmp_path):
    """examples/own_model.py: a model defined in the script with a label-smoothed loss;
    fine inherits both. Label smoothing (0.1 over 4 classes) puts a floor under the
    per-example loss: the entropy of the smoothed target, 0.349 nats."""
    from examples import own_model

    c, f = own_model.main(str(npz), str(tmp_path / "own.db"), trials=8, steps=60, classes=4)
    spec = c.config.model.spec
    assert spec.startswith("examples.own_model:Net#") and f.config.model.spec == spec
    floor = -(0.925 * np.log(0.925) + 3 * 0.025 * np.log(0.025))
    for r in (c, f):
        assert r.winner.val_acc > 0.9 and r.winner.test_acc > 0.9
        losses = [m.final_val_loss for m in r.members if m.final_val_loss is not None]
        assert min(losses) >= floor - 1e-4


@pytest.mark.slow
def test_resume_of_a_custom_sweep_equals_uninterrupted(npz, tmp_path):
    """Stopped at a chunk boundary, then resumed in a "new process" (registry emptied)
    with the model object passed again: the results of an uninterrupted run."""
    kw = dict(
        dataset=f"npz:{npz}",
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
        sweepjax.coarse(model=TinyMLP(hidden=8), store=store, callbacks=Callbacks(stop=stop), **kw)
    custom._OBJECTS.clear()
    custom._BOUND.clear()
    resumed = sweepjax.coarse(model=TinyMLP(hidden=8), store=store, resume=True, **kw)
    fresh = sweepjax.coarse(model=TinyMLP(hidden=8), store=str(tmp_path / "f.db"), **kw)
    assert resumed.sweep_id == "c1" and resumed.members == fresh.members
    assert resumed.winner.val_acc > 0.9
    # a fine round from a new process needs the object again
    custom._OBJECTS.clear()
    custom._BOUND.clear()
    with pytest.raises(ConfigError, match="from Python, pass the object itself again"):
        sweepjax.fine(parent="c1", store=store, steps=60, report=False)


# --------------------------------------------------------------------------- scale-out
# Slow: a cold-started subprocess, because the host device count is fixed when JAX's
# backend starts (see tests/test_distributed.py).
@pytest.mark.slow
def test_four_host_devices_match_one_device_for_a_custom_model(tmp_path):
    """tests/dist_worker.py with DIST_MODEL: the toy population of TinyMLPs on four
    forced host devices equals one device. Tolerance: each member's parameters within
    1e-4 of their norm (measured: <= 2e-5), accuracies atol 1e-6, training loss rtol
    1e-5, but for the member at lr 3 (below); statuses and best steps equal."""
    out = tmp_path / "r4.npz"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "DIST_MODEL": TINY,
        "XLA_FLAGS": os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4",
    }
    proc = subprocess.run(
        [sys.executable, "-m", "tests.dist_worker", str(out), "4"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    r4 = np.load(out)
    assert int(r4["devices"]) == 4
    from sweepjax.engine import distributed
    from tests.dist_worker import population

    one = population(distributed.placement(1), TINY)
    assert (r4["alive"] == one["alive"]).all() and not one["alive"].all()
    np.testing.assert_array_equal(r4["best_step"], one["best_step"])
    # The member at lr 3 (index 5) trains at the edge of stability of the two-layer
    # model: the 4 devices' narrower matmuls round differently and its dynamics amplify
    # that (1e-5 of its norm under threefry's minibatches, 0.25 under the hash draw's).
    # It keeps the same status and best step (above); the others are compared closely.
    calm = np.arange(10) != 5
    err = np.linalg.norm(r4["kernel"] - one["kernel"], axis=1)[calm]
    assert (err <= 1e-4 * np.linalg.norm(one["kernel"], axis=1)[calm]).all(), err
    np.testing.assert_allclose(r4["val_acc"][calm], one["val_acc"][calm], atol=1e-6)
    np.testing.assert_allclose(r4["train_loss"][calm], one["train_loss"][calm], rtol=1e-5)


@pytest.mark.parametrize("spec", ["tests.custom_models:TinyMLP#0123abcd", "__main__:GoneNet"])
def test_a_model_of_another_session_is_named_by_flag_on_the_command_line(spec):
    """After a notebook sweep the CLI's `fine` said "pass model= again"; the command line
    has --model, Python has the object."""
    from sweepjax.cli.options import cli_message

    custom._OBJECTS.pop(spec, None)
    with pytest.raises(ConfigError) as e:
        custom._lookup(spec)
    assert "model=" not in str(e.value)
    assert "give --model as package.module:Name" in cli_message(str(e.value))
    assert "from Python, pass the object itself again" in str(e.value)
