"""``sweepjax auto``: sanity -> lr range -> coarse -> fine rounds -> refit -> report, one
line per stage on stderr, then the answer with its uncertainty (or one JSON document)."""

from __future__ import annotations

import argparse
import json
import sys

from sweepjax.cli.formats import json_clean
from sweepjax.cli.inspect import one_line_errors
from sweepjax.config import MODELS, OPTIMIZERS
from sweepjax.flows import sweep as flows
from sweepjax.store.db import default_path


def register(sub) -> None:
    from sweepjax.flows.auto import DEFAULT_MAX_ROUNDS

    p = one_line_errors(
        sub.add_parser(
            "auto",
            help="the whole workflow: sanity, lr range, coarse, fine rounds, refit, report",
            description="Run the lecture in one command: the sanity checks (stop at a "
            "failure, exit 1), the learning-rate finder sets the coarse box, coarse, then "
            "fine rounds until the response-surface model says the optimum is inside the "
            "box and the winner stops improving by more than its SE (at most --max-rounds), "
            "the refit of the best round's winner on train + validation, and the report.",
        )
    )
    p.add_argument(
        "--dataset", default="mnist", help="mnist | fashion-mnist | mnist-sample | npz:PATH"
    )
    p.add_argument("--data-dir", help="directory searched first for the data")
    p.add_argument("--model", choices=MODELS, default="softmax")
    p.add_argument("--hidden", type=int, help="MLP hidden width (default 256)")
    p.add_argument(
        "--optimizer", choices=OPTIMIZERS, help="default: sgd for softmax, momentum for mlp"
    )
    p.add_argument("--trials", type=int, default=flows.DEFAULT_TRIALS, help="members per round")
    p.add_argument(
        "--steps",
        type=int,
        default=flows.DEFAULT_STEPS,
        help=f"coarse steps; each fine round trains {flows.FINE_STEPS_FACTOR}x as many "
        f"({flows.MODEL_DEFAULTS['mlp'].fine_steps_factor}x for mlp)",
    )
    p.add_argument("--batch-size", type=int, default=flows.DEFAULT_BATCH)
    p.add_argument("--seed", type=int, default=0, help="root seed")
    p.add_argument(
        "--max-rounds",
        type=int,
        default=DEFAULT_MAX_ROUNDS,
        help=f"at most this many fine rounds (default {DEFAULT_MAX_ROUNDS})",
    )
    p.add_argument("--sampler", choices=flows.SAMPLERS, help="fine rounds' sampler")
    p.add_argument("--no-refit", action="store_true", help="skip the refit")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report")
    p.add_argument("--store", help="results store (default: $SWEEPJAX_STORE or ./sweepjax.db)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sweepjax.flows.auto import auto

    def note(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    out = auto(
        dataset=args.dataset,
        data_dir=args.data_dir,
        model=args.model,
        hidden=args.hidden,
        optimizer=args.optimizer,
        trials=args.trials,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        max_rounds=args.max_rounds,
        sampler=args.sampler,
        refit=not args.no_refit,
        report=not args.no_report,
        store=args.store or default_path(),
        callbacks=flows.Callbacks(note=note if args.format == "text" else _stage_only(note)),
    )
    if args.format == "json":
        print(json.dumps(json_clean(out.to_json()), indent=2, allow_nan=False))
        return 0
    f, w = out.final, out.final.winner
    wm = next((m for m in f.members if m.id == w.id), None)
    print(
        f"answer ({f.sweep_id}): lr {w.lr:.3g}, lambda {w.l2:.3g}"
        + (_axes_text(wm) if wm is not None else "")
        + f": val acc {w.val_acc:.4f} +/- {w.val_acc_se:.4f} "
        f"({len(f.tied)} member(s) statistically tied), test acc {w.test_acc:.4f}"
        + (f", refit test acc {w.refit_test_acc:.4f}" if w.refit_test_acc is not None else "")
    )
    if f.verdict is not None and f.verdict.flat:
        print(f"flat (no measurable difference over the box): {', '.join(f.verdict.flat)}")
    if f.report:
        print(f"report: {f.report}")
    return 0


def _axes_text(m) -> str:
    """The winner's other hyperparameters: its final lr multiplier, its width and
    momentum where they apply, its dropout and init scale when not the defaults."""
    out = f", final lr x{m.lr_decay:.3f}"
    if m.hidden is not None:
        out += f", hidden {m.hidden}"
    for name, default in (("dropout", 0.0), ("init_scale", 1.0), ("momentum", None)):
        v = getattr(m, name)
        if v is not None and v != default:
            out += f", {name} {v:.3g}"
    return out


def _stage_only(note):
    """With --format json, stderr still gets the one line per stage (not the sweeps' notes)."""

    def say(msg: str) -> None:
        if msg.startswith("["):
            note(msg)

    return say
