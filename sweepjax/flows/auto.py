"""``auto``: the whole babysitting lecture in one call.

Sanity checks (stop at the first failure) -> the learning-rate finder sets the coarse box
-> coarse -> fine rounds until the model says the optimum is inside the box and the best
score stops improving (at most ``max_rounds``) -> refit of the best round's winner on
train + validation -> the report. Each stage is recorded as a :class:`Stage` and
announced through ``Callbacks.note``; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
# With a budget, the learning-rate finder tries two rates a decade instead of four: half
# the member-steps (the width-256 MLP's finder is 16 x 300 steps, about 20 s on a 2-core
# CPU, instead of 40 s). On that coarser grid the good rates' extremes fall up to 3.4x
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


def auto(
    *,
    dataset: str = "mnist",
    data_dir: str | None = None,
    model: str = "softmax",
    hidden: int | None = None,
    optimizer: str | None = None,
    trials: int = DEFAULT_TRIALS,
    steps: int = DEFAULT_STEPS,
    batch_size: int = DEFAULT_BATCH,
    seed: int = 0,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    sampler: str | None = None,
    refit: bool = True,
    report: bool = True,
    store: str | os.PathLike | None = None,
    callbacks: Callbacks | None = None,
    budget: str | float | None = None,
    optuna_storage: str | None = None,
) -> AutoResult:
    """Sanity -> lr range -> coarse -> fine rounds -> refit -> report (module docstring).

    ``hidden`` / ``optimizer`` default to the model's (``MODEL_DEFAULTS``). Fine rounds
    each train the model's ``fine_steps_factor * steps`` steps (not compounding). A round
    ends the search when its model says the optimum is inside its box and its winner
    beats the previous round's by at most one SE (the winner's own); ``max_rounds``
    caps the rounds. The final sweep is the fine round with the best winner.

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
    # Deferred: they import jax; the CLI reads DEFAULT_MAX_ROUNDS for --help without it.
    from sweepjax.analysis.sanity import LR_FINDER_N, finder_steps, lr_box, run_sanity
    from sweepjax.data import load_dataset
    from sweepjax.flows import sweep as flows
    from sweepjax.flows.runner import Callbacks
    from sweepjax.flows.sweep_config import FINE_LR_DECAY, check_positive
    from sweepjax.results.claims import settled

    cb = callbacks or Callbacks()
    check_positive("max-rounds", max_rounds)
    check_positive("trials", trials)
    check_positive("steps", steps)
    stages: list[Stage] = []

    def stage(s: Stage) -> None:
        stages.append(s)
        cb.say(f"[{s.name}] {s.summary}")

    defaults = MODEL_DEFAULTS.get(model)
    if defaults is None:
        raise ConfigError(f"auto runs the built-in models; choose one of {', '.join(MODELS)}")
    hidden = defaults.hidden if hidden is None else hidden
    optimizer = optimizer or defaults.optimizer
    model_cfg = ModelConfig(kind=model, hidden=hidden)
    train_cfg = TrainConfig(optimizer=optimizer, steps=steps, batch_size=batch_size, seed=seed)
    ds = load_dataset(DataConfig(dataset=dataset, data_dir=data_dir, seed=seed))
    # The sanity run's learning-rate population is the finder's (``auto_lr_range``'s: the
    # coarse run's optimizer, batch and finder_steps), so the box comes from it.
    san = run_sanity(
        ds,
        model_cfg,
        train_cfg,
        finder_steps=finder_steps(train_cfg),
        finder_rates=LR_FINDER_N if budget is None else BUDGET_FINDER_RATES,
    )
    failed = [c for c in san.checks if not c.passed]
    stage(
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
    lo, hi = lr_box(san.lr_range, margin=0.0 if budget is None else BUDGET_BOX_MARGIN)
    stage(Stage("lr_range", f"the finder's box: lr [{lo:.3g}, {hi:.3g}]", {"lr": [lo, hi]}))

    # Every round's members go into its own Optuna study (named after the sweep).
    common = dict(store=store, callbacks=cb, report=False, optuna_storage=optuna_storage)
    data = dict(dataset=dataset, data_dir=data_dir, model=model, hidden=hidden)
    if budget is not None:
        from sweepjax.budget import Budget

        b = Budget.parse(budget)
        search = b if b.seconds is None else Budget(seconds=b.seconds * (1 - AFTER_SEARCH))
        final = flows.coarse(
            **common,
            **data,
            optimizer=optimizer,
            trials=trials,
            steps=defaults.fine_steps_factor * steps,
            batch_size=batch_size,
            seed=seed,
            lr=(lo, hi),
            lr_decay=FINE_LR_DECAY,
            schedule="asha",
            budget=str(search),
        )
        stage(_sweep_stage("asha", final))
        return _finish(final, store, refit, report, stage, stages, cb)
    prev = flows.coarse(
        **common,
        **data,
        optimizer=optimizer,
        trials=trials,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        lr=(lo, hi),
    )
    stage(_sweep_stage("coarse", prev))
    rounds: list[SweepResult] = []
    for _ in range(max_rounds):
        cur = flows.fine(
            **common,
            parent=prev.sweep_id,
            steps=defaults.fine_steps_factor * steps,
            sampler=sampler,
            refit=False,
        )
        rounds.append(cur)
        stage(_sweep_stage("fine", cur))
        inside = cur.verdict is not None and cur.verdict.optimum_inside
        gain = cur.winner.val_acc - prev.winner.val_acc
        if fine_rounds_done(inside, gain, cur.winner.val_acc_se):
            break
        if settled(cur):  # every axis flat, most tied: another round cannot split them
            break
        prev = cur
    final = max(rounds, key=lambda r: (r.winner.val_acc, -r.winner.val_acc_se))
    return _finish(final, store, refit, report, stage, stages, cb)


def _finish(final: SweepResult, store, refit: bool, report: bool, stage, stages, cb):
    """The refit of ``final``'s winner and the report; the stages recorded so far."""
    from sweepjax.engine.distributed import SINGLE
    from sweepjax.flows.refit import refit_winner
    from sweepjax.flows.runner import Callbacks, load_inputs, open_store, write_report_hook
    from sweepjax.flows.sweep_config import SweepConfig

    with open_store(store, False, SINGLE) as st:
        cfg = SweepConfig.from_dict(final.config)
        ds_f = load_inputs(cfg.data, cb)
        if refit:
            final = refit_winner(final, cfg, ds_f, st, Callbacks(note=lambda m: None))
            w = final.winner
            if w.refit_test_acc is not None:
                stage(
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
        if report:
            path = write_report_hook(final, st, ds_f)
            st.set_report(final.sweep_id, path)
            final = dataclasses.replace(final, report=path)
            stage(Stage("report", f"report: {path}", {"path": path}))
    return AutoResult(final, stages)
