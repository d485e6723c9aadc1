"""Memory: the footprint estimate against the bytes that really exist (the state
pytrees, a checkpoint's msgpack bytes, XLA's memory analysis of the chunk program), the
one-line refusal through the CLI under a faked small machine, and the training block
as the GPU needs it: no implicit host transfer, the state donated, host groups staged
while the device trains (same results as one program)."""

from __future__ import annotations

import functools
import re

import jax
import numpy as np
import pytest

from sweepjax.cli import main
from sweepjax.config import ModelConfig
from sweepjax.engine import active, footprint, program, setup, train_population
from sweepjax.engine.distributed import SINGLE, put_members
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError
from sweepjax.store.codec import checkpoint_blob
from sweepjax.store.db import Store
from tests.helpers import toy_dataset, toy_train_config

SOFTMAX, MLP = ModelConfig(kind="softmax"), ModelConfig(kind="mlp", hidden=16)
CFG = toy_train_config()


@pytest.fixture(scope="module")
def ds():
    return toy_dataset()


def tree_bytes(tree) -> int:
    return sum(int(np.asarray(a).nbytes) for a in jax.tree.leaves(tree))


@pytest.mark.parametrize("model", [SOFTMAX, MLP], ids=["softmax", "mlp"])
def test_state_estimate_is_the_bytes_of_the_initial_state(ds, model):
    """Exact: params, best params, optimizer slots (Adam: two, momentum: one, SGD:
    none) and health, as ``init_states`` builds them, for each optimizer."""
    m = 5
    hp = HParams.create(lr=np.full(m, 0.1), l2=0.0)
    seen = set()
    for opt in ("sgd", "momentum", "adam"):
        cfg = CFG.replace(optimizer=opt)
        real = tree_bytes(setup.init_states(ds, hp, model, cfg))
        assert footprint.estimate(ds, model, cfg, m).state == real, opt
        seen.add(real)
    assert len(seen) == 3  # the optimizers' slots differ, and the estimate follows them


def test_checkpoint_estimate_bounds_a_real_checkpoint(ds):
    """A checkpoint while written is a host copy of the state plus its msgpack bytes:
    the estimate of the blob is at least its length (curves counted for every
    evaluation) and within 5% of it."""
    m, cfg = 6, CFG.replace(optimizer="adam")
    hp = HParams.create(lr=np.full(m, 0.05), l2=0.0)
    res = train_population(ds, hp, MLP, cfg, on_chunk=lambda r: r.step >= cfg.steps)
    assert not res.completed
    blob = len(checkpoint_blob(res.checkpoint))
    fp = footprint.estimate(ds, MLP, cfg, m)
    est = fp.checkpoint - fp.state  # the copy is the state's bytes (exact, tested above)
    assert blob <= est <= 1.05 * blob, (blob, est)


def xla_program_bytes(ds, model, cfg, m: int) -> int:
    """XLA's memory analysis of the chunk program of ``m`` members beyond the shared
    data: temporaries + arguments (lowered on abstract states, nothing runs)."""
    hp = HParams.create(lr=np.full(m, 0.05), l2=1e-4)
    st = setup.static(ds, model, cfg, hparams=hp)
    states = program.init_shapes(ds.num_features, st, hp)
    data = program.device_data(ds, cfg)
    z = np.zeros(m, np.int32)
    key = np.asarray(jax.random.key_data(jax.random.key(0)))
    args = (states, hp, z, z, data, *np.int32([0, 10, 100]), key)
    fn = jax.jit(functools.partial(program._population_block, static=st), donate_argnums=(0,))
    ma = fn.lower(*args).compile().memory_analysis()
    return ma.temp_size_in_bytes + ma.argument_size_in_bytes - tree_bytes(data)


