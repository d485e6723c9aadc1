"""Babysitting checks (CS231n): before searching, make sure the set-up can learn at all.

Four checks, each a pure function over :func:`sweepjax.engine.train_population` (so each is
one vectorized population, never a Python loop over models):

- ``initial_loss``: with lambda = 0 the first loss is about ``ln(num_classes)``;
- ``regularization_raises_loss``: a large lambda makes that first loss higher;
- ``overfit_small_subset``: 20 examples, lambda 0, plain SGD reach 100% training accuracy
  and a loss near zero;
- ``lr_range``: a log-spaced learning-rate population labels every rate ``too_low``
  (the loss barely moved), ``good`` or ``too_high`` (diverged: loss > 3x its start, or
  NaN), and gives the rough range worth cross-validating.

Nothing here prints; :mod:`sweepjax.cli.babysit` does.

Example::

  ds = load_dataset(DataConfig(dataset="mnist-sample"))
  report = run_sanity(ds, ModelConfig(), TrainConfig())
  [c.passed for c in report.checks]  # [True, True, True, True]
  report.lr_range.lo, report.lr_range.hi  # about 5e-4, 3
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from sweepjax.analysis import finder
from sweepjax.analysis.finder import LR_MIN_PROGRESS, label_lrs  # noqa: F401 (public here too)
from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.engine import recompile, train_population
from sweepjax.engine.compact import boundaries
from sweepjax.engine.hparams import HParams
from sweepjax.errors import SweepjaxError

# |initial loss - ln K| allowed for the initial-loss check. Output weights start at
# N(0, 1e-3), so logits are ~1e-2 and the loss is ln K to about 1e-2 on one minibatch.
INITIAL_LOSS_TOL = 0.05
# "Large" lambda of the regularization check: 1e3 adds ~0.5 * 1e3 * D*K*1e-6 = 3.9 to
# the softmax's 2.30 on MNIST (the lecture's 2.30 -> 3.06 used raw-pixel weights).
BIG_L2 = 1e3
OVERFIT_EXAMPLES = 20
OVERFIT_STEPS = 100
# A few learning rates for the overfit check, trained together; the check reports the
# one that gets there first. One step of SGD on 20 examples in 784-d often already
# separates them; the loss needs a few more.
OVERFIT_LRS = (1e-2, 1e-1, 1.0)
# "Near zero": under 2% of ln(10).
OVERFIT_MAX_LOSS = 0.05
# The learning-rate finder: 32 rates over eight decades at lambda 1e-6 for 300 steps.
LR_FINDER_LO, LR_FINDER_HI, LR_FINDER_N = 1e-6, 1e2, 32
LR_FINDER_STEPS = 300
LR_FINDER_L2 = 1e-6


class Check(NamedTuple):
    """One PASS/FAIL line: ``value`` measured against ``expected`` (a number or a phrase)."""

    name: str
    passed: bool
    value: float | None
    expected: float | str
    detail: str

    def as_dict(self) -> dict:
        return self._asdict()


class InitialLosses(NamedTuple):
    """First-minibatch objectives (data loss + L2) of two untrained members."""

    unregularized: float  # lambda = 0
    regularized: float  # lambda = big_l2
    big_l2: float
    expected: float  # ln(num_classes)


class OverfitResult(NamedTuple):
    """The small-subset run. ``steps_to_perfect`` is None when 100% was never reached."""

    num_examples: int
    lr: float  # the learning rate reported (first to get there)
    steps_to_perfect: int | None  # steps until training accuracy hit 1.0
    steps_to_low_loss: int | None  # steps until the loss fell below OVERFIT_MAX_LOSS
    final_train_acc: float
    final_loss: float  # cross-entropy on the subset after the last step


class LrRange(NamedTuple):
    """The learning-rate finder's verdict. Per-rate arrays are ``[N]``.

    ``lo``/``hi`` are the smallest and largest ``good`` rates (None if none was good).
    """

    lo: float | None
    hi: float | None
    lrs: np.ndarray
    labels: list[str]  # "too_low" | "good" | "too_high"
    initial_loss: np.ndarray
    final_loss: np.ndarray  # NaN for diverged rates
    diverged_at: np.ndarray  # step, -1 if not diverged
    steps: int
    swept: tuple[float, float]
    trained: np.ndarray | None = None  # bool [N]: the rates trained (None: all)

    @property
    def best(self) -> float | None:
        """The rate whose loss fell most, relative to its start, in the finder's steps
        (None when none trained without diverging): the finder's fastest-training rate."""
        fall = finder.relative_fall(self.initial_loss, self.final_loss, self.diverged_at >= 0)
        return float(self.lrs[int(np.argmax(fall))]) if np.isfinite(fall).any() else None


