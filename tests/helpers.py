"""Shared test fixtures: tiny fake datasets written in the real on-disk layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sweepjax.data.idx import write_idx

STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def fake_arrays(seed: int = 0, n_train: int = 60, n_test: int = 20, shape=(4, 5)):
    """(x_train, y_train, x_test, y_test) uint8, every class 0..9 present in train."""
    rng = np.random.default_rng(seed)
    xtr = rng.integers(0, 256, (n_train, *shape), dtype=np.uint8)
    ytr = (np.arange(n_train) % 10).astype(np.uint8)
    xte = rng.integers(0, 256, (n_test, *shape), dtype=np.uint8)
    yte = rng.integers(0, 10, n_test, dtype=np.uint8)
    return xtr, ytr, xte, yte


def write_idx_dir(d: Path, arrays, gz: bool = True, dotted: bool = False) -> Path:
    """Write the four IDX files into ``d``; ``dotted`` uses ``train-images.idx3-ubyte``."""
    d.mkdir(parents=True, exist_ok=True)
    for stem, a in zip(STEMS, arrays, strict=True):
        name = stem.replace("-idx", ".idx") if dotted else stem
        write_idx(d / (name + (".gz" if gz else "")), a)
    return d


def write_npz(path: Path, arrays) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **dict(zip(("x_train", "y_train", "x_test", "y_test"), arrays, strict=True)))
    return path


def toy_dataset(n_train=600, n_val=200, n_test=200, d=20, k=4, seed=0, noise=0.5):
    """A small linearly separable-ish ``Dataset`` for fast trainer tests.

    Features are unit-scale Gaussians; labels come from a fixed random linear teacher
    plus noise, so softmax regression can learn it well above chance.
    """
    from sweepjax.data.dataset import Dataset, DatasetInfo

    rng = np.random.default_rng(seed)
    teacher = rng.normal(size=(d, k))

    def split(n):
        x = rng.normal(size=(n, d)).astype(np.float32)
        y = np.argmax(x @ teacher + noise * rng.normal(size=(n, k)), axis=1).astype(np.int32)
        return x, y

    xtr, ytr = split(n_train)
    xv, yv = split(n_val)
    xte, yte = split(n_test)
    info = DatasetInfo("toy", "toy", "memory", n_train, n_val, n_test, k, (d,), "toy")
    return Dataset(
        xtr, ytr, xv, yv, xte, yte, np.zeros(d, np.float32), 1.0, info, xtr[:36].reshape(-1, d)
    )


def toy_train_config():
    """The trainer tests' shared static settings for ``toy_dataset`` (one compiled shape
    reused across tests): 40 steps of batch 32, evaluated every 10, chunks of 20."""
    from sweepjax.config import TrainConfig

    return TrainConfig(
        steps=40,
        batch_size=32,
        eval_every=10,
        chunk_steps=20,
        seed=3,
        eval_batch_size=100,
    )


def blobs(n: int, seed: int, size: int = 8, k: int = 4):
    """``n`` 8x8 single-channel "blobs" ``[n, 8, 8]`` and labels, ``k = 4`` classes (chance
    0.25): a bright 3x3 square in the class's quadrant plus unit Gaussian noise."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    x = rng.normal(0.0, 1.0, (n, size, size)).astype(np.float32)
    for i, c in enumerate(y):
        r, q = divmod(int(c), 2)
        x[i, r * 4 : r * 4 + 3, q * 4 : q * 4 + 3] += 2.0
    return x, y.astype(np.int64)


def blob_dataset(n_train: int = 600, n_val: int = 200):
    """The blobs as an in-memory ``Dataset`` of 8x8 images (64 features, 4 classes)."""
    from sweepjax.data.dataset import Dataset, DatasetInfo

    (xtr, ytr), (xv, yv) = blobs(n_train, 0), blobs(n_val, 1)
    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    info = DatasetInfo("blobs", "blobs", "memory", n_train, n_val, n_val, 4, (8, 8), "blobs")
    y32 = lambda y: y.astype(np.int32)  # noqa: E731
    return Dataset(
        flat(xtr), y32(ytr), flat(xv), y32(yv), flat(xv), y32(yv), np.zeros(64, np.float32),
        1.0, info, xtr[:4],
    )  # fmt: skip


def sweep_config(trials: int = 8, **changes):
    """A typed :class:`~sweepjax.sweep_config.SweepConfig` for a synthetic result: the
    defaults (a coarse softmax sweep over the default box) with ``changes`` (``model=``,
    ``train=``, ``schedule=``, ``folds=``, ...)."""
    from sweepjax.config import DataConfig, ModelConfig, SearchSpace, TrainConfig
    from sweepjax.sweep_config import SweepConfig

    base = dict(
        kind="coarse",
        data=DataConfig(),
        model=ModelConfig(),
        train=TrainConfig(),
        space=SearchSpace(),
        trials=trials,
    )
    return SweepConfig(**{**base, **changes})


def blobs_npz_file(directory) -> Path:
    """The 8x8 blobs (:func:`blobs`) as an npz in ``directory``: 600 training and 200
    test rows, for end-to-end sweeps by name (``npz:PATH``)."""
    from pathlib import Path

    p = Path(directory) / "blobs.npz"
    (xtr, ytr), (xte, yte) = blobs(600, 0), blobs(200, 1)
    np.savez(p, x_train=xtr, y_train=ytr, x_test=xte, y_test=yte)
    return p