@pytest.mark.parametrize(
    "model,opt",
    [(SOFTMAX, "sgd"), pytest.param(MLP, "adam", marks=pytest.mark.slow)],
    ids=["softmax-sgd", "mlp-adam"],
)
def test_program_estimate_bounds_xla_within_a_factor_of_four(ds, model, opt):
    """The program's share (state in the program plus its activations and temporaries)
    is an upper bound of what XLA allocates for it, and at most 4x that."""
    m, cfg = 16, CFG.replace(optimizer=opt)
    fp = footprint.estimate(ds, model, cfg, m)
    assert fp.on_device
    est = fp.device - fp.data_device
    xla = xla_program_bytes(ds, model, cfg, m)
    assert xla <= est <= 4 * xla, (xla, est)


def test_refusal_says_how_many_fit_and_what_else_would(ds):
    """A machine with room for 100 Adam MLPs but not 101: the line says 100 fit, and how
    many SGD members would (more: no optimizer slots)."""
    cfg = CFG.replace(optimizer="adam")
    room = footprint.estimate(ds, MLP, cfg, 100).total
    assert footprint.estimate(ds, MLP, cfg, 101).total > room
    mem = footprint.Memory(room, None, "test")
    assert footprint.check(ds, MLP, cfg, 100, mem).members == 100
    with pytest.raises(ConfigError) as e:
        footprint.check(ds, MLP, cfg, 500, mem)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith("500 adam MLP-16 members need")
    assert "up to 100 fit" in msg
    sgd = footprint.most_that_fit(ds, MLP, cfg.replace(optimizer="sgd"), mem, 500)
    assert sgd > 100 and f"`optimizer` sgd (up to {sgd:,} fit)" in msg
    # on an accelerator the device's room is checked on its own
    dev = footprint.Memory(10**12, footprint.estimate(ds, MLP, cfg, 40).device, "test")
    assert footprint.most_that_fit(ds, MLP, cfg, dev, 500) == 40


def test_memory_limit_sizes_parse():
    assert footprint.parse_bytes("2.5GB") == 2_500_000_000
    assert footprint.parse_bytes("1GiB") == 2**30
    assert footprint.parse_bytes("800 mb") == 800_000_000
    assert footprint.parse_bytes("123") == 123
    with pytest.raises(ConfigError, match="SWEEPJAX_MEMORY_LIMIT='lots' is not a size"):
        footprint.parse_bytes("lots")
    env = {footprint.MEMORY_ENV: "3GB"}
    assert footprint.available(env) == footprint.Memory(3 * 10**9, None, footprint.MEMORY_ENV)
    assert footprint.mem_available() is None or footprint.mem_available() > 0


def test_cli_refuses_a_sweep_that_does_not_fit_before_writing_it(tmp_path, capsys, monkeypatch):
    """``SWEEPJAX_MEMORY_LIMIT`` fakes a small machine: one line, exit 2, no sweep row,
    and the count it names is the most that fit that limit."""
    seen = []
    real = footprint.estimate

    def spy(ds, model, cfg, m):
        seen.append((ds, model, cfg))
        return real(ds, model, cfg, m)

    monkeypatch.setattr(footprint, "estimate", spy)
    monkeypatch.setenv(footprint.MEMORY_ENV, "1.2GB")  # the runtime alone takes 1.07 GB
    store = tmp_path / "s.db"
    Store.open(store, create=True).close()
    argv = ["coarse", "--dataset", "mnist-sample", "--trials", "2000", "--steps", "20"]
    code = main([*argv, "--optimizer", "adam", "--no-report", "--store", str(store)])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith("sweepjax: error: 2,000 adam softmax members need"), line
    assert "this machine has 1.2 GB free (SWEEPJAX_MEMORY_LIMIT)" in line
    n = int(re.search(r"up to ([\d,]+) fit", line).group(1).replace(",", ""))
    ds, model, cfg = seen[0]
    assert n == footprint.most_that_fit(ds, model, cfg, footprint.Memory(1.2e9, None, ""), 2000)
    assert 0 < n < 2000
    with Store.open(store) as st:
        assert st.list_sweeps() == []


# --------------------------------------------------------------------------- the block
def block_inputs(ds, m: int, gsize: int):
    hp = HParams.create(lr=np.geomspace(0.01, 0.5, m), l2=1e-4)
    st = setup.static(ds, MLP, CFG, hparams=hp)
    states = setup.init_states(ds, hp, MLP, CFG)
    _, data_key = setup.root_keys(CFG.seed)
    key_bits = np.asarray(jax.random.key_data(data_key))
    data = program.device_data(ds, CFG)
    act = active.place(states, m, gsize, SINGLE)
    return act, (hp, np.full(m, -1), data, 0, 10, CFG.steps, key_bits, st, SINGLE)


