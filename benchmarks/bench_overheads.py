"""What a sweep spends besides training: checkpoints and evaluation, as shares of its time.

    python benchmarks/bench_overheads.py           # ~3 min on 2 cores
    python benchmarks/bench_overheads.py --quick   # smoke run (mnist-sample, tiny)

1. Checkpoints: the Adam MLP with 256 members (the largest state a default-sized sweep
   holds: params, best params and two Adam slots, ~330 MB) trained by ``sweepjax.coarse``
   with the full schedule, so every evaluation block could checkpoint. The flow writes a
   checkpoint only when it is due (``sweep.CHECKPOINT_SHARE``); reported: seconds spent
   writing (copy to host, msgpack, SQLite) over the sweep's wall time.
2. Evaluation: the default ``coarse`` and ``fine`` flows on full Fashion-MNIST; their
   ``timing`` splits training calls (which include the cheap per-block evaluation of the
   validation subset), the whole-validation-set evaluations at decisions and at the end,
   compiling, and checkpoints. The per-block evaluation's own cost is measured by
   training the same population with evaluation at the end only (paired runs).

Writes ``results/overheads-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402
import jax  # noqa: E402
import numpy as np  # noqa: E402

import sweepjax  # noqa: E402
from sweepjax import DataConfig, HParams, ModelConfig, TrainConfig, load_dataset  # noqa: E402
from sweepjax.engine import init_states, train_population  # noqa: E402


def checkpoint_share(dataset: str, trials: int, steps: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = sweepjax.coarse(
            dataset=dataset,
            model="mlp",
            optimizer="adam",
            trials=trials,
            steps=steps,
            lr=(1e-4, 1e-2),
            schedule="full",
            store=Path(d) / "s.db",
            report=False,
        )
        wall = time.perf_counter() - t0
    t = res.timing
    return {
        "write": one_write(trials, dataset),
        "what": f"coarse, Adam MLP (hidden 100), {trials} members x {steps} steps, full schedule",
        "wall_s": wall,
        "train_s": t.train_s,
        "checkpoint_s": t.checkpoint_s,
        "checkpoints": t.checkpoints,
        "share_of_wall": t.checkpoint_s / wall,
        "share_of_train": t.checkpoint_s / t.train_s if t.train_s else None,
    }


def one_write(trials: int, dataset: str) -> dict:
    """The cost of ONE checkpoint write of the same state (256 Adam MLPs): what the
    throttle spaces writes by (at least 19x this apart)."""
    from sweepjax.engine.curves import Checkpoint, Curves, ScheduleState
    from sweepjax.store.db import Store
    from sweepjax.sweep_config import SweepConfig

    ds_cfg = DataConfig(dataset=dataset)
    ds = load_dataset(ds_cfg)
    hp = HParams.create(lr=np.full(trials, 1e-3), l2=1e-4)
    cfg = TrainConfig(optimizer="adam", steps=10)
    states = init_states(ds, hp, ModelConfig("mlp"), cfg)
    nbytes = sum(a.nbytes for a in jax.tree.leaves(states))
    ckpt = Checkpoint(10, states, Curves.empty(trials), ScheduleState.start(hp))
    with tempfile.TemporaryDirectory() as d, Store.open(Path(d) / "s.db", create=True) as st:
        run = SweepConfig("coarse", ds_cfg, ModelConfig("mlp"), cfg, sweepjax.SearchSpace(), trials)
        sid = st.create_sweep("coarse", run, {}, {}, trials, 10)
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            st.save_checkpoint(sid, ckpt)
            times.append(time.perf_counter() - t0)
    return {"state_mb": nbytes / 2**20, "write_s": common.median(times), "writes_s": times}


def eval_share(ds, members: int, steps: int, reps: int) -> dict:
    """Per-block evaluation's share of training time: the same population and steps with
    the default evaluation schedule and with one evaluation at the end, interleaved."""
    rng = np.random.default_rng(0)
    hp = HParams.create(
        lr=10 ** rng.uniform(-3, -0.5, members), l2=10 ** rng.uniform(-6, -2, members)
    )
    times = {"default": [], "end_only": []}
    for rep in range(reps + 1):
        for name, every in (("default", None), ("end_only", steps)):
            cfg = TrainConfig(steps=steps, batch_size=256, eval_every=every, chunk_steps=steps)
            r = train_population(ds, hp, ModelConfig(), cfg)
            if rep:  # the first repetition compiles
                times[name].append(r.timing.train_s)
    shares = [1 - e / d for d, e in zip(times["default"], times["end_only"], strict=True)]
    return {
        "what": f"softmax, {members} members x {steps} steps (the default coarse's size)",
        "evaluations": round(steps / TrainConfig(steps=steps).resolved_eval_every),
        "val_rows": min(TrainConfig().val_subset, int(ds.x_val.shape[0])),
        "train_s_default": common.median(times["default"]),
        "train_s_end_only": common.median(times["end_only"]),
        "share": common.median(shares),
        "reps": reps,
    }


def flow_split(dataset: str, quick: bool) -> list[dict]:
    """The default coarse -> fine flow's own timing split."""
    out = []
    with tempfile.TemporaryDirectory() as d:
        kw = {"trials": 16, "steps": 60} if quick else {}
        for kind, fn, args in (
            ("coarse", sweepjax.coarse, {"dataset": dataset, **kw}),
            ("fine", sweepjax.fine, {}),
        ):
            t0 = time.perf_counter()
            res = fn(store=Path(d) / "s.db", report=False, **args)
            wall = time.perf_counter() - t0
            t = res.timing
            out.append(
                {
                    "stage": kind,
                    "schedule": res.config.schedule.name,
                    "wall_s": wall,
                    "compile_s": t.compile_s,
                    "train_s": t.train_s,
                    "eval_s": t.eval_s,
                    "checkpoint_s": t.checkpoint_s,
                    "val_acc": res.winner.val_acc,
                    "test_acc": res.winner.test_acc,
                }
            )
    return out


