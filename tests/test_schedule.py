"""Schedulers inside the population: numerical claims about halving, hyperband and PBT."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweepjax import engine
from sweepjax.config import ModelConfig, Range, SearchSpace
from sweepjax.engine import compact, program
from sweepjax.engine.hparams import HParams
from sweepjax.schedulers import rules as schedule
from tests.helpers import toy_dataset, toy_train_config

SOFTMAX = ModelConfig("softmax")
CFG = toy_train_config().replace(steps=90, eval_every=10, chunk_steps=90)
SPACE = SearchSpace(lr=Range(1e-3, 3.0), l2=Range(1e-6, 1.0))


@pytest.fixture(scope="module")
def ds():
    return toy_dataset(n_train=600, n_val=200, n_test=200, d=20, k=4, seed=0)


def _hp(m=16):
    rng = np.random.default_rng(0)
    return HParams.create(lr=np.geomspace(2e-3, 2.0, m), l2=10 ** rng.uniform(-6, -2, m))


def _view(loss, acc=None, alive=None, step=10):
    n = len(loss)
    return schedule.RungView(
        step,
        np.arange(n) + 100,
        np.asarray(loss, float),
        np.zeros(n) if acc is None else np.asarray(acc, float),
        np.ones(n, bool) if alive is None else np.asarray(alive, bool),
        HParams.create(lr=np.linspace(0.1, 1, n), l2=1e-3),
    )


# --------------------------------------------------------------------------- pure decisions
def test_halving_keeps_exactly_the_best_third_by_validation_accuracy():
    # Overconfident members: the higher the accuracy, the higher the loss. A rung ranks by
    # the winner's score (accuracy first), so it keeps the accurate ones, not the lowest
    # losses (rows 100, 104, 106 under the old loss-first rung rule).
    acc = [0.1, 0.9, 0.5, 0.7, 0.3, 0.8, 0.2, 0.6, 0.4]
    loss = [0.1 + a for a in acc]
    d = schedule.Halving(rungs=2, eta=3, total=90).decide(_view(loss, acc))
    assert d.rows.tolist() == [101, 103, 105]  # accuracies 0.9, 0.7, 0.8 (population order)
    np.testing.assert_array_equal(d.src, [1, 3, 5])
    # Every rung (halving, hyperband's brackets, PBT's quantiles) uses this one order.
    assert schedule.rank(_view(loss, acc)).tolist() == [1, 5, 3, 7, 2, 8, 4, 6, 0]


def test_loss_breaks_accuracy_ties_then_row_and_diverged_members_are_never_promoted():
    loss = [0.3, 0.2, 0.1, 0.4, 0.4, 0.5]
    acc = [0.5, 0.5, 0.9, 0.2, 0.2, 0.2]
    alive = [True, True, False, True, True, True]  # row 2 has the best score but diverged
    d = schedule.Halving(rungs=1, eta=6, total=30).decide(_view(loss, acc, alive))
    assert d.rows.tolist() == [101]  # tied accuracy with row 0, lower loss
    d = schedule.Halving(rungs=1, eta=2, total=30).decide(_view(loss, acc, alive))
    assert d.rows.tolist() == [100, 101, 103]  # rows 3 and 4 tie on both: the lower row
    # Fewer alive members than the quota: only alive ones continue.
    d = schedule.Halving(rungs=1, eta=2, total=30).decide(
        _view([0.1, 0.2, 0.3, 0.4], alive=[False, False, False, True])
    )
    assert d.rows.tolist() == [103]


def test_halving_rungs_and_hyperband_brackets():
    assert schedule.Halving(rungs=2, eta=3, total=900).decision_steps() == [100, 300]
    hb = schedule.Hyperband(num_members=64, total=270, eta=3, s_max=3)
    assert [hb.rungs(s) for s in range(4)] == [[], [90], [30, 90], [10, 30, 90]]
    counts = np.bincount(hb.bracket)
    assert counts.sum() == 64 and counts[3] > counts[2] > counts[1] >= counts[0] > 0
    with pytest.raises(Exception, match="needs at least 27 steps"):
        schedule.Halving(rungs=3, eta=3, total=20)


@settings(max_examples=50, deadline=None)
@given(st.integers(2, 40), st.integers(0, 10_000))
def test_pbt_copies_top_to_bottom_and_perturbs_within_factors(n, seed):
    rng = np.random.default_rng(seed)
    view = _view(rng.uniform(0, 2, n), step=30)
    pbt = schedule.PBT(interval=30, total=90, space=SPACE, seed=seed)
    d = pbt.decide(view)
    q = max(1, round(0.2 * n))
    order = schedule.rank(view)
    copied = np.flatnonzero(d.src != np.arange(n))
    assert set(copied) <= set(order[n - q :].tolist())  # only the bottom copies
    assert set(d.src[copied]) <= set(order[:q].tolist())  # ... from the top
    np.testing.assert_array_equal(d.rows, view.rows)  # members keep their identity
    for j in copied:
        for name, box in (("lr", SPACE.lr), ("l2", SPACE.l2)):
            ratio = float(getattr(d.hparams, name)[j]) / float(
                getattr(view.hparams, name)[d.src[j]]
            )
            clipped = np.isclose(float(getattr(d.hparams, name)[j]), [box.lo, box.hi], rtol=1e-6)
            assert clipped.any() or min(abs(ratio - 0.8), abs(ratio - 1.2)) < 1e-5
            assert 0.8 - 1e-5 <= ratio <= 1.2 + 1e-5
    # Same seed and step: the same decision (a resumed run decides alike).
    again = pbt.decide(view)
    np.testing.assert_array_equal(again.src, d.src)
    np.testing.assert_array_equal(again.hparams.lr, d.hparams.lr)


# --------------------------------------------------------------------------- in the trainer
def _numpy_val_scores(states, ds):
    """Whole-validation-set accuracy and cross-entropy of every member of a softmax
    population."""
    w = np.asarray(states.params["out"]["kernel"], np.float64)  # [M, K, D]
    b = np.asarray(states.params["out"]["bias"], np.float64)  # [M, K]
    logits = np.einsum("mkd,nd->mnk", w, ds.x_val) + b[:, None, :]
    logits -= logits.max(-1, keepdims=True)
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    acc = (logp.argmax(-1) == ds.y_val[None, :]).mean(axis=1)
    return acc, -logp[:, np.arange(len(ds.y_val)), ds.y_val].mean(axis=1)


def test_halving_in_the_trainer_keeps_the_members_a_numpy_ranking_picks(ds, monkeypatch):
    # The policy's cut alone: no riders in the last rung's spare rows (tests/test_riders.py).
    monkeypatch.setattr(compact, "RIDERS", False)
    hp = _hp()
    sch = schedule.Halving(rungs=2, eta=3, total=90)  # rungs at 10 and 30
    res = engine.train_population(ds, hp, SOFTMAX, CFG, scheduler=sch)
    # The same population, no scheduler, stopped at the first rung.
    part = engine.train_population(ds, hp, SOFTMAX, CFG, on_chunk=lambda r: r.step < 10)
    assert part.checkpoint.step == 10
    acc, loss = _numpy_val_scores(part.checkpoint.states.slots, ds)
    want = np.sort(np.lexsort((np.arange(16), loss, -acc))[: math.ceil(16 / 3)])
    survivors = np.flatnonzero(res.stopped_at != 10)
    np.testing.assert_array_equal(survivors, want)
    assert (res.stopped_at == 10).sum() == 16 - 6 and (res.stopped_at == 30).sum() == 6 - 2
    assert res.status.count("ok") == 2 and res.finished.tolist() == list(
        np.flatnonzero(res.stopped_at < 0)
    )
    # Stopped members keep their curves up to the stop, NaN after it.
    e10 = np.searchsorted(res.curves.step, 10)
    stopped = np.flatnonzero(res.stopped_at == 10)
    assert np.isfinite(res.curves.val_acc[stopped, : e10 + 1]).all()
    assert np.isnan(res.curves.val_acc[stopped, e10 + 1 :]).all()
    assert np.isfinite(res.best_val_acc).all()


def test_decisions_measure_only_stale_best_checkpoints_with_the_same_results(ds, monkeypatch):
    """At a decision, a member whose subset-best is the current step holds its current
    parameters as its best checkpoint, so only the other members' best checkpoints are
    measured on the whole validation set. The results equal those of measuring every
    member's best checkpoint (the old way), and the finished members' best accuracy is
    the whole-set accuracy of their kept best parameters (NumPy). The current
    parameters of every active member go through the same path (a smaller program
    where the current one is mostly padding) with the same results."""
    from sweepjax.engine import active

    # Up to lr 30: the fastest members stall or diverge (their best checkpoints are
    # older than the decision), the others are still improving.
    hp = HParams.create(lr=np.geomspace(1e-3, 30.0, 16), l2=1e-4)
    sch = lambda: schedule.Halving(rungs=2, eta=3, total=90)  # noqa: E731
    calls = []
    real = active.evaluate_members

    def spy(act, which, idx, *a):
        calls.append((which, act.n, act.size, len(idx)))
        return real(act, which, idx, *a)

    monkeypatch.setattr(active, "evaluate_members", spy)
    # A toy softmax is too cheap for a smaller program to pay for its compile: lower the
    # bar so the subset path runs (the MLP's evaluations clear the real one).
    monkeypatch.setattr(active, "COMPILE_COST_FLOPS", 0.0)
    fast = engine.train_population(ds, hp, SOFTMAX, CFG, scheduler=sch())

    def everyone(act, which, idx, data, st, where, folds):
        loss, acc, secs, sq = active.evaluate(act, which, data, st, where, folds)
        return loss[idx], acc[idx], secs, sq[idx]

    monkeypatch.setattr(active, "evaluate_members", everyone)
    full = engine.train_population(ds, hp, SOFTMAX, CFG, scheduler=sch())
    best = [(n, k) for which, n, _, k in calls if which == "best"]
    assert best and any(k < n for n, k in best)  # some members were skipped
    # The current parameters: every active member, also where the program is padding.
    assert all(k == n <= size for which, n, size, k in calls if which == "params")
    np.testing.assert_array_equal(fast.best_val_acc, full.best_val_acc)
    np.testing.assert_array_equal(fast.best_step, full.best_step)
    np.testing.assert_array_equal(fast.stopped_at, full.stopped_at)
    for i in fast.finished:
        p = engine.member_params(fast, int(i))
        logits = ds.x_val @ p["out"]["kernel"].T + p["out"]["bias"]
        want = np.mean(np.argmax(logits, 1) == ds.y_val)
        assert fast.best_val_acc[i] == pytest.approx(want, abs=1.5 / len(ds.y_val))


def test_survivors_after_compaction_equal_the_member_trained_alone(ds):
    hp = _hp()
    res = engine.train_population(
        ds, hp, SOFTMAX, CFG, scheduler=schedule.Halving(rungs=2, eta=3, total=90)
    )
    for pos, row in enumerate(res.finished):
        alone = engine.train_population(ds, hp.take([row]), SOFTMAX, CFG, member_ids=[row])
        np.testing.assert_allclose(
            res.params["out"]["kernel"][pos],
            alone.params["out"]["kernel"][0],
            rtol=1e-4,
            atol=1e-5,
        )
        assert res.best_val_acc[row] == pytest.approx(alone.best_val_acc[0], abs=1e-6)


def test_compiles_are_bounded_by_the_rungs_and_values_never_recompile(ds):
    program.clear_cache()
    before = program.compile_counts().get("chunk", 0)
    sch = schedule.Halving(rungs=3, eta=2, total=80)  # rungs 10, 20, 40: sizes 16, 8, 4, 2
    engine.train_population(ds, _hp(), SOFTMAX, CFG.replace(steps=80), scheduler=sch)
    compiled = program.compile_counts()["chunk"] - before
    assert compiled <= 3 + 1  # one program per population size between rungs
    # Other values, another run length: nothing new compiles.
    hp2 = HParams.create(lr=np.geomspace(0.01, 1, 16), l2=1e-5, lr_decay=0.1)
    engine.train_population(
        ds, hp2, SOFTMAX, CFG.replace(steps=160), scheduler=schedule.Halving(3, 2, 160)
    )
    assert program.compile_counts()["chunk"] - before == compiled


def test_pbt_exploit_copies_state_bit_for_bit(ds):
    hp = _hp()
    pbt = schedule.PBT(interval=30, total=90, space=SPACE, seed=7)
    seen = {}

    def grab(rep):
        if rep.step == 30:
            seen["ckpt"] = rep.checkpoint()
        return rep.step < 30

    part = engine.train_population(ds, hp, SOFTMAX, CFG, scheduler=pbt, on_chunk=grab)
    plain = engine.train_population(ds, hp, SOFTMAX, CFG, on_chunk=lambda r: r.step < 30)
    lineage = seen["ckpt"].schedule.lineage
    assert len(lineage) == round(0.2 * 16) and (lineage[:, 0] == 30).all()
    after = seen["ckpt"].states.slots
    before = plain.checkpoint.states.slots
    for _, member, donor in lineage:
        for a, b in zip(jax.tree.leaves(after), jax.tree.leaves(before), strict=True):
            np.testing.assert_array_equal(np.asarray(a)[member], np.asarray(b)[donor])
    untouched = np.setdiff1d(np.arange(16), lineage[:, 1])
    np.testing.assert_array_equal(
        after.params["out"]["kernel"][untouched], before.params["out"]["kernel"][untouched]
    )
    # The copies' new values are the donors' times 0.8 or 1.2 (history records them).
    hist = seen["ckpt"].schedule.history
    for _, member, lr, _, _ in hist[hist[:, 0] == 30]:
        donor = lineage[lineage[:, 1] == member][0, 2]
        assert (
            lr / hp.lr[donor] == pytest.approx(0.8, rel=1e-5)
            or lr / hp.lr[donor] == pytest.approx(1.2, rel=1e-5)
            or lr in (SPACE.lr.lo, SPACE.lr.hi)
        )
    assert not part.completed


@pytest.mark.parametrize("name,stop_at", [("halving", 20), ("pbt", 40), ("hyperband", 50)])
def test_stop_mid_rung_and_resume_gives_the_uninterrupted_result(ds, name, stop_at):
    hp = _hp()

    def sched():
        return schedule.make(
            name, num_members=16, total=90, space=SPACE, seed=3, rungs=2, interval=30
        )

    full = engine.train_population(ds, hp, SOFTMAX, CFG, scheduler=sched())
    part = engine.train_population(
        ds, hp, SOFTMAX, CFG, scheduler=sched(), on_chunk=lambda r: r.step < stop_at
    )
    assert not part.completed and part.checkpoint.step == stop_at
    rest = engine.train_population(ds, hp, SOFTMAX, CFG, scheduler=sched(), resume=part.checkpoint)
    for f in ("stopped_at", "alive", "best_val_acc", "best_step", "finished", "lineage"):
        np.testing.assert_array_equal(getattr(rest, f), getattr(full, f))
    np.testing.assert_array_equal(rest.params["out"]["kernel"], full.params["out"]["kernel"])
    np.testing.assert_array_equal(rest.curves.val_acc, full.curves.val_acc)
    np.testing.assert_array_equal(rest.hparams.lr, full.hparams.lr)


@pytest.mark.slow
def test_pbt_sweeps_make_no_surface_claims_and_fine_uses_the_span_rule(tmp_path):
    """Under PBT a member's score comes from a schedule of values, not the final ones it
    ends with: no boundary/flat/optimum verdicts, and a fine round refines by span."""
    import sweepjax

    store = tmp_path / "s.db"
    kw = dict(dataset="mnist-sample", trials=16, steps=60, batch_size=64, report=False)
    res = sweepjax.coarse(**kw, schedule="pbt", store=store)
    assert res.lineage and res.verdict is None and res.boundary == []
    assert {h["member"] for h in res.history} == {m.id for m in res.members}
    fine = sweepjax.fine(store=store, steps=60, report=False, refit=False)
    assert fine.refinement.startswith("no model (PBT changed the hyperparameters")
