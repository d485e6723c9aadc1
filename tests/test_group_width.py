"""A shrinking population on a CPU trains in groups of the width its survivors need
(engine/group_width.py): one program serves every rung, and what it trains is what one
program of the whole population trains."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest

from sweepjax import engine
from sweepjax.config import ModelConfig
from sweepjax.engine import group_width, program, recompile
from sweepjax.engine.decisions import Decision, Full
from sweepjax.engine.hparams import HParams
from sweepjax.schedulers import rules
from tests.helpers import toy_dataset, toy_train_config

ONE_DEVICE = SimpleNamespace(mesh=None, num_devices=1)
A_MESH = SimpleNamespace(mesh=object(), num_devices=1)
# A policy that decides (as PBT does) but keeps every member.
KEEPS_ALL = SimpleNamespace(
    pure_decide=True,
    plan=rules.Halving(1, 2, 100).plan,
    decide=lambda v: Decision(np.arange(len(v.rows)), v.rows, v.hparams),
)
DENSE = SimpleNamespace(host_steps=False)


def _hp(n: int) -> HParams:
    return HParams.create(lr=np.geomspace(1e-2, 1.0, n), l2=1e-4)


def test_survivors_follow_the_policy_rung_after_rung():
    assert group_width.survivors(rules.Halving(3, 3, 1000), _hp(128), 128) == [43, 15, 5]
    assert group_width.survivors(rules.Halving(1, 2, 100), _hp(40), 40) == [20]
    assert group_width.survivors(KEEPS_ALL, _hp(32), 32) == [32]
    assert group_width.survivors(Full(), _hp(32), 32) == []
    # A policy of the user's own is never asked ahead: its decide may keep state.
    mine = SimpleNamespace(plan=rules.Halving(1, 2, 100).plan, decide=lambda view: 1 / 0)
    assert group_width.survivors(mine, _hp(32), 32) == []


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the rule is the CPU's")
def test_the_width_is_the_power_of_two_the_last_survivors_fill():
    def width(policy, n=128, gsize=128, static=DENSE, where=ONE_DEVICE):
        return group_width.width(policy, _hp(n), n, gsize, static, where)

    assert width(rules.Halving(3, 3, 1000)) == 16  # 128 -> 43 -> 15 -> 5: at least 16
    assert width(rules.Halving(1, 2, 1000)) == 64  # 128 -> 64
    assert width(rules.Halving(2, 2, 1000), n=96) == 32  # 96 -> 48 -> 24
    assert width(rules.Halving(3, 3, 1000), gsize=8) == 8  # never past the memory's group
    hb = rules.Hyperband(128, total=1000, eta=3)
    last = group_width.survivors(hb, _hp(128), 128)[-1]
    assert width(hb) == max(16, 2 ** int(np.ceil(np.log2(last)))) < 128
    # Nothing to gain: no decision, no member dropped, a population already this small.
    assert width(Full()) == 128
    assert width(KEEPS_ALL) == 128
    assert width(rules.Halving(3, 3, 1000), n=16, gsize=16) == 16
    # Host-driven steps train only the real members; a mesh splits them already.
    assert width(rules.Halving(3, 3, 1000), static=SimpleNamespace(host_steps=True)) == 128
    assert width(rules.Halving(3, 3, 1000), where=A_MESH) == 128


def test_an_accelerator_keeps_one_program_of_the_whole_population(monkeypatch):
    monkeypatch.setattr(group_width.jax, "default_backend", lambda: "gpu")
    hp = _hp(128)
    assert group_width.width(rules.Halving(3, 3, 1000), hp, 128, 128, DENSE, ONE_DEVICE) == 128


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the rule is the CPU's")
def test_groups_of_the_survivors_width_train_what_one_program_trains(monkeypatch):
    """64 members halved at eta 4 (64 -> 16): in groups of 16 from the first step the run
    compiles one training program, where one program of 64 rows needs a second for its
    survivors (a move made to pay here); every member's stops and scores are the same,
    its weights up to float rounding (a program of another width vectorises its sums
    differently: 1e-7 relative)."""
    ds = toy_dataset(n_train=400, n_val=100, n_test=100, d=12, k=3, seed=2)
    cfg = toy_train_config().replace(steps=48, eval_every=3, chunk_steps=48)
    hp = HParams.create(lr=np.geomspace(1e-3, 3.0, 64), l2=1e-4)
    monkeypatch.setattr(recompile, "pays", lambda *a, **k: True)  # every move pays

    def run(narrow: bool):
        if not narrow:
            monkeypatch.setattr(group_width, "width", lambda policy, hp, n, gsize, *a: gsize)
        program.clear_cache()
        before, sizes = program.compile_counts(), []
        res = engine.train_population(
            ds, hp, ModelConfig("softmax"), cfg, scheduler=rules.Halving(1, 4, 48),
            on_chunk=lambda r: sizes.append(r.checkpoint().size),
        )  # fmt: skip
        after = program.compile_counts()
        return res, sizes, after.get("chunk", 0) - before.get("chunk", 0)

    narrow, sizes_narrow, chunks_narrow = run(True)
    wide, sizes_wide, chunks_wide = run(False)
    assert sizes_wide[0] == 64 and max(sizes_narrow) == 16
    assert (chunks_narrow, chunks_wide) == (1, 2)
    np.testing.assert_array_equal(narrow.stopped_at, wide.stopped_at)
    np.testing.assert_array_equal(narrow.finished, wide.finished)
    np.testing.assert_allclose(narrow.best_val_acc, wide.best_val_acc, rtol=0, atol=1e-6)
    for a, b in zip(jax.tree.leaves(narrow.params), jax.tree.leaves(wide.params), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_host_groups_are_evaluated_as_one_program_of_the_population_is(monkeypatch):
    """40 members in host groups of 16 are evaluated 32 rows a call over all 40 (two
    calls, not one padded call per group), each at the position it has in one program
    of 40 rows: the numbers are the same bit for bit, for every member and for a few."""
    from sweepjax.config import TrainConfig
    from sweepjax.engine import active, setup
    from sweepjax.engine.distributed import SINGLE

    ds = toy_dataset(n_train=200, n_val=100, n_test=50, d=12, k=3, seed=4)
    cfg = TrainConfig(steps=10, batch_size=32, eval_batch_size=50)
    hp = HParams.create(lr=np.geomspace(1e-3, 1.0, 40), l2=1e-4)
    st = setup.static(ds, ModelConfig("softmax"), cfg, hparams=hp)
    states = setup.init_states(ds, hp, ModelConfig("softmax"), cfg)
    data, folds = program.device_data(ds, cfg), np.full(40, -1)
    calls = []
    real = active._eval_call
    monkeypatch.setattr(active, "_eval_call", lambda *a: calls.append(1) or real(*a))
    grouped = active.place(states, 40, 16, SINGLE)
    whole = active.place(states, 40, 64, SINGLE)
    assert not grouped.on_device and whole.on_device
    got = active.evaluate(grouped, "params", data, st, SINGLE, folds)
    assert len(calls) == 2
    want = active.evaluate(whole, "params", data, st, SINGLE, folds)
    for g, w in zip((got[0], got[1], got[3]), (want[0], want[1], want[3]), strict=True):
        np.testing.assert_array_equal(g, w)
    few = np.array([3, 17, 39])
    sub = active.evaluate_members(grouped, "best", few, data, st, SINGLE, folds)
    ref = active.evaluate(whole, "best", data, st, SINGLE, folds)
    np.testing.assert_array_equal(sub[1], ref[1][few])


def test_a_narrow_population_of_a_big_model_is_evaluated_without_padding(monkeypatch):
    """A population narrower than the 32-row evaluation call is evaluated in a call of
    its own power of two when padding it would cost more than a compile (a width-1
    MLP-256 spent 15 of a 60-s ASHA run evaluating 32 copies of itself); a softmax keeps
    the one 32-row program. The numbers equal the padded call's."""
    from sweepjax.config import TrainConfig
    from sweepjax.engine import active, setup
    from sweepjax.engine.distributed import SINGLE

    assert active.eval_block(1, 6000, 7_850) == 32  # softmax: 3e9 FLOPs of padding
    assert active.eval_block(1, 6000, 203_530) == 1  # MLP-256: 8e13
    assert active.eval_block(5, 6000, 203_530) == 8
    assert active.eval_block(20, 6000, 203_530) == 32  # the next power of two is 32
    assert active.eval_block(64, 6000, 203_530) == 32

    ds = toy_dataset(n_train=200, n_val=100, n_test=50, d=12, k=3, seed=4)
    cfg = TrainConfig(steps=10, batch_size=32, eval_batch_size=50)
    mlp = ModelConfig("mlp", hidden=64)
    hp = HParams.create(lr=np.geomspace(1e-3, 1.0, 3), l2=1e-4)
    st = setup.static(ds, mlp, cfg, hparams=hp)
    states = setup.init_states(ds, hp, mlp, cfg)
    data, folds = program.device_data(ds, cfg), np.full(3, -1)
    widths = []
    real = active._eval_call
    monkeypatch.setattr(
        active, "_eval_call", lambda p, *a: widths.append(len(jax.tree.leaves(p)[0])) or real(p, *a)
    )
    # 2 x 28 x 100 rows x 1,027 parameters of padding: under a compile's cost
    monkeypatch.setattr(active, "COMPILE_COST_FLOPS", 1e10)
    padded = active.evaluate(active.place(states, 3, 4, SINGLE), "params", data, st, SINGLE, folds)
    monkeypatch.setattr(active, "COMPILE_COST_FLOPS", 1e3)  # now padding costs more
    own = active.evaluate(active.place(states, 3, 4, SINGLE), "params", data, st, SINGLE, folds)
    assert widths == [32, 4]
    for g, w in zip((own[0], own[1], own[3]), (padded[0], padded[1], padded[3]), strict=True):
        np.testing.assert_allclose(g, w, rtol=1e-6)
