"""ASHA: asynchronous successive halving in a population that stays full.

Li et al., "A System for Massively Parallel Hyperparameter Tuning" (MLSys 2020), in its
stopping form (Optuna's ``SuccessiveHalvingPruner``, Ray Tune's ``ASHAScheduler``):

- rungs at member ages ``u, u*eta, ..., u*eta**(K-1)`` steps (``u`` divides the run of
  ``R`` steps, so every rung and the end fall on a block boundary);
- a member that reaches a rung continues if it ranks in the top ``1/eta`` of every member
  that has reached that rung so far, itself included (``max(1, n // eta)`` places: the
  first members to arrive always continue, so full-length members appear early);
  otherwise it stops, and the trainer refills its slot at once with a new member.

The first member (id 0) sits at the box's centre: unit coordinate 1/2 on every axis, the
geometric mean of a log axis's ends, as Open Source Vizier's GP-bandit designer takes its
first seed trial at the search space's centre (``start`` moves it on the axes it names:
``auto --budget`` puts the learning rate at its finder's fastest-training rate). Where
members train one at a time (the MLP on a 2-core CPU) it arrives first at every rung, so
it always continues: it is the first to finish and sets the search's best until the
second does. A box drawn around the plausible values has them in its middle, where a
uniform draw lands only by luck. The others are drawn uniformly in the box (unit
coordinates, log-uniform on log axes) until a rung has enough judged members for the
response-surface model
(:func:`sweepjax.analysis.surface.fit_surface`); then, as BOHB does (Falkner et al.
2018), they come from the model fitted on the highest such rung, by Thompson sampling,
with a third still drawn uniformly so the model's blind spots keep being sampled. The
members that diverged so far enter that model at its floor (divergence is evidence), and
a model draw never lands past a region where most members diverged.

With ``brackets = B > 1`` it is asynchronous Hyperband (Li et al. 2020, section 3.3):
each new member joins one of ``B`` brackets of ASHA, bracket ``b`` first judged at rung
``b`` (bracket 0 at every rung; bracket ``rungs`` trains every member the whole run), and
ranked only against its own bracket. A member's bracket is drawn from its id in
Hyperband's proportions (:func:`bracket_shares`), so each bracket spends about the same
member-steps, as Hyperband's synchronous brackets do. The later brackets hedge against
rungs that misjudge members whose curves cross (a low learning rate that is slow early
and best at the end).

With replicas or folds (:class:`GroupedRefills`) a config's members are born together,
judged at each rung on the config's mean (:func:`config_log`) and freed and refilled
together.

Everything here is a pure function of the seed, the member ids and the rung log the
trainer keeps (``RungLog``), so a resumed run draws and decides exactly as an
uninterrupted one.
"""

from __future__ import annotations

import numpy as np

from sweepjax import search
from sweepjax.analysis.evidence import divergence_frontiers, frontier_limits
from sweepjax.analysis.ranking import rank_order
from sweepjax.analysis.surface import features, fit_surface, min_members, sample_coefs
from sweepjax.config import SearchSpace
from sweepjax.engine.decisions import DIVERGED_RUNG, Decision, Plan, RungLog, RungView
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError

UNIFORM_SHARE = 1 / 3  # refills drawn uniformly even once the model can propose
CANDIDATES = 256  # uniform candidates per Thompson draw
# ... and as many again around the modelled rung's best members (Gaussian in unit
# coordinates, LOCAL_SD wide, TOP of them): the sampled surface is maximised finely where
# the winners are, not only to the spacing of uniform points (as TPE's density of good
# configs does).
TOP = 4
LOCAL_SD = 0.06
BRACKET_STREAM = 0xB4A  # a member's bracket draw: rng([seed, id, BRACKET_STREAM])
# Member 0 at the box's centre (module docstring). The code before 2026-12-07 drew it
# uniformly like the others; a sweep it started keeps its stored member 0 on resume, and
# the tests that replay that code's sweeps (tests/test_loop_reference.py,
# tests/test_checkpoint_format.py) set this False.
CENTRE_FIRST = True


