"""What every model example does: sweep a population, then train the winner's values
alone with the library's own loop, and print both (the claim docs/custom-models.md
records: a member of the population reaches what the same model reaches alone)."""

from __future__ import annotations

import time
from collections.abc import Callable

import sweepjax
from sweepjax.config import DataConfig
from sweepjax.data import load_dataset


def sweep_then_alone(
    model,
    train_alone: Callable,
    loop: str,
    trials: int,
    steps: int,
    batch: int,
    store: str,
    dataset: str = "mnist-sample",
):
    """``sweepjax.coarse`` of ``model`` (adam, lr in [1e-4, 1e-2], l2 in [1e-6, 1e-3]),
    then ``train_alone(ds, lr, l2, steps, batch) -> test accuracy`` with the winner's
    values; ``loop`` names that loop in the printed line. Returns ``(result, alone)``."""
    t0 = time.perf_counter()
    res = sweepjax.coarse(
        dataset=dataset,
        model=model,
        optimizer="adam",
        lr=(1e-4, 1e-2),
        l2=(1e-6, 1e-3),
        trials=trials,
        steps=steps,
        batch_size=batch,
        store=store,
        report=False,
    )
    swept = time.perf_counter() - t0
    w = res.winner
    ds = load_dataset(DataConfig(dataset=dataset, seed=0))
    t1 = time.perf_counter()
    alone = train_alone(ds, w.lr, w.l2, steps, batch)
    print(
        f"population of {trials} x {steps} steps: winner lr {w.lr:.2e} l2 {w.l2:.1e} "
        f"val {w.val_acc:.3f} test {w.test_acc:.3f} ({swept:.0f} s); the same values "
        f"alone, {loop}: test {alone:.3f} ({time.perf_counter() - t1:.0f} s)"
    )
    return res, alone
