"""ASHA over whole configs (issue 26): a config's replicas or folds are drawn together,
judged at each rung on the config's mean, and kept or stopped together."""

from __future__ import annotations

import numpy as np

from sweepjax.config import Range, SearchSpace
from sweepjax.engine.decisions import DIVERGED_RUNG, RungLog, RungView
from sweepjax.engine.hparams import HParams
from sweepjax.schedulers import rules
from sweepjax.schedulers.asha import ASHA, GroupedRefills, config_log

SPACE = SearchSpace(lr=Range(1e-3, 30.0), l2=Range(1e-6, 1e-1))


def grouped(g: int, eta: int = 3) -> GroupedRefills:
    return GroupedRefills(ASHA(SPACE, 27, eta=eta, rungs=2, seed=0), g)


def random_log(rng, g: int, configs: int) -> RungLog:
    """Whole configs logged at rungs 3 and 9 (members of a config together), with ties,
    diverged members and entries at the diverged rung."""
    log = RungLog.empty(200)
    for c in rng.permutation(configs):
        rows = c * g + np.arange(g)
        loss = np.round(rng.uniform(0.2, 1.5, g), 1)
        acc = np.round(rng.uniform(0.5, 0.9, g), 2)
        dead = rng.random(g) < 0.1
        loss[dead], acc[dead] = np.nan, np.nan
        log = log.extend(int(rng.choice([3, 9])), rows, loss, acc, ~dead)
        if dead.any():
            log = log.extend(DIVERGED_RUNG, rows[dead], loss[dead], acc[dead], ~dead[dead])
    return log


def test_config_log_is_the_mean_of_each_configs_members():
    rng = np.random.default_rng(1)
    for g in (2, 3):
        log = random_log(rng, g, 12)
        cl = config_log(log, g)
        seen = []
        for k in range(len(log.rung)):  # the plain rule, entry by entry
            key = (int(log.rung[k]), int(log.row[k]) // g)
            if key not in seen:
                seen.append(key)
        assert [(int(r), int(c)) for r, c in zip(cl.rung, cl.row, strict=True)] == seen
        for j, (r, c) in enumerate(seen):
            at = (log.rung == r) & (log.row // g == c)
            loss = np.where(np.isfinite(log.val_loss[at]), log.val_loss[at], np.inf)
            assert cl.val_loss[j] == loss.mean()
            acc = log.val_acc[at]
            want = acc[np.isfinite(acc)].mean() if np.isfinite(loss).all() else np.nan
            np.testing.assert_allclose(cl.val_acc[j], want)
            assert cl.alive[j] == log.alive[at].any()


def test_grouped_asha_keeps_the_top_configs_by_their_mean_and_all_their_members():
    rng = np.random.default_rng(2)
    g, eta = 2, 3
    policy = grouped(g, eta)
    log = random_log(rng, g, 10)
    arrived = rng.permutation(np.arange(10, 14))  # four configs reach rung 9 together
    rows = (arrived[:, None] * g + np.arange(g)).reshape(-1)
    loss = np.round(rng.uniform(0.2, 1.5, len(rows)), 1)
    acc = np.round(rng.uniform(0.5, 0.9, len(rows)), 2)
    log = log.extend(9, rows, loss, acc, np.ones(len(rows), bool))
    hp = HParams.create(lr=np.full(len(rows), 0.1), l2=1e-3)
    d = policy.decide(RungView(50, rows, loss, acc, np.ones(len(rows), bool), hp, 9, log))
    # The plain rule: every config at rung 9 so far by (mean acc desc, mean loss, id).
    at = log.rung == 9
    configs = np.unique(log.row[at] // g)
    score = {}
    for c in configs:
        m = at & (log.row // g == c)
        ok = np.isfinite(log.val_loss[m]).all()
        score[c] = (not log.alive[m].any(), -(log.val_acc[m].mean() if ok else -1.0),
                    log.val_loss[m].mean() if ok else np.inf, c)  # fmt: skip
    order = sorted(configs, key=lambda c: score[c])
    top = set(order[: max(1, len(configs) // eta)])
    want = [r for r in rows if r // g in top]
    assert sorted(d.rows.tolist()) == sorted(want)
    kept = set(np.asarray(d.rows) // g)
    assert all((np.asarray(d.rows) // g == c).sum() == g for c in kept)  # whole configs


def test_a_configs_members_share_its_draw():
    policy, alone = grouped(3), ASHA(SPACE, 27, eta=3, rungs=2, seed=0)
    ids = np.arange(6, 15)  # configs 2, 3, 4
    hp = policy.draw(ids, RungLog.empty(200), None)
    cfg = alone.draw(np.array([2, 3, 4]), RungLog.empty(200), None)
    np.testing.assert_array_equal(hp.lr, np.repeat(cfg.lr, 3))
    np.testing.assert_array_equal(hp.l2, np.repeat(cfg.l2, 3))
    assert policy.plan().group == 3 and policy.plan().ages == alone.plan().ages


def test_make_groups_asha_with_replicas():
    p = rules.make("asha", num_members=4, total=27, space=SPACE, seed=0, rungs=2, replicas=2)
    assert isinstance(p, GroupedRefills) and p.plan().refills and p.plan().group == 2
