"""Validation split and the lecture's preprocessing (step 1 of babysitting).

The validation set is carved from the training set with a seeded permutation; the test
set stays held out. Features are flattened, centred with the per-feature TRAINING mean
(computed after carving validation, so no validation statistics leak into training) and
divided by one scalar, the std of the centred training data, so the overall input
variance is 1 and one learning-rate range suits every dataset. Validation and test get
exactly the same mean and scale.
"""

from __future__ import annotations

import numpy as np

from sweepjax.data.dataset import Dataset, DatasetInfo
from sweepjax.data.raw import RawData
from sweepjax.errors import DataError

N_RAW_IMAGES = 36  # raw training images kept for the report's picture grid
_ROWS = 8192  # row block for float64 accumulation without a float64 copy of the data


def split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, val_idx) of ``range(n)``; ``round(n * val_fraction)`` (>= 1) go
    to validation, chosen by ``Generator(PCG64(seed)).permutation(n)``.

    Example:
      >>> tr, va = split_indices(10, 0.2, seed=0)
      >>> len(tr), len(va)
      (8, 2)
    """
    n_val = max(1, int(round(n * val_fraction)))
    if n - n_val < 1:
        raise DataError(
            f"only {n} training examples: nothing left after carving "
            f"{n_val} for validation; lower val_fraction or add data"
        )
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    # Training rows keep the seeded order: a class-sorted source (the bundled sample)
    # would otherwise show 36 zeros in the data-check picture.
    return perm[n_val:], np.sort(perm[:n_val])


def fit_scaling(x: np.ndarray) -> tuple[np.ndarray, float]:
    """Per-feature mean ``[D]`` (float32) and scalar std of ``x - mean`` (1.0 if zero).

    Sums are accumulated in float64 over row blocks, so 60,000 x 784 pixels keep their
    precision without a 376 MB float64 copy.
    """
    mean = x.mean(axis=0, dtype=np.float64).astype(np.float32)
    sq = 0.0
    for i in range(0, len(x), _ROWS):
        block = x[i : i + _ROWS].astype(np.float64) - mean
        sq += float(np.einsum("ij,ij->", block, block))
    std = float(np.sqrt(sq / x.size))
    if not np.isfinite(std) or std <= 0.0:
        std = 1.0  # constant features: centring already made them 0; avoid 0/0
    return mean, std


def apply_scaling(x: np.ndarray, mean: np.ndarray, scale: float) -> np.ndarray:
    """``(x - mean) / scale`` as float32 ``[n, D]``."""
    out = x.astype(np.float32)  # a new array: in-place ops below never touch the input
    out -= mean
    out /= np.float32(scale)
    return out


def build_dataset(
    raw: RawData,
    val_fraction: float,
    seed: int,
    requested: str,
    sha256: str,
    num_classes: int | None = None,
) -> Dataset:
    """Split ``raw`` into train / val / test, preprocess, and describe it.

    Args:
      raw: validated raw data.
      val_fraction, seed: the validation split (DataConfig's fields).
      requested: the dataset name the user asked for.
      sha256: hash of the raw arrays (recorded in the info).
      num_classes: fixed class count (10 for MNIST), or None for max train label + 1.
    """
    n = len(raw.train_images)
    tr, va = split_indices(n, val_fraction, seed)
    flat = raw.train_images.reshape(n, -1)
    x_tr = flat[tr]
    mean, scale = fit_scaling(x_tr)
    k = int(num_classes if num_classes is not None else int(raw.train_labels.max()) + 1)
    info = DatasetInfo(
        name=raw.name,
        requested=requested,
        origin=raw.origin,
        n_train=len(tr),
        n_val=len(va),
        n_test=len(raw.test_images),
        num_classes=k,
        input_shape=raw.input_shape,
        sha256=sha256,
        note=raw.note,
        classes=raw.classes,
    )
    return Dataset(
        x_train=apply_scaling(x_tr, mean, scale),
        y_train=raw.train_labels[tr].astype(np.int32),
        x_val=apply_scaling(flat[va], mean, scale),
        y_val=raw.train_labels[va].astype(np.int32),
        x_test=apply_scaling(raw.test_images.reshape(len(raw.test_images), -1), mean, scale),
        y_test=raw.test_labels.astype(np.int32),
        mean=mean,
        scale=scale,
        info=info,
        raw_train_images=np.array(raw.train_images[tr[:N_RAW_IMAGES]]),
    )
