"""``sweepjax list | show SWEEP | export SWEEP --format csv|json``: the commands that read
the store. What they print is rendered in :mod:`sweepjax.cli.render` (tables, summaries,
diagnoses) and :mod:`sweepjax.cli.formats` (JSON and CSV text); :func:`one_line_errors`
is the parser helper every command module uses."""

from __future__ import annotations

import argparse
import json
import sys

from sweepjax.cli.formats import json_clean, to_csv_text, to_json_text
from sweepjax.cli.options import add_options
from sweepjax.cli.render import TOP_ROWS, render_diagnoses, render_list, render_result


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
            help="write one sweep's members as CSV or its JSON document to stdout",
            description="Write one sweep's members table (csv) or JSON document to stdout.",
        )
    )
    p.add_argument("sweep", metavar="SWEEP", help="sweep id, e.g. c1")
    p.add_argument("--format", choices=("csv", "json"), default="json")
    _store_arg(p)
    p.set_defaults(func=run_export)


def run_list(args) -> int:
    from sweepjax.store.db import Store  # deferred (like below): it imports the engine (jax)

    with Store.open(args.store) as st:
        print(render_list(st.list_sweeps()))
    return 0


def run_show(args) -> int:
    from sweepjax.analysis.diagnose import diagnose_sweep
    from sweepjax.store.db import Store

    with Store.open(args.store) as st:
        res = st.load_sweep(args.sweep, curves=True)
        row = st.sweep_row(args.sweep)
    diags = diagnose_sweep(res) if res.status == "finished" else {}
    if args.format == "json":
        doc = json.loads(to_json_text(res))
        doc["diagnoses"] = {str(k): [d._asdict() for d in v] for k, v in diags.items() if v}
        print(json.dumps(json_clean(doc), indent=2))
        return 0
    text = render_result(res, str(st.path), top=args.top)
    if res.status != "finished":
        text += f"\nprogress: step {row.steps_done}/{row.total_steps}"
    else:
        text += "\n" + render_diagnoses(res, diags, args.top)
    print(text)
    return 0


def run_export(args) -> int:
    from sweepjax.store.db import Store

    with Store.open(args.store) as st:
        res = st.load_sweep(args.sweep, curves=False)
    sys.stdout.write(to_csv_text(res) if args.format == "csv" else to_json_text(res) + "\n")
    return 0
