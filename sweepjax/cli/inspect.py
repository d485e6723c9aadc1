"""``sweepjax list | show SWEEP | export SWEEP --format
json|csv|cv-results|optuna|tensorboard``: the commands that read the store. What they
print is rendered in :mod:`sweepjax.cli.render` (tables, summaries, diagnoses) and
:mod:`sweepjax.cli.formats` (JSON and CSV text); an Optuna study is written by
:mod:`sweepjax.store.optuna_export`, TensorBoard runs by
:mod:`sweepjax.store.tensorboard_export`. :func:`one_line_errors` is the parser helper
every command module uses."""

from __future__ import annotations

import argparse
import json
import sys

from sweepjax.cli.formats import json_clean, to_csv_text, to_cv_results_text, to_json_text
from sweepjax.cli.options import add_options
from sweepjax.cli.render import TOP_ROWS, render_diagnoses, render_list, render_result

EXPORT_FORMATS = ("json", "csv", "cv-results", "optuna", "tensorboard")


def _store_arg(p: argparse.ArgumentParser) -> None:
    add_options(p, "coarse", only=("store",))  # declared once, in sweepjax.spec


def one_line_errors(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    def error(message: str):
        print(f"{p.prog}: error: {message}; see {p.prog} --help", file=sys.stderr)
        raise SystemExit(2)

    p.error = error
    return p


def register(sub) -> None:
    p = one_line_errors(
        sub.add_parser(
            "list", help="list the sweeps in the store", description="List the sweeps in the store."
        )
    )
    _store_arg(p)
    p.set_defaults(func=run_list)

    p = one_line_errors(
        sub.add_parser(
            "show",
            help="show one sweep's results table",
            description="Show one sweep's results table.",
        )
    )
    p.add_argument("sweep", metavar="SWEEP", help="sweep id, e.g. c1")
    p.add_argument("--top", type=int, default=TOP_ROWS, help="rows of the table to show")
    p.add_argument("--format", choices=("text", "json"), default="text")
    _store_arg(p)
    p.set_defaults(func=run_show)

    p = one_line_errors(
        sub.add_parser(
            "export",
            help="write one sweep as JSON or CSV to stdout, or as an Optuna study or "
            "TensorBoard runs",
            description=(
                "Write one sweep's JSON document (json), members table (csv) or configs "
                "table (cv-results) to stdout, or write it as an Optuna study (optuna) for "
                "optuna-dashboard and Optuna's plots and importances, or as TensorBoard runs "
                "(tensorboard) for TensorBoard's Scalars and HParams views."
            ),
        )
    )
    p.add_argument("sweep", metavar="SWEEP", help="sweep id, e.g. c1")
    p.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="json",
        help=(
            "json: the JSON document; csv: one row per member; cv-results: one row per "
            "config of a --replicas / --folds sweep (scikit-learn's cv_results_: params, "
            "per-replica split scores, mean / std / rank of the validation accuracy); "
            "optuna: one trial per member in the Optuna storage --storage (needs "
            "pip install 'sweepjax[optuna]'); tensorboard: one run per member (curves, "
            "hyperparameters, HParams session) under --logdir DIR/SWEEP (needs "
            "pip install 'sweepjax[tensorboard]')"
        ),
    )
    p.add_argument(
        "--storage",
        metavar="URL",
        help="--format optuna: the Optuna storage URL to write to, e.g. sqlite:///optuna.db",
    )
    p.add_argument(
        "--study",
        metavar="NAME",
        help="--format optuna: the new study's name (default: the sweep id); must not exist",
    )
    p.add_argument(
        "--logdir",
        metavar="DIR",
        help="--format tensorboard: the TensorBoard log folder; the runs go in DIR/SWEEP, "
        "which must not hold anything yet (view them with: tensorboard --logdir DIR)",
    )
    _store_arg(p)
    p.set_defaults(func=run_export)


def _status(row) -> str:
    """A sweep's status as ``list`` and ``show`` both say it: one marked running whose
    process is gone (killed, or a full disk kept it from being marked) is interrupted."""
    from sweepjax.store.live import sweep_state

    state = sweep_state(row)
    return "finished" if state == "done" else state


def run_list(args) -> int:
    from sweepjax.store import space
    from sweepjax.store.db import Store  # deferred (like below): it imports the engine (jax)

    with Store.open(args.store) as store:
        rows = [r._replace(status=_status(r)) for r in store.list_sweeps()]
        print(render_list(rows, space.sizes(store.conn)))
    return 0


