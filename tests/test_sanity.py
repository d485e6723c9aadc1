"""The babysitting checks on the bundled MNIST sample, and the sanity command's JSON."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from sweepjax.analysis.sanity import (
    LR_FINDER_HI,
    LR_FINDER_LO,
    LrRange,
    auto_lr_range,
    label_lrs,
    lr_box,
    run_sanity,
    small_subset,
)
from sweepjax.cli import main
from sweepjax.config import DataConfig, ModelConfig, TrainConfig
from sweepjax.data import load_dataset
from sweepjax.errors import SweepjaxError


@pytest.fixture(scope="module")
def mnist():
    return load_dataset(DataConfig(dataset="mnist-sample"))


@pytest.fixture(scope="module")
def report(mnist):
    return run_sanity(mnist, ModelConfig(), TrainConfig())


def test_all_four_checks_pass_on_mnist_sample(report):
    assert [c.name for c in report.checks] == [
        "initial_loss",
        "regularization_raises_loss",
        "overfit_small_subset",
        "lr_range",
    ]
    assert all(c.passed for c in report.checks), [c.detail for c in report.checks]
    assert report.passed


def test_initial_loss_is_ln10_and_lambda_raises_it(report):
    init = report.initial
    assert init.expected == pytest.approx(math.log(10))
    assert abs(init.unregularized - math.log(10)) < 0.05
    # Same weights and minibatch; lambda 1e3 adds 0.5 * 1e3 * sum(W^2) with W ~ N(0, 1e-3)
    # over 784 x 10 weights: about 3.9.
    assert init.regularized - init.unregularized == pytest.approx(0.5 * 1e3 * 7840 * 1e-6, rel=0.1)


def test_overfits_twenty_examples(report):
    o = report.overfit
    assert o.num_examples == 20
    assert o.final_train_acc == 1.0
    assert o.final_loss < 0.05
    assert o.steps_to_perfect is not None and 1 <= o.steps_to_perfect <= 100


def test_lr_range_inside_sweep_and_labels_ordered(report):
    r = report.lr_range
    assert LR_FINDER_LO < r.lo < r.hi < LR_FINDER_HI
    # Labels run too_low* good+ too_high* along increasing lr.
    order = {"too_low": 0, "good": 1, "too_high": 2}
    ranks = [order[x] for x in r.labels]
    assert ranks == sorted(ranks)
    assert r.labels[0] == "too_low" and r.labels[-1] == "too_high"
    # The lecture's picture for unit-scale MNIST with plain SGD: 1e-6 barely moves,
    # 100 explodes at once, and the good range contains 1e-2..1.
    assert r.lo < 1e-2 and r.hi > 1.0
    # Every trained too-high rate diverged (the finder trains about half the grid).
    high = (np.array(r.labels) == "too_high") & r.trained
    assert high.any() and np.all(r.diverged_at[high] >= 0)


def test_small_subset_is_train_val_and_test(mnist):
    s = small_subset(mnist, 20, seed=0)
    assert s.x_train.shape == (20, 784)
    np.testing.assert_array_equal(s.x_val, s.x_train)
    np.testing.assert_array_equal(s.y_test, s.y_train)
    # Drawn across the (class-sorted) training set, not its first 20 rows.
    assert len(np.unique(s.y_train)) >= 6


def test_label_rule():
    lrs = [1e-5, 1e-3, 1e-1, 1.0, 10.0]
    init = np.full(5, 2.3)
    final = np.array([2.29, 1.5, 0.3, 2.0, np.nan])
    # best fall is 87%; 1e-3 fell 35% (< half of it): too low; 1.0 fell 13% above the
    # best: too high (thrashing); 10 diverged.
    labels = label_lrs(lrs, init, final, [False, False, False, False, True])
    assert labels == ["too_low", "too_low", "good", "too_high", "too_high"]
    assert label_lrs(lrs, init, final, [True] * 5) == ["too_high"] * 5


@pytest.mark.slow
def test_sanity_json_schema_and_exit_code(capsys, report):
    rc = main(["sanity", "--dataset", "mnist-sample", "--format", "json"])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert set(doc) == {"checks", "lr_range"}
    assert [c["name"] for c in doc["checks"]] == [c.name for c in report.checks]
    for c in doc["checks"]:
        assert set(c) == {"name", "passed", "value", "expected", "detail"}
        assert c["passed"] is True
    lo, hi = doc["lr_range"]
    # Deterministic: the same numbers as the library call.
    assert (lo, hi) == pytest.approx((report.lr_range.lo, report.lr_range.hi))


@pytest.mark.slow
def test_auto_lr_range_is_the_finder_range(mnist, report, monkeypatch):
    import sweepjax.analysis.sanity as sanity

    calls = []

    def finder(dataset, model_cfg, config, *, steps):
        calls.append((config.optimizer, steps))
        return report.lr_range

    monkeypatch.setattr(sanity, "find_lr_range", finder)
    lo, hi = auto_lr_range(mnist, ModelConfig(), TrainConfig(optimizer="momentum", steps=120))
    assert (lo, hi) == (report.lr_range.lo, report.lr_range.hi)
    # The coarse run's optimizer, and its step budget capped at the finder's 300.
    assert calls == [("momentum", 120)]
    auto_lr_range(mnist, ModelConfig(), TrainConfig(steps=1000))
    assert calls[-1] == ("sgd", 300)


def test_sanity_exit_code_1_when_a_check_fails(mnist, report, monkeypatch, capsys):
    import sweepjax.analysis.sanity as sanity

    bad = report._replace(checks=[report.checks[0]._replace(passed=False), *report.checks[1:]])
    monkeypatch.setattr(sanity, "run_sanity", lambda *a, **k: bad)
    assert main(["sanity", "--dataset", "mnist-sample"]) == 1
    out = capsys.readouterr().out
    assert "FAIL  initial_loss" in out and "3 passed, 1 failed" in out


def _range(labels):
    lrs = np.geomspace(1e-3, 1.0, len(labels))
    good = lrs[np.array(labels) == "good"]
    lo, hi = (float(good.min()), float(good.max())) if good.size else (None, None)
    z = np.zeros(len(labels))
    return LrRange(lo, hi, lrs, labels, z, z, z - 1, 100, (1e-3, 1.0))


def test_lr_box_single_good_rate_and_none():
    # lrs 1e-3, 1e-2, 1e-1, 1: a lone good 1e-2 gives one finder step either side.
    lo, hi = lr_box(_range(["too_low", "good", "too_high", "too_high"]))
    assert (lo, hi) == pytest.approx((1e-3, 1e-1))
    assert lr_box(_range(["too_low", "good", "good", "too_high"])) == pytest.approx((1e-2, 1e-1))
    with pytest.raises(SweepjaxError, match="`lr`"):
        lr_box(_range(["too_low", "too_high", "too_high", "too_high"]))


def test_lr_box_margin_reaches_halfway_to_the_neighbouring_rates():
    """auto --budget's coarser finder: half a step (sqrt(10) on this decade grid) past the
    outermost good rates; a lone good rate keeps its full step either side."""
    two = _range(["too_low", "good", "good", "too_high"])
    assert lr_box(two, margin=0.5) == pytest.approx((1e-2 / 10**0.5, 1e-1 * 10**0.5))
    lone = _range(["too_low", "good", "too_high", "too_high"])
    assert lr_box(lone, margin=0.5) == pytest.approx((1e-3, 1e-1))


def test_sanity_says_the_data_notes_once_prefixed(report, monkeypatch, capsys, tmp_path):
    """The data layer's notes already start "sweepjax: "; sanity printed them behind a
    second "sweepjax: note: "."""
    import sweepjax.analysis.sanity as sanity

    x = np.random.default_rng(0).normal(size=(60, 4))
    p = tmp_path / "wine.npz"
    np.savez(p, x_train=x, y_train=np.arange(60) % 3 + 1)  # no test split, labels 1..3
    monkeypatch.setattr(sanity, "run_sanity", lambda *a, **k: report)
    capsys.readouterr()
    assert main(["sanity", "--dataset", f"npz:{p}"]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(line.startswith("sweepjax: ") for line in err), err
    assert not any("sweepjax: note: sweepjax:" in line for line in err)
    assert "labels [1, 2, 3] are not class ids 0..2" in err[1]


def test_the_probes_ride_in_the_overfit_run_not_the_finder(mnist, monkeypatch):
    """sanity trains two populations: the finder's rates alone (no lr-0 probes paying for
    its full length at the sweep's batch) and the overfit run's rates plus the two probes
    (lr 0, lambda 0 and 1e3, one initialisation). The probes' first losses are the
    initial-loss numbers: the penalty they differ by is 0.5 * 1e3 * sum(W^2) of that
    initialisation, computed here from the weights a lr-0 member ends with."""
    import sweepjax.analysis.sanity as sanity

    real, seen = sanity.train_population, []

    def spy(data, hp, model, cfg, **kw):
        out = real(data, hp, model, cfg, **kw)
        seen.append((np.asarray(hp.lr), np.asarray(hp.l2), cfg.steps, len(data.y_train), out))
        return out

    monkeypatch.setattr(sanity, "train_population", spy)
    rep = sanity.run_sanity(mnist, ModelConfig(), TrainConfig(), finder_steps=30, finder_rates=8)
    (lr_f, l2_f, steps_f, n_f, _), (lr_o, l2_o, steps_o, n_o, res) = seen
    assert lr_f.tolist() == pytest.approx(np.geomspace(LR_FINDER_LO, LR_FINDER_HI, 8).tolist())
    assert (lr_f > 0).all() and steps_f == 30 and n_f == len(mnist.y_train)
    k = len(sanity.OVERFIT_LRS)
    assert lr_o[k:].tolist() == [0.0, 0.0] and l2_o[k:].tolist() == [0.0, sanity.BIG_L2]
    assert steps_o == sanity.OVERFIT_STEPS and n_o == sanity.OVERFIT_EXAMPLES
    from sweepjax.engine import member_params

    w = member_params(res, k + 1, best=False)  # lr 0: still the initial weights
    penalty = 0.5 * sanity.BIG_L2 * sum(float(np.sum(np.square(v["kernel"]))) for v in w.values())
    init = rep.initial
    assert init.regularized - init.unregularized == pytest.approx(penalty, rel=1e-3)
    assert abs(init.unregularized - math.log(10)) < sanity.INITIAL_LOSS_TOL