def rung_unit(total: int, eta: int, rungs: int) -> int:
    """The first rung ``u``: the largest divisor of ``total`` at most ``total / eta**rungs``
    (so each rung ``u * eta**k`` and the end of the run fall on block boundaries)."""
    cap = total // eta**rungs
    if cap < 1:
        raise ConfigError(
            f"asha with {rungs} rungs at eta {eta} needs at least {eta**rungs} steps, got "
            f"{total}; raise `steps` or lower `rungs`"
        )
    return max(d for d in range(1, cap + 1) if total % d == 0)


def bracket_shares(rungs: int, brackets: int, eta: int) -> np.ndarray:
    """The share of new members each bracket gets: bracket ``b`` judges ``j = rungs - b``
    rungs, and Hyperband gives such a bracket ``eta**j / (j + 1)`` configs per unit of
    budget (Li et al. 2018: ``n = ceil((s_max + 1) / (s + 1) * eta**s)``), so that every
    bracket costs about the same member-steps.

    Example::

      bracket_shares(2, 3, 3)  # [0.545, 0.273, 0.182]: 9/3, 3/2, 1/1 normalised
    """
    j = rungs - np.arange(brackets)
    w = float(eta) ** j / (j + 1)
    return w / w.sum()


def promotions(
    log: RungLog, rung: int, positions: np.ndarray, eta: int, pool: np.ndarray | None = None
) -> np.ndarray:
    """ASHA's rule: for the log entries ``positions`` (all at ``rung``), whether each
    continues. Ranked among every entry at that rung so far (itself included): alive
    first, then higher validation accuracy (the objective the winner is chosen by),
    lower validation loss, lower member row (the one ranking order,
    :func:`~sweepjax.analysis.ranking.rank_order`); the top ``max(1, n // eta)`` continue, if
    alive. Accuracy first, as the winner rule and Optuna's pruners rank: validation loss
    can rise while accuracy still climbs (an overconfident, weakly regularised model), and
    such a member may be the winner at full length.

    ``pool`` (bool over the log's entries): rank only among these (a Hyperband bracket's
    own members); ``positions`` must be in it."""
    at = np.flatnonzero((log.rung == rung) & (True if pool is None else pool))
    dead = (~log.alive[at].astype(bool)).astype(np.int64)
    order = rank_order(log.val_acc[at], log.val_loss[at], log.row[at], dead)
    places = max(1, len(at) // eta)
    rank = np.empty(len(at), np.int64)
    rank[order] = np.arange(len(at))
    rank_of = dict(zip(at.tolist(), rank.tolist(), strict=True))
    return np.array(
        [bool(log.alive[p]) and rank_of[int(p)] < places for p in positions], dtype=bool
    )


def score_se(scores: np.ndarray, n_dead: int, n_val: int) -> np.ndarray | None:
    """SEs of a rung's scores for the surface that guides the draws: None (binomial, the
    surface's own) for accuracies; for scores outside [0, 1] (a negated mean square
    error, the log's orientation), that of a mean square over ``n_val`` rows with
    Gaussian residuals, ``|score| sqrt(2 / n_val)``; NaN for the ``n_dead`` diverged."""
    s = np.asarray(scores, np.float64)
    if np.all((s[np.isfinite(s)] >= 0.0) & (s[np.isfinite(s)] <= 1.0)):
        return None
    se = np.maximum(np.abs(s) * np.sqrt(2.0 / max(n_val, 1)), 1e-12)
    return np.concatenate([se, np.full(n_dead, np.nan)])


class ASHA:
    """The asynchronous policy (:class:`sweepjax.engine.decisions.Policy`): a fixed-width
    population whose stopped members' slots are refilled at once.

    Example::

      a = ASHA(SearchSpace(), total=900, eta=3, rungs=3, seed=0)
      a.rungs()  # [30, 90, 270]: 30 is the largest divisor of 900 up to 900 / 27

    ``brackets > 1``: asynchronous Hyperband (see the module's docstring).
    """

    name = "asha"

    def __init__(
        self,
        space: SearchSpace,
        total: int,
        eta: int = 3,
        rungs: int = 3,
        seed: int = 0,
        fixed: dict | None = None,
        model: bool = True,
        brackets: int = 1,
        start: dict | None = None,
    ):
        if eta < 2:
            raise ConfigError(f"asha needs eta >= 2, got {eta}; try 3")
        if not 1 <= brackets <= rungs + 1:
            raise ConfigError(
                f"asha with {rungs} rungs has 1 to {rungs + 1} brackets, got {brackets}; "
                f"try {rungs + 1} (the last one trains every member the whole run)"
            )
        self.space, self.total, self.eta, self.seed = space, int(total), int(eta), int(seed)
        self.fixed = dict(fixed or {})
        self.unit = rung_unit(self.total, self.eta, int(rungs))
        self.num_rungs = int(rungs)
        self.model = bool(model)
        self.brackets = int(brackets)
        self.start = _start_units(space, dict(start or {}))
        self._bracket_of: dict[int, int] = {}  # every decision looks up the whole log's
        self._fit_key: tuple | None = None
        self._fit = None

    def rungs(self) -> list[int]:
        return [self.unit * self.eta**k for k in range(self.num_rungs)]

    def block(self) -> int:
        """Steps per compiled call: every rung and the end are multiples of it."""
        return self.unit

    def corners(self) -> HParams:
        """The box's two extreme members (every axis at its low, then its high end), so
        the compiled program covers any draw (a width mask, dropout)."""
        axes = self.space.axes()
        values = {name: np.array([r.lo, r.hi]) for name, r in axes.items()}
        return search.hparams_from_values(self.space, values, self.fixed)

    def plan(self) -> Plan:
        return Plan(tuple(self.rungs()), self.block(), refills=True)

    def bracket(self, ids) -> np.ndarray:
        """Each member's bracket (0 with one bracket), a function of the seed and its id
        only, so a resumed run puts every member where the uninterrupted one did."""
        ids = np.asarray(ids, np.int64).reshape(-1)
        if self.brackets == 1:
            return np.zeros(len(ids), np.int64)
        edges = np.cumsum(bracket_shares(self.num_rungs, self.brackets, self.eta))[:-1]
        memo = self._bracket_of
        for i in set(ids.tolist()) - memo.keys():
            u = np.random.default_rng([self.seed, i, BRACKET_STREAM]).random()
            memo[i] = int(np.searchsorted(edges, u, side="right"))
        return np.array([memo[i] for i in ids.tolist()], np.int64)

    def continues(self, log: RungLog, age: int, positions: np.ndarray) -> np.ndarray:
        """Whether each log entry at ``positions`` (arrivals at rung ``age``) continues:
        :func:`promotions` within its bracket; a member whose bracket starts at a later
        rung continues unjudged, if alive."""
        positions = np.asarray(positions, np.int64)
        if self.brackets == 1:
            return promotions(log, age, positions, self.eta)
        k = self.rungs().index(int(age))
        b_log = self.bracket(log.row)
        keep = log.alive[positions].astype(bool)
        for b in np.unique(b_log[positions]):
            if b > k:
                continue  # not judged before its bracket's first rung
            mine = b_log[positions] == b
            keep[mine] = promotions(log, age, positions[mine], self.eta, pool=b_log == b)
        return keep

    def decide(self, view: RungView) -> Decision:
        """The arrivals of ``view`` (the last entries of ``view.log``, all at ``view.age``)
        that continue: :meth:`continues`."""
        n = len(view.rows)
        positions = np.arange(len(view.log.rung) - n, len(view.log.rung))
        keep = np.flatnonzero(self.continues(view.log, view.age, positions))
        return Decision(keep, np.asarray(view.rows)[keep], view.hparams.take(keep))

    # ---------------------------------------------------------------- new members
    def _surface(self, log: RungLog, hparams: HParams):
        """The model of the highest rung with enough alive judged members (None if no
        rung has enough), the diverged members entered at its floor, refitted only when
        the log has grown: ``(surface, top members, frontier limits)``."""
        key = (len(log.rung),)
        if key == self._fit_key:
            return self._fit
        self._fit_key, self._fit = key, None
        axes = self.space.axes()
        need = max(min_members(len(axes)), len(axes) + 2)

        def unit(rows):
            return np.stack(
                [r_.to_unit(np.asarray(hparams.column(a))[rows]) for a, r_ in axes.items()],
                axis=1,
            ).reshape(len(rows), len(axes))

        div_rows = log.row[log.rung == DIVERGED_RUNG].astype(np.int64)
        x_div = unit(div_rows)
        for r in sorted(set(log.rung.tolist()) - {DIVERGED_RUNG}, reverse=True):
            at = np.flatnonzero((log.rung == r) & log.alive.astype(bool))
            if len(at) < need:
                continue
            x = unit(log.row[at].astype(np.int64))
            acc = log.val_acc[at]
            x_all = np.concatenate([x, x_div])
            dead = np.arange(len(x_all)) >= len(x)
            try:
                surf = fit_surface(
                    x_all, np.concatenate([acc, np.full(len(x_div), np.nan)]), ~dead,
                    log.n_val, list(axes), acc_se=score_se(acc, len(x_div), log.n_val),
                    diverged=dead,
                )  # fmt: skip
            except (ValueError, np.linalg.LinAlgError):
                break
            top = x[np.argsort(-np.nan_to_num(acc, nan=-1.0), kind="stable")[:TOP]]
            limits = frontier_limits(divergence_frontiers(x_all, dead), len(axes))
            self._fit = (surf, top, limits)
            break
        return self._fit

    def draw(self, ids: np.ndarray, log: RungLog, hparams: HParams | None) -> HParams:
        """Hyperparameters of new members ``ids``: member 0 at the box's centre, the others
        uniform, or (once a rung can be modelled) Thompson draws from the model with a
        uniform third. Member ``id``'s draw depends only on the seed, its id and the log."""
        axes = self.space.axes()
        a = len(axes)
        fit = self._surface(log, hparams) if (self.model and hparams is not None) else None
        units = np.empty((len(ids), a))
        for j, mid in enumerate(np.asarray(ids, np.int64)):
            if mid == 0 and CENTRE_FIRST:  # the box's centre or `start`; no model exists yet
                units[j] = self.start
                continue
            rng = np.random.default_rng([self.seed, int(mid)])
            if fit is None or rng.random() < UNIFORM_SHARE:
                units[j] = rng.random(a)
                continue
            surf, top, (lim_lo, lim_hi) = fit
            near = top[rng.integers(len(top), size=CANDIDATES)]
            near = np.clip(near + rng.normal(0.0, LOCAL_SD, near.shape), 0.0, 1.0)
            cand = np.concatenate([rng.random((CANDIDATES, a)), near])
            coef = sample_coefs(surf, 1, rng)[0]
            val = features(cand, surf.knots) @ coef
            # Never past a region where most members diverged (the uniform third still
            # samples the whole box).
            val[((cand < lim_lo) | (cand > lim_hi)).any(axis=1)] = -np.inf
            units[j] = cand[int(np.argmax(val))]
        values = {name: r.from_unit(units[:, k]) for k, (name, r) in enumerate(axes.items())}
        return search.hparams_from_values(self.space, values, self.fixed)


def _start_units(space: SearchSpace, start: dict) -> np.ndarray:
    """The first member's unit coordinates: 1/2 on every axis but those ``start`` names,
    which must be searched and inside the box (ConfigError otherwise)."""
    axes = space.axes()
    out = np.full(len(axes), 0.5)
    for name, value in start.items():
        if name not in axes:
            raise ConfigError(
                f"asha's `start` names {name!r}, which this sweep does not search; "
                f"name one of {', '.join(axes)}"
            )
        r = axes[name]
        if not r.lo <= value <= r.hi:
            raise ConfigError(
                f"asha's `start` puts {name} at {value:g}, outside its box "
                f"[{r.lo:g}, {r.hi:g}]; move it inside or widen the box"
            )
        out[list(axes).index(name)] = float(r.to_unit(value))
    return out


def config_log(log: RungLog, group: int) -> RungLog:
    """The rung log of whole configs (member row ``// group``): one entry per (rung,
    config), in the order its first member was logged, with the mean validation loss and
    accuracy over its members, as :class:`~sweepjax.schedulers.rules.Grouped` scores a
    config (a diverged member counts as infinite loss and leaves the config no
    accuracy); alive while any member is."""
    if group <= 1 or not len(log.rung):
        return log
    cfg = log.row // group
    _, first, inv = np.unique(
        np.stack([log.rung, cfg], axis=1), axis=0, return_index=True, return_inverse=True
    )
    order = np.argsort(first, kind="stable")  # configs in the order first logged
    gid = np.empty(len(first), np.int64)
    gid[order] = np.arange(len(first))
    gid = gid[np.asarray(inv).reshape(-1)]
    n = len(first)
    count = np.bincount(gid, minlength=n)
    loss = np.bincount(gid, np.where(np.isfinite(log.val_loss), log.val_loss, np.inf), n) / count
    ok = np.isfinite(log.val_acc)
    seen = np.bincount(gid, ok, n)
    acc = np.bincount(gid, np.where(ok, log.val_acc, 0.0), n) / np.maximum(seen, 1)
    acc = np.where((seen > 0) & np.isfinite(loss), acc, np.nan)
    alive = np.bincount(gid, log.alive.astype(np.int64), n) > 0
    at = first[order]
    return RungLog(log.rung[at], cfg[at], loss, acc, alive, log.n_val)


class GroupedRefills:
    """ASHA over whole configs: member row ``i`` is replica ``i % replicas`` of config
    ``i // replicas`` (with folds, replica ``r`` holds out fold ``r``). A config's
    members are drawn together (config ``c``'s draw, as ASHA draws member ``c``), born
    in adjacent slots, judged at each rung on the config's mean among every config that
    reached the rung (:func:`config_log`, :func:`promotions`), and stopped, kept and
    refilled together."""

    def __init__(self, inner: ASHA, replicas: int):
        self.inner, self.replicas = inner, int(replicas)
        self.name = inner.name

    def rungs(self) -> list[int]:
        return self.inner.rungs()

    def block(self) -> int:
        return self.inner.block()

    def corners(self) -> HParams:
        return self.inner.corners()

    def plan(self) -> Plan:
        return self.inner.plan()._replace(group=self.replicas)

    def decide(self, view: RungView) -> Decision:
        g = self.replicas
        log = config_log(view.log, g)
        n = len(view.rows) // g  # the configs that just arrived: the last entries
        positions = np.arange(len(log.rung) - n, len(log.rung))
        keep_cfg = log.row[positions][self.inner.continues(log, view.age, positions)]
        keep = np.flatnonzero(np.isin(np.asarray(view.rows) // g, keep_cfg))
        return Decision(keep, np.asarray(view.rows)[keep], view.hparams.take(keep))

    def draw(self, ids: np.ndarray, log: RungLog, hparams: HParams | None) -> HParams:
        """Members ``ids`` (whole configs, in order): their configs' draws, repeated."""
        g = self.replicas
        configs = np.asarray(ids, np.int64)[::g] // g
        by_config = None if hparams is None else hparams.take(np.arange(0, len(hparams.lr), g))
        hp = self.inner.draw(configs, config_log(log, g), by_config)
        return hp.map(lambda f: np.repeat(np.asarray(f), g))
