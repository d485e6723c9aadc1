"""A small population initialises in a small block, with the same weights as in a
64-member block (a member's weights depend only on its id)."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from sweepjax.config import DataConfig, ModelConfig, TrainConfig
from sweepjax.data import load_dataset
from sweepjax.engine import program, setup
from sweepjax.engine.hparams import HParams


def test_block_is_the_power_of_two_at_or_above_the_population_up_to_64():
    sizes = [setup.init_block_size(m) for m in (1, 2, 3, 5, 8, 9, 64, 65, 300)]
    assert sizes == [1, 2, 4, 8, 8, 16, 64, 64, 64] and program.INIT_BLOCK == 64


@pytest.mark.slow  # 2.5 s: the data and two initialisation programs
def test_a_small_block_draws_the_same_weights(monkeypatch):
    ds = load_dataset(DataConfig(dataset="mnist-sample"))
    hp = HParams.create(lr=[0.1, 0.2, 0.3], l2=0.0)
    args = (ds, hp, ModelConfig(), TrainConfig(optimizer="momentum"), np.array([5, 0, 9]))
    small = setup.init_states(*args)  # one block of 4
    monkeypatch.setattr(setup, "init_block_size", lambda m: 8)  # 64 in production: slower
    big = setup.init_states(*args)
    leaves = list(zip(jax.tree.leaves(small), jax.tree.leaves(big), strict=True))
    assert len(leaves) > 2 and all(np.array_equal(a, b, equal_nan=True) for a, b in leaves)
