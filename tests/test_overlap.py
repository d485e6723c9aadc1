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
CFG = toy_train_config().replace(steps=60, eval_every=5, chunk_steps=60)


@pytest.fixture(scope="module")
def ds():
    return toy_dataset(n_train=300, n_val=100, n_test=100, d=12, k=3, seed=0)


@pytest.mark.parametrize("schedule", ["full", "halving"])
def test_blocks_queued_ahead_give_the_one_block_at_a_time_results(ds, schedule):
    hp = HParams.create(lr=np.geomspace(1e-2, 3.0, 8), l2=1e-4)

    def run(on_chunk):
        sched = rules.make(schedule, num_members=8, total=60, space=None, seed=0, rungs=2)
        return engine.train_population(ds, hp, SOFTMAX, CFG, scheduler=sched, on_chunk=on_chunk)

    ahead, one = run(None), run(lambda r: True)  # a callback reads every block: one at a time
    for f in ("best_val_acc", "final_val_loss", "best_step", "stopped_at", "finished"):
        np.testing.assert_array_equal(getattr(ahead, f), getattr(one, f), err_msg=f)
    for a, b in zip(ahead.curves, one.curves, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(jax.tree.leaves(ahead.params), jax.tree.leaves(one.params), strict=True):
        np.testing.assert_array_equal(a, b)
    # The gaps between blocks no decision needs (full: 12 blocks of 5 steps, 11 gaps;
    # halving: 14 blocks, its rungs at 6 and 18 add two ends and their gaps are not
    # counted). Queued ahead, the device never waited on the host.
    assert one.timing.gaps == ahead.timing.gaps == 11
    assert ahead.timing.host_gap_s == 0.0 < one.timing.host_gap_s
