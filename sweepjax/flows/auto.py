"""``auto``: the whole babysitting lecture in one call.

Sanity checks (stop at the first failure) -> the learning-rate finder sets the coarse box
-> coarse -> fine rounds until the model says the optimum is inside the box and the best
score stops improving (at most ``max_rounds``) -> refit of the best round's winner on
train + validation -> the report. Each stage is recorded as a :class:`Stage` and
announced through ``Callbacks.note``; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sweepjax.budget import Budget
from sweepjax.config import MODELS, DataConfig, ModelConfig, TrainConfig
from sweepjax.errors import ConfigError, SweepjaxError
from sweepjax.spec import DEFAULT_BATCH, DEFAULT_STEPS, DEFAULT_TRIALS, MODEL_DEFAULTS

if TYPE_CHECKING:
    from sweepjax.flows.runner import Callbacks
    from sweepjax.results.records import SweepResult

DEFAULT_MAX_ROUNDS = 3
# With a time budget, the share left after the search for the refit (one member of the
# search's length, on train + validation) and the report.
AFTER_SEARCH = 0.2
# With a budget, the learning-rate finder tries two rates a decade instead of four: fewer
# member-steps (the width-256 MLP trains 10-12 of the 16 rates x 300 steps in two stages,
# against 16 of 32). On that coarser grid the good rates' extremes fall up to 3.4x
# inside the good range, and the one ASHA round cannot move its box, so the box reaches
# half a finder step past them (1.85x). Fashion-MNIST's MLP: 32 rates give [2.1e-4,
# 0.080]; 16 gave [1.4e-4, 0.063] and give [7.4e-5, 0.117] with the margin, while ASHA
# over the whole (1e-4, 3) box picked rates of 0.070-0.071 on two seeds.
BUDGET_FINDER_RATES = 16
BUDGET_BOX_MARGIN = 0.5


def fine_rounds_done(inside: bool, gain: float, winner_se: float | None) -> bool:
    """Whether ``auto`` stops after a fine round: its model says the optimum is inside its
    box (``inside``: the verdict's ``optimum_inside``) and its winner's validation accuracy
    beats the previous round's winner by at most ``winner_se`` (the new winner's own SE):
    another round around the same optimum would buy less than the noise. A gain not
    measured (NaN) goes on; so does a round whose optimum may lie past an edge, however
    small its gain. Without an SE only a round that gained nothing stops.

    Example::

      fine_rounds_done(True, 0.002, 0.004), fine_rounds_done(False, 0.0, 0.004)
      # (True, False)
    """
    se = 0.0 if winner_se is None else float(winner_se)
    return bool(inside) and float(gain) <= se


class SanityFailed(SweepjaxError):
    """A sanity check failed: searching would not fix the set-up."""

    exit_code = 1


@dataclass
class Stage:
    """One stage of an auto run: ``name`` (sanity | lr_range | coarse | fine | refit |
    report), a one-line ``summary`` and its numbers in ``data``."""

    name: str
    summary: str
    data: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"stage": self.name, "summary": self.summary, **self.data}


@dataclass
class AutoResult:
    """The final sweep (the best round, refit and report included) and every stage."""

    final: SweepResult
    stages: list[Stage]

    def to_json(self) -> dict:
        return {
            "stages": [s.as_dict() for s in self.stages],
            "sweep_id": self.final.sweep_id,
            "winner": self.final.winner.as_dict() if self.final.winner else None,
            "tied": list(self.final.tied),
            "report": self.final.report,
            # As ``coarse --budget``'s document: the budgeted search's best-so-far points
            # (``[]`` for coarse -> fine rounds) and the members its budget left in flight.
            "progress": list(self.final.progress),
            "in_flight": int(self.final.in_flight),
            "timing": self.final.timing.as_dict(),  # the final round's, refit_s included
        }


def _sweep_stage(kind: str, r: SweepResult) -> Stage:
    w, v = r.winner, r.verdict
    inside = v.optimum_inside if v else None
    summary = (
        f"{kind} {r.sweep_id}: {len(r.members)} members, winner val acc "
        f"{w.val_acc:.4f} +/- {w.val_acc_se:.4f}"
        + ("" if w.finished else f" (unfinished, {w.steps} steps)")
        + f" ({len(r.tied)} tied), optimum "
        + (v.optimum_where if v else "not established (no model)")
    )
    return Stage(
        kind,
        summary,
        {
            "sweep_id": r.sweep_id,
            "space": r.space,
            "winner": w.as_dict(),
            "tied": list(r.tied),
            "optimum_inside": inside,
            "flat": v.flat if v else [],
            "boundary": [b.as_dict() for b in r.boundary],
        },
    )


@dataclass(frozen=True)
class AutoOptions:
    """What :func:`auto` runs: the data, the model, the coarse round's size and how the
    search is spent. ``hidden`` / ``optimizer`` left None take the model's
    (``MODEL_DEFAULTS``: :meth:`resolved`); ``budget`` (a :class:`~sweepjax.budget.Budget`,
    or its text: ``"60s"``, ``"5M"``) is read once, here.

    Example::

      AutoOptions(dataset="mnist-sample", trials=32, steps=60).resolved().optimizer  # 'sgd'
    """

    dataset: str = "mnist"
    data_dir: str | None = None
    model: str = "softmax"
    hidden: int | None = None
    optimizer: str | None = None
    trials: int = DEFAULT_TRIALS
    steps: int = DEFAULT_STEPS
    batch_size: int = DEFAULT_BATCH
    seed: int = 0
    max_rounds: int = DEFAULT_MAX_ROUNDS
    sampler: str | None = None
    refit: bool = True
    report: bool = True
    store: str | os.PathLike | None = None
    budget: Budget | None = None
    optuna_storage: str | None = None

    def __post_init__(self):
        from sweepjax.flows.sweep_config import check_positive  # deferred: imports jax

        check_positive("max-rounds", self.max_rounds)
        check_positive("trials", self.trials)
        check_positive("steps", self.steps)
        if self.model not in MODEL_DEFAULTS:
            raise ConfigError(f"auto runs the built-in models; choose one of {', '.join(MODELS)}")
        if self.budget is not None and not isinstance(self.budget, Budget):
            object.__setattr__(self, "budget", Budget.parse(self.budget))  # frozen: read once

    def resolved(self) -> AutoOptions:
        """These options with the model's width and optimizer where they are None (what
        every stage then reads)."""
        defaults = MODEL_DEFAULTS[self.model]
        return dataclasses.replace(
            self,
            hidden=defaults.hidden if self.hidden is None else self.hidden,
            optimizer=self.optimizer or defaults.optimizer,
        )

    @property
    def fine_steps(self) -> int:
        """Steps of a fine round's members (and of the budgeted search's): the model's
        ``fine_steps_factor`` times ``steps``, not compounding."""
        return MODEL_DEFAULTS[self.model].fine_steps_factor * self.steps

    def sweep_options(self, cb: Callbacks) -> dict:
        """The options every round passes to ``coarse`` / ``fine``: the store, the hooks,
        no report of its own, and each round's members in its own Optuna study."""
        return dict(
            store=self.store, callbacks=cb, report=False, optuna_storage=self.optuna_storage
        )


