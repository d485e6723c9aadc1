"""Run by tests/test_devices.py in a subprocess started with several host devices: the
same tiny coarse sweep of each schedule through the public API (``sweepjax.coarse``),
once per device count, written as JSON.

Usage: python -m tests.sweep_worker OUT.json STORE_DIR SCHEDULE[,SCHEDULE...] N[,N...]

Only the public API and its results are used, so the claim survives any change to the
host loops underneath: a member is its id, hyperparameters, status, stop and divergence
steps, best step and numbers, and curves; PBT's copies.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

# Tiny sizes (the bundled sample, 54 steps of batch 32): every schedule decides at least
# once. The width (asha) and the member-step budget are given, not measured or timed,
# so the members do not depend on how fast the machine is.
BASE = dict(dataset="mnist-sample", steps=54, batch_size=32, trials=8, report=False)
SCHEDULES = {
    "asha": dict(schedule="asha", budget="1500 steps", width=8, rungs=2),
    "hyperband": dict(schedule="hyperband", trials=12, eval_every=6),
    "halving": dict(schedule="halving", rungs=2, eval_every=6),
    "pbt": dict(schedule="pbt", pbt_interval=18),
    "full": dict(schedule="full", lr=[1e-3, 30.0]),  # the box reaches divergence
}


def members(res) -> list[dict]:
    """One dict per member: its record and its curves (NaN as None)."""
    out = []
    c = res.curves
    for i, m in enumerate(res.members):
        d = m.as_dict()
        for f in ("val_acc", "val_loss", "train_loss"):
            row = np.asarray(getattr(c, f)[i], np.float64)
            d["curve_" + f] = [None if np.isnan(v) else float(v) for v in row]
        out.append(d)
    return out


def main(argv: list[str]) -> None:
    import jax

    import sweepjax

    out, store_dir = Path(argv[0]), Path(argv[1])
    runs = {}
    for name in argv[2].split(","):
        for n in map(int, argv[3].split(",")):
            store = store_dir / f"{name}-{n}.db"
            res = sweepjax.coarse(**{**BASE, **SCHEDULES[name]}, devices=n, store=str(store))
            runs[f"{name}/{n}"] = dict(
                members=members(res),
                winner=res.winner.id if res.winner is not None else None,
                lineage=res.lineage,
            )
    runs["host_devices"] = len(jax.devices())
    out.write_text(json.dumps(runs))


if __name__ == "__main__":
    main(sys.argv[1:])
