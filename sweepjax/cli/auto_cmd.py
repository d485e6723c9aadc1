"""``sweepjax auto``: sanity -> lr range -> coarse -> fine rounds -> refit -> report, one
line per stage on stderr, then the answer with its uncertainty (or one JSON document)."""

from __future__ import annotations

import argparse
import json
import sys

from sweepjax.cli.formats import json_clean
from sweepjax.cli.inspect import one_line_errors
from sweepjax.cli.options import add_options, shared_values
from sweepjax.config import Range
from sweepjax.errors import ConfigError

SHARED = (
    "dataset",
    "data_dir",
    "model",
    "hidden",
    "optimizer",
    "trials",
    "steps",
    "batch_size",
    "seed",
    "sampler",
    "refit",
    "report",
    "store",
    "format",
    "budget",
    "optuna_storage",
)


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
            "the refit of the best round's winner on train + validation, and the report. "
            "With --budget: sanity, the lr range, one ASHA search over the finder's box "
            "(members of a fine round's length, lr decay searched too) in most of the "
            "budget, then the refit and the report.",
        )
    )
    # The options auto shares with coarse / fine: the same declarations (sweepjax.spec).
    add_options(p, "coarse", only=SHARED)
    p.add_argument(
        "--max-rounds",
        type=int,
        default=DEFAULT_MAX_ROUNDS,
        help=f"at most this many fine rounds (default {DEFAULT_MAX_ROUNDS})",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    # Deferred to the run: they import jax, which --help skips.
    from sweepjax.flows.auto import AutoOptions, auto
    from sweepjax.flows.runner import Callbacks
    from sweepjax.store import default_path

    def note(msg: str) -> None:
        print(msg, file=sys.stderr, flush=True)

    # Read like the sweep's options: a bad budget fails here, before the checks train.
    kw, cli = shared_values(args, SHARED)
    fmt = cli.get("format", "text")
    if isinstance(kw.get("hidden"), Range):
        raise ConfigError("`hidden` takes one width in auto (its rounds refine lr and l2)")
    store = kw.pop("store", None) or default_path()
    opts = AutoOptions(**kw, max_rounds=args.max_rounds, store=store)
    out = auto(opts, callbacks=Callbacks(note=note if fmt == "text" else _stage_only(note)))
    if fmt == "json":
        print(json.dumps(json_clean(out.to_json()), indent=2, allow_nan=False))
        return 0
    f, w = out.final, out.final.winner
    wm = next((m for m in f.members if m.id == w.id), None)
    print(
        f"answer ({f.sweep_id}): lr {w.lr:.3g}, lambda {w.l2:.3g}"
        + (_axes_text(wm) if wm is not None else "")
        + f": val acc {w.val_acc:.4f} +/- {w.val_acc_se:.4f} "
        + (
            f"({len(f.tied)} member(s) statistically tied), test acc {w.test_acc:.4f}"
            if w.finished
            else f"(the best member so far, unfinished at step {w.steps})"
        )
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