class SanityReport(NamedTuple):
    checks: list[Check]
    initial: InitialLosses
    overfit: OverfitResult
    lr_range: LrRange

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def to_json(self) -> dict:
        """``{"checks": [{name, passed, value, expected, detail}], "lr_range": [lo, hi]}``."""
        lr = self.lr_range
        return {
            "checks": [c.as_dict() for c in self.checks],
            "lr_range": None if lr.lo is None else [lr.lo, lr.hi],
        }


# --------------------------------------------------------------------------- measurements
def small_subset(dataset: Dataset, n: int = OVERFIT_EXAMPLES, seed: int = 0) -> Dataset:
    """``n`` training examples drawn at random (seeded) as train, validation and test.

    Random, not the first ``n``: a training set stored sorted by class (the bundled
    sample is) would give 20 zeros, which one step separates trivially.
    """
    idx = np.sort(np.random.default_rng(seed).choice(len(dataset.y_train), n, replace=False))
    x, y = dataset.x_train[idx], dataset.y_train[idx]
    return dataset._replace(x_train=x, y_train=y, x_val=x, y_val=y, x_test=x, y_test=y)


def _first_step(steps: np.ndarray, ok: np.ndarray) -> int | None:
    hit = np.flatnonzero(ok)
    return int(steps[hit[0]]) if hit.size else None


def overfit_small(
    dataset: Dataset,
    model_cfg: ModelConfig,
    config: TrainConfig,
    n: int = OVERFIT_EXAMPLES,
    steps: int = OVERFIT_STEPS,
    lrs=OVERFIT_LRS,
) -> OverfitResult:
    """Train on ``n`` examples with plain SGD and lambda 0, evaluating every step.

    Reports the learning rate (of ``lrs``, trained as one population) that first reaches
    both 100% training accuracy and a loss under ``OVERFIT_MAX_LOSS``.
    """
    return _overfit_population(dataset, model_cfg, config, n, steps, lrs)[0]


def _overfit_population(
    dataset, model_cfg, config, n=OVERFIT_EXAMPLES, steps=OVERFIT_STEPS, lrs=OVERFIT_LRS
) -> tuple[OverfitResult, InitialLosses]:
    """The overfit run (:func:`overfit_small`) with two lr-0 probes riding along, at
    lambda 0 and :data:`BIG_L2`, sharing one initialisation: their first losses are the
    initial-loss checks'. Here they cost two members of a 20-example run; in the
    finder's population they cost two of its members' full length (the width-256 MLP's
    2 x 300 steps at the sweep's batch, ~6% of auto's checks)."""
    sub = small_subset(dataset, n, config.seed)
    cfg = config.replace(
        optimizer="sgd",
        steps=steps,
        eval_every=1,
        chunk_steps=steps,
        batch_size=n,
    )
    k = len(lrs)
    # The probes carry the sweep's dropout and init scale (the initial loss depends on
    # them); the overfit members keep the defaults, as the check always trained them.
    hp = HParams.create(
        lr=[*lrs, 0.0, 0.0],
        l2=[0.0] * k + [0.0, BIG_L2],
        dropout=[0.0] * k + [config.dropout] * 2,
        init_scale=[1.0] * k + [config.init_scale] * 2,
    )
    res = train_population(sub, hp, model_cfg, cfg, member_ids=np.array([*range(k), k, k]))
    c = res.curves
    # Accuracy and loss after each step on the whole subset (val = train here), not the
    # pre-step minibatch means (a minibatch drawn with replacement misses examples).
    perfect = [_first_step(c.step, c.val_acc[i] >= 1.0) for i in range(k)]
    low = [_first_step(c.step, c.val_loss[i] < OVERFIT_MAX_LOSS) for i in range(k)]
    done = [
        max(p, q) if p is not None and q is not None else math.inf
        for p, q in zip(perfect, low, strict=True)
    ]
    reached = np.isfinite(min(done))  # else none got there: the lowest final loss
    i = int(np.argmin(done)) if reached else int(np.nanargmin(res.final_val_loss[:k]))
    over = OverfitResult(
        n,
        float(lrs[i]),
        perfect[i],
        low[i],
        float(res.final_val_acc[i]),
        float(res.final_val_loss[i]),
    )
    probes = InitialLosses(
        float(res.initial_loss[k]),
        float(res.initial_loss[k + 1]),
        float(BIG_L2),
        math.log(dataset.num_classes),
    )
    return over, probes


