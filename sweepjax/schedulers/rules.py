"""Schedulers: host decisions between chunks that spend the budget on promising members.

A scheduler never touches jit. At each of its decision steps the trainer evaluates the
active members on the whole validation set and hands it a :class:`RungView`; the
scheduler answers with a :class:`Decision` (which slots continue, whose state each one
takes, with which hyperparameters), and the trainer applies it as one gather on the
member axis. A rung ranks its arrivals in the one ranking order
(:func:`sweepjax.analysis.ranking.rank_order`): diverged members last, then higher
validation accuracy, then lower validation loss, then lower row; a diverged member is never
promoted.

- :class:`Halving`: successive halving (Jamieson & Talwalkar 2016; scikit-learn's
  ``HalvingRandomSearchCV``): rungs at ``r0, eta*r0, eta^2*r0, ...``; each keeps the best
  ``1/eta`` of the members still running.
- :class:`Hyperband`: several halving brackets with different ``r0`` (Li et al. 2018),
  trading breadth for depth, run side by side in ONE population.
- :class:`PBT`: population-based training (Jaderberg et al. 2017; Ray Tune's truncation
  selection): every interval the bottom fraction copies the state of a random member of
  the top fraction, then perturbs its learning rate and lambda by 0.8x or 1.2x.
"""

from __future__ import annotations

import math

import numpy as np

from sweepjax.analysis.ranking import rank_order
from sweepjax.config import SCHEDULES, SearchSpace
from sweepjax.engine.decisions import Decision, Full, Plan, Policy, RungView
from sweepjax.errors import ConfigError
from sweepjax.schedulers.asha import ASHA, GroupedRefills

DEFAULT_ETA = 3
PBT_FRACTION = 0.2
PBT_FACTORS = (0.8, 1.2)


def rank(view: RungView) -> np.ndarray:
    """Positions of ``view`` best first, by the score the winner is chosen by: alive before
    diverged, then higher validation accuracy, then lower validation loss, then lower row
    (:func:`~sweepjax.analysis.ranking.rank_order`). Accuracy first, as ASHA and Optuna's
    pruners rank: validation loss can rise while accuracy still climbs (an overconfident,
    weakly regularised model), and such a member may be the winner at full length."""
    loss = np.where(np.isfinite(view.val_loss), view.val_loss, np.inf)
    dead = (~np.asarray(view.alive, bool)).astype(np.int64)
    return rank_order(view.val_acc, loss, view.rows, dead)


def _keep(view: RungView, positions: np.ndarray) -> Decision:
    positions = np.sort(positions)  # keep the population's order: stable slots
    return Decision(positions, view.rows[positions], view.hparams.take(positions))


class Halving:
    """Successive halving with ``rungs`` rungs at ``u, u*eta, ..., u*eta**(rungs-1)``
    steps, ``u = total // eta**rungs``; at each rung the best ``ceil(n / eta)`` of the
    ``n`` running members continue (alive ones only). The rungs are multiples of ``u``,
    so every chunk between them has one length. The alive members below the cut are
    named, best first, as ``next_best``: after the last rung the engine lets as many as
    the survivors' program has spare rows train on (:func:`sweepjax.engine.decisions.ride`).

    Example::

      Halving(rungs=2, eta=3, total=900).decision_steps()  # [100, 300]
    """

    name = "halving"
    pure_decide = True  # decide() has no side effects: engine/prefetch.py may ask it

    def __init__(self, rungs: int, eta: int, total: int):
        if eta < 2:
            raise ConfigError(f"halving needs eta >= 2, got {eta}; try 3")
        if rungs < 1 or total // eta**rungs < 1:
            raise ConfigError(
                f"halving with {rungs} rungs at eta {eta} needs at least {eta**rungs} steps, "
                f"got {total}; raise `steps` or lower `rungs`"
            )
        self.rungs, self.eta, self.total = int(rungs), int(eta), int(total)
        self.unit = total // eta**rungs

    def decision_steps(self) -> list[int]:
        return [self.unit * self.eta**j for j in range(self.rungs)]

    def plan(self) -> Plan:
        return Plan(tuple(self.decision_steps()))

    def decide(self, view: RungView) -> Decision:
        order = rank(view)
        n = math.ceil(len(order) / self.eta)
        alive = view.alive[order].astype(bool)
        # The alive members below the cut, best first: at the last rung they train on in
        # the survivors' program's spare rows (engine.decisions.ride).
        rest = order[n:][alive[n:]]
        return _keep(view, order[:n][alive[:n]])._replace(next_best=rest[:, None])