def run_show(args) -> int:
    import dataclasses

    from sweepjax.analysis.diagnose import diagnose_sweep
    from sweepjax.store.db import Store

    with Store.open(args.store) as store:
        res = store.load_sweep(args.sweep, curves=True)
        row = store.sweep_row(args.sweep)
    res = dataclasses.replace(res, status=_status(row))
    diags = diagnose_sweep(res) if res.status == "finished" else {}
    if args.format == "json":
        doc = json.loads(to_json_text(res))
        doc["diagnoses"] = {str(k): [d._asdict() for d in v] for k, v in diags.items() if v}
        print(json.dumps(json_clean(doc), indent=2))
        return 0
    text = render_result(res, str(store.path), top=args.top)
    if res.status != "finished":
        # An unfinished sweep has no member rows yet: say how many it trains, as `list`.
        text = text.replace(": 0 members x", f": {row.num_members} members x", 1)
        text += f"\nprogress: step {row.steps_done}/{row.total_steps}"
    else:
        text += "\n" + render_diagnoses(res, diags, args.top)
    print(text)
    return 0


def run_export(args) -> int:
    from sweepjax.errors import ConfigError
    from sweepjax.store.db import Store

    optuna = args.format == "optuna"
    tensorboard = args.format == "tensorboard"
    if optuna and not args.storage:
        raise ConfigError("export --format optuna needs --storage URL, e.g. sqlite:///optuna.db")
    if not optuna and (args.storage or args.study):
        raise ConfigError(f"--storage and --study go with --format optuna, not {args.format}")
    if tensorboard and not args.logdir:
        raise ConfigError("export --format tensorboard needs --logdir DIR, e.g. --logdir runs")
    if not tensorboard and args.logdir:
        raise ConfigError(f"--logdir goes with --format tensorboard, not {args.format}")
    if optuna:  # before reading the store: nothing happens without the extra
        from sweepjax.store.optuna_export import import_optuna

        optuna_log = import_optuna().logging
        optuna_log.set_verbosity(optuna_log.WARNING)  # no "A new study created" line
    if tensorboard:  # the extra and the folder, before reading the store
        from sweepjax.store.tensorboard_export import check_logdir, import_tensorboardx

        import_tensorboardx()
        check_logdir(args.logdir, args.sweep)
    times = clock = None
    with Store.open(args.store) as store:
        res = store.load_sweep(args.sweep, curves=optuna or tensorboard)
        if optuna:
            from sweepjax.store.optuna_export import member_times

            times = member_times(store, res)
        if tensorboard:
            from sweepjax.store.optuna_export import sweep_clock

            clock = sweep_clock(store, res)
    if optuna:
        from sweepjax.store.optuna_export import export_study

        done = export_study(res, args.storage, args.study, times=times)
        said = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
        counts = ", ".join(f"{n} {said[s]}" for s, n in done.states.items())
        print(
            f"sweep {res.sweep_id}: {done.trials} trials ({counts}) written to Optuna study "
            f"{done.study_name!r} in {done.storage}; view it with: optuna-dashboard "
            f"{done.storage}",
            file=sys.stderr,
        )
        return 0
    if tensorboard:
        from sweepjax.store.tensorboard_export import export_runs

        done = export_runs(res, args.logdir, clock=clock)
        said = {
            "STATUS_SUCCESS": "succeeded",
            "STATUS_FAILURE": "failed",
            "STATUS_RUNNING": "running",
            "STATUS_UNKNOWN": "unknown",
        }
        counts = ", ".join(f"{n} {said[s]}" for s, n in done.states.items() if n)
        print(
            f"sweep {res.sweep_id}: {done.runs} runs ({counts}) written to {done.path}; view "
            f"them with: tensorboard --logdir {args.logdir}",
            file=sys.stderr,
        )
        return 0
    if args.format == "cv-results":
        if not res.configs:
            raise ConfigError(
                f"sweep {res.sweep_id} has no configs (it ran without --replicas or "
                "--folds); export --format csv writes its members"
            )
        sys.stdout.write(to_cv_results_text(res))
        return 0
    sys.stdout.write(to_csv_text(res) if args.format == "csv" else to_json_text(res) + "\n")
    return 0
