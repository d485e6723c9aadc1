"""The default ``coarse`` then ``fine`` on Fashion-MNIST: how much of the wall is training.

    python benchmarks/bench_fixed_costs.py                  # ~2-4 min on 2 cores
    python benchmarks/bench_fixed_costs.py --tree OLD_TREE  # the same, for another checkout
    python benchmarks/bench_fixed_costs.py --report         # the HTML reports written too

Each command runs as its own process (``python -m sweepjax ...``), as a user runs it,
twice: cold (empty compile and prepared-data caches) and warm (the caches the cold run
filled, a new store), with the tree's bytecode compiled as an installed package has it
(:func:`common.installed_bytecode`). Wall is the processes' whole time, imports
included; training is what the sweeps' JSON reports as ``timing.train_s`` (the training
calls, the per-block evaluation of the validation subset inside them) plus
``timing.refit_s`` (the winner's retraining on train + validation, where the tree reports
it). Outside = 1 - training / wall.

``--report`` drops ``--no-report`` (each command writes its HTML report, as a user's
run does by default); its rows go to their own files (``-report`` in the name).

Writes ``results/fixed-costs-<backend>.json`` and ``.md`` (``--tag`` names a variant).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def run_cli(args: list[str], env: dict, report: bool = False) -> tuple[float, dict]:
    """``(wall seconds, JSON document)`` of one ``python -m sweepjax`` process, run in
    ``env["PYTHONPATH"]`` (``-m`` puts the working directory first on the path); with
    ``report`` the process writes its HTML report as well."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "sweepjax", *args, "--format", "json"]
        + ([] if report else ["--no-report"]),
        env=env,
        cwd=env["PYTHONPATH"],
        capture_output=True,
        text=True,
        check=True,
    )
    return time.perf_counter() - t0, json.loads(out.stdout)


def flow(dataset: str, env: dict, store: Path, extra: list[str], report: bool) -> dict:
    """Coarse then fine (the defaults) in one store: wall, training and outside share."""
    rows = {}
    for cmd in (["coarse", "--dataset", dataset, *extra], ["fine"]):
        wall, doc = run_cli([*cmd, "--store", str(store)], env, report)
        t = doc["timing"]
        rows[cmd[0]] = {
            "wall_s": wall,
            "train_s": t["train_s"],
            "refit_s": t.get("refit_s"),  # absent where the tree does not report it
            "compile_s": t["compile_s"],
            "eval_s": t["eval_s"],
            "val_acc": doc["winner"]["val_acc"],
        }
    wall = sum(r["wall_s"] for r in rows.values())
    train = sum(r["train_s"] + (r["refit_s"] or 0.0) for r in rows.values())
    return {**rows, "wall_s": wall, "training_s": train, "outside_share": 1 - train / wall}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--tree", default=str(ROOT), help="the checkout whose sweepjax runs")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--extra", nargs="*", default=[], help="more coarse flags")
    ap.add_argument("--report", action="store_true", help="write the HTML reports too")
    a = ap.parse_args(argv)
    m = common.machine()
    common.installed_bytecode(a.tree)
    out = {"machine": m, "command": common.command_line(__file__, argv), "tree": a.tree}
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, PYTHONPATH=a.tree)
        env.update(SWEEPJAX_COMPILE_CACHE=f"{d}/xla", SWEEPJAX_DATA_CACHE=f"{d}/prepared")
        for kind in ("cold", "warm"):
            out[kind] = flow(a.dataset, env, Path(d) / f"{kind}.db", a.extra, a.report)
            out[kind]["load_avg_after"] = list(os.getloadavg())
    out["load_avg_at_end"] = list(os.getloadavg())
    backend = m["backend"]
    out["report"] = a.report
    name = f"fixed-costs-{backend}{'-report' if a.report else ''}{'-' + a.tag if a.tag else ''}"
    common.write_json(common.RESULTS / f"{name}.json", out)
    rows = [
        [kind, c, out[kind][c]["wall_s"], out[kind][c]["train_s"], out[kind][c]["refit_s"] or 0.0]
        + [out[kind][c]["compile_s"], out[kind][c]["eval_s"]]
        for kind in ("cold", "warm")
        for c in ("coarse", "fine")
    ]
    md = [
        f"# Fixed costs: default coarse + fine on {a.dataset}"
        f"{' (HTML reports written)' if a.report else ' (--no-report)'}\n",
        f"Machine: {common.machine_line(m)}; load average at end "
        f"{out['load_avg_at_end'][0]:.2f}.\n",
        f"Reproduce: `{out['command']}` (tree {a.tree}).\n",
        common.md_table(
            ["cache", "command", "wall s", "train s", "refit s", "compile s", "eval s"], rows
        ),
        "",
        "| cache | wall s | training s | outside training |",
        "|---|---|---|---|",
        *(
            f"| {k} | {out[k]['wall_s']:.1f} | {out[k]['training_s']:.1f} | "
            f"{out[k]['outside_share']:.0%} |"
            for k in ("cold", "warm")
        ),
        "",
    ]
    (common.RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return out


if __name__ == "__main__":
    main()
