"""Chained fine rounds draw fresh members: each round trains with a seed derived from
the root seed and its lineage, and the whole chain is reproducible from the commands."""

from __future__ import annotations

import numpy as np
import pytest

import sweepjax
from sweepjax import search
from sweepjax.flows.sweep import derive_seed
from sweepjax.store.db import Store

# Slow tier (chained coarse -> fine flows); CI runs it with `-m slow`.
pytestmark = pytest.mark.slow

# One small shape for every sweep here (the compiled chunk program is reused).
COMMON = dict(steps=20, batch_size=32, eval_every=10, chunk_steps=20, report=False)


def _chain(store: str) -> dict:
    sweepjax.coarse(dataset="mnist-sample", trials=8, store=store, **COMMON)
    # No refit: it would compile another shape, and no test here reads it.
    sweepjax.fine(parent="c1", store=store, refit=False, **COMMON)
    sweepjax.fine(parent="f1", store=store, refit=False, **COMMON)
    with Store.open(store) as st:
        return {sid: st.load_sweep(sid, curves=False) for sid in ("c1", "f1", "f2")}


def _units(res) -> np.ndarray:
    """``[M, axes]`` unit coordinates of every member inside its own sweep's box."""
    space = search.as_space(res.space)
    return np.stack([r.to_unit(res.member_array(name)) for name, r in space.axes().items()], axis=1)


@pytest.fixture(scope="module")
def chains(tmp_path_factory):
    d = tmp_path_factory.mktemp("chain")
    return _chain(str(d / "a.db")), _chain(str(d / "b.db"))


def test_derived_seed_keeps_root_sweeps_and_separates_rounds():
    assert derive_seed(7, ("coarse",)) == 7  # a coarse sweep's results are unchanged
    seeds = {derive_seed(7, ("coarse",) + ("fine",) * n) for n in range(4)}
    seeds |= {derive_seed(8, ("coarse", "fine"))}
    assert len(seeds) == 5
    assert derive_seed(7, ("coarse", "fine")) == derive_seed(7, ("coarse", "fine"))


def test_chained_rounds_draw_fresh_coordinates(chains):
    a, _ = chains
    f1, f2 = a["f1"], a["f2"]
    assert f1.config.train.seed != f2.config.train.seed
    # The data split stays the root seed's across the chain, so rounds compare.
    assert {r.config.data.seed for r in a.values()} == {0}
    assert a["c1"].config.train.seed == 0
    u1, u2 = _units(f1), _units(f2)
    assert u1.shape == u2.shape == (8, 3)  # lr, l2, lr_decay in both rounds
    # Fresh draws: no member of f2 sits at the unit coordinates of its f1 namesake.
    assert np.all(np.abs(u1 - u2).max(axis=1) > 1e-3)


def test_rerunning_the_chain_reproduces_every_round(chains):
    a, b = chains
    for sid in ("c1", "f1", "f2"):
        assert a[sid].config == b[sid].config
        assert a[sid].space == b[sid].space
        assert a[sid].members == b[sid].members
        assert a[sid].winner == b[sid].winner
