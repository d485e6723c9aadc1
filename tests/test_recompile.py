"""A decision's survivors move to a smaller program when it pays for its compile, as
measured in the run, and at once when this process holds that program already."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweepjax import engine
from sweepjax.config import ModelConfig
from sweepjax.engine import program, recompile, saved_programs
from sweepjax.engine.hparams import HParams
from sweepjax.schedulers import rules
from tests.helpers import toy_dataset, toy_train_config

SOFTMAX = ModelConfig("softmax")
CFG = toy_train_config().replace(steps=40, eval_every=10, chunk_steps=40)


@pytest.fixture(scope="module")
def ds():
    return toy_dataset(n_train=400, n_val=100, n_test=100, d=12, k=3, seed=0)


def test_a_smaller_program_pays_when_the_measured_saving_beats_the_measured_compile():
    # 128 -> 16 rows for 889 steps at 0.12 ms a row-step saves 12 s: worth a 2.5-s compile.
    c = recompile.Costs(member_step_s=1.2e-4, compile_s=2.5)
    assert recompile.pays(128, 16, 889, c, held=False)
    # 16 -> 8 rows for 667 steps saves 0.64 s: not worth it; free when the program is held.
    assert not recompile.pays(16, 8, 667, c, held=False)
    assert recompile.pays(16, 8, 667, c, held=True)
    # A compile loaded from the persistent cache (0.3 s) is worth it.
    assert recompile.pays(16, 8, 667, c._replace(compile_s=0.3), held=False)
    # Nothing measured yet: the fixed rule (a compile = 10,000 member-steps).
    assert recompile.pays(128, 16, 100, recompile.Costs(), held=False)
    assert not recompile.pays(128, 16, 50, recompile.Costs(), held=False)
    # Training measured, every compile a cache hit: a compile costs 10,000 member-steps.
    c = recompile.costs(train_s=1.0, row_steps=10_000, slowest_compile_s=0.0)
    assert math.isnan(c.compile_s) and c.member_step_s == pytest.approx(1e-4)
    assert recompile.pays(128, 16, 100, c, held=False) and not recompile.pays(8, 4, 100, c, False)


def test_a_move_is_weighed_by_a_real_compile_not_by_the_loads_the_run_measured(monkeypatch):
    """A fine round of 128 softmax members whose programs were all held or loaded
    measured 0.2 s of "compiling"; its last 4 members would move from 16 rows to 8 for
    1,608 steps (1.5 s of training at 0.12 ms a row-step) by a program it must compile:
    2.4 s, as this process (or this machine, before) measured a compile. It stays."""
    run = recompile.Costs(member_step_s=1.2e-4, compile_s=0.2)
    assert recompile.pays(16, 8, 1608, run, held=False)  # taking the loads for a compile
    monkeypatch.setattr(saved_programs, "COMPILE_S", {"chunk": 2.4})
    real = recompile.compile_costs(run)
    assert real == recompile.Costs(1.2e-4, 2.4) and not recompile.pays(16, 8, 1608, real, False)
    # 128 -> 16 rows for 889 steps saves 12 s: worth the same compile.
    assert recompile.pays(128, 16, 889, real, held=False)
    monkeypatch.setattr(saved_programs, "COMPILE_S", {})
    monkeypatch.setattr(saved_programs, "_DIR", None)
    assert recompile.compile_costs(run) == run  # no compile known: what the run measured


def _sizes(ds, hp):
    """The program rows after each block of a halving run (8 members, eta 2: 4 survive
    at step 20), and the chunk programs it compiled."""
    sizes = []
    before = program.compile_counts().get("chunk", 0)
    res = engine.train_population(
        ds, hp, SOFTMAX, CFG, scheduler=rules.Halving(rungs=1, eta=2, total=40),
        on_chunk=lambda r: sizes.append((r.step, r.checkpoint().size)),
    )  # fmt: skip
    return sizes, program.compile_counts()["chunk"] - before, res


@pytest.mark.slow  # ~5-10 s: four programs compiled on a shared 2-core CPU
def test_survivors_move_to_a_program_this_process_holds_with_the_same_results(ds):
    hp = HParams.create(lr=np.geomspace(1e-2, 1.0, 8), l2=1e-4)
    program.clear_cache()
    sizes, compiled, kept = _sizes(ds, hp)
    # A toy's 4 rows x 20 steps never pay for a compile: the survivors keep 8 rows.
    assert sizes == [(10, 8), (20, 8), (30, 8), (40, 8)] and compiled == 1
    engine.train_population(ds, hp.take(np.arange(4)), SOFTMAX, CFG)  # compiles 4 rows
    sizes, compiled, moved = _sizes(ds, hp)
    assert sizes == [(10, 8), (20, 4), (30, 4), (40, 4)] and compiled == 0
    # The same members continue and end alike (the programs round differently).
    np.testing.assert_array_equal(moved.finished, kept.finished)
    np.testing.assert_array_equal(moved.stopped_at, kept.stopped_at)
    np.testing.assert_allclose(
        moved.params["out"]["kernel"], kept.params["out"]["kernel"], rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(moved.best_val_acc, kept.best_val_acc, atol=1e-6)
