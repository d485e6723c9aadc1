"""Interrupted sweeps written by the code before the one host loop and the one checkpoint
format (issue 26): ``tests/fixtures/old_store.sqlite``, for the resume tests. Made from an
empty directory with that code (``/work/main`` at 8f41919) on the path::

  cd $(mktemp -d) && XLA_FLAGS=--xla_backend_optimization_level=0 \
    PYTHONPATH=/work/main:/work/wt-26-loop python -m tests.old_store
  cp old.db /work/wt-26-loop/tests/fixtures/old_store.sqlite  # then VACUUM'd

(the ``tests`` package must be this one's; ``sweepjax`` main's). It holds ``c1`` (full
schedule, 3 folds, interrupted at step 10 of 40) and ``c2`` (ASHA,
width 4, interrupted after 5 blocks), both on ``npz:data.npz`` (:func:`write_data`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

# The jax/jaxlib the stored checkpoints were written with: a resume under another XLA
# continues with its own rounding (the 7th digit at the floors, jax 0.6.1).
MADE_WITH_JAX = "0.10.2"

COMMON = dict(
    dataset="npz:data.npz", trials=4, steps=40, batch_size=16, eval_every=10,
    chunk_steps=10, seed=0, report=False,
)  # fmt: skip
FOLDS = dict(COMMON, folds=3)
ASHA = dict(COMMON, trials=12, schedule="asha", width=4, rungs=2, eta=2)
STOPS = ((FOLDS, 2), (ASHA, 5))  # (options, chunks before the stop)
# Not in the fixture (the code before refused it): ASHA judging whole configs.
ASHA_FOLDS = dict(ASHA, folds=3, width=6)
ASHA_REPLICAS = dict(ASHA, replicas=2)


def write_data(folder) -> Path:
    """The tiny data set the sweeps ran on (deterministic: same bytes, same sha256)."""
    rng = np.random.default_rng(0)
    n_train, n_test = 400, 100
    w = rng.normal(size=(12, 10))
    x = rng.normal(size=(n_train + n_test, 12))
    y = np.argmax(x @ w + rng.normal(size=(n_train + n_test, 10)), axis=1)
    img = np.clip(x * 40 + 128, 0, 255).astype(np.uint8).reshape(-1, 3, 4)
    path = Path(folder) / "data.npz"
    np.savez(path, x_train=img[:n_train], y_train=y[:n_train].astype(np.uint8),
             x_test=img[n_train:], y_test=y[n_train:].astype(np.uint8))  # fmt: skip
    return path


def stop_after(n: int):
    from sweepjax.flows.sweep import Callbacks

    seen: list[int] = []
    return Callbacks(progress=lambda sid, rep: seen.append(rep.step), stop=lambda: len(seen) >= n)


def main() -> None:
    import sweepjax
    from sweepjax.flows.sweep import SweepInterrupted

    write_data(".")
    for options, n in STOPS:
        try:
            sweepjax.coarse(**options, store="old.db", callbacks=stop_after(n))
        except SweepInterrupted as e:
            print(e)


if __name__ == "__main__":
    main()
