"""Asynchronous Hyperband (``--brackets``): ASHA's members spread over brackets in
Hyperband's proportions, each bracket judged against itself from its own first rung."""

from __future__ import annotations

import numpy as np
import pytest

from sweepjax.config import ModelConfig, Range, ScheduleConfig, SearchSpace, TrainConfig
from sweepjax.engine.decisions import RungLog
from sweepjax.engine.refill import train_refilling
from sweepjax.errors import ConfigError
from sweepjax.flows.sweep_config import schedule_config
from sweepjax.schedulers.asha import ASHA, bracket_shares, promotions
from tests.helpers import toy_dataset

SPACE = SearchSpace(lr=Range(1e-3, 30.0), l2=Range(1e-6, 1e-1))
RUNGS = (3, 9)  # ASHA(total=27, eta=3, rungs=2)


def hb(brackets=3, seed=0):
    return ASHA(SPACE, 27, eta=3, rungs=2, seed=seed, brackets=brackets)


def test_bracket_shares_are_hyperbands_configs_per_bracket():
    # Hyperband (Li et al. 2018), s_max = 2, eta = 3: brackets of 9, 5 and 3 configs whose
    # members train 9 x 1 + 3 x 3 + 1 x 9 = 27, 5 x 3 + 1 x 9 (24) and 3 x 9 (27) units.
    # Per unit of budget that is eta**j / (j + 1) for a bracket judging j rungs.
    np.testing.assert_allclose(bracket_shares(2, 3, 3), np.array([3, 1.5, 1]) / 5.5)
    np.testing.assert_allclose(bracket_shares(3, 2, 2), np.array([2, 4 / 3]) / (10 / 3))
    assert bracket_shares(2, 1, 3).tolist() == [1.0]


def test_a_members_bracket_depends_on_its_id_only_in_those_shares():
    ids = np.arange(30_000)
    a = hb().bracket(ids)
    freq = np.bincount(a, minlength=3) / len(ids)
    # Binomial SE at 30,000 draws is <= 0.003: 0.01 is over 3 SE.
    np.testing.assert_allclose(freq, bracket_shares(2, 3, 3), atol=0.01)
    # A fresh instance (a resumed run) and another order agree; another seed differs.
    back = hb().bracket(ids[::-1])[::-1]
    np.testing.assert_array_equal(a, back)
    assert (hb(seed=1).bracket(ids) != a).mean() > 0.3
    assert hb(brackets=1).bracket(ids).tolist() == [0] * len(ids)


def random_log(rng, n):
    rung = rng.choice(RUNGS, n)
    loss = np.round(rng.uniform(0.2, 1.5, n), 1)
    acc = np.round(rng.uniform(0.3, 0.9, n), 1)  # ties on purpose
    alive = rng.random(n) > 0.1
    rows = rng.permutation(10 * n)[:n]
    return RungLog.empty(100), rung, rows, loss, acc, alive


def test_each_bracket_is_judged_against_itself_from_its_first_rung():
    rng = np.random.default_rng(0)
    policy, plain = hb(), hb(brackets=1)
    judged = unjudged = 0
    for _ in range(20):
        log, rung, rows, loss, acc, alive = random_log(rng, int(rng.integers(5, 80)))
        for r in RUNGS:  # every arrival at rung r at once, after the earlier ones
            at = np.flatnonzero(rung == r)
            start = len(log.rung)
            log = log.extend(r, rows[at], loss[at], acc[at], alive[at])
            pos = np.arange(start, len(log.rung))
            got = policy.continues(log, r, pos)
            # One bracket is plain ASHA.
            np.testing.assert_array_equal(plain.continues(log, r, pos), promotions(log, r, pos, 3))
            k = RUNGS.index(r)
            b = policy.bracket(log.row)
            for j, p in enumerate(pos):
                if b[p] > k:  # its bracket starts later: continues unless it diverged
                    assert got[j] == bool(log.alive[p])
                    unjudged += 1
                    continue
                # Plain ASHA over the log of its own bracket only.
                mine = np.flatnonzero(b == b[p])
                sub = RungLog(*(np.asarray(x)[mine] for x in log[:5]), log.n_val)
                assert got[j] == promotions(sub, r, np.flatnonzero(mine == p), 3)[0]
                judged += 1
    assert judged > 100 and unjudged > 100


def test_brackets_are_asha_s_and_range_from_one_to_rungs_plus_one():
    with pytest.raises(ConfigError, match="1 to 3 brackets"):
        hb(brackets=4)
    with pytest.raises(ConfigError, match="1 to 3 brackets, got 4"):
        ScheduleConfig(name="asha", rungs=2, brackets=4)
    with pytest.raises(ConfigError, match="`brackets` is asha's"):
        schedule_config("coarse", "halving", None, None, None, 300, brackets=2)
    with pytest.raises(ConfigError, match="positive integer"):
        schedule_config("coarse", "asha", None, None, None, 300, brackets=0)
    sc = schedule_config("coarse", None, None, None, None, 300, brackets=3)  # implies asha
    assert (sc.name, sc.rungs, sc.brackets) == ("asha", 2, 3)


def test_a_run_stops_members_only_at_their_brackets_rungs():
    cfg = TrainConfig(steps=27, batch_size=32, seed=3, eval_batch_size=100)
    policy = hb()
    res = train_refilling(
        toy_dataset(), ModelConfig(kind="softmax"), cfg, policy, width=8, max_members=60
    )
    b = policy.bracket(np.arange(res.num_members))
    stopped = (np.asarray(res.status) == "stopped") & (res.stopped_at < cfg.steps)
    at = res.stopped_at
    assert res.in_flight == 0 and len(set(b.tolist())) == 3
    # Bracket 0 stops at both rungs, bracket 1 only at the second, bracket 2 never.
    assert set(at[stopped & (b == 0)].tolist()) == {3, 9}
    assert set(at[stopped & (b == 1)].tolist()) == {9}
    assert not (stopped & (b == 2)).any()
    assert (np.asarray(res.status)[b == 2] != "stopped").all()