class Hyperband:
    """Hyperband's brackets side by side in one population.

    With ``u = total // eta**s_max``, bracket ``s`` (``s = 0 .. s_max``) has ``s`` rungs
    at ``u * eta**(s_max - s + j)``: bracket 0 trains the whole run untouched, bracket
    ``s_max`` is the broadest halving, starting at ``u`` steps. Members are dealt to
    brackets in proportion to Li et al.'s ``n_s ~ eta**s / (s + 1)`` (in row order: the
    rows are independent random draws already). At a step that is a rung of some
    brackets, each of those keeps its best ``1/eta``.
    """

    name = "hyperband"
    pure_decide = True  # decide() has no side effects: engine/prefetch.py may ask it

    def __init__(self, num_members: int, total: int, eta: int = DEFAULT_ETA, s_max: int = 3):
        if eta < 2:
            raise ConfigError(f"hyperband needs eta >= 2, got {eta}; try 3")
        while s_max > 0 and total // eta**s_max < 1:
            s_max -= 1
        self.eta, self.total, self.s_max = int(eta), int(total), int(s_max)
        self.unit = total // eta**s_max
        weights = np.array([eta**s / (s + 1) for s in range(s_max + 1)], float)
        counts = np.floor(weights / weights.sum() * num_members).astype(int)
        counts[-1] += num_members - counts.sum()
        self.bracket = np.repeat(np.arange(s_max + 1), counts)  # [M] bracket of each row

    def rungs(self, s: int) -> list[int]:
        return [self.unit * self.eta ** (self.s_max - s + j) for j in range(s)]

    def decision_steps(self) -> list[int]:
        return sorted({r for s in range(self.s_max + 1) for r in self.rungs(s)})

    def plan(self) -> Plan:
        return Plan(tuple(self.decision_steps()))

    def decide(self, view: RungView) -> Decision:
        order = rank(view)
        keep, cut = [], np.zeros(len(order), bool)
        brackets = self.bracket[view.rows]
        alive = view.alive.astype(bool)
        for s in np.unique(brackets):
            mine = order[brackets[order] == s]
            if view.step in self.rungs(int(s)):
                n = math.ceil(len(mine) / self.eta)
                cut[mine[n:][alive[mine[n:]]]] = True
                mine = mine[:n][alive[mine[:n]]]
            keep.append(mine)
        d = _keep(view, np.concatenate(keep) if keep else np.zeros(0, np.int64))
        # The alive members the rungs cut, best first over every bracket: at the last
        # decision they train on in spare rows (engine.decisions.ride).
        return d._replace(next_best=order[cut[order]][:, None])


