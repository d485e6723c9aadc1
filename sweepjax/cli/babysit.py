"""``sweepjax sanity``: the lecture's checks before any search.

Exit codes: 0 when every check passes, 1 when any fails (the run itself worked, the
set-up did not), 2 for bad flags or data.
"""

from __future__ import annotations

import argparse
import json
import sys

from sweepjax.cli.inspect import one_line_errors
from sweepjax.cli.options import add_options, shared_values
from sweepjax.config import Range
from sweepjax.errors import ConfigError
from sweepjax.spec import MODEL_DEFAULTS

SHARED = ("dataset", "data_dir", "model", "hidden", "optimizer", "seed", "format")


def register(subparsers) -> None:
    p = one_line_errors(
        subparsers.add_parser(
            "sanity",
            help="babysitting checks: initial loss, regularization, overfit 20 examples, lr range",
            description=(
                "Run the CS231n sanity checks, each PASS or FAIL with its numbers: the initial "
                "loss is about ln(num_classes); a large lambda raises it; 20 examples can be "
                "overfit to 100%; and a vectorized learning-rate sweep labels every rate too "
                "low / good / too high and prints the range worth cross-validating. "
                "Exit code 0 if all pass, 1 if any fails."
            ),
        )
    )
    # The options it shares with coarse: the same declarations and defaults (sweepjax.spec),
    # so the checks run on the model and optimizer the sweep will use.
    add_options(p, "coarse", only=SHARED)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sweepjax.analysis.sanity import run_sanity
    from sweepjax.config import DataConfig, ModelConfig, TrainConfig
    from sweepjax.data import load_dataset

    o, cli = shared_values(args, SHARED)
    fmt = cli.get("format", "text")
    if isinstance(o.get("hidden"), Range):
        raise ConfigError("`hidden` takes one width in sanity")
    model = o.get("model", "softmax")
    if model not in MODEL_DEFAULTS:
        raise ConfigError(f"sanity checks the built-in softmax or mlp, not {model!r}")
    defaults = MODEL_DEFAULTS[model]
    model_cfg = ModelConfig(kind=model, hidden=o.get("hidden", defaults.hidden))
    seed = o.get("seed", 0)
    train_cfg = TrainConfig(optimizer=o.get("optimizer", defaults.optimizer), seed=seed)
    data = DataConfig(dataset=o.get("dataset", "mnist"), data_dir=o.get("data_dir"), seed=seed)
    dataset = load_dataset(data)
    if dataset.info.real:  # the checks are a classifier's (initial loss ln K, 100% overfit)
        raise ConfigError("sanity checks classifiers; sweep a regression with coarse and fine")
    if dataset.info.note:  # each line already starts "sweepjax: ", as coarse prints it
        print(dataset.info.note, file=sys.stderr)
    report = run_sanity(dataset, model_cfg, train_cfg)
    if fmt == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_text(report, dataset.info.name, model_cfg)
    return 0 if report.passed else 1


def _print_text(report, dataset_name: str, model_cfg) -> None:
    print(f"sanity checks: {model_cfg.kind} on {dataset_name}")
    for c in report.checks:
        print(f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<28} {c.detail}")
    r = report.lr_range
    trained = [True] * len(r.lrs) if r.trained is None else [bool(t) for t in r.trained]
    print(
        f"\nlearning-rate sweep ({len(r.lrs)} rates, {sum(trained)} trained where a "
        f"label could change, {r.steps} steps):"
    )
    for lr, label, l0, l1, d, t in zip(
        r.lrs, r.labels, r.initial_loss, r.final_loss, r.diverged_at, trained, strict=True
    ):
        end = f"diverged at step {d}" if d >= 0 else f"{l0:.3f} -> {l1:.3f}"
        end = end if t else "not trained (its trained neighbours' label)"
        print(f"  lr {lr:9.2e}  {label.replace('_', ' '):<8}  loss {end}")
    if r.lo is not None:
        print(f"\nrange worth cross-validating: lr in [{r.lo:.2g}, {r.hi:.2g}]")
    n_fail = sum(not c.passed for c in report.checks)
    print(f"\n{len(report.checks) - n_fail} passed, {n_fail} failed")