@dataclass
class StageLog:
    """The stages of an auto run so far, each announced in one line through ``say``."""

    say: Callable[[str], None]
    stages: list[Stage] = field(default_factory=list)

    def add(self, s: Stage) -> None:
        self.stages.append(s)
        self.say(f"[{s.name}] {s.summary}")


def auto(
    options: AutoOptions | None = None, /, *, callbacks: Callbacks | None = None, **given
) -> AutoResult:
    """Sanity -> lr range -> coarse -> fine rounds -> refit -> report (module docstring).

    Takes an :class:`AutoOptions`, or its fields as keyword arguments (``given``, which
    also override a given ``options``). Fine rounds each train :attr:`AutoOptions.fine_steps`
    steps. A round ends the search when its model says the optimum is inside its box and
    its winner beats the previous round's by at most one SE (the winner's own);
    ``max_rounds`` caps the rounds. The final sweep is the fine round with the best winner.

    With ``budget`` (``"60s"``, ``"5M"``: :class:`sweepjax.budget.Budget`) the search is
    one ASHA run over the finder's box with the learning-rate decay searched too, its
    members of a fine round's length; a time budget leaves :data:`AFTER_SEARCH` of it to
    the refit and the report (the budget counts the whole process, sanity included); the
    finder tries :data:`BUDGET_FINDER_RATES` rates and its box reaches
    :data:`BUDGET_BOX_MARGIN` of a finder step past the outermost good ones.

    Raises SanityFailed (exit 1) with the failing checks, and what coarse / fine raise.

    Example::

      out = sweepjax.auto(dataset="mnist-sample", trials=32, steps=60, store="a.db")
      out.final.winner.refit_test_acc
    """
    # Deferred: it imports jax; the CLI reads DEFAULT_MAX_ROUNDS for --help without it.
    from sweepjax.flows.runner import Callbacks

    opts = AutoOptions(**given) if options is None else dataclasses.replace(options, **given)
    opts = opts.resolved()
    cb = callbacks or Callbacks()
    log = StageLog(cb.say)
    lo, hi, best = finder_box(opts, log)
    if opts.budget is not None:
        final = budgeted_search(opts, (lo, hi), cb, log, best)
    else:
        final = fine_rounds(opts, (lo, hi), cb, log)
    return finish(final, opts, cb, log)


