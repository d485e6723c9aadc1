"""Hidden-activation statistics (sweepjax.analysis.activations): dead units, histograms and firing
rates on hand-built MLPs, against the model's own hidden layer, and through the store."""

from __future__ import annotations

import dataclasses
import sqlite3

import numpy as np
import pytest

from sweepjax.analysis.activations import (
    EDGES,
    ActivationStats,
    activation_stats,
    hidden_activations,
    histogram,
    own_width,
)

D, H, K = 3, 6, 2


def hand_mlp() -> dict:
    """Six compiled units; a member of width 4 uses units 0..3 (4 and 5 are the exact
    zeros of the width mask). Unit 2 has zero weights and a negative bias: it never fires.
    Units 0, 1, 3 read one input each (unit 1 with a positive bias)."""
    kernel = np.zeros((H, D), np.float32)
    bias = np.zeros(H, np.float32)
    kernel[0, 0] = 1.0
    kernel[1, 1], bias[1] = 2.0, 0.5
    bias[2] = -1.0
    kernel[3, 2] = -1.5
    out = np.zeros((K, H), np.float32)
    out[:, :4] = 0.1
    return {
        "hidden": {"kernel": kernel, "bias": bias},
        "out": {"kernel": out, "bias": np.zeros(K, np.float32)},
    }


def sample(n=200, seed=0):
    return np.random.default_rng(seed).normal(size=(n, D)).astype(np.float32)


def test_dead_units_count_only_the_members_own_width():
    params, x = hand_mlp(), sample()
    st = activation_stats(params, x, width=4, member=7)
    assert (st.member, st.width, st.units, st.rows) == (7, 4, H, 200)
    assert st.dead == 1 and st.dead_fraction == pytest.approx(0.25)  # unit 2 alone
    assert st.fires.shape == (4,)
    # Without the width the two masked units would read as dead: 3 of 6.
    full = activation_stats(params, x)
    assert full.width == H and full.dead == 3 and full.dead_fraction == pytest.approx(0.5)
    # Fractional widths keep the units the mask keeps (j < 3.5: units 0..3).
    assert activation_stats(params, x, width=3.5).width == 4
    assert [own_width(w, H) for w in (None, np.inf, np.nan, 0, 2.0, 9)] == [6, 6, 6, 0, 2, 6]


def test_firing_rates_and_histogram_match_numpy():
    params, x = hand_mlp(), sample(500, seed=1)
    st = activation_stats(params, x, width=4)
    w, b = params["hidden"]["kernel"][:4], params["hidden"]["bias"][:4]
    act = np.maximum(x @ w.T + b, 0)
    np.testing.assert_allclose(st.firing_rate, (act > 0).mean(axis=0))
    # Unit 0 fires where x0 > 0, unit 3 where x2 < 0, unit 1 where x1 > -0.25.
    np.testing.assert_array_equal(
        st.fires, [(x[:, 0] > 0).sum(), (x[:, 1] > -0.25).sum(), 0, (x[:, 2] < 0).sum()]
    )
    # Every (unit, row) activation lands in exactly one bin.
    assert st.zeros + int(st.counts.sum()) == 4 * 500
    assert st.zeros == int((act == 0).sum())
    pos = act[act > 0]
    want, _ = np.histogram(np.clip(pos, EDGES[0], EDGES[-1]), bins=EDGES)
    np.testing.assert_array_equal(st.counts, want)
    # Tiny and huge values are clipped into the end bins, not dropped.
    z, c = histogram(np.array([0.0, 1e-9, 1.0, 1e9]))
    assert z == 1 and c[0] == 1 and c[-1] == 1 and c.sum() == 3


def test_numpy_activations_equal_the_models_hidden_layer():
    """The statistics' hidden layer is the model's: a masked member's first ``width`` rows
    of ``BuiltIn.hidden_t`` (jax), and its rows beyond the width are zero."""
    import jax.numpy as jnp

    from sweepjax.engine.hparams import HParams
    from sweepjax.models.network import BuiltIn

    rng = np.random.default_rng(2)
    params = hand_mlp()
    params["hidden"]["kernel"][:4] = rng.normal(size=(4, D))
    params["hidden"]["bias"][:4] = rng.normal(size=4)
    x = sample(64, seed=3)
    net = BuiltIn("mlp", H, K, width_mask=True)
    hp = HParams.create(lr=0.1, l2=0.0, hidden=4.0).map(lambda f: f[0])
    h_t = np.asarray(net.hidden_t(params, jnp.asarray(x.T), hp))  # [H, B]
    np.testing.assert_allclose(hidden_activations(params, x, 4), h_t[:4].T, rtol=1e-5, atol=1e-6)
    assert not h_t[4:].any()


def test_stats_round_trip_through_json_and_the_store(tmp_path):
    from sweepjax.store.db import Store
    from tests.test_store import make_result, new_sweep

    st = activation_stats(hand_mlp(), sample(), width=4, member=0)
    back = ActivationStats.from_dict(st.as_dict())
    for f in dataclasses.fields(st):
        np.testing.assert_array_equal(getattr(back, f.name), getattr(st, f.name))

    res = make_result("ignored")
    path = tmp_path / "s.db"
    with Store.open(path, create=True) as s:
        soft = new_sweep(s, res)
        s.save_results(dataclasses.replace(res, sweep_id=soft))  # no MLP: no table
        assert s.load_sweep(soft).activations == {}
        (table,) = s.conn.execute("SELECT count(*) FROM sqlite_master WHERE name='activations'")
        assert table == (0,)
        sid = new_sweep(s, res)
        other = activation_stats(hand_mlp(), sample(), width=3, member=2)
        s.save_results(dataclasses.replace(res, sweep_id=sid, activations={2: other, 0: st}))
    with Store.open(path) as s:
        got = s.load_sweep(sid).activations
        assert list(got) == [2, 0]  # kept order (winner first)
        assert got[0].dead == 1 and got[2].width == 3
        np.testing.assert_array_equal(got[0].fires, st.fires)
        assert s.load_sweep(soft).activations == {}
    # A few hundred bytes a member: counts, not samples.
    with sqlite3.connect(path) as c:
        (size,) = c.execute("SELECT max(length(stats)) FROM activations").fetchone()
    assert size < 1000


def test_only_the_builtin_mlp_layout_counts_as_an_mlp():
    """Statistics are computed for the built-in MLP's ``[H, D]`` hidden kernel only: not
    for a softmax, nor a user's layer named ``hidden`` in flax's ``[D, H]`` layout."""
    from sweepjax.analysis.activations import is_mlp

    assert is_mlp(hand_mlp()) and is_mlp(hand_mlp(), D)
    assert not is_mlp({"out": {"kernel": np.zeros((K, D)), "bias": np.zeros(K)}})
    flax_layout = {"hidden": {"kernel": np.zeros((D, H)), "bias": np.zeros(H)}}
    assert not is_mlp(flax_layout) and not is_mlp(flax_layout, D)
    square = {"hidden": {"kernel": np.zeros((H, H)), "bias": np.zeros(H)}}
    assert is_mlp(square) and not is_mlp(square, D)
