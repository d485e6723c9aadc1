"""The next decision's program compiles in the background while the block before it
trains (engine/prefetch.py); the model body is traced once per process, not once per
program width (program._traced_once). Neither changes what is trained."""

from __future__ import annotations

from types import SimpleNamespace

import jax
import numpy as np
import pytest

from sweepjax import engine
from sweepjax.config import ModelConfig
from sweepjax.engine import member, prefetch, program, recompile
from sweepjax.engine.decisions import RungView
from sweepjax.engine.hparams import HParams
from sweepjax.schedulers import rules
from tests.helpers import toy_dataset, toy_train_config


def test_prefetching_is_on_for_an_accelerator_and_decided_by_the_environment(monkeypatch):
    monkeypatch.delenv("SWEEPJAX_PREFETCH", raising=False)
    assert prefetch.enabled() == (jax.default_backend() != "cpu")
    for value, on in (("1", True), ("0", False), ("off", False), ("yes", True)):
        monkeypatch.setenv("SWEEPJAX_PREFETCH", value)
        assert prefetch.enabled() is on


@pytest.mark.parametrize(
    "policy",
    [rules.Halving(rungs=2, eta=3, total=90), rules.Hyperband(40, total=270, eta=3)],
    ids=["halving", "hyperband"],
)
def test_survivors_are_what_the_policy_keeps_when_nobody_diverged(policy):
    rng = np.random.default_rng(0)
    for active in (np.arange(40), np.sort(rng.choice(40, 23, replace=False))):
        hp = HParams.create(lr=np.full(len(active), 0.1), l2=1e-4)
        pop = SimpleNamespace(sched=SimpleNamespace(active=active), slot_hp=hp)
        for step in policy.plan().ages:
            got = prefetch.survivors(SimpleNamespace(policy=policy), pop, step)
            scores = rng.random(len(active)).astype(np.float32)
            view = RungView(step, active, -scores, scores, np.ones(len(active), bool), hp)
            assert got == len(policy.decide(view).src)
    # A policy of the user's own is never asked ahead: its decide may keep state.
    mine = SimpleNamespace(decide=lambda view: 1 / 0)
    assert prefetch.survivors(SimpleNamespace(policy=mine), pop, 1) is None


@pytest.mark.slow  # ~6 s: two halving runs, two program widths each, on a 2-core CPU
def test_a_prefetched_program_trains_exactly_as_one_compiled_at_the_decision(monkeypatch):
    ds = toy_dataset(n_train=400, n_val=100, n_test=100, d=12, k=3, seed=1)
    cfg = toy_train_config().replace(steps=40, eval_every=10, chunk_steps=40)
    hp = HParams.create(lr=np.geomspace(1e-2, 1.0, 8), l2=1e-4)
    monkeypatch.setattr(recompile, "pays", lambda *a, **k: True)  # every move pays
    monkeypatch.setenv("SWEEPJAX_PREFETCH", "1")  # on a CPU it is off by default
    traced = []

    def counted(*a, **k):
        traced.append(k.get("measure", False))
        return member.step.__wrapped__(*a, **k)

    counted.__wrapped__ = member.step
    monkeypatch.setattr(member, "step", counted)

    real = prefetch.start_next

    def run(ahead: bool):
        program.clear_cache()
        jax.clear_caches()
        started = []
        monkeypatch.setattr(
            prefetch, "start_next", lambda *a: started.append(real(*a)) if ahead else None
        )
        sizes, before = [], program.compile_counts()
        res = engine.train_population(
            ds, hp, ModelConfig("softmax"), cfg, scheduler=rules.Halving(rungs=1, eta=2, total=40),
            on_chunk=lambda r: sizes.append(r.checkpoint().size),
        )  # fmt: skip
        after = program.compile_counts()
        return res, sizes, started, {k: after[k] - before.get(k, 0) for k in after}

    traced.clear()
    plain, sizes, _, compiled = run(False)
    # Two widths (8 rows, then 4), each with a plain and a measured step: traced twice.
    assert sizes == [8, 4, 4, 4] and sorted(traced) == [False, True]
    ahead, sizes_ahead, started, compiled_ahead = run(True)
    assert sizes_ahead == sizes and started.count(True) == 1  # the 4-row program, once
    # Whatever started in the background (the first program, the rung's evaluations) was
    # the program the run then used: nothing compiled twice.
    assert compiled_ahead == compiled and compiled["chunk"] == 2
    for a, b in zip(jax.tree.leaves(ahead.params), jax.tree.leaves(plain.params), strict=True):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(ahead.best_val_acc, plain.best_val_acc)
    np.testing.assert_array_equal(ahead.stopped_at, plain.stopped_at)
