"""The next block queued before the previous one's metrics are fetched: the same
results, bit for bit, as one block at a time, and the host's gap measured."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sweepjax import engine
from sweepjax.config import ModelConfig
from sweepjax.engine.hparams import HParams
from sweepjax.schedulers import rules
from tests.helpers import toy_dataset, toy_train_config

SOFTMAX = ModelConfig("softmax")
# test_schedule's data, config and population size: the same compiled programs (the
# test run's workers share a compile cache).
CFG = toy_train_config().replace(steps=90, eval_every=10, chunk_steps=90)


@pytest.fixture(scope="module")
def ds():
    return toy_dataset(n_train=600, n_val=200, n_test=200, d=20, k=4, seed=0)


# Halving (blocks between rungs, a gather) by default; full in the slow run.
@pytest.mark.parametrize("schedule", [pytest.param("full", marks=pytest.mark.slow), "halving"])
def test_blocks_queued_ahead_give_the_one_block_at_a_time_results(ds, schedule):
    hp = HParams.create(lr=np.geomspace(2e-3, 2.0, 16), l2=1e-4)

    def run(on_chunk):
        sched = rules.make(schedule, num_members=16, total=90, space=None, seed=0, rungs=2)
        return engine.train_population(ds, hp, SOFTMAX, CFG, scheduler=sched, on_chunk=on_chunk)

    ahead, one = run(None), run(lambda r: True)  # a callback reads every block: one at a time
    for f in ("best_val_acc", "final_val_loss", "best_step", "stopped_at", "finished"):
        np.testing.assert_array_equal(getattr(ahead, f), getattr(one, f), err_msg=f)
    for a, b in zip(ahead.curves, one.curves, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(ahead.params), jax.tree.leaves(one.params), strict=True):
        np.testing.assert_array_equal(a, b)
    # The gaps between blocks no decision needs (9 blocks of 10 steps: full 8 gaps;
    # halving's rungs at 10 and 30 are decisions, their gaps not counted: 6). Queued
    # ahead, the device never waited on the host.
    assert one.timing.gaps == ahead.timing.gaps == (8 if schedule == "full" else 6)
    assert ahead.timing.host_gap_s == 0.0 < one.timing.host_gap_s
