"""Seconds from a process's start to ``auto``'s first search, and where they go.

    python benchmarks/bench_auto_start.py                 # auto --model mlp, ~40-80 s
    python benchmarks/bench_auto_start.py --model softmax

Runs ``sweepjax auto`` in this process with the compile and prepared-data caches the CLI
uses, stops it where the search (its first coarse / ASHA round) would start, and splits
the time before: imports, the data, the learning-rate finder's population, the sanity
checks' other population (the 20-example overfit run with the initial-loss probes), and
their compiling. Run it twice: the first run may compile, the second is warm.

Writes ``results/auto-start-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import contextlib
import sys
import time

T0 = time.perf_counter()

from pathlib import Path  # noqa: E402

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402

import sweepjax.analysis.sanity as san  # noqa: E402
import sweepjax.data as data  # noqa: E402
import sweepjax.flows.sweep as flows  # noqa: E402
from sweepjax.cli import main as cli  # noqa: E402

IMPORT_S = time.perf_counter() - T0


class _Started(Exception):
    """Raised where auto's search would start."""


def _timed(mod, name: str, parts: dict) -> None:
    real = getattr(mod, name)

    def wrapper(*a, **k):
        t = time.perf_counter()
        out = real(*a, **k)
        parts[name] = parts.get(name, 0.0) + time.perf_counter() - t
        if hasattr(out, "timing"):  # a PopulationResult: its compile time
            parts["compile"] = parts.get("compile", 0.0) + out.timing.compile_s
        return out

    setattr(mod, name, wrapper)


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    parts: dict = {}
    for mod, name in ((data, "load_dataset"), (san, "_lr_population"), (san, "train_population")):
        _timed(mod, name, parts)

    def first_search(*a, **kw):
        raise _Started

    flows.coarse = flows.coarse_from = first_search  # auto's first coarse (or ASHA) search
    with contextlib.suppress(_Started):
        cli(["auto", *(argv or ["--model", "mlp"]), "--no-report"])
    total = time.perf_counter() - T0
    sanity = parts.get("train_population", 0.0)
    row = {
        "first_search_s": total,
        "imports_s": IMPORT_S,
        "data_s": parts.get("load_dataset", 0.0),
        "finder_s": parts.get("_lr_population", 0.0),
        "overfit_and_probes_s": sanity - parts.get("_lr_population", 0.0),
        "compile_s": parts.get("compile", 0.0),
    }
    m = common.machine()
    out = {"machine": m, "command": common.command_line(__file__, argv), **row}
    common.write_json(common.RESULTS / f"auto-start-{m['backend']}.json", out)
    md = [
        "# auto: seconds to the first search\n",
        f"Machine: {common.machine_line(m)}.\n",
        f"Reproduce: `{out['command']}`.\n",
        common.md_table(list(row), [[round(v, 2) for v in row.values()]]),
        "",
    ]
    (common.RESULTS / f"auto-start-{m['backend']}.md").write_text("\n".join(md))
    print("\n".join(md))
    return out


if __name__ == "__main__":
    main()
