"""Single MLP configurations on full Fashion-MNIST: what width, optimizer and run length
the default MLP flow needs to reach test accuracy 0.89.

Each row trains a small population (learning rates x dropout rates) of ONE setting
(optimizer, hidden width, steps) with sweepjax's trainer (cosine decay to 1% of the rate,
lambda 1e-4, batch 256) and reports, per member, the best whole-validation accuracy and
the test accuracy of that checkpoint. It chose ``sweepjax.spec.MODEL_DEFAULTS``
for the MLP; the flow itself is timed by ``bench_time_to_quality.py --model mlp``.

    python benchmarks/bench_mlp_configs.py            # ~4 min on 2 CPU cores
    python benchmarks/bench_mlp_configs.py --quick    # mnist-sample, seconds
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import common  # noqa: E402

from sweepjax import engine  # noqa: E402
from sweepjax.config import DataConfig, ModelConfig, TrainConfig  # noqa: E402
from sweepjax.data import load_dataset  # noqa: E402
from sweepjax.engine.hparams import HParams  # noqa: E402

# (optimizer, hidden width, steps, learning rates): momentum rates are a tenth of the SGD
# rates (heavy-ball momentum 0.9 multiplies the step by ~10).
SETTINGS = [
    ("sgd", 100, 2400, (0.1, 0.3)),
    ("sgd", 100, 6000, (0.1, 0.3)),
    ("sgd", 256, 2400, (0.1, 0.3)),
    ("sgd", 256, 6000, (0.1, 0.3)),
    ("momentum", 256, 4800, (0.02, 0.05)),
]
DROPOUT = (0.0, 0.3)
L2 = 1e-4
DECAY = 0.01


def run_setting(ds, optimizer, hidden, steps, lrs, seed=0) -> dict:
    lr = np.repeat(lrs, len(DROPOUT))
    drop = np.tile(DROPOUT, len(lrs))
    hp = HParams.create(lr=lr, l2=L2, lr_decay=DECAY, dropout=drop, momentum=0.9)
    cfg = TrainConfig(
        optimizer=optimizer, steps=steps, batch_size=256, chunk_steps=steps, seed=seed
    )
    model = ModelConfig("mlp", hidden)
    t0 = time.perf_counter()
    res = engine.train_population(ds, hp, model, cfg)
    wall = time.perf_counter() - t0
    members = []
    for i in range(len(lr)):
        try:
            p = engine.member_params(res, i)
            test = engine.accuracy(p, model, ds.num_classes, ds.x_test, ds.y_test)
        except ValueError:  # diverged
            test = float("nan")
        members.append(
            {
                "lr": float(lr[i]),
                "dropout": float(drop[i]),
                "best_val_acc": float(res.best_val_acc[i]),
                "best_step": int(res.best_step[i]),
                "test_acc": test,
            }
        )
    return {
        "optimizer": optimizer,
        "hidden": hidden,
        "steps": steps,
        "epochs": steps * 256 / ds.x_train.shape[0],
        "members": members,
        "wall_s": wall,
    }


def markdown(res: dict) -> str:
    lines = [
        "# Single MLP configurations (full Fashion-MNIST)",
        "",
        f"Machine: {common.machine_line(res['machine'])}",
        "",
        f"Command: `{res['command']}`",
        "",
        f"lambda {L2:g}, cosine decay to {DECAY:g} x the rate, batch 256, momentum 0.9 where "
        "used; 'val' = best whole-validation accuracy (6,000 images, SE ~0.004), 'test' = "
        "that checkpoint's test accuracy (10,000 images, SE ~0.003).",
        "",
        "| optimizer | hidden | steps (epochs) | lr | dropout | val | test |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in res["settings"]:
        for m in s["members"]:
            lines.append(
                f"| {s['optimizer']} | {s['hidden']} | {s['steps']} ({s['epochs']:.0f}) | "
                f"{m['lr']:g} | {m['dropout']:g} | {m['best_val_acc']:.4f} | {m['test_acc']:.4f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="mnist-sample, 50-step runs")
    ap.add_argument("--out", type=Path, default=common.RESULTS)
    args = ap.parse_args(argv)
    ds = load_dataset(DataConfig(dataset="mnist-sample" if args.quick else "fashion-mnist"))
    settings = SETTINGS
    if args.quick:
        settings = [(o, h // 8, 50, lrs) for o, h, _, lrs in (SETTINGS[0], SETTINGS[-1])]
    res = {
        "machine": common.machine(),
        "command": common.command_line(__file__, argv),
        "dataset": ds.info.name,
        "settings": [],
    }
    for o, h, n, lrs in settings:
        res["settings"].append(run_setting(ds, o, h, n, lrs))
        s = res["settings"][-1]
        best = max(s["members"], key=lambda m: m["best_val_acc"])
        print(
            f"{o} hidden {h} {n} steps: best val {best['best_val_acc']:.4f} "
            f"test {best['test_acc']:.4f} ({s['wall_s']:.0f} s)",
            flush=True,
        )
    name = "mlp-configs-cpu" + ("-quick" if args.quick else "")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{name}.json").write_text(json.dumps(res, indent=2))
    (args.out / f"{name}.md").write_text(markdown(res))
    return res


if __name__ == "__main__":
    main()
