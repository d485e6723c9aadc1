"""`--schedule halving` against `--schedule full`: wall time and the winner, same process.

    python benchmarks/bench_halving.py                 # ~4-6 min on 2 shared cores
    python benchmarks/bench_halving.py --reps 1 --trials 16 --steps 90 --dataset mnist-sample
    python benchmarks/bench_halving.py --tree OLD_CHECKOUT --tag before

``coarse(dataset=..., trials=128, steps=1000, schedule=...)`` through the public API,
full and halving alternated in one process (the order swapped every repetition), the
process's compiled programs dropped before each call so each pays its compiles as a
fresh process would. Wall is the call's (data loading from the prepared-data cache,
compiling, training, evaluation, result building; not the imports). Two workers, each a
process of its own: ``cold`` (no persistent compile cache: every program compiles) and
``warm`` (the persistent cache on, filled by one untimed call of each schedule first: a
program is loaded, as the CLI's second run loads it). The ratio is halving's wall over
full's, paired within a repetition; its median and range are reported with the load
average around each worker.

Writes ``results/halving-<backend>.json`` and ``.md``.
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

SCHEDULES = ("full", "halving")


def one(schedule: str, a, store: Path) -> dict:
    """One ``coarse`` call of ``schedule`` with the process's programs dropped first."""
    import sweepjax
    from sweepjax.engine import program

    program.clear_cache()
    t0 = time.perf_counter()
    res = sweepjax.coarse(
        dataset=a.dataset, trials=a.trials, steps=a.steps, schedule=schedule,
        report=False, store=str(store),
    )  # fmt: skip
    wall = time.perf_counter() - t0
    t = res.timing
    return {
        "schedule": schedule,
        "wall_s": wall,
        "compile_s": t.compile_s,
        "train_s": t.train_s,
        "eval_s": t.eval_s,
        "checkpoint_s": t.checkpoint_s,
        "val_acc": float(res.winner.val_acc),
        "winner": int(res.winner.id),
    }


def worker(a) -> dict:
    """Every repetition of both schedules in this process (``a.worker``: cold or warm)."""
    sys.path.insert(0, a.tree)  # the checkout whose sweepjax runs
    with tempfile.TemporaryDirectory() as d:
        if a.worker == "warm":
            from sweepjax.engine import compile_cache

            compile_cache.enable(Path(d) / "xla")
            for s in SCHEDULES:  # fill the cache; untimed
                one(s, a, Path(d) / f"fill-{s}.db")
        reps = []
        for r in range(a.reps):
            order = SCHEDULES if r % 2 == 0 else SCHEDULES[::-1]
            runs = {s: one(s, a, Path(d) / f"{r}-{s}.db") for s in order}
            runs["ratio"] = runs["halving"]["wall_s"] / runs["full"]["wall_s"]
            runs["load_avg"] = list(os.getloadavg())
            reps.append(runs)
            print(f"{a.worker} rep {r}: ratio {runs['ratio']:.3f}", file=sys.stderr, flush=True)
    return {"reps": reps}


def summary(reps: list[dict]) -> dict:
    ratios = [r["ratio"] for r in reps]
    out = {"ratio_median": common.median(ratios), "ratio_min": min(ratios)}
    out["ratio_max"] = max(ratios)
    for s in SCHEDULES:
        for k in ("wall_s", "compile_s", "train_s", "eval_s"):
            out[f"{s}_{k}"] = common.median([r[s][k] for r in reps])
        out[f"{s}_val_acc"] = [r[s]["val_acc"] for r in reps]
    out["winner_gap"] = max(abs(r["halving"]["val_acc"] - r["full"]["val_acc"]) for r in reps)
    return out


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--trials", type=int, default=128)
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--modes", default="cold,warm")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    ap.add_argument("--tree", default=str(common.RESULTS.parents[1]), help="the checkout to run")
    ap.add_argument("--worker", default="", help=argparse.SUPPRESS)
    ap.add_argument("--result", default="", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        Path(a.result).write_text(json.dumps(worker(a)))
        return {}
    m = common.machine()
    out = {"machine": m, "command": common.command_line(__file__, argv), "tree": a.tree}
    out["modes"] = {}
    base = [f"--{k}={getattr(a, k)}" for k in ("dataset", "trials", "steps", "reps", "tree")]
    for mode in a.modes.split(","):
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            before = list(os.getloadavg())
            cmd = [sys.executable, __file__, *base, f"--worker={mode}", f"--result={f.name}"]
            subprocess.run(cmd, check=True, env=dict(os.environ, SWEEPJAX_COMPILE_CACHE="0"))
            reps = json.loads(Path(f.name).read_text())["reps"]
        out["modes"][mode] = {"load_avg_before": before, "reps": reps, **summary(reps)}
        out["modes"][mode]["load_avg_after"] = list(os.getloadavg())
    name = f"halving-{m['backend']}{'-' + a.tag if a.tag else ''}"
    common.write_json(common.RESULTS / f"{name}.json", out)
    md = render(out, a)
    (common.RESULTS / f"{name}.md").write_text(md)
    print(md)
    return out


def render(out: dict, a) -> str:
    rows = []
    for mode, r in out["modes"].items():
        load = f"{r['load_avg_before'][0]:.1f}-{r['load_avg_after'][0]:.1f}"
        rows.append(
            [mode, len(r["reps"]), load, r["full_wall_s"], r["halving_wall_s"]]
            + [f"{r['ratio_median']:.2f} [{r['ratio_min']:.2f}, {r['ratio_max']:.2f}]"]
            + [r["full_compile_s"], r["halving_compile_s"], r["full_train_s"], r["halving_train_s"]]
            + [r["full_eval_s"], r["halving_eval_s"], f"{r['winner_gap']:.4f}"]
        )
    header = ["cache", "reps", "load avg", "full wall s", "halving wall s", "ratio median [range]"]
    header += ["compile s full", "halving", "train s full", "halving", "eval s full", "halving"]
    header += ["winner val gap"]
    return "\n".join(
        [
            f"# Halving against full: {a.trials} members x {a.steps} steps on {a.dataset}\n",
            f"Machine: {common.machine_line(out['machine'])}.\n",
            f"Reproduce: `{out['command']}`.\n",
            "Wall of one `coarse` call (data from the prepared-data cache, compiling, "
            "training, evaluation, results; not the imports), medians over the repetitions; "
            "the ratio is halving / full paired within each repetition, order alternated.\n",
            common.md_table(header, rows),
            "",
        ]
    )


if __name__ == "__main__":
    main()
