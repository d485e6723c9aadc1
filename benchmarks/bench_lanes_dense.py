"""A dense model with the lanes' extra CPU devices present against without, alternated.

    python benchmarks/bench_lanes_dense.py --reps 3   # ~3 min on 2 cores

The command line's process asks JAX for ``min(cpu_count, 8)`` CPU devices (lanes for a
CNN's host-driven steps, docs/performance.md); a dense model must not use them, nor be
slowed by their presence. Each run is ``python -m sweepjax coarse`` (softmax, the
default sweep) on the bundled MNIST sample in its own process, with the lanes on (the
default) or off (``SWEEPJAX_LANES=1``: no extra devices asked for): one untimed run
each first (the compile cache warm for both), then ``--reps`` rounds, the order swapped
every round. Ratios are lanes-on over lanes-off, paired within a round.

Writes ``results/lanes-dense-<backend>.json`` and ``.md``.
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
FIELDS = ("train_s", "compile_s", "eval_s")


def one(lanes: bool, store: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "SWEEPJAX_LANES"}
    env["PYTHONPATH"] = str(ROOT)
    if not lanes:
        env["SWEEPJAX_LANES"] = "1"
    store.unlink(missing_ok=True)
    cmd = [sys.executable, "-m", "sweepjax", "coarse", "--dataset", "mnist-sample"]
    cmd += ["--format", "json", "--no-report", "--store", str(store)]
    t0 = time.perf_counter()
    out = subprocess.run(cmd, env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    timing = json.loads(out.stdout)["timing"]
    return {k: timing[k] for k in FIELDS} | {"wall_s": wall, "load": os.getloadavg()[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--out", type=Path, default=common.RESULTS)
    a = p.parse_args(argv)
    mach = common.machine()
    cmd = common.command_line(__file__, argv)
    runs = {"on": [], "off": []}
    with tempfile.TemporaryDirectory() as tmp:
        store = Path(tmp) / "s.db"
        for lanes in (True, False):  # warm-up: the compile cache for both
            one(lanes, store)
        for r in range(a.reps):
            for which in ("on", "off") if r % 2 == 0 else ("off", "on"):
                runs[which].append(one(which == "on", store))
                print(f"[round {r + 1}/{a.reps}] lanes {which}: {runs[which][-1]}")
    ratio = {
        k: [x[k] / y[k] for x, y in zip(runs["on"], runs["off"], strict=True)]
        for k in ("train_s", "wall_s")
    }
    res = {"machine": mach, "reps": a.reps, "runs": runs, "ratio_on_over_off": ratio}
    name = f"lanes-dense-{mach['backend']}"
    common.write_json(a.out / f"{name}.json", res)
    rows = []
    for k in ("train_s", "wall_s"):
        on = [x[k] for x in runs["on"]]
        off = [x[k] for x in runs["off"]]
        spread = f"{min(ratio[k]):.2f}-{max(ratio[k]):.2f}"
        rows.append([k, common.median(on), common.median(off), common.median(ratio[k]), spread])
    loads = [x["load"] for v in runs.values() for x in v]
    md = [
        f"# A dense model with the lanes' CPU devices present ({mach['backend']})",
        "",
        f"Machine: {common.machine_line(mach)}.",
        "",
        f"Reproduce: `{cmd}`",
        "",
        "`python -m sweepjax coarse --dataset mnist-sample` (softmax, 256 members, the "
        "default schedule) in its own process, with the lanes on (the command line asks "
        "JAX for min(cpu_count, 8) CPU devices) and off (`SWEEPJAX_LANES=1`), "
        f"alternated over {a.reps} rounds after one warm-up each (compile cache warm). "
        "'on / off' is the median of the ratios paired within a round, with their range; "
        f"load average during the runs {min(loads):.1f}-{max(loads):.1f}.",
        "",
        common.md_table(["seconds", "lanes on", "lanes off", "on / off", "range"], rows),
        "",
    ]
    (a.out / f"{name}.md").write_text("\n".join(md))
    print(f"wrote {a.out / name}.json and .md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