class PBT:
    """Population-based training: exploit by truncation selection, explore by 0.8x/1.2x.

    Every ``interval`` steps the bottom ``fraction`` of the ranking copies (parameters,
    optimizer state, health, best checkpoint: all of it, bit for bit) a member drawn at
    random from the top ``fraction``, and multiplies the copied learning rate and lambda
    each by 0.8 or 1.2 at random, clipped to the searched box. Draws come from
    ``(seed, step)``, so a resumed run decides the same.
    """

    name = "pbt"
    pure_decide = True  # decide() has no side effects: engine/prefetch.py may ask it

    def __init__(
        self,
        interval: int,
        total: int,
        space: SearchSpace,
        seed: int,
        fraction: float = PBT_FRACTION,
    ):
        if not 1 <= interval < total:
            raise ConfigError(
                f"pbt's interval ({interval} steps) must lie inside the run of {total} steps; "
                "lower `pbt_interval` or raise `steps`"
            )
        if not 0.0 < fraction <= 0.5:
            raise ConfigError(f"pbt's fraction must be in (0, 0.5], got {fraction}; try 0.2")
        self.interval, self.total, self.space = int(interval), int(total), space
        self.seed, self.fraction = int(seed), float(fraction)

    def decision_steps(self) -> list[int]:
        return list(range(self.interval, self.total, self.interval))

    def plan(self) -> Plan:
        return Plan(tuple(self.decision_steps()))

    def decide(self, view: RungView) -> Decision:
        order = rank(view)
        a = len(order)
        q = max(1, int(round(self.fraction * a))) if a >= 2 else 0
        src = np.arange(a)
        lr, l2 = np.array(view.hparams.lr, np.float64), np.array(view.hparams.l2, np.float64)
        rng = np.random.default_rng([self.seed, view.step])
        top, bottom = order[:q], order[a - q :]
        donors = top[rng.integers(0, q, size=q)] if q else top
        factors = np.asarray(PBT_FACTORS)[rng.integers(0, 2, size=(q, 2))] if q else None
        for j, (b, d) in enumerate(zip(bottom, donors, strict=True)):
            src[b] = d
            lr[b] = np.clip(lr[d] * factors[j, 0], self.space.lr.lo, self.space.lr.hi)
            l2[b] = np.clip(l2[d] * factors[j, 1], self.space.l2.lo, self.space.l2.hi)
        # A copy takes its donor's weights with the donor's other axes (width, dropout,
        # ...): lr, lambda and the user's own searched hyperparameters are explored.
        hp = view.hparams.take(src)._replace(lr=lr.astype(np.float32), l2=l2.astype(np.float32))
        if self.space.user and q:  # drawn after lr's and lambda's: their draws stay
            hp = hp._replace(user=self._explore_user(hp.user, bottom, rng))
        return Decision(src, view.rows.copy(), hp)

    def _explore_user(self, user: dict, bottom, rng) -> dict:
        """The copies' (rows ``bottom``) own hyperparameters times 0.8 or 1.2 each (kept
        inside their box), as lr and lambda; a linear axis at 0 moves by a tenth of its
        box instead (a product would keep it at 0)."""
        box = dict(self.space.user)
        names = [n for n in user if n in box]
        factors = np.asarray(PBT_FACTORS)[rng.integers(0, 2, size=(len(bottom), len(names)))]
        out = {n: np.array(v, np.float64) for n, v in user.items()}
        for j, n in enumerate(names):
            r, v = box[n], out[n][bottom]
            moved = v * factors[:, j]
            if not r.log:
                nudge = np.where(factors[:, j] > 1, 1.0, -1.0) * 0.1 * (r.hi - r.lo)
                moved = np.where(v == 0.0, v + nudge, moved)
            out[n][bottom] = np.clip(moved, r.lo, r.hi)
        return {n: v.astype(np.float32) for n, v in out.items()}


