"""Run by tests/test_distributed.py in a subprocess: train the toy population on the
devices / processes this process was started with, and save the results as .npz.

Usage: python -m tests.dist_worker OUT.npz DEVICES [COORDINATOR NUM_PROCESSES PROCESS_ID]
(``DIST_MODEL=package.module:Name`` trains that custom model instead of the softmax).
"""

from __future__ import annotations

import os
import sys

import numpy as np


def population(where, spec: str | None = None) -> dict:
    """The toy population's results (softmax, or the custom model ``spec``)."""
    import jax

    from sweepjax import engine
    from sweepjax.config import ModelConfig
    from sweepjax.engine.hparams import HParams
    from tests.helpers import toy_dataset, toy_train_config

    ds = toy_dataset(n_train=600, n_val=200, n_test=200, d=20, k=4, seed=0)
    m = 10  # not a multiple of 4: exercises padding
    hp = HParams.create(lr=np.geomspace(1e-2, 3e2, m), l2=np.geomspace(1e-5, 1e-1, m))
    cfg = toy_train_config()
    model = ModelConfig("custom", spec=spec) if spec else ModelConfig("softmax")
    res = engine.train_population(ds, hp, model, cfg, member_ids=np.arange(m) + 7, placement=where)
    if spec:  # every parameter, member by member
        kernel = np.concatenate([np.reshape(a, (m, -1)) for a in jax.tree.leaves(res.params)], 1)
    else:
        kernel = res.params["out"]["kernel"]
    return dict(
        kernel=kernel,
        alive=res.alive,
        diverged_at=res.diverged_at,
        val_acc=res.curves.val_acc,
        train_loss=res.curves.train_loss,
        best=res.best_val_acc,
        best_step=res.best_step,
        devices=where.num_devices,
        processes=jax.process_count(),
    )


def main(argv: list[str]) -> None:
    out, devices = argv[0], int(argv[1])
    from sweepjax.engine import distributed

    if len(argv) > 2:
        distributed.initialize(argv[2], int(argv[3]), int(argv[4]))
    where = distributed.placement(None if len(argv) > 2 else devices)
    np.savez(out, **population(where, os.environ.get("DIST_MODEL")))


if __name__ == "__main__":
    main(sys.argv[1:])
