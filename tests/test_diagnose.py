"""Diagnoses on synthetic curves: one member per kind, plus the healthy one."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sweepjax.analysis import diagnose
from sweepjax.analysis.diagnose import Thresholds, diagnose_member, diagnose_sweep
from sweepjax.engine.curves import Curves
from sweepjax.results.records import MemberRecord, SweepResult, TimingRecord
from tests.helpers import sweep_config

E = 10
STEP = np.arange(1, E + 1) * 50
LN10 = math.log(10)


def _curves(rows):
    """rows: list of dicts with train_loss, train_acc, val_acc, update_ratio ([E] each)."""
    cols = {
        k: np.array([r[k] for r in rows], np.float32)
        for k in ("train_loss", "val_loss", "val_acc", "train_acc", "update_ratio")
    }
    return Curves(STEP, **cols)


def _row(loss_end=0.3, train_acc=0.95, val_acc=0.92, ratio=1e-3, loss_start=1.5):
    return {
        "train_loss": np.geomspace(loss_start, loss_end, E),
        "val_loss": np.geomspace(loss_start, loss_end, E),
        "train_acc": np.linspace(0.5, train_acc, E),
        "val_acc": np.linspace(0.5, val_acc, E),
        "update_ratio": np.full(E, ratio),
    }


HEALTHY = _row()
TOO_LOW = _row(loss_start=2.30, loss_end=2.20, train_acc=0.3, val_acc=0.3, ratio=2e-5)
OVERFIT = _row(loss_end=0.01, train_acc=1.0, val_acc=0.85)
UNDERFIT = _row(loss_end=0.9, train_acc=0.80, val_acc=0.795)
RATIO_HIGH = _row(ratio=0.05)
EXPLODED = {k: np.where(np.arange(E) < 3, v, np.nan) for k, v in _row().items()}


def _kinds(curves, row, diverged_at=None):
    return [d.kind for d in diagnose_member(curves, row, diverged_at, initial_loss=LN10)]


def test_each_kind_from_its_curves():
    c = _curves([HEALTHY, TOO_LOW, OVERFIT, UNDERFIT, RATIO_HIGH, EXPLODED])
    assert _kinds(c, 0) == []
    # The loss fell 2.30 -> 2.20 (4.3% < 10%); the low-accuracy "underfitting" it implies
    # is not repeated, the ratio 2e-5 < 1e-4 is.
    assert _kinds(c, 1) == ["lr_too_low", "update_ratio_low"]
    assert _kinds(c, 2) == ["overfitting"]
    assert _kinds(c, 3) == ["underfitting"]
    assert _kinds(c, 4) == ["update_ratio_high"]
    assert _kinds(c, 5, diverged_at=160) == ["lr_too_high"]


def test_evidence_numbers():
    c = _curves([TOO_LOW, OVERFIT, EXPLODED])
    low = diagnose_member(c, 0, initial_loss=LN10)[0]
    assert np.isclose(low.evidence["start"], LN10)  # max(2.30 first point, ln 10)
    assert np.isclose(low.evidence["relative_decrease"], (LN10 - 2.20) / LN10, rtol=1e-5)
    over = diagnose_member(c, 1)[0]
    assert np.isclose(over.evidence["gap"], 0.15, atol=1e-6)
    assert "raise lambda" in over.message
    boom = diagnose_member(c, 2, 160)[0]
    assert boom.evidence == {"diverged_at": 160} and "step 160" in boom.message


def test_reference_loss_protects_fast_learners():
    # The first evaluation is a block mean: a fast learner already sits at 0.35 and then
    # ends at 0.33 (6% below its first point), but 86% below ln 10.
    fast = _row(loss_start=0.35, loss_end=0.33)
    c = _curves([fast])
    assert "lr_too_low" in [d.kind for d in diagnose_member(c, 0)]
    assert _kinds(c, 0) == []


def test_thresholds_are_settings():
    c = _curves([_row(train_acc=0.97, val_acc=0.92)])  # gap 0.05
    assert _kinds(c, 0) == []
    strict = diagnose_member(c, 0, initial_loss=LN10, th=Thresholds(overfit_gap=0.03))
    assert [d.kind for d in strict] == ["overfitting"]


def _member(i, diverged_at=None, l2=1e-4):
    return MemberRecord(
        i,
        0.1,
        l2,
        1.0,
        "diverged" if diverged_at else "ok",
        diverged_at,
        0.9,
        100,
        0.3,
        0.3,
        0.95,
        0.92,
    )


def _sweep(curves, members) -> SweepResult:
    """A finished synthetic SweepResult holding ``members`` and their ``curves``."""
    return SweepResult(
        "s1",
        "coarse",
        None,
        {"num_classes": 10},
        {"lr": [1e-4, 1.0]},
        sweep_config(),
        members,
        None,
        [],
        TimingRecord(1.0, 1.0, 1.0),
        curves=curves,
    )


def test_diagnose_sweep_by_member_id():
    c = _curves([HEALTHY, TOO_LOW, EXPLODED])
    members = [_member(7), _member(8), _member(9, diverged_at=120)]
    res = _sweep(c, members)
    d = diagnose_sweep(res)
    assert sorted(d) == [7, 8, 9]
    assert [x.kind for x in d[7]] == []
    assert [x.kind for x in d[8]] == ["lr_too_low", "update_ratio_low"]
    assert [x.kind for x in d[9]] == ["lr_too_high"]
    # Without curves only divergence is known.
    d2 = diagnose_sweep(res.__class__(**{**res.__dict__, "curves": None}))
    assert {k: [x.kind for x in v] for k, v in d2.items()} == {7: [], 8: [], 9: ["lr_too_high"]}


def test_flat_loss_under_large_lambda_blames_lambda_not_the_rate():
    c = _curves([TOO_LOW, TOO_LOW])
    members = [_member(1, l2=1e-4), _member(2, l2=0.5)]
    res = _sweep(c, members)
    d = diagnose_sweep(res)
    assert d[1][0].kind == "lr_too_low"
    assert d[2][0].kind == "lambda_too_high" and d[2][0].evidence["l2"] == 0.5
    assert d[2][0].evidence["relative_decrease"] == d[1][0].evidence["relative_decrease"]


def test_a_ratio_low_only_because_the_schedule_annealed_the_rate_blames_the_schedule():
    """Ratio 3e-5 at the end of a run that decayed the rate to 0.01x: at the base rate it
    would be 3e-3 (in the band), so the schedule is blamed; with a constant rate (or a
    ratio still too low at the base rate) it stays a low-rate warning."""
    from sweepjax.analysis.diagnose import Diagnosis, _blame_schedule

    steps = np.array([100, 200], np.int64)
    ratio = np.array([[3e-3, 3e-5], [3e-3, 3e-7]], np.float32)
    z = np.zeros_like(ratio)
    curves = Curves(steps, z, z, z, z, ratio)
    low = Diagnosis("update_ratio_low", "low", {})
    got = _blame_schedule(low, curves, 0, 0.01, 200, diagnose.DEFAULT)
    assert got.kind == "lr_decayed" and got.evidence["multiplier"] == pytest.approx(0.01)
    assert _blame_schedule(low, curves, 0, 1.0, 200, diagnose.DEFAULT).kind == "update_ratio_low"
    assert _blame_schedule(low, curves, 1, 0.01, 200, diagnose.DEFAULT).kind == "update_ratio_low"


def test_a_high_ratio_is_checked_against_the_members_with_lower_rates():
    """Member 0 (lr 0.1) has a ratio of 2e-2, "too high" by the rule of thumb. Each member
    with a lower rate is compared with it at the last evaluation both reached (a stopped
    one at its stop). When the best of them scored worse by more than two SEs of one
    evaluation, the scores overrule the rule; when one scored as well, the finding stays
    and names it. Member 3's rate is higher: it is no "lower" member."""
    import dataclasses

    hot = _row(ratio=2e-2, val_acc=0.90)

    def sweep(peer_acc):
        rows = [hot, _row(val_acc=peer_acc), _row(val_acc=0.6), _row(val_acc=0.99)]
        rows[2]["val_acc"][4:] = np.nan  # stopped at step 250: compared there
        ms = [
            dataclasses.replace(_member(i), lr=lr, status=st_)
            for i, (lr, st_) in enumerate(
                [(0.1, "ok"), (0.05, "ok"), (0.02, "stopped"), (0.3, "ok")]
            )
        ]
        res = _sweep(_curves(rows), ms)
        res.dataset = {"num_classes": 10, "n_val": 6000}
        return diagnose_sweep(res)[0]

    (r,) = [x for x in sweep(0.85) if "ratio" in x.kind]
    assert r.kind == "ratio_rule_overruled"
    assert "every member with a lower rate scored worse at equal training" in r.message
    assert "(the best, lr 0.05, by 0.050 at step 500)" in r.message
    assert r.evidence["margin"] == pytest.approx(-0.05, abs=1e-6)
    (r,) = [x for x in sweep(0.899) if "ratio" in x.kind]
    assert r.kind == "update_ratio_high" and "may be too high" in r.message
    assert "(lr 0.05 scored -0.001 against it at step 500)" in r.message