def finder_box(opts: AutoOptions, log: StageLog) -> tuple[float, float, float]:
    """The sanity checks (SanityFailed at the first failure), then the learning-rate
    finder's box ``(lo, hi)`` and its fastest-training rate (inside the box) from the same
    run; both recorded as stages."""
    from sweepjax.analysis.sanity import LR_FINDER_N, finder_steps, lr_box, run_sanity
    from sweepjax.data import load_dataset

    model_cfg = ModelConfig(kind=opts.model, hidden=opts.hidden)
    train_cfg = TrainConfig(
        optimizer=opts.optimizer, steps=opts.steps, batch_size=opts.batch_size, seed=opts.seed
    )
    ds = load_dataset(DataConfig(dataset=opts.dataset, data_dir=opts.data_dir, seed=opts.seed))
    if ds.info.real:  # its checks are a classifier's (initial loss ln K, overfit to 100%)
        raise ConfigError("auto checks classifiers; sweep a regression with coarse and fine")
    # The sanity run's learning-rate population is the finder's (``auto_lr_range``'s: the
    # coarse run's optimizer, batch and finder_steps), so the box comes from it.
    san = run_sanity(
        ds,
        model_cfg,
        train_cfg,
        finder_steps=finder_steps(train_cfg),
        finder_rates=LR_FINDER_N if opts.budget is None else BUDGET_FINDER_RATES,
    )
    failed = [c for c in san.checks if not c.passed]
    log.add(
        Stage(
            "sanity",
            f"{len(san.checks) - len(failed)}/{len(san.checks)} checks passed",
            {"checks": [c._asdict() for c in san.checks]},
        )
    )
    if failed:
        raise SanityFailed(
            "sanity check failed: "
            + "; ".join(f"{c.name}: {c.detail}" for c in failed)
            + " (run `sweepjax sanity` for the details; searching would not fix this)"
        )
    lo, hi = lr_box(san.lr_range, margin=0.0 if opts.budget is None else BUDGET_BOX_MARGIN)
    best = san.lr_range.best  # some rate trained (lr_box raised otherwise): the fastest
    say = f"the finder's box: lr [{lo:.3g}, {hi:.3g}], fastest-training rate {best:.3g}"
    log.add(Stage("lr_range", say, {"lr": [lo, hi], "best": best}))
    return lo, hi, best


def search_budget(budget: Budget) -> Budget:
    """The search's share of ``budget``: all of a member-step budget; of a time budget,
    all but :data:`AFTER_SEARCH` (left to the refit and the report)."""
    if budget.seconds is None:
        return budget
    return Budget(seconds=budget.seconds * (1 - AFTER_SEARCH))