def _lr_population(
    dataset, model_cfg, config, lrs, l2, steps, width: int = finder.STAGE_WIDTH
) -> LrRange:
    """Train ``lrs`` at ``l2`` for ``steps`` steps, in stages where a label can change
    (:mod:`sweepjax.analysis.finder`: about half the rates); label them."""
    lrs = np.asarray(lrs, np.float64)
    cfg = finder_config(config, steps)
    held, costs = set(), recompile.Costs()  # the stages' program sizes, measured costs

    def train(part):
        nonlocal costs
        rows = finder.stage_rows(len(part), held, costs, steps, width)
        pos = np.r_[part, np.full(rows - len(part), part[-1])]  # padded with repeats
        # The sweep's fixed momentum, dropout and init scale (the finder ranks rates for
        # them); each rate's grid position is its member id (its initial weights).
        hp = HParams.create(lr=lrs[pos], l2=l2, momentum=config.momentum,
                            dropout=config.dropout, init_scale=config.init_scale)  # fmt: skip
        res = train_population(dataset, hp, model_cfg, cfg, member_ids=pos)
        held.add(rows)
        costs = recompile.costs(res.timing.train_s, rows * steps, res.timing.compile_s)
        return res.initial_loss, res.final_train_loss, res.diverged_at

    t, labels = finder.staged(lrs, train, width=width)
    good = lrs[np.array(labels) == "good"]
    lo, hi = (float(good.min()), float(good.max())) if good.size else (None, None)
    return LrRange(lo, hi, lrs, labels, t.initial_loss, t.final_loss, t.diverged_at, steps,
                   (float(lrs[0]), float(lrs[-1])), t.trained)  # fmt: skip


def finder_config(config: TrainConfig, steps: int) -> TrainConfig:
    """``config`` for a finder population of ``steps`` steps: two blocks, the second the
    length of an ordinary run's last evaluation block.

    A rate's final loss is its last block's mean training loss, so that block keeps the
    cadence of about 20 evaluations (steps 285-299 of 300). Nothing reads the evaluations
    before it: in one block until then, the population skips 18 validation-subset
    evaluations and host round trips (the width-256 MLP's 8 rates on Fashion-MNIST: a
    stage of about 7.5 s took 0.43 s less, the median of 10 alternated pairs, less in 9;
    2-core CPU)."""
    every = config.replace(steps=steps, eval_every=None).resolved_eval_every
    ordinary = boundaries(steps, every, steps, ())  # where the ordinary cadence's blocks end
    last_start = ordinary[-2] if len(ordinary) > 1 else steps
    return config.replace(steps=steps, eval_every=steps, chunk_steps=last_start)


def find_lr_range(
    dataset: Dataset,
    model_cfg: ModelConfig,
    config: TrainConfig,
    *,
    lo: float = LR_FINDER_LO,
    hi: float = LR_FINDER_HI,
    n: int = LR_FINDER_N,
    steps: int = LR_FINDER_STEPS,
    l2: float = LR_FINDER_L2,
    width: int = finder.STAGE_WIDTH,
) -> LrRange:
    """Train ``n`` log-spaced learning rates in ``[lo, hi]`` for ``steps`` steps, in
    populations of ``width`` where a label can change (``width >= n``: all at once).

    Uses ``config``'s optimizer, batch size, seed and explode rule. Returns an
    :class:`LrRange`; its ``lo``/``hi`` bracket the good rates.

    Example::

      r = find_lr_range(ds, ModelConfig(), TrainConfig())
      dict(zip(r.lrs, r.labels))  # {1e-06: 'too_low', ..., 100.0: 'too_high'}
    """
    return _lr_population(dataset, model_cfg, config, np.geomspace(lo, hi, n), l2, steps, width)


def auto_lr_range(
    dataset: Dataset, model_cfg: ModelConfig, train_cfg: TrainConfig
) -> tuple[float, float]:
    """The ``(lo, hi)`` learning-rate box for ``coarse --lr auto``.

    Runs :func:`find_lr_range` with ``train_cfg``'s optimizer and batch size for
    ``min(train_cfg.steps, 300)`` steps (the too-low edge depends on the step budget).
    Raises SweepjaxError when no rate was good; a single good rate gives a box of
    one finder step on either side of it.
    """
    return lr_box(find_lr_range(dataset, model_cfg, train_cfg, steps=finder_steps(train_cfg)))


