"""How many members a ``fine`` round needs: the same parent refined with N and N/2 members.

    python benchmarks/bench_fine_trials.py                     # softmax, 10 seeds, ~6 min
    python benchmarks/bench_fine_trials.py --model mlp --dataset mnist-sample \\
        --coarse-steps 100 --seeds 0 1 2 3 4                   # ~12 min on 2 cores
    python benchmarks/bench_fine_trials.py --quick             # smoke run

Per seed: one default ``coarse`` (``--model``, ``--dataset``, that seed), then ``fine``
from it once per ``--trials`` value (order alternated between seeds), in one process with
the persistent compile cache on and filled by an untimed first seed, as a user's second
run finds it. A fine round's members are drawn from the parent's response surface in a
fixed stream, so the smaller round's members are the first of the larger's: the
comparison is paired twice over (same parent, same first members).

Reports per trials value: the fine call's wall (planning, training, evaluation, the
refit), its training and refit seconds, the winner's validation accuracy, and the
refit's test accuracy (the model the flow hands over, scored once on the 10,000-row test
set); and paired against the largest value: how often the winner is the same member, the
median wall ratio, and the mean difference in validation accuracy (in units of its SE)
and in refit test accuracy with the SE of that mean over seeds.

Writes ``results/fine-trials-<model>-<backend>.{json,md}``.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402


def fine_row(fine, store: Path, parent: str, trials: int) -> dict:
    t0 = time.perf_counter()
    res = fine(store=store, parent=parent, trials=trials, report=False)
    wall = time.perf_counter() - t0
    w = res.winner
    return {
        "trials": trials,
        "wall_s": wall,
        "train_s": res.timing.train_s,
        "refit_s": res.timing.refit_s,
        "winner": int(w.id),
        "val_acc": float(w.val_acc),
        "val_se": float(w.val_acc_se),
        "test_acc": None if w.test_acc is None else float(w.test_acc),
        "refit_test_acc": None if w.refit_test_acc is None else float(w.refit_test_acc),
        "lr": float(w.lr),
        "l2": float(w.l2),
    }


def run(a) -> list[dict]:
    import sweepjax
    from sweepjax.engine import compile_cache

    rows = []
    with tempfile.TemporaryDirectory(prefix="sweepjax-ft-") as tmp:
        compile_cache.enable(Path(tmp) / "xla")
        kw = {"dataset": a.dataset, "model": a.model, "report": False}
        if a.coarse_steps:
            kw["steps"] = a.coarse_steps
        if a.quick:
            kw.update(trials=32, steps=40)
        seeds = [a.fill_seed, *a.seeds]
        for i, seed in enumerate(seeds):
            store = Path(tmp) / f"s{seed}.db"
            parent = sweepjax.coarse(seed=seed, store=store, **kw)
            order = a.trials if i % 2 == 0 else a.trials[::-1]
            runs = {t: fine_row(sweepjax.fine, store, parent.sweep_id, t) for t in order}
            if i == 0:  # the untimed fill of the compile cache
                continue
            row = {"seed": seed, "parent_val": float(parent.winner.val_acc), "runs": runs}
            row["load_avg"] = list(os.getloadavg())
            rows.append(row)
            line = ", ".join(
                f"{t}: {r['val_acc']:.4f} / {r['refit_test_acc'] or math.nan:.4f} "
                f"in {r['wall_s']:.1f}s" for t, r in sorted(runs.items())
            )  # fmt: skip
            print(f"seed {seed}: {line}", file=sys.stderr, flush=True)
    return rows


def mean_se(xs: list[float]) -> tuple[float, float]:
    m = statistics.fmean(xs)
    se = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else math.nan
    return m, se


def summary(rows: list[dict], trials: list[int]) -> dict:
    big = max(trials)
    out = {}
    for t in sorted(trials, reverse=True):
        rs = [r["runs"][t] for r in rows]
        base = [r["runs"][big] for r in rows]
        s = {k: common.median([x[k] for x in rs]) for k in ("wall_s", "train_s", "refit_s")}
        s["val_acc_mean"] = statistics.fmean(x["val_acc"] for x in rs)
        tests = [x["refit_test_acc"] for x in rs if x["refit_test_acc"] is not None]
        s["refit_test_mean"] = statistics.fmean(tests) if tests else None
        if t != big:
            pairs = list(zip(rs, base, strict=True))
            s["same_winner"] = sum(x["winner"] == b["winner"] for x, b in pairs)
            s["wall_ratio_median"] = common.median([x["wall_s"] / b["wall_s"] for x, b in pairs])
            dv = [(x["val_acc"] - b["val_acc"]) / b["val_se"] for x, b in pairs]
            s["val_diff_se_mean"], s["val_diff_se_se"] = mean_se(dv)
            dt = [
                x["refit_test_acc"] - b["refit_test_acc"]
                for x, b in pairs
                if x["refit_test_acc"] is not None and b["refit_test_acc"] is not None
            ]
            s["refit_test_diff_mean"], s["refit_test_diff_se"] = mean_se(dt) if dt else (None,) * 2
        out[str(t)] = s
    return out


def markdown(out: dict) -> str:
    a, trials, summ = out["args"], out["args"]["trials"], out["summary"]
    big = max(trials)
    lines = [
        f"# How many members a fine round needs ({out['machine']['backend']})",
        "",
        f"Machine: {common.machine_line(out['machine'])}; load average at end "
        f"{out['load_avg_at_end'][0]:.2f}.",
        "",
        f"Reproduce: `{out['command']}`",
        "",
        f"{a['model']} on {a['dataset']}: per seed one default coarse"
        + (f" of {a['coarse_steps']} steps" if a["coarse_steps"] else "")
        + f", then fine from it with each of {', '.join(map(str, trials))} members (the "
        "smaller round's members are the first of the larger's); one process, compile "
        "cache warm. Wall: the fine call (planning, training, evaluation, refit).",
        "",
    ]
    header = ["seed", "parent val"]
    for t in trials:
        header += [f"{t}: wall s", f"{t}: winner val", f"{t}: refit test"]
    body = []
    for r in out["rows"]:
        cells = [r["seed"], f"{r['parent_val']:.4f}"]
        for t in trials:
            x = r["runs"][str(t)] if str(t) in r["runs"] else r["runs"][t]
            rt = x["refit_test_acc"]
            rt = "-" if rt is None else f"{rt:.4f}"
            cells += [f"{x['wall_s']:.1f}", f"{x['val_acc']:.4f}", rt]
        body.append(cells)
    lines += [common.md_table(header, body), ""]
    for t in trials:
        s = summ[str(t)]
        rt = s["refit_test_mean"]
        line = (
            f"- {t} members: median wall {s['wall_s']:.1f} s (training {s['train_s']:.1f} s, "
            f"refit {s['refit_s']:.1f} s); mean winner val {s['val_acc_mean']:.4f}, mean refit "
            f"test {'-' if rt is None else f'{rt:.4f}'}"
        )
        if t != big:
            n = len(out["rows"])
            d = s["refit_test_diff_mean"]
            line += (
                f". Against {big}: the same winner on {s['same_winner']} of {n} seeds; wall "
                f"x{s['wall_ratio_median']:.2f} (median of paired ratios); winner val "
                f"{s['val_diff_se_mean']:+.2f} +/- {s['val_diff_se_se']:.2f} SE (mean over "
                "seeds of the paired difference in units of the winner's SE, +/- its SE)"
            )
            if d is not None:
                line += f"; refit test {d:+.4f} +/- {s['refit_test_diff_se']:.4f}"
        lines.append(line + ".")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="softmax")
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(range(10)))
    ap.add_argument("--fill-seed", type=int, default=99, help="the untimed first seed")
    ap.add_argument("--trials", type=int, nargs="+", default=[256, 128])
    ap.add_argument("--coarse-steps", type=int, default=None)
    ap.add_argument("--quick", action="store_true", help="toy sizes: a smoke run")
    ap.add_argument("--out", default=str(common.RESULTS))
    a = ap.parse_args(argv)
    m = common.machine()
    rows = run(a)
    out = {
        "machine": m,
        "command": common.command_line(__file__, argv),
        "args": {k: getattr(a, k) for k in ("model", "dataset", "seeds", "trials", "coarse_steps")},
        "rows": rows,
        "summary": summary(rows, a.trials),
        "load_avg_at_end": list(os.getloadavg()),
    }
    stem = Path(a.out) / f"fine-trials-{a.model}-{m['backend']}"
    common.write_json(stem.with_suffix(".json"), out)
    stem.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))
    return out


if __name__ == "__main__":
    main()