class Grouped:
    """Replicas of a config decided together: ``inner`` ranks and keeps whole configs.

    Member row ``i`` is replica ``i % replicas`` of config ``i // replicas`` (the layout
    ``runner`` trains). A config's score is the mean over its replicas of the validation
    accuracy and of the loss (a diverged replica counts as infinite loss and leaves the
    config no accuracy, so one unstable seed sinks the config); it is alive while any
    replica is. ``inner`` decides over configs
    (halving keeps the best ``1/eta`` of configs, hyperband deals configs to brackets, PBT
    copies a top config into a bottom one); each config-level choice is applied to every
    replica: replica ``r`` of a copied config takes the state of replica ``r`` of its donor.
    """

    def __init__(self, inner: Policy, replicas: int):
        self.inner, self.replicas = inner, int(replicas)
        self.name = inner.name
        self.pure_decide = getattr(inner, "pure_decide", False)

    def decision_steps(self) -> list[int]:
        return self.inner.decision_steps()

    def plan(self) -> Plan:
        return self.inner.plan()

    def decide(self, view: RungView) -> Decision:
        r = self.replicas
        cfg = np.asarray(view.rows) // r
        configs = np.unique(cfg)
        # positions[j, k]: view position of replica k of configs[j]
        positions = np.stack(
            [np.flatnonzero(cfg == c)[np.argsort(view.rows[cfg == c])] for c in configs]
        )
        if positions.shape[1] != r:
            raise ValueError("a config's replicas must be active together")
        loss = np.where(np.isfinite(view.val_loss), view.val_loss, np.inf)[positions].mean(axis=1)
        acc = np.asarray(view.val_acc, np.float64)[positions]
        seen = np.isfinite(acc).sum(axis=1)
        acc = np.where(
            seen > 0, np.where(np.isfinite(acc), acc, 0.0).sum(axis=1) / np.maximum(seen, 1), np.nan
        )
        # Ranked by accuracy first, a config with a diverged replica has no score (NaN:
        # after every alive config with one), as its infinite mean loss ranked it before.
        acc = np.where(np.isfinite(loss), acc, np.nan)
        alive = np.asarray(view.alive, bool)[positions].any(axis=1)
        hp = view.hparams.take(positions[:, 0])
        d = self.inner.decide(RungView(view.step, configs, loss, acc, alive, hp))
        src = positions[np.asarray(d.src, np.int64)].reshape(-1)
        rows = (np.asarray(d.rows, np.int64)[:, None] * r + np.arange(r)).reshape(-1)
        nb = None  # the inner's next-best configs, as their replicas' positions
        if d.next_best is not None:
            nb = positions[np.asarray(d.next_best, np.int64).reshape(-1)]
        hp = d.hparams.map(lambda f: np.repeat(np.asarray(f), r))
        return Decision(src, rows, hp, nb)


def make(
    name: str,
    *,
    num_members: int,
    total: int,
    space: SearchSpace,
    seed: int,
    eta: int = DEFAULT_ETA,
    rungs: int = 3,
    interval: int | None = None,
    replicas: int = 1,
    fixed: dict | None = None,
    brackets: int = 1,
    start: tuple = (),
) -> Policy:
    """The policy called ``name`` (:class:`Full` for ``"full"``: every member trains the
    whole run). ``rungs`` is halving's number of rungs (hyperband's largest bracket);
    PBT's ``interval`` defaults to a tenth of the run. With ``replicas > 1``,
    ``num_members`` counts configs and the scheduler decides whole configs
    (:class:`Grouped`). ``"asha"`` refills freed slots
    (:class:`sweepjax.schedulers.asha.ASHA`, drawing its members with the values
    ``fixed`` for the axes not searched; with replicas, whole configs:
    :class:`~sweepjax.schedulers.asha.GroupedRefills`; ``brackets > 1``: asynchronous
    Hyperband; ``start``: its first member's ``(axis, value)`` pairs)."""
    if name not in SCHEDULES:
        raise ConfigError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")
    if name == "full":
        return Full()
    if name == "asha":
        asha = ASHA(space, total, eta, rungs, seed, fixed, brackets=brackets, start=dict(start))
        return asha if replicas <= 1 else GroupedRefills(asha, replicas)
    if name == "halving":
        inner = Halving(rungs, eta, total)
    elif name == "hyperband":
        inner = Hyperband(num_members, total, eta, rungs)
    else:
        inner = PBT(interval or max(1, total // 10), total, space, seed)
    return inner if replicas <= 1 else Grouped(inner, replicas)
