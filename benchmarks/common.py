"""Helpers shared by the benchmark scripts: machine description, timing, matmul rates.

Benchmarks are not tests: they time things and write ``results/*.json`` and ``*.md``.
Every number is measured in the run that reports it; comparisons are ratios taken in
that same run, because the machines these run on are shared and noisy.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def installed_bytecode(tree: str | Path) -> None:
    """Compile ``tree``'s sweepjax to bytecode, as an installed package has it (pip writes
    it at install; Python itself on a checkout's first import). A whole-process
    benchmark measures what a user's process does: this machine's environment sets
    ``PYTHONDONTWRITEBYTECODE=1``, which left every process compiling sweepjax's sources
    again (~0.15 s of each process's imports, 2-core CPU, measured with ``-X importtime``)."""
    import compileall

    compileall.compile_dir(str(Path(tree) / "sweepjax"), quiet=1)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str | None:
    """The accelerator's name: nvidia-smi when present, else JAX's device kind."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip().splitlines()[0]
    except (OSError, subprocess.SubprocessError):
        pass
    dev = jax.devices()[0]
    return None if dev.platform == "cpu" else dev.device_kind


def machine() -> dict:
    """What the numbers were measured on (written next to every result)."""
    import jaxlib

    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count()
    dev = jax.devices()[0]
    info = {
        "cpu": cpu_model(),
        "cpu_cores": os.cpu_count(),
        "cpu_cores_usable": usable,
        "backend": jax.default_backend(),
        "device": dev.device_kind,
        "num_devices": jax.device_count(),
        "jax": jax.__version__,
        "jaxlib": jaxlib.__version__,
        "python": platform.python_version(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "load_avg_at_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    if dev.platform != "cpu":
        info["gpu"] = gpu_name()
    return info


def machine_line(m: dict) -> str:
    acc = f", {m['gpu']}" if m.get("gpu") else ""
    load = m.get("load_avg_at_start")
    load_s = f"; load average at start {load[0]:.2f}" if load else ""
    return (
        f"{m['cpu']} ({m['cpu_cores_usable']} usable cores{acc}), backend "
        f"{m['backend']}, jax {m['jax']} / jaxlib {m['jaxlib']}, {m['date']}{load_s}"
    )


def command_line(script: str, argv: list[str] | None = None) -> str:
    """The command that is running, for the results' "Reproduce" line: ``sys.argv`` as
    typed, or, when ``main(argv)`` is called from Python, the script with those arguments."""
    if argv is None:
        return shlex.join(["python", *sys.argv])
    rel = os.path.relpath(script, Path(__file__).resolve().parents[1])
    return shlex.join(["python", rel, *argv])


def median(xs) -> float:
    return float(statistics.median(xs))


def time_jitted(fn, *args, reps: int = 5) -> list[float]:
    """Seconds per call of an already-jitted ``fn`` (one warm-up call, then ``reps``)."""
    jax.block_until_ready(fn(*args))
    out = []
    for _ in range(reps):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def square_matmul_gflops(n: int = 2048, reps: int = 5, dtype=jnp.float32) -> float:
    """Median dense ``[n, n] @ [n, n]`` rate in GFLOP/s (2 n^3 FLOPs per product)."""
    k1, k2 = jax.random.split(jax.random.key(0))
    a = jax.random.normal(k1, (n, n), dtype)
    b = jax.random.normal(k2, (n, n), dtype)
    f = jax.jit(lambda a, b: a @ b)
    return 2 * n**3 / median(time_jitted(f, a, b, reps=reps)) / 1e9


def step_matmul_seconds(batch: int, features: int, width: int, reps: int = 5) -> dict:
    """Median seconds of the two matmuls of one population step, with the engine's
    layouts (features-first): forward ``W[M*K, D] @ xt[D, B]`` and weight gradient
    ``g[M*K, B] @ x[B, D]``."""
    k1, k2, k3 = jax.random.split(jax.random.key(1), 3)
    x = jax.random.normal(k1, (batch, features), jnp.float32)
    xt = jnp.asarray(x.T)
    w = jax.random.normal(k2, (width, features), jnp.float32)
    g = jax.random.normal(k3, (width, batch), jnp.float32)
    fwd = median(time_jitted(jax.jit(lambda w, xt: w @ xt), w, xt, reps=reps))
    grad = median(time_jitted(jax.jit(lambda g, x: g @ x), g, x, reps=reps))
    flops = 2 * batch * features * width
    return {
        "fwd_s": fwd,
        "grad_s": grad,
        "fwd_gflops": flops / fwd / 1e9,
        "grad_gflops": flops / grad / 1e9,
        "both_s": fwd + grad,
        "both_gflops": 2 * flops / (fwd + grad) / 1e9,
    }


def write_json(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)

    def default(o):
        if isinstance(o, np.generic):
            return o.item()
        if isinstance(o, np.ndarray):
            return o.tolist()
        raise TypeError(type(o))

    path.write_text(json.dumps(obj, indent=2, default=default) + "\n")


def md_table(header: list[str], rows: list[list]) -> str:
    def cell(v):
        if isinstance(v, float):
            return f"{v:,.3g}" if abs(v) < 1000 else f"{v:,.0f}"
        return str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)