def budgeted_search(
    opts: AutoOptions, box: tuple[float, float], cb: Callbacks, log: StageLog, best: float
) -> SweepResult:
    """One ASHA run over the finder's ``box`` with the decay searched too, its members of
    a fine round's length, until :func:`search_budget` is spent. Its first member trains
    at the finder's fastest-training rate ``best`` (the other axes at the box's centre):
    it finishes first (the MLP trains a member at a time on a CPU), and there the box's
    centre, pulled low by the finder's 300-step too-low edge, trained worse."""
    from sweepjax.flows import sweep as flows
    from sweepjax.flows.sweep_config import FINE_LR_DECAY

    final = flows.coarse_from(
        {"lr": best},
        **opts.sweep_options(cb),
        dataset=opts.dataset,
        data_dir=opts.data_dir,
        model=opts.model,
        hidden=opts.hidden,
        optimizer=opts.optimizer,
        trials=opts.trials,
        steps=opts.fine_steps,
        batch_size=opts.batch_size,
        seed=opts.seed,
        lr=box,
        lr_decay=FINE_LR_DECAY,
        schedule="asha",
        budget=search_budget(opts.budget),
    )
    log.add(_sweep_stage("asha", final))
    return final


def fine_rounds(
    opts: AutoOptions, box: tuple[float, float], cb: Callbacks, log: StageLog
) -> SweepResult:
    """Coarse over the finder's ``box``, then fine rounds until :func:`fine_rounds_done`
    or :func:`~sweepjax.results.claims.settled` (at most ``max_rounds``); the round with
    the best winner (the smaller SE on a tie)."""
    from sweepjax.flows import sweep as flows
    from sweepjax.results.claims import settled

    prev = flows.coarse(
        **opts.sweep_options(cb),
        dataset=opts.dataset,
        data_dir=opts.data_dir,
        model=opts.model,
        hidden=opts.hidden,
        optimizer=opts.optimizer,
        trials=opts.trials,
        steps=opts.steps,
        batch_size=opts.batch_size,
        seed=opts.seed,
        lr=box,
    )
    log.add(_sweep_stage("coarse", prev))
    rounds: list[SweepResult] = []
    for _ in range(opts.max_rounds):
        cur = flows.fine(
            **opts.sweep_options(cb),
            parent=prev.sweep_id,
            steps=opts.fine_steps,
            sampler=opts.sampler,
            refit=False,
        )
        rounds.append(cur)
        log.add(_sweep_stage("fine", cur))
        inside = cur.verdict is not None and cur.verdict.optimum_inside
        gain = cur.winner.val_acc - prev.winner.val_acc
        if fine_rounds_done(inside, gain, cur.winner.val_acc_se):
            break
        if settled(cur):  # every axis flat, most tied: another round cannot split them
            break
        prev = cur
    return max(rounds, key=lambda r: (r.winner.val_acc, -r.winner.val_acc_se))


def finish(final: SweepResult, opts: AutoOptions, cb: Callbacks, log: StageLog) -> AutoResult:
    """The refit of ``final``'s winner and the report (as ``opts`` ask); every stage."""
    from sweepjax.engine.distributed import SINGLE
    from sweepjax.flows.refit import refit_winner
    from sweepjax.flows.runner import Callbacks, load_inputs, open_store, write_report_hook

    with open_store(opts.store, False, SINGLE) as st:
        ds_f = load_inputs(final.config.data, cb)
        if opts.refit:
            final = refit_winner(final, final.config, ds_f, st, Callbacks(note=lambda m: None))
            w = final.winner
            if w.refit_test_acc is not None:
                log.add(
                    Stage(
                        "refit",
                        f"{final.sweep_id}'s winner retrained on train + validation for "
                        f"{w.refit_steps} steps: test acc {w.refit_test_acc:.4f} "
                        + (
                            f"(early-stopped: {w.test_acc:.4f})"
                            if w.test_acc is not None
                            else "(the search's winner did not finish)"
                        ),
                        {"steps": w.refit_steps, "test_acc": w.refit_test_acc},
                    )
                )
        if opts.report:
            path = write_report_hook(final, st, ds_f)
            st.set_report(final.sweep_id, path)
            final = dataclasses.replace(final, report=path)
            log.add(Stage("report", f"report: {path}", {"path": path}))
    return AutoResult(final, log.stages)


def _signature() -> inspect.Signature:
    """``auto``'s keyword arguments as ``help`` shows them: :class:`AutoOptions`' fields
    and ``callbacks``."""
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter("options", inspect.Parameter.POSITIONAL_ONLY, default=None),
        *(
            inspect.Parameter(f.name, kw, default=f.default)
            for f in dataclasses.fields(AutoOptions)
        ),
        inspect.Parameter("callbacks", kw, default=None),
    ]
    return inspect.Signature(params, return_annotation=AutoResult)


auto.__signature__ = _signature()
