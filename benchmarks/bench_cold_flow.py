"""The default ``coarse`` then ``fine`` of two checkouts, cold, alternated seed by seed.

    python benchmarks/bench_cold_flow.py --trees OLD_TREE .      # 5 seeds, ~5 min
    python benchmarks/bench_cold_flow.py --trees A B --seeds 0 1 --tag minibatch

Each run is a fresh process (``import sweepjax`` included in its clock) that calls
``sweepjax.coarse(dataset, seed=s)`` then ``sweepjax.fine()`` with a temporary store,
``report=False`` and no compile cache: a user's first run in a notebook. The checkouts
run one after the other for each seed, in alternating order (the first tree first on
even seeds), so drift in the machine's speed falls on both. What differs between the
trees' winners is their code's doing (another minibatch stream gives another, equally
valid, winner): the table shows both.

Writes ``results/cold-flow-<backend>[-<tag>].json`` and ``.md``.
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

ROOT = Path(__file__).resolve().parents[1]

# One run, in the tree that PYTHONPATH names; prints one JSON line.
WORKER = """
import time
t0 = time.perf_counter()
import json, sys, tempfile
from pathlib import Path
import sweepjax
seed, dataset = int(sys.argv[1]), sys.argv[2]
with tempfile.TemporaryDirectory() as tmp:
    store = Path(tmp) / "s.db"
    t1 = time.perf_counter()
    c = sweepjax.coarse(dataset=dataset, seed=seed, store=store, report=False)
    t2 = time.perf_counter()
    f = sweepjax.fine(store=store, report=False)
    t3 = time.perf_counter()
print(json.dumps({
    "wall_s": t3 - t0, "coarse_s": t2 - t1, "fine_s": t3 - t2,
    "coarse_compile_s": c.timing.compile_s, "coarse_train_s": c.timing.train_s,
    "fine_train_s": f.timing.train_s, "refit_s": f.timing.refit_s,
    "val": float(f.winner.val_acc), "refit_test": f.winner.refit_test_acc,
    "module": sweepjax.__file__,
}))
"""


def run(tree: Path, seed: int, dataset: str) -> dict:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    env.pop("SWEEPJAX_COMPILE_CACHE", None)
    with tempfile.TemporaryDirectory() as cwd:  # no tree on the path but PYTHONPATH's
        out = subprocess.run(
            [sys.executable, "-c", WORKER, str(seed), dataset],
            env=env, cwd=cwd, capture_output=True, text=True, check=True,
        )  # fmt: skip
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    assert doc["module"].startswith(str(tree)), (doc["module"], tree)
    return doc


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs=2, required=True, help="the two checkouts: before, after")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--tag", default="")
    args = ap.parse_args(argv)
    trees = [Path(t).resolve() for t in args.trees]
    for t in trees:
        common.installed_bytecode(t)
    rows = []
    for seed in args.seeds:
        order = [0, 1] if seed % 2 == 0 else [1, 0]
        got = {}
        for i in order:
            got[i] = run(trees[i], seed, args.dataset)
            print(f"seed {seed} tree {i}: {got[i]['wall_s']:.1f} s", flush=True)
        rows.append({"seed": seed, "before": got[0], "after": got[1]})
    ratios = [r["after"]["wall_s"] / r["before"]["wall_s"] for r in rows]
    summary = {
        "median_before_s": common.median([r["before"]["wall_s"] for r in rows]),
        "median_after_s": common.median([r["after"]["wall_s"] for r in rows]),
        "median_ratio": common.median(ratios),
        "faster_seeds": sum(x < 1 for x in ratios),
    }
    m = common.machine()
    doc = {
        "machine": m,
        "command": common.command_line(__file__, argv),
        "trees": [str(t) for t in trees],
        "rows": rows,
        "summary": summary,
    }
    name = f"cold-flow-{m['backend']}{'-' + args.tag if args.tag else ''}"
    common.write_json(common.RESULTS / f"{name}.json", doc)

    def cols(r: dict) -> list:
        return [r["wall_s"], r["coarse_compile_s"], r["coarse_train_s"], r["fine_train_s"],
                r["refit_s"], f"{r['val']:.4f}", f"{r['refit_test']:.4f}"]  # fmt: skip

    head = ["wall s", "coarse compile s", "coarse train s", "fine train s", "refit s", "val",
            "refit test"]  # fmt: skip
    table = common.md_table(
        ["seed", "tree", *head],
        [[r["seed"], k, *cols(r[k])] for r in rows for k in ("before", "after")],
    )
    md = [
        "# The default coarse + fine, cold, two trees alternated",
        "",
        f"Machine: {common.machine_line(m)}.",
        "",
        f"Reproduce: `{doc['command']}` (before = the first tree, after = the second).",
        "",
        table,
        "",
        f"- Median wall: {summary['median_before_s']:.1f} s before, "
        f"{summary['median_after_s']:.1f} s after; median per-seed ratio "
        f"x{summary['median_ratio']:.2f}; after faster on {summary['faster_seeds']} of "
        f"{len(rows)} seeds.",
        "",
    ]
    (common.RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return doc


if __name__ == "__main__":
    main()
