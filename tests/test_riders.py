"""Riders: at a halving's last decision the next-best members train on in the survivors'
program's spare rows (engine.decisions.ride), which the program computes anyway.

What must hold: every other member's numbers are those of a run without riders, bit for
bit; the riders are the best-ranked members below the cut, whole configs only; their
curves up to the decision are the ones they had; nothing more compiles; and who rides
does not depend on the programs the process holds (nor on the times it measured)."""

from __future__ import annotations

import numpy as np
import pytest

from sweepjax.engine import compact, train_population
from sweepjax.engine.decisions import Decision, RungView, ride
from sweepjax.engine.hparams import HParams
from sweepjax.engine.program_cache import PROGRAMS
from sweepjax.schedulers import rules
from tests import loop_reference

SPACE = loop_reference.SPACE
CFG = loop_reference.CFG  # 54 steps, decisions of a 2-rung halving at 6 and 18


@pytest.fixture(scope="module")
def ds():
    return loop_reference.dataset()


def _hp(m: int) -> HParams:
    # Rates from too low to diverging: some members die, the rest rank by accuracy.
    rng = np.random.default_rng(3)
    return HParams.create(lr=np.geomspace(1e-3, 20.0, m), l2=10 ** rng.uniform(-6, -2, m))


def _run(ds, hp, ids=None, replicas=1, riders=True, monkeypatch=None):
    """One halving rung at step 18 of 54 (eta 3): the best third go on."""
    monkeypatch.setattr(compact, "RIDERS", riders)
    m = hp.num_members // replicas
    sched = rules.make("halving", num_members=m, total=CFG.steps, space=SPACE, seed=0,
                       rungs=1, replicas=replicas)  # fmt: skip
    before = dict(PROGRAMS.counts())
    res = train_population(ds, hp, loop_reference.SOFTMAX, CFG, member_ids=ids, scheduler=sched)
    after = PROGRAMS.counts()
    return res, {k: after[k] - before.get(k, 0) for k in after}


def test_riders_train_on_in_spare_rows_and_change_nobody_else(ds, monkeypatch):
    # 14 members: 5 go on and fill an 8-row program, so 3 of those below the cut ride.
    hp = _hp(14)
    with_, _ = _run(ds, hp, riders=True, monkeypatch=monkeypatch)
    without, _ = _run(ds, hp, riders=False, monkeypatch=monkeypatch)
    last = CFG.steps // 3  # the rung: 18
    stopped_last = np.flatnonzero(without.stopped_at == last)
    riders = np.flatnonzero((with_.stopped_at == -1) & (without.stopped_at == last))
    survivors = np.flatnonzero(without.stopped_at == -1)
    assert len(riders) == 8 - len(survivors) == 3
    # The riders are the best-ranked alive members below the cut, by the accuracy they
    # had at the decision (their whole-validation numbers when the run without riders
    # stopped them there), ties to the lower row.
    alive = stopped_last[without.alive[stopped_last]]
    order = alive[np.lexsort((alive, -without.final_val_acc[alive]))]
    np.testing.assert_array_equal(np.sort(order[: len(riders)]), riders)
    # They trained the whole run: finished, best step past the decision or kept.
    assert set(riders) <= set(with_.finished.tolist())
    assert (with_.best_val_acc[riders] >= without.best_val_acc[riders]).all()
    # Everyone else: the same numbers, bit for bit.
    others = np.setdiff1d(np.arange(14), riders)
    for f in ("best_val_acc", "best_step", "stopped_at", "final_val_acc", "final_val_loss"):
        np.testing.assert_array_equal(
            getattr(with_, f)[others], getattr(without, f)[others], err_msg=f
        )
    # Up to the decision the riders' curves are the ones they had.
    upto = with_.curves.step <= last
    np.testing.assert_array_equal(
        with_.curves.val_acc[np.ix_(riders, upto)], without.curves.val_acc[np.ix_(riders, upto)]
    )
    # The survivors' winner is still among the finishers; more members finished.
    assert len(with_.finished) == len(survivors) + len(riders)


def test_riders_compile_nothing_more(ds, monkeypatch):
    hp = _hp(14)
    PROGRAMS.clear()
    _, compiled_without = _run(ds, hp, riders=False, monkeypatch=monkeypatch)
    PROGRAMS.clear()
    _, compiled_with = _run(ds, hp, riders=True, monkeypatch=monkeypatch)
    assert compiled_with == compiled_without


