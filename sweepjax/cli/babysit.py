"""``sweepjax sanity``: the lecture's checks before any search.

Exit codes: 0 when every check passes, 1 when any fails (the run itself worked, the
set-up did not), 2 for bad flags or data.
"""

from __future__ import annotations

import argparse
import json
import sys

from sweepjax.config import MODELS, OPTIMIZERS


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sanity",
        help="babysitting checks: initial loss, regularization, overfit 20 examples, lr range",
        description=(
            "Run the CS231n sanity checks, each PASS or FAIL with its numbers: the initial "
            "loss is about ln(num_classes); a large lambda raises it; 20 examples can be "
            "overfit to 100%%; and a vectorized learning-rate sweep labels every rate too "
            "low / good / too high and prints the range worth cross-validating. "
            "Exit code 0 if all pass, 1 if any fails."
        ),
    )
    p.add_argument(
        "--dataset",
        default="mnist",
        help="mnist | fashion-mnist | mnist-sample | npz:PATH (default mnist)",
    )
    p.add_argument("--data-dir", default=None, help="directory searched first for the data")
    p.add_argument("--model", choices=MODELS, default="softmax")
    p.add_argument("--hidden", type=int, default=100, help="MLP hidden width (default 100)")
    p.add_argument(
        "--optimizer",
        choices=OPTIMIZERS,
        default="sgd",
        help="optimizer of the learning-rate sweep (the overfit check always uses plain sgd)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from sweepjax.analysis.sanity import run_sanity
    from sweepjax.config import DataConfig, ModelConfig, TrainConfig
    from sweepjax.data import load_dataset

    model_cfg = ModelConfig(kind=args.model, hidden=args.hidden)
    train_cfg = TrainConfig(optimizer=args.optimizer, seed=args.seed)
    dataset = load_dataset(DataConfig(dataset=args.dataset, data_dir=args.data_dir, seed=args.seed))
    if dataset.info.note:
        print(f"sweepjax: note: {dataset.info.note}", file=sys.stderr)
    report = run_sanity(dataset, model_cfg, train_cfg)
    if args.format == "json":
        print(json.dumps(report.to_json(), indent=2))
    else:
        _print_text(report, dataset.info.name, model_cfg)
    return 0 if report.passed else 1


def _print_text(report, dataset_name: str, model_cfg) -> None:
    print(f"sanity checks: {model_cfg.kind} on {dataset_name}")
    for c in report.checks:
        print(f"  {'PASS' if c.passed else 'FAIL'}  {c.name:<28} {c.detail}")
    r = report.lr_range
    print(f"\nlearning-rate sweep ({len(r.lrs)} rates, {r.steps} steps, one population):")
    for lr, label, l0, l1, d in zip(
        r.lrs, r.labels, r.initial_loss, r.final_loss, r.diverged_at, strict=True
    ):
        end = f"diverged at step {d}" if d >= 0 else f"{l0:.3f} -> {l1:.3f}"
        print(f"  lr {lr:9.2e}  {label.replace('_', ' '):<8}  loss {end}")
    if r.lo is not None:
        print(f"\nrange worth cross-validating: lr in [{r.lo:.2g}, {r.hi:.2g}]")
    n_fail = sum(not c.passed for c in report.checks)
    print(f"\n{len(report.checks) - n_fail} passed, {n_fail} failed")