def finder_steps(train_cfg: TrainConfig) -> int:
    """The finder's length for a run of ``train_cfg``: its steps, at most 300 (the
    too-low edge depends on the step budget)."""
    return min(train_cfg.steps, LR_FINDER_STEPS)


def lr_box(r: LrRange, margin: float = 0.0) -> tuple[float, float]:
    """``(lo, hi)`` of the good rates, widened by ``margin`` finder steps on each side
    (0.5: halfway, in log space, to the neighbouring rates, where the good range's true
    edges lie on average); one finder step either side of a lone good rate. Raises
    SweepjaxError when no rate was good."""
    if r.lo is None:
        raise SweepjaxError(
            "the learning-rate finder found no rate that trains (all too low or diverged); "
            "run `sweepjax sanity` to see why, or pass `lr` LO HI explicitly"
        )
    ratio = float(r.lrs[1] / r.lrs[0])
    widen = ratio ** max(margin, 1.0 if r.lo == r.hi else 0.0)
    return r.lo / widen, r.hi * widen


# --------------------------------------------------------------------------- checks
def check_initial_loss(m: InitialLosses, tol: float = INITIAL_LOSS_TOL) -> Check:
    ok = abs(m.unregularized - m.expected) <= tol
    return Check(
        "initial_loss",
        bool(ok),
        m.unregularized,
        m.expected,
        f"initial loss {m.unregularized:.4f} at lambda=0, expected ln(K) = "
        f"{m.expected:.4f} +- {tol}",
    )


def check_regularization(m: InitialLosses) -> Check:
    # Higher by more than float noise: the same weights and minibatch give both losses.
    ok = m.regularized > m.unregularized + 1e-4
    return Check(
        "regularization_raises_loss",
        bool(ok),
        m.regularized,
        f"> {m.unregularized:.4f}",
        f"initial loss {m.regularized:.4f} at lambda={m.big_l2:g} vs "
        f"{m.unregularized:.4f} at lambda=0",
    )


def check_overfit(o: OverfitResult) -> Check:
    ok = o.final_train_acc >= 1.0 and o.final_loss < OVERFIT_MAX_LOSS
    steps = "never" if o.steps_to_perfect is None else f"after {o.steps_to_perfect} steps"
    low = "never" if o.steps_to_low_loss is None else f"after {o.steps_to_low_loss} steps"
    return Check(
        "overfit_small_subset",
        bool(ok),
        o.final_train_acc,
        1.0,
        f"{o.num_examples} examples, lambda=0, sgd lr={o.lr:g}: 100% train acc "
        f"{steps}, loss < {OVERFIT_MAX_LOSS} {low}; final loss {o.final_loss:.2e}",
    )


def check_lr_range(r: LrRange) -> Check:
    counts = {k: r.labels.count(k) for k in ("too_low", "good", "too_high")}
    tally = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in counts.items())
    if r.lo is None:
        return Check(
            "lr_range",
            False,
            None,
            "a range of good rates",
            f"no good learning rate in [{r.swept[0]:g}, {r.swept[1]:g}] ({tally})",
        )
    ok = r.lo < r.hi
    return Check(
        "lr_range",
        bool(ok),
        r.hi / r.lo,
        "> 1 (hi/lo)",
        f"worth cross-validating: lr in [{r.lo:.2g}, {r.hi:.2g}] after {r.steps} "
        f"steps ({tally} of {len(r.lrs)} in [{r.swept[0]:g}, {r.swept[1]:g}])",
    )


def run_sanity(
    dataset: Dataset,
    model_cfg: ModelConfig,
    config: TrainConfig,
    *,
    finder_steps: int = LR_FINDER_STEPS,
    finder_rates: int = LR_FINDER_N,
) -> SanityReport:
    """All four checks, in the lecture's order (two populations: the learning-rate sweep,
    and the 20-example overfit run with the initial-loss probes riding along).

    ``finder_steps`` / ``finder_rates``: the learning-rate population's length and size.
    Its ``lr_range`` is the finder's for ``config`` at that length, so a caller that
    needs the box too (``auto``) takes :func:`lr_box` of it instead of training the same
    population again (on a CPU the width-256 MLP's 34 x 300 steps take about 40 s)."""
    lrs = np.geomspace(LR_FINDER_LO, LR_FINDER_HI, finder_rates)
    lr = _lr_population(dataset, model_cfg, config, lrs, LR_FINDER_L2, finder_steps)
    over, init = _overfit_population(dataset, model_cfg, config)
    checks = [
        check_initial_loss(init),
        check_regularization(init),
        check_overfit(over),
        check_lr_range(lr),
    ]
    return SanityReport(checks, init, over, lr)