def markdown(res: dict) -> str:
    c, e = res["checkpoint"], res["evaluation"]
    lines = [
        f"# Overheads ({res['machine']['backend']})",
        "",
        f"Machine: {common.machine_line(res['machine'])}",
        "",
        f"Reproduce: `{res['command']}`",
        "",
        "## Checkpoints",
        "",
        f"{c['what']}: **{100 * c['share_of_wall']:.1f}%** of the sweep's wall time "
        f"({c['checkpoints']} checkpoint(s), {c['checkpoint_s']:.2f} s writing of "
        f"{c['wall_s']:.1f} s; {100 * (c['share_of_train'] or 0):.1f}% of its training calls' "
        f"time). Target: at most about 5%. One write of this {c['write']['state_mb']:.0f} MB "
        f"state costs {c['write']['write_s']:.2f} s (median of 3: copy, msgpack, SQLite); "
        "a checkpoint is written only once the time since the last one is at least 19x "
        "what the last write cost (the first one estimated from the state's size at "
        "80 MB/s), so writes take at most 5% of any run, a run shorter than that gap "
        "writes none, and a crash loses at most about "
        f"{19 * c['write']['write_s']:.0f} s of work.",
        "",
        "## Evaluation",
        "",
        f"{e['what']}, {e['evaluations']} evaluations of a {e['val_rows']}-row validation "
        "subset (training accuracy comes free from the minibatches): "
        f"**{100 * e['share']:.1f}%** of the training time "
        f"(median of {e['reps']} paired runs: {e['train_s_default']:.2f} s with, "
        f"{e['train_s_end_only']:.2f} s with one evaluation at the end). Target: at most 10%.",
        "",
        "## The default flow's time",
        "",
        common.md_table(
            [
                "stage",
                "schedule",
                "wall s",
                "compile s",
                "train s",
                "whole-set eval s",
                "checkpoint s",
                "val acc",
                "test acc",
            ],
            [
                [
                    f["stage"],
                    f["schedule"],
                    f"{f['wall_s']:.1f}",
                    f"{f['compile_s']:.1f}",
                    f"{f['train_s']:.1f}",
                    f"{f['eval_s']:.1f}",
                    f"{f['checkpoint_s']:.2f}",
                    f"{f['val_acc']:.4f}",
                    f"{f['test_acc']:.4f}",
                ]
                for f in res["flow"]
            ],
        ),
        "",
        "Wall time includes data loading, initialisation, the winner's test accuracy and "
        "store writes; 'train s' includes the per-block subset evaluations.",
    ]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = ap.parse_args(argv)
    dataset = "mnist-sample" if args.quick else "fashion-mnist"
    ds = load_dataset(DataConfig(dataset=dataset))
    res = {
        "machine": common.machine(),
        "command": common.command_line(__file__, argv),
        "checkpoint": checkpoint_share(
            dataset, 32 if args.quick else 256, 60 if args.quick else 400
        ),
        "evaluation": eval_share(
            ds, 32 if args.quick else 256, 60 if args.quick else 300, 1 if args.quick else 3
        ),
        "flow": flow_split(dataset, args.quick),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = f"overheads-{jax.default_backend()}" + ("-quick" if args.quick else "")
    common.write_json(out / f"{name}.json", res)
    (out / f"{name}.md").write_text(markdown(res))
    print(markdown(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