@pytest.mark.parametrize(
    "gsize", [8, pytest.param(3, marks=pytest.mark.slow)], ids=["one-program", "host-groups"]
)
def test_a_training_block_makes_no_implicit_host_transfer(ds, gsize):
    """Under ``jax.transfer_guard("disallow")`` every implicit host<->device transfer
    raises: the block moves data only by explicit puts and gets."""
    act, rest = block_inputs(ds, 8, gsize)
    with jax.transfer_guard("disallow"):
        act, met, _, _ = active.run_chunk(act, *rest)
        act, met2, _, _ = active.run_chunk(act, *rest[:3], 10, *rest[4:])
    assert np.isfinite(met2.train_loss).all() and (met2.train_loss < met.train_loss).any()
    with (
        pytest.raises(Exception, match="Disallowed host-to-device"),
        jax.transfer_guard("disallow"),
    ):
        jax.jit(lambda x: x + 1)(np.ones(3))  # the guard is armed: an implicit put


def test_the_population_state_is_donated_to_the_block(ds):
    """The compiled block aliases every state input to its output (no second copy of
    the population's state), and the state passed in is gone after the block."""
    act, rest = block_inputs(ds, 8, 8)
    before = jax.tree.leaves(act.states)
    act, _, _, _ = active.run_chunk(act, *rest)
    assert all(a.is_deleted() for a in before)
    assert not any(a.is_deleted() for a in jax.tree.leaves(act.states))
    hp, fold, data, _, n, horizon, key, st, where = rest
    mine = put_members((hp.take(np.arange(8)), np.int32(fold), np.zeros(8, np.int32)), where)
    args = (act.states, *mine, data, *jax.device_put((np.int32(10), n, horizon, key)))
    exe, _ = program.compiled_block(args, st, where)
    aliases = exe.as_text().splitlines()[0]  # HloModule ..., input_output_alias={...}
    assert aliases.count("may-alias") + aliases.count("must-alias") == len(before)


def test_host_groups_staged_while_training_equal_one_program(ds):
    """A population trained in 3 host groups of 3 (the next group staged while the
    device trains the last; written back in place) ends where one program does."""
    one, rest = block_inputs(ds, 8, 8)
    grp, _ = block_inputs(ds, 8, 3)
    assert not grp.on_device and len(active.groups(grp)) == 3
    for step in (0, 10):
        args = (*rest[:3], step, *rest[4:])
        one, m1, _, _ = active.run_chunk(one, *args)
        grp, m2, _, _ = active.run_chunk(grp, *args)
        np.testing.assert_allclose(m2.val_acc, m1.val_acc, atol=1e-6)
    for a, b in zip(jax.tree.leaves(grp.states), jax.tree.leaves(one.states), strict=True):
        np.testing.assert_allclose(a, np.asarray(b)[:8], rtol=1e-5, atol=1e-6)


def test_host_groups_own_their_arrays_without_copying_writable_ones(ds):
    """Host groups are written back in place: a writable population is used as it is
    (no second copy), a read-only one (a checkpoint's buffers) is copied first."""
    states = setup.init_states(ds, HParams.create(lr=np.full(5, 0.1), l2=0.0), MLP, CFG)
    act = active.place(states, 5, 2, SINGLE)
    assert all(
        a is b for a, b in zip(jax.tree.leaves(act.states), jax.tree.leaves(states), strict=True)
    )
    frozen = jax.tree.map(lambda a: np.frombuffer(a.tobytes(), a.dtype).reshape(a.shape), states)
    act = active.place(frozen, 5, 2, SINGLE)
    assert all(a.flags.writeable for a in jax.tree.leaves(act.states))
    assert not any(
        np.shares_memory(a, b)
        for a, b in zip(*map(jax.tree.leaves, (act.states, frozen)), strict=True)
    )
