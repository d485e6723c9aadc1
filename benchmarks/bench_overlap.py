"""Blocks queued ahead against one block at a time: the host's gap per block.

    python benchmarks/bench_overlap.py                  # ~1-2 min on 2 shared cores
    python benchmarks/bench_overlap.py --members 16 --steps 200 --dataset mnist-sample

``train_population`` (``full``, softmax, batch 256) with short evaluation blocks,
alternated in one process: with an ``on_chunk`` callback that does nothing (the loop
then copies each block's metrics to the host before it dispatches the next block, as
the flows' progress callbacks make it) and without one (the next block is queued
first: engine/overlap.py). Per run: wall of the call, ``Timing.train_s``, the blocks,
and ``Timing.host_gap_s / gaps``: the seconds per block the device had nothing queued
(a block's metrics on the host until the next dispatch). Programs are compiled before
the timed runs. Medians of ``--reps`` repetitions, order alternated.

Writes ``results/overlap-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402
import numpy as np  # noqa: E402


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="fashion-mnist")
    ap.add_argument("--members", type=int, default=64)
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--block", type=int, default=5, help="steps per evaluation block")
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    import sweepjax
    from sweepjax.config import DataConfig, ModelConfig, TrainConfig
    from sweepjax.engine import train_population
    from sweepjax.engine.hparams import HParams

    ds = sweepjax.load_dataset(DataConfig(dataset=a.dataset, seed=0))
    hp = HParams.create(lr=np.geomspace(1e-3, 1.0, a.members), l2=1e-4)
    cfg = TrainConfig(steps=a.steps, eval_every=a.block, chunk_steps=a.steps)
    modes = {"one block at a time": lambda r: True, "queued ahead": None}

    def run(on_chunk) -> dict:
        t0 = time.perf_counter()
        res = train_population(ds, hp, ModelConfig(kind="softmax"), cfg, on_chunk=on_chunk)
        t = res.timing
        return {
            "wall_s": time.perf_counter() - t0,
            "train_s": t.train_s,
            "block_ms": 1e3 * t.train_s / (a.steps // a.block),
            "host_gap_ms": 1e3 * t.host_gap_s / max(t.gaps, 1),
            "gaps": t.gaps,
        }

    run(None)  # compile
    m = common.machine()
    out = {"machine": m, "command": common.command_line(__file__, argv), "runs": []}
    for r in range(a.reps):
        order = list(modes) if r % 2 == 0 else list(modes)[::-1]
        out["runs"].append({k: run(modes[k]) for k in order} | {"load": os.getloadavg()[0]})
    out["load_avg_at_end"] = list(os.getloadavg())
    rows = []
    for k in modes:
        med = {f: common.median([r[k][f] for r in out["runs"]]) for f in out["runs"][0][k]}
        out[k] = med
        rows.append([k, med["wall_s"], med["train_s"], med["block_ms"], med["host_gap_ms"]])
    out["wall_ratio"] = common.median(
        [r["queued ahead"]["wall_s"] / r["one block at a time"]["wall_s"] for r in out["runs"]]
    )
    name = f"overlap-{m['backend']}"
    common.write_json(common.RESULTS / f"{name}.json", out)
    loads = ", ".join(f"{r['load']:.1f}" for r in out["runs"])
    md = "\n".join(
        [
            f"# Blocks queued ahead: {a.members} softmax members, {a.steps} steps in "
            f"blocks of {a.block} on {a.dataset}\n",
            f"Machine: {common.machine_line(m)}; load average after each repetition {loads}.\n",
            f"Reproduce: `{out['command']}`.\n",
            "Medians of the repetitions (order alternated). Host gap: seconds per block "
            "from a block's metrics on the host to the next block's dispatch (the device "
            "idle); block: `train_s` per block.\n",
            common.md_table(["order", "wall s", "train s", "block ms", "host gap ms"], rows),
            "",
            f"Queued ahead / one at a time, wall (median of paired ratios): "
            f"{out['wall_ratio']:.3f}.",
            "",
        ]
    )
    (common.RESULTS / f"{name}.md").write_text(md)
    print(md)
    return out


if __name__ == "__main__":
    main()
