"""Which members the verdicts read (sweepjax.results.appraise), on synthetic records: no training.

A halving-like population: 12 members finish, the rest are stopped at rungs 10 / 30 with
lower accuracies. Claims: the winner and the tied set come from finished members only;
the surface reads every non-diverged member, a stopped member's SE grows with the gain
the finished members made after its stop; diverged members enter at the floor.
"""

from __future__ import annotations

import numpy as np
import pytest

from sweepjax.analysis.surface import binomial_se
from sweepjax.config import Range, SearchSpace
from sweepjax.engine.curves import Curves
from sweepjax.results.appraise import judge_members, stopped_offsets
from sweepjax.results.claims import next_space
from sweepjax.results.records import MemberRecord

N_VAL = 2000
SPACE = SearchSpace(lr=Range(1e-3, 1.0), l2=Range(1e-6, 1e-2))


def _member(i, u_lr, u_l2, acc, status, stopped_at=None):
    return MemberRecord(
        id=i,
        lr=float(SPACE.lr.from_unit(u_lr)),
        l2=float(SPACE.l2.from_unit(u_l2)),
        lr_decay=1.0,
        status=status,
        diverged_at=5 if status == "diverged" else None,
        best_val_acc=acc,
        best_step=100,
        final_train_loss=0.5,
        final_val_loss=0.5 + (1 - acc),
        final_train_acc=acc,
        final_val_acc=acc,
        stopped_at=stopped_at,
    )


def population(seed=0, truth=lambda u: 0.9 - 0.3 * (u[0] - 0.6) ** 2 - 0.05 * u[1]):
    """[members], Curves: 200 members; the best 12 by truth finish at step 100 (their
    curve climbs 0.2 -> 0.1 -> 0 below the final accuracy at steps 10 / 30 / 100); the
    next 48 stop at step 30, the rest at step 10 (0.1 / 0.2 below their truth); 8 diverge."""
    rng = np.random.default_rng(seed)
    u = rng.uniform(size=(200, 2))
    true = np.array([truth(x) for x in u])
    order = np.argsort(-true)
    members, va = [], np.full((200, 3), np.nan, np.float32)
    for rank, i in enumerate(order):
        noise = rng.normal(0, 0.004)
        if rank < 12:
            acc, status, stop = true[i] + noise, "ok", None
            va[i] = [acc - 0.2, acc - 0.1, acc]
        elif rank < 60:
            acc, status, stop = true[i] - 0.1 + noise, "stopped", 30
            va[i, :2] = [acc - 0.1, acc]
        elif rank < 192:
            acc, status, stop = true[i] - 0.2 + noise, "stopped", 10
            va[i, 0] = acc
        else:
            acc, status, stop = float("nan"), "diverged", None
        members.append(_member(int(i), *u[i], float(acc), status, stop))
    members.sort(key=lambda m: m.id)
    va = va[[m.id for m in members]]
    steps = np.array([10, 30, 100])
    curves = Curves(steps, va, va, va, va, va)
    return members, curves


def test_stopped_members_weighted_by_the_gain_they_missed():
    """Finished members gained 0.2 after step 10 and 0.1 after step 30 (no spread), so a
    member stopped at 10 gets an extra SE of exactly 0.2, at 30 of 0.1; finished 0;
    scores are the accuracies as measured; diverged members are left out."""
    members, curves = population()
    score, extra, use = stopped_offsets(members, curves)
    for m, s, e, u in zip(members, score, extra, use, strict=True):
        if m.status == "diverged":
            assert not u
            continue
        assert u and s == m.best_val_acc
        want = {None: 0.0, 30: 0.1, 10: 0.2}[m.stopped_at]
        assert e == pytest.approx(want, abs=1e-6)
    # Without curves nothing says how much the stopped members missed: finished only.
    _, _, use = stopped_offsets(members, None)
    assert [m.id for m, u in zip(members, use, strict=True) if u] == sorted(
        m.id for m in members if m.status == "ok"
    )


def test_winner_and_tied_set_from_finished_members_only():
    """A stopped member with a higher accuracy than every finished one (possible: it was
    stopped on a noisy rung) is neither the winner nor tied; the tied set is the finished
    members within Gupta's z of the winner."""
    members, curves = population()
    hi = next(i for i, m in enumerate(members) if m.status == "stopped")
    members[hi] = members[hi].__class__(**{**members[hi].as_dict(), "best_val_acc": 0.999})
    a = judge_members(members, SPACE, N_VAL, curves)
    assert members[a.winner].status == "ok"
    assert all(members[i].status == "ok" for i in a.tied) and hi not in a.tied
    assert a.tied[0] == a.winner and len(a.tied) >= 1
    acc = np.array([m.best_val_acc for m in members])
    np.testing.assert_allclose(a.se, binomial_se(np.nan_to_num(acc), N_VAL))
    assert "192 members" in a.fit_note  # 200 - 8 diverged


def test_surface_reads_the_stopped_members_and_finds_the_interior_optimum():
    """Truth peaks at lr u = 0.6 and falls with l2: the modelled optimum's lr is within a
    knot of 0.6, the high-l2 edge is not flagged, and the next box contains the tied
    members and lies inside the searched box."""
    members, curves = population()
    a = judge_members(members, SPACE, N_VAL, curves)
    assert abs(a.verdict.optimum["lr"] - 0.6) <= 0.1 + 1e-9
    assert not any(b.flagged for b in a.verdict.boundaries if b.side == "high")
    space, why = next_space(a, SPACE)
    tied = [members[i] for i in a.tied]
    assert all(space.lr.lo <= m.lr <= space.lr.hi for m in tied)
    assert SPACE.lr.lo <= space.lr.lo and space.lr.hi <= SPACE.lr.hi
    assert why.startswith("model box")


def test_an_edge_the_score_climbs_to_is_extended_and_lr_decay_never_past_1():
    """Truth rises linearly toward the high lr edge and the high lr_decay edge (capped at
    1): the lr edge is flagged and the next lr box extends past it; lr_decay's high edge is
    a cap: never flagged, never past 1."""
    space = SearchSpace(lr=SPACE.lr, l2=SPACE.l2, lr_decay=Range(0.01, 1.0))
    rng = np.random.default_rng(1)
    u = rng.uniform(size=(300, 3))
    acc = 0.7 + 0.2 * u[:, 0] + 0.05 * u[:, 2] + rng.normal(0, 0.005, 300)
    members = [
        MemberRecord(
            i,
            float(space.lr.from_unit(x[0])),
            float(space.l2.from_unit(x[1])),
            float(space.lr_decay.from_unit(x[2])),
            "ok",
            None,
            float(a),
            100,
            0.5,
            0.5,
            0.9,
            0.9,
        )
        for i, (x, a) in enumerate(zip(u, acc, strict=True))
    ]
    a = judge_members(members, space, N_VAL)
    flags = {(b.param, b.side) for b in a.verdict.flags}
    assert ("lr", "high") in flags and ("lr_decay", "high") not in flags
    new, _ = next_space(a, space)
    assert new.lr.hi > space.lr.hi and new.lr_decay.hi <= 1.0
