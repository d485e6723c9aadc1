"""Throughput on an accelerator: sweepjax's population against the same engine run one
member after another, and against the device's own float32 matmul rate.

    bash benchmarks/gpu_check.sh                               # on the GPU machine
    SWEEPJAX_GPU_CHECK_QUICK=1 bash benchmarks/gpu_check.sh    # tiny sizes, any machine

Synthetic data of MNIST's shape (60,000 x 784, 10 classes) is generated with
``jax.random``, so no data files are needed. Every population size runs in chunks under
a time budget (``on_chunk`` stops it), so no size can overrun; results are written after
every size, so a run cut short still leaves valid JSON in ``$OUT``.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import jax  # noqa: E402

# True float32 matmuls by default (GPUs otherwise use TF32 in float32 matmuls); set
# SWEEPJAX_GPU_PRECISION=default to measure the TF32 path instead.
PRECISION = os.environ.get("SWEEPJAX_GPU_PRECISION", "highest")

import common  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from sweepjax import HParams, ModelConfig, TrainConfig  # noqa: E402
from sweepjax.data.dataset import Dataset, DatasetInfo  # noqa: E402
from sweepjax.engine import train_population  # noqa: E402

BATCH = 256
N_TRAIN, D, K = 60000, 784, 10
EVAL_ROWS = 256


def synthetic_mnist(n_train: int = N_TRAIN, d: int = D, k: int = K, seed: int = 0) -> Dataset:
    """Unit-scale Gaussian images labelled by a random linear teacher (learnable, so the
    members do real work), generated on the device and handed over as a ``Dataset``."""
    kx, kt, kv, kn = jax.random.split(jax.random.key(seed), 4)
    teacher = jax.random.normal(kt, (d, k))

    @functools.partial(jax.jit, static_argnums=1)
    def make(key, n):
        x = jax.random.normal(key, (n, d), jnp.float32)
        noise = jax.random.normal(jax.random.fold_in(key, 1), (n, k))
        return x, jnp.argmax(x @ teacher + 3.0 * noise, -1).astype(jnp.int32)

    xtr, ytr = jax.device_get(make(kx, n_train))
    xv, yv = jax.device_get(make(kv, EVAL_ROWS))
    xte, yte = jax.device_get(make(kn, EVAL_ROWS))
    info = DatasetInfo(
        "synthetic-mnist-shape",
        "synthetic",
        "jax.random",
        n_train,
        EVAL_ROWS,
        EVAL_ROWS,
        k,
        (28, 28) if d == 784 else (d,),
        "synthetic",
    )
    return Dataset(
        xtr, ytr, xv, yv, xte, yte, np.zeros(d, np.float32), 1.0, info, xtr[:36].reshape(36, -1)
    )


def population(m: int, seed: int = 0) -> HParams:
    rng = np.random.default_rng(seed)
    return HParams.create(
        lr=np.exp(rng.uniform(np.log(1e-3), np.log(0.3), m)),
        l2=np.exp(rng.uniform(np.log(1e-6), np.log(1e-2), m)),
    )


def chunk_steps_for(m: int, quick: bool) -> int:
    """Steps per compiled call: long chunks for small populations (host work between
    chunks is then negligible), short ones for big ones (the time budget is checked
    between chunks)."""
    if quick:
        return 20
    return int(min(2000, max(200, round(2e5 / m / 50) * 50)))


def memory_budget_mb() -> int:
    """Half of the device's memory for one program (TrainConfig's default otherwise)."""
    try:
        limit = jax.devices()[0].memory_stats()["bytes_limit"]
        return max(2048, int(limit / 2**20 / 2))
    except (KeyError, TypeError, AttributeError, RuntimeError):
        return 2048


def timed_population(
    ds, m: int, chunk: int, run_s: float, cap_s: float, budget_mb: int, member_ids=None, hp=None
) -> dict:
    """Train ``m`` members chunk after chunk until ``run_s`` seconds of chunks have run
    after the first one (or ``cap_s`` in all), then stop at the chunk boundary."""
    hp = population(m) if hp is None else hp
    cfg = TrainConfig(
        steps=chunk * 10_000,
        batch_size=BATCH,
        eval_every=chunk,
        chunk_steps=chunk,
        eval_batch_size=EVAL_ROWS,
        memory_budget_mb=budget_mb,
    )
    marks = []

    def on_chunk(r):
        marks.append(r.elapsed_s)
        return not (marks[-1] - marks[0] >= run_s or marks[-1] >= cap_s)

    t0 = time.perf_counter()
    res = train_population(ds, hp, ModelConfig(), cfg, on_chunk=on_chunk, member_ids=member_ids)
    steps = res.checkpoint.step
    return {
        "members": m,
        "steps": steps,
        "chunk_steps": chunk,
        "chunks": len(marks),
        "compile_s": res.timing.compile_s,
        "train_s": res.timing.train_s,
        "wall_s": time.perf_counter() - t0,
        "model_steps_per_s": m * steps / res.timing.train_s,
        "num_groups": res.timing.num_groups,
        "group_size": res.timing.group_size,
        "alive": int(res.alive.sum()),
    }


def matmul_rates(n: int) -> dict:
    """Square ``[n, n] @ [n, n]`` float32 GFLOP/s at full float32 and at the default
    precision (TF32 on recent NVIDIA GPUs)."""
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (n, n), jnp.float32)
    b = jax.random.normal(k2, (n, n), jnp.float32)
    out = {"n": n}
    for name, prec in (
        ("highest", jax.lax.Precision.HIGHEST),
        ("default", jax.lax.Precision.DEFAULT),
    ):
        f = jax.jit(lambda a, b, p=prec: jnp.matmul(a, b, precision=p))
        out[f"{name}_gflops"] = 2 * n**3 / common.median(common.time_jitted(f, a, b, reps=10)) / 1e9
    return out


def run(out_dir: Path, quick: bool, deadline_s: float) -> dict:
    t_start = time.perf_counter()
    sizes = [1, 8, 32] if quick else [1, 64, 256, 1024, 4096, 16384, 65536]
    run_s = 0.3 if quick else 3.0
    cap_s = 20.0 if quick else 45.0
    n_seq = 2 if quick else 8
    mach = common.machine()
    mach["gpu"] = common.gpu_name()
    precision = jax.config.jax_default_matmul_precision or "default"
    mach["precision"] = precision
    budget = memory_budget_mb()
    res = {
        "machine": mach,
        "quick": quick,
        "precision": precision,
        "settings": {
            "n_train": N_TRAIN if not quick else 2000,
            "features": D,
            "classes": K,
            "batch_size": BATCH,
            "eval_rows": EVAL_ROWS,
            "memory_budget_mb": budget,
            "run_s_per_size": run_s,
            "flops_per_member_step": 4 * BATCH * D * K,
        },
        "rows": [],
        "status": "running",
    }
    path = out_dir / ("gpu-check-quick.json" if quick else "gpu-check.json")

    def save():
        res["elapsed_s"] = time.perf_counter() - t_start
        common.write_json(path, res)

    def left():
        return deadline_s - (time.perf_counter() - t_start)

    print(
        f"device: {mach.get('gpu') or mach['device']} ({mach['backend']}), "
        f"precision {precision}, memory budget {budget} MB",
        flush=True,
    )
    ds = synthetic_mnist(n_train=res["settings"]["n_train"])
    mm = matmul_rates(1024 if quick else 8192)
    res["matmul"] = mm
    peak = mm["highest_gflops"] if precision == "highest" else mm["default_gflops"]
    print(
        f"square matmul {mm['n']}^2: {mm['highest_gflops']:,.0f} GFLOP/s (float32), "
        f"{mm['default_gflops']:,.0f} GFLOP/s (default precision)",
        flush=True,
    )
    save()

    # The sequential loop: the same engine with M=1, one member after another.
    chunk1 = chunk_steps_for(1, quick)
    timed_population(ds, 1, chunk1, 0.0, cap_s, budget)  # compile once, warm up
    seq_rows = []
    for i in range(n_seq):
        if left() < 60:
            break
        seq_rows.append(
            timed_population(
                ds,
                1,
                chunk1,
                run_s / 4,
                cap_s,
                budget,
                member_ids=[i],
                hp=population(n_seq).take([i]),
            )
        )
    seq_rate = sum(r["steps"] for r in seq_rows) / sum(r["train_s"] for r in seq_rows)
    res["sequential"] = {
        "members": len(seq_rows),
        "model_steps_per_s": seq_rate,
        "train_s": sum(r["train_s"] for r in seq_rows),
        "steps_each": [r["steps"] for r in seq_rows],
        "note": "per-member rate extrapolated linearly to every M",
    }
    print(
        f"sequential: {len(seq_rows)} members one after another, {seq_rate:,.0f} model-steps/s",
        flush=True,
    )
    save()

    fpms = res["settings"]["flops_per_member_step"]
    for m in sizes:
        if left() < cap_s + 15:
            res["rows"].append({"members": m, "skipped": "time budget"})
            print(f"M={m}: skipped (time budget)", flush=True)
            continue
        try:
            row = timed_population(
                ds, m, chunk_steps_for(m, quick), run_s, min(cap_s, left() - 15), budget
            )
        except Exception as e:  # e.g. out of device memory: record it, go on
            res["rows"].append({"members": m, "error": f"{type(e).__name__}: {e}"[:300]})
            print(f"M={m}: failed: {type(e).__name__}", flush=True)
            save()
            continue
        row["speedup_vs_sequential"] = row["model_steps_per_s"] / seq_rate
        row["gflops"] = row["model_steps_per_s"] * fpms / 1e9
        row["fraction_of_matmul"] = row["gflops"] / peak
        res["rows"].append(row)
        print(
            f"M={m:6d}: {row['steps']} steps in {row['train_s']:.2f}s (compile "
            f"{row['compile_s']:.1f}s, {row['num_groups']} group(s)): "
            f"{row['model_steps_per_s']:,.0f} model-steps/s, "
            f"{row['speedup_vs_sequential']:.0f}x sequential, "
            f"{100 * row['fraction_of_matmul']:.0f}% of matmul",
            flush=True,
        )
        save()

    done = [r for r in res["rows"] if "speedup_vs_sequential" in r]
    best = max(done, key=lambda r: r["speedup_vs_sequential"]) if done else None
    res["verdict"] = {
        "best_speedup": best and best["speedup_vs_sequential"],
        "at_members": best and best["members"],
        "target": 100.0,
        "met": bool(best and best["speedup_vs_sequential"] >= 100.0),
    }
    res["status"] = "finished"
    save()
    print(f"wrote {path}", flush=True)
    return res


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--quick", action="store_true", default=bool(os.environ.get("SWEEPJAX_GPU_CHECK_QUICK"))
    )
    p.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or common.RESULTS))
    p.add_argument(
        "--deadline-s",
        type=float,
        default=300.0,
        help="stop starting new sizes after this many seconds",
    )
    a = p.parse_args(argv)
    a.out.mkdir(parents=True, exist_ok=True)
    if PRECISION != "default":  # set here, not at import: it is process-wide
        jax.config.update("jax_default_matmul_precision", PRECISION)
    run(a.out, a.quick, a.deadline_s)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
