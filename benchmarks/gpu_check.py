"""The device check: the population against the loop a user writes, per model and width,
the width the anytime search picks, and the default flow's wall time, on whatever
device JAX has (run by ``benchmarks/gpu_check.sh``; nothing is installed or downloaded).

    bash benchmarks/gpu_check.sh            # on one GPU, under 8 minutes
    bash benchmarks/gpu_check.sh --quick    # tiny sizes, any machine (~3 min on 2 CPU cores)

1. For the softmax, the MLP (256 hidden) and ``examples.my_cnn:SmallCNN``: members/s of
   ``train_population`` at M = 1 ... 4,096 (each size trained in chunks until its time
   share is spent), against a Python ``for`` loop calling one jitted SGD step of one
   flax model (as the Flax examples train), both batch 256 on the same data.
2. The width ``coarse --budget 30s`` (an ASHA search) picks: its probe, its note line.
3. The default ``coarse`` then ``fine`` flow, each its own process: wall seconds.

Data: Fashion-MNIST where it is on disk, else synthetic images of its shape written to an
npz (recorded in the JSON). A global deadline skips what would overrun; the JSON is
written after every row, so a run cut short leaves valid results.
Writes ``$OUT/throughput-<backend>.json`` and ``.md`` (``-quick`` with ``--quick``).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(Path(__file__).resolve().parent)]

import common  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from sweepjax import DataConfig, HParams, ModelConfig, TrainConfig, load_dataset  # noqa: E402
from sweepjax.engine import train_population  # noqa: E402

BATCH = 256
MODELS = {
    "softmax": ModelConfig("softmax"),
    "mlp": ModelConfig("mlp", hidden=256),
    "cnn": ModelConfig("custom", spec="examples.my_cnn:SmallCNN"),
}


def user_model(name: str, k: int):
    """The flax module a user writes for ``name`` (the CNN is the example's own)."""
    import flax.linen as nn

    from examples.my_cnn import SmallCNN

    class Softmax(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(k)(x.reshape((x.shape[0], -1)))

    class MLP(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.Dense(k)(nn.relu(nn.Dense(256)(x.reshape((x.shape[0], -1)))))

    return {"softmax": Softmax(), "mlp": MLP(), "cnn": SmallCNN(num_classes=k)}[name]


def python_loop(name: str, ds, run_s: float) -> dict:
    """Steps/s of a Python loop over one jitted SGD step of one member (data on the
    device, the minibatch drawn inside the step), after one warm-up call."""
    shape = (28, 28, 1) if name == "cnn" else (ds.num_features,)
    x_all = jnp.asarray(ds.x_train.reshape((-1, *shape)))
    y_all = jnp.asarray(ds.y_train)
    model = user_model(name, ds.num_classes)
    params = model.init(jax.random.key(0), x_all[:1])
    tx = optax.sgd(0.05)
    opt = tx.init(params)

    @jax.jit
    def step(params, opt, key):
        idx = jax.random.randint(key, (BATCH,), 0, x_all.shape[0])

        def loss(p):
            logits = model.apply(p, x_all[idx])
            return optax.softmax_cross_entropy_with_integer_labels(logits, y_all[idx]).mean()

        g = jax.grad(loss)(params)
        upd, opt = tx.update(g, opt)
        return optax.apply_updates(params, upd), opt

    key = jax.random.key(1)
    t0 = time.perf_counter()
    params, opt = jax.block_until_ready(step(params, opt, key))
    compile_s = time.perf_counter() - t0
    steps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < run_s or steps < 5:
        for i in range(10):
            params, opt = step(params, opt, jax.random.fold_in(key, steps + i))
        steps += 10
        jax.block_until_ready(params)
    secs = time.perf_counter() - t0
    return {"steps": steps, "seconds": secs, "steps_per_s": steps / secs, "compile_s": compile_s}


def population(name: str, ds, m: int, run_s: float, chunk: int) -> dict:
    """Members/s of ``train_population`` at ``m`` members: chunks of ``chunk`` steps until
    ``run_s`` seconds of training after the first chunk, then stop at the boundary."""
    rng = np.random.default_rng(0)
    hp = HParams.create(lr=10 ** rng.uniform(-3, -1, m), l2=10 ** rng.uniform(-6, -3, m))
    cfg = TrainConfig(steps=chunk * 10_000, batch_size=BATCH, eval_every=chunk, chunk_steps=chunk)
    marks = []

    def on_chunk(r):
        marks.append(r.elapsed_s)
        return marks[-1] - marks[0] < run_s

    t0 = time.perf_counter()
    res = train_population(ds, hp, MODELS[name], cfg, on_chunk=on_chunk)
    steps = res.checkpoint.step if res.checkpoint is not None else cfg.steps
    return {
        "members": m,
        "steps": steps,
        "chunk_steps": chunk,
        "compile_s": res.timing.compile_s,
        "train_s": res.timing.train_s,
        "wall_s": time.perf_counter() - t0,
        "member_steps_per_s": m * steps / res.timing.train_s,
        "groups": res.timing.num_groups,
    }


def cli(argv: list[str], store: Path, **env) -> dict:
    """One command line in its own process: wall seconds, exit status, its output's end."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "sweepjax", *argv, "--store", str(store), "--no-report"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
    )
    wall = time.perf_counter() - t0
    text = out.stdout + out.stderr
    return {"argv": argv, "rc": out.returncode, "wall_s": wall, "tail": text[-600:]}


def dataset(quick: bool, tmp: Path) -> tuple[str, object]:
    """The dataset's command-line name and the loaded ``Dataset``."""
    if quick:
        return "mnist-sample", load_dataset(DataConfig(dataset="mnist-sample"))
    try:
        return "fashion-mnist", load_dataset(DataConfig(dataset="fashion-mnist"))
    except Exception:  # not on disk and no network: synthetic images of its shape
        rng = np.random.default_rng(0)
        teacher = rng.standard_normal((784, 10))

        def split(n):
            x = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
            noise = 40 * rng.standard_normal((n, 10))
            return x, np.argmax(x.reshape(n, -1) / 255.0 @ teacher + noise, 1).astype(np.uint8)

        (xtr, ytr), (xte, yte) = split(60000), split(10000)
        path = tmp / "synthetic-fashion-shape.npz"
        np.savez(path, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
        name = f"npz:{path}"
        return name, load_dataset(DataConfig(dataset=name))


def markdown(res: dict) -> str:
    lines = [
        f"# Device check ({res['machine']['backend']}{', quick' if res['quick'] else ''})",
        "",
        f"Machine: {common.machine_line(res['machine'])}.",
        f"Reproduce: `{res['command']}`; data {res['dataset']}.",
        "",
    ]
    rows = []
    for name, r in res["models"].items():
        loop = r.get("loop", {}).get("steps_per_s")
        for p in r.get("population", []):
            if "member_steps_per_s" not in p:
                rows.append([name, p["members"], "-", loop or "-", p.get("skipped", "")])
                continue
            ratio = p["member_steps_per_s"] / loop if loop else float("nan")
            rows.append([name, p["members"], p["member_steps_per_s"], loop or "-", f"{ratio:.2f}x"])
    head = ["model", "M", "member-steps/s", "loop steps/s", "vs the loop"]
    lines += [common.md_table(head, rows), ""]
    w = res.get("width")
    if w:
        lines.append(f"Width chosen by `coarse --budget 30s`: {w.get('note')}")
    for f in res.get("flow", []):
        lines.append(f"`sweepjax {' '.join(f['argv'])}`: exit {f['rc']}, {f['wall_s']:.1f} s wall")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=str(common.RESULTS))
    ap.add_argument("--deadline-s", type=float, default=400.0)
    a = ap.parse_args(argv)
    t_start = time.perf_counter()
    sizes = [1, 4] if a.quick else [1, 16, 256, 1024, 4096]
    run_s = 0.5 if a.quick else 3.0
    name = f"throughput-{jax.default_backend()}" + ("-quick" if a.quick else "")
    out = Path(a.out)
    res = {"machine": common.machine(), "quick": a.quick, "models": {}, "flow": []}
    res["command"] = common.command_line(__file__, argv)

    def save():
        res["elapsed_s"] = time.perf_counter() - t_start
        common.write_json(out / f"{name}.json", res)
        (out / f"{name}.md").write_text(markdown(res))

    def left():
        return a.deadline_s - (time.perf_counter() - t_start)

    with tempfile.TemporaryDirectory() as tmp:
        res["dataset"], ds = dataset(a.quick, Path(tmp))
        # the flows first: whole processes, what a user waits for
        store = Path(tmp) / "s.db"
        base = ["--dataset", res["dataset"]] + (
            ["--trials", "8", "--steps", "40"] if a.quick else []
        )
        for argv_ in (["coarse", *base], ["fine", *([] if not a.quick else ["--steps", "40"])]):
            res["flow"].append(cli(argv_, store))
            save()
        budget = "10s" if a.quick else "30s"
        # no remembered width: the probe measures this device
        asha = cli(["coarse", *base, "--budget", budget], store, SWEEPJAX_WIDTH_CACHE="0")
        note = re.search(r"asha: [^\n]*", asha["tail"])
        res["width"] = {**asha, "note": note.group(0) if note else None}
        save()
        for model in MODELS:
            row = res["models"][model] = {"population": []}
            if left() < 30:
                row["skipped"] = "time budget"
                continue
            row["loop"] = python_loop(model, ds, run_s)
            save()
            for m in sizes:
                if left() < 20:
                    row["population"].append({"members": m, "skipped": "time budget"})
                    continue
                chunk = 20 if a.quick else max(5, min(200, 20_000 // m))
                try:
                    row["population"].append(population(model, ds, m, run_s, chunk))
                except Exception as e:  # e.g. out of device memory: record it, go on
                    row["population"].append({"members": m, "skipped": f"{type(e).__name__}"})
                save()
                print(model, row["population"][-1], flush=True)
    save()
    print(markdown(res))


if __name__ == "__main__":
    main()
