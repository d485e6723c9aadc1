"""``bench_auto_start.py`` of this checkout against another's, alternated.

    python benchmarks/bench_auto_start_ab.py --against OLD_CHECKOUT   # ~10 min loaded
    python benchmarks/bench_auto_start_ab.py --against OLD --auto "--model mlp --budget 160s"

Each tree's own ``benchmarks/bench_auto_start.py`` runs as its own process (``auto
--model mlp``, or ``--auto``'s arguments, to its first search, with the compile and data
caches the CLI uses):
first once each with ``--steps 10`` (``--auto``: with its own arguments; untimed: the
finder's programs into the compile cache, so both are warm), then ``--reps`` rounds, the
order swapped every round.
``--cold``: no warming run, and every run gets empty compile (saved programs included)
and width caches of its own (a user's first ``auto``; the prepared data stays cached). The
row each run writes to its tree's ``results/auto-start-<backend>.json`` is collected.
Ratios are this tree's over the other's, paired within a round.

Writes ``results/auto-start-ab-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402

HERE = Path(__file__).resolve().parents[1]
FIELDS = ("first_search_s", "finder_s", "overfit_and_probes_s", "compile_s", "imports_s")


def one(tree: Path, extra: list[str], backend: str, cold: bool = False) -> dict:
    with tempfile.TemporaryDirectory(prefix="sweepjax-cold-") as tmp:
        env = dict(os.environ)
        if cold:  # JAX's cache and the saved programs (a folder inside it), the widths
            env["SWEEPJAX_COMPILE_CACHE"] = str(Path(tmp) / "xla")
            env["SWEEPJAX_WIDTH_CACHE"] = str(Path(tmp) / "width.json")
        subprocess.run(
            [sys.executable, str(tree / "benchmarks" / "bench_auto_start.py"), *extra],
            check=True,
            capture_output=True,
            env=env,
        )
    row = json.loads((tree / "benchmarks" / "results" / f"auto-start-{backend}.json").read_text())
    return {k: row[k] for k in FIELDS} | {"load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--against", required=True, help="the other checkout")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="empty caches for every run")
    ap.add_argument("--tag", default="", help="results/auto-start-ab-<backend>[-cold]-<tag>.*")
    ap.add_argument("--auto", default="", help="auto's arguments (default: --model mlp)")
    a = ap.parse_args(argv)
    trees = {"this": HERE, "other": Path(a.against).resolve()}
    m = common.machine()
    args = a.auto.split() or ["--model", "mlp"]
    for t in trees.values() if not a.cold else ():  # warm the compile cache
        one(t, args if a.auto else [*args, "--steps", "10"], m["backend"])
    rounds = []
    for r in range(a.reps):
        order = list(trees) if r % 2 == 0 else list(trees)[::-1]
        rounds.append({k: one(trees[k], args, m["backend"], a.cold) for k in order})
    out = {"machine": m, "command": common.command_line(__file__, argv), "trees": {}}
    out["trees"] = {k: str(v) for k, v in trees.items()}
    out["rounds"] = rounds
    ratio = {f: [x["this"][f] / x["other"][f] for x in rounds] for f in FIELDS[:2]}
    out["ratio_median"] = {f: common.median(v) for f, v in ratio.items()}
    rows = [
        [k, i, round(x[k]["load"], 1)] + [round(x[k][f], 1) for f in FIELDS]
        for i, x in enumerate(rounds)
        for k in x
    ]
    md = "\n".join(
        [
            "# auto: seconds to the first search, this checkout against another\n",
            f"Machine: {common.machine_line(m)}.\n",
            f"Reproduce: `{out['command']}` (other: {trees['other']}).\n",
            common.md_table(["tree", "round", "load after", *FIELDS], rows),
            "",
            "This / other, median of the rounds' paired ratios: first search "
            f"{out['ratio_median']['first_search_s']:.2f} "
            f"(each round: {', '.join(f'{v:.2f}' for v in ratio['first_search_s'])}), "
            f"finder {out['ratio_median']['finder_s']:.2f} "
            f"({', '.join(f'{v:.2f}' for v in ratio['finder_s'])}).",
            "",
        ]
    )
    name = f"auto-start-ab-{m['backend']}{'-cold' if a.cold else ''}"
    name += f"-{a.tag}" if a.tag else ""
    common.write_json(common.RESULTS / f"{name}.json", out)
    (common.RESULTS / f"{name}.md").write_text(md)
    print(md)
    return out


if __name__ == "__main__":
    main()