def test_replicas_ride_as_whole_configs(ds, monkeypatch):
    # 8 configs x 2 replicas: 3 configs go on (6 rows of an 8-row program): one rides.
    hp1 = _hp(8)
    rows = np.repeat(np.arange(8), 2)
    hp = hp1.take(rows)
    ids = (rows * 2 + np.tile(np.arange(2), 8)).astype(np.int64)
    with_, _ = _run(ds, hp, ids=ids, replicas=2, monkeypatch=monkeypatch)
    without, _ = _run(ds, hp, ids=ids, replicas=2, monkeypatch=monkeypatch, riders=False)
    riders = np.flatnonzero((with_.stopped_at == -1) & (without.stopped_at != -1))
    # Replica rows 2c and 2c + 1 of config c: a config rides with both or not at all.
    cfg = riders // 2
    assert len(riders) == 2
    np.testing.assert_array_equal(np.bincount(cfg)[np.unique(cfg)], 2)


def test_who_rides_does_not_depend_on_the_programs_the_process_holds(ds, monkeypatch):
    """8 members, one rung keeping 3 (eta 3): they fill a 4-row program, one rider. Nothing
    held, the toy's survivors stay in their 8-row program (a compile never pays); with the
    4-row program held they move there. The same member rides both times."""
    hp = _hp(8)
    monkeypatch.setattr(compact, "RIDERS", True)
    sched = rules.Halving(rungs=1, eta=3, total=CFG.steps)
    PROGRAMS.clear()
    stay = train_population(ds, hp, loop_reference.SOFTMAX, CFG, scheduler=sched)
    train_population(ds, hp.take(np.arange(4)), loop_reference.SOFTMAX, CFG)  # 4 rows held
    move = train_population(ds, hp, loop_reference.SOFTMAX, CFG, scheduler=sched)
    alive = int(np.sum(stay.alive))
    assert len(stay.finished) == min(4, alive) and alive > 4
    np.testing.assert_array_equal(move.finished, stay.finished)
    np.testing.assert_array_equal(move.stopped_at, stay.stopped_at)


def _view(n: int) -> RungView:
    rows = np.arange(10, 10 + n)
    hp = HParams.create(lr=np.linspace(0.1, 1.0, n), l2=np.zeros(n))
    return RungView(5, rows, np.zeros(n), np.linspace(1, 0, n), np.ones(n, bool), hp)


def test_ride_fills_spare_rows_with_whole_configs_in_population_order():
    view = _view(8)
    d = Decision(np.array([0, 3]), view.rows[[0, 3]], view.hparams.take([0, 3]),
                 next_best=np.array([[6, 7], [1, 2], [4, 5]]))  # fmt: skip
    got = ride(d, view, spare=5)  # two whole configs fit, the third would not
    np.testing.assert_array_equal(got.src, [0, 1, 2, 3, 6, 7])
    np.testing.assert_array_equal(got.rows, view.rows[[0, 1, 2, 3, 6, 7]])
    np.testing.assert_allclose(got.hparams.lr, view.hparams.lr[[0, 1, 2, 3, 6, 7]])
    assert ride(d, view, spare=1) is d  # not one whole config fits
    assert ride(d._replace(next_best=None), view, spare=5).next_best is None
    copy = Decision(np.array([0, 0]), view.rows[[0, 3]], view.hparams.take([0, 0]),
                    next_best=np.array([[1]]))  # fmt: skip
    assert ride(copy, view, spare=4) is copy  # PBT's copies: left as they are


def test_halving_names_the_alive_members_below_its_cut_best_first():
    view = _view(7)._replace(alive=np.array([1, 1, 1, 0, 1, 1, 1], bool))
    d = rules.Halving(rungs=1, eta=3, total=9).decide(view)
    np.testing.assert_array_equal(d.src, [0, 1, 2])  # ceil(7 / 3): the three best
    np.testing.assert_array_equal(d.next_best[:, 0], [4, 5, 6])  # position 3 diverged


def test_hyperband_names_the_alive_members_its_rungs_cut_best_first():
    hb = rules.Hyperband(num_members=12, total=27, eta=3, s_max=2)
    rows = np.arange(12)
    step = hb.rungs(2)[1]  # 9: the broadest bracket's second rung, bracket 1's first
    view = _view(12)._replace(rows=rows, step=step)
    view = view._replace(alive=np.arange(12) != 11)
    d = hb.decide(view)
    judged = [s for s in range(3) if step in hb.rungs(s)]
    cut = np.setdiff1d(rows[np.isin(hb.bracket, judged)], d.rows)
    alive_cut = cut[view.alive[cut]]
    # Scores fall with the row (_view), so best first is row order.
    np.testing.assert_array_equal(d.next_best[:, 0], np.sort(alive_cut))
    assert len(alive_cut) >= 1 and 11 not in d.next_best
