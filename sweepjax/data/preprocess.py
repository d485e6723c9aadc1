"""Validation split and the lecture's preprocessing (step 1 of babysitting).

The validation set is carved from the training set with a seeded permutation (or given
by the caller); the test set stays held out. Features are flattened and centred with the
per-feature TRAINING mean (computed after carving validation, so no validation
statistics leak into training), then scaled (``DataConfig.scaling``):

- ``feature`` divides each feature by its own training std (scikit-learn's
  ``StandardScaler``). The default for ``[N, D]`` tabular data: features in different
  units (a ratio near 1 next to a count in the hundreds) would otherwise give one
  learning rate a very different step along each axis. Raw wine data reaches test 0.62
  with one shared scale and 0.98 standardised.
- ``global`` divides every feature by one scalar, the std of all centred training
  values, so the overall input variance is 1. The default for images: pixels share a
  unit, and a border pixel that is almost always 0 should stay almost 0, not be blown up
  to unit variance.

Validation and test get exactly the same mean and scale.
"""

from __future__ import annotations

import numpy as np

from sweepjax.config import DataConfig
from sweepjax.data.checks import spread_note
from sweepjax.data.dataset import Dataset, DatasetInfo
from sweepjax.data.raw import RawData, raw_sha256
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


def resolve_scaling(scaling: str, input_shape: tuple[int, ...]) -> str:
    """``feature`` or ``global``: ``auto`` is ``feature`` for examples of shape ``[D]``
    (tabular rows), ``global`` for images (``[H, W]``, ``[H, W, C]``)."""
    if scaling == "auto":
        return "feature" if len(input_shape) == 1 else "global"
    return scaling


def feature_std(x: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The std ``[D]`` (float64) of each column of ``x - mean`` (population std, ddof 0,
    as ``StandardScaler``), accumulated in float64 over row blocks."""
    sq = np.zeros(x.shape[1], np.float64)
    for i in range(0, len(x), _ROWS):
        block = x[i : i + _ROWS].astype(np.float64) - mean
        sq += np.einsum("ij,ij->j", block, block)
    return np.sqrt(sq / max(len(x), 1))


def fit_scaling(x: np.ndarray, per_feature: bool = False) -> tuple[np.ndarray, float | np.ndarray]:
    """Per-feature mean ``[D]`` and the scale: the scalar std of ``x - mean`` (1.0 if
    zero), or with ``per_feature`` each column's std ``[D]`` (1.0 for a constant column,
    which centring already made 0). Float32, or float64 for float64 data: a feature of
    std 0.01 around 50 has only ~3 significant digits left of its deviations in float32.

    Sums are accumulated in float64 over row blocks, so 60,000 x 784 pixels keep their
    precision without a 376 MB float64 copy.

    Example:
      >>> x = np.array([[0.0, 100.0], [2.0, 300.0]], np.float32)
      >>> fit_scaling(x, per_feature=True)[1]
      array([  1., 100.], dtype=float32)
    """
    dtype = np.float64 if x.dtype == np.float64 else np.float32
    mean = x.mean(axis=0, dtype=np.float64).astype(dtype)
    if per_feature:
        std = feature_std(x, mean)
        std[~np.isfinite(std) | (std <= 0.0)] = 1.0
        return mean, std.astype(dtype)
    sq = 0.0
    for i in range(0, len(x), _ROWS):
        block = x[i : i + _ROWS].astype(np.float64) - mean
        sq += float(np.einsum("ij,ij->", block, block))
    std = float(np.sqrt(sq / x.size))
    if not np.isfinite(std) or std <= 0.0:
        std = 1.0  # constant features: centring already made them 0; avoid 0/0
    return mean, std


def apply_scaling(x: np.ndarray, mean: np.ndarray, scale: float | np.ndarray) -> np.ndarray:
    """``(x - mean) / scale`` as float32 ``[n, D]`` (``scale`` a scalar or ``[D]``),
    computed in float64 for float64 data (see :func:`fit_scaling`)."""
    # A new array: the in-place ops below never touch the input.
    out = x.astype(np.float64 if x.dtype == np.float64 else np.float32)
    out -= mean
    out /= np.asarray(scale, out.dtype)
    return out.astype(np.float32, copy=False)


def build_dataset(
    raw: RawData,
    val_fraction: float,
    seed: int,
    requested: str,
    sha256: str,
    num_classes: int | None = None,
    scaling: str = "auto",
) -> Dataset:
    """Split ``raw`` into train / val / test, preprocess, and describe it.

    Args:
      raw: validated raw data. Its own validation split (``raw.val_images``), when
        given, is used as it is and ``val_fraction`` / ``seed`` are unused.
      val_fraction, seed: the validation split (DataConfig's fields).
      requested: the dataset name the user asked for.
      sha256: hash of the raw arrays (recorded in the info).
      num_classes: fixed class count (10 for MNIST), or None for max train label + 1.
      scaling: ``auto`` | ``feature`` | ``global`` (:func:`resolve_scaling`); the one
        used is recorded as ``info.scaling``.
    """
    n = len(raw.train_images)
    flat = raw.train_images.reshape(n, -1)
    if raw.val_images is None:
        tr, va = split_indices(n, val_fraction, seed)
        x_tr, x_va, y_va = flat[tr], flat[va], raw.train_labels[va]
    else:
        tr = np.arange(n)
        x_tr, x_va = flat, raw.val_images.reshape(len(raw.val_images), -1)
        y_va = raw.val_labels
    used = resolve_scaling(scaling, raw.input_shape)
    mean, scale = fit_scaling(x_tr, per_feature=used == "feature")
    spread = None
    if used == "global" and len(raw.input_shape) == 1:  # tabular data the user kept unscaled
        spread = spread_note(feature_std(x_tr, mean))
    real = raw.train_labels.dtype.kind == "f"  # validate_raw read them as real targets
    if real:
        k = 1
        ytr = raw.train_labels[tr].astype(np.float64)
        target = {
            "targets": "real",
            "target_mean": float(ytr.mean()),
            "target_scale": float(ytr.std()) if ytr.std() > 0 else 1.0,
        }
    else:
        k = int(num_classes if num_classes is not None else int(raw.train_labels.max()) + 1)
        target = {}
    label_type = np.float32 if real else np.int32
    info = DatasetInfo(
        name=raw.name,
        requested=requested,
        origin=raw.origin,
        n_train=len(x_tr),
        n_val=len(x_va),
        n_test=len(raw.test_images),
        num_classes=k,
        input_shape=raw.input_shape,
        sha256=sha256,
        note="\n".join(m for m in (raw.note, spread) if m) or None,
        classes=raw.classes,
        scaling=used,
        **target,
    )
    return Dataset(
        x_train=apply_scaling(x_tr, mean, scale),
        y_train=raw.train_labels[tr].astype(label_type),
        x_val=apply_scaling(x_va, mean, scale),
        y_val=y_va.astype(label_type),
        x_test=apply_scaling(raw.test_images.reshape(len(raw.test_images), -1), mean, scale),
        y_test=raw.test_labels.astype(label_type),
        mean=mean,
        scale=scale,
        info=info,
        raw_train_images=np.array(raw.train_images[tr[:N_RAW_IMAGES]]),
    )


# Sources whose class count is fixed (a sample may lack a class; its ids stay MNIST's).
TEN_CLASSES = ("mnist", "fashion-mnist", "mnist-sample")


def dataset_from_raw(raw: RawData, cfg: DataConfig, sha256: str | None = None) -> Dataset:
    """``raw`` split and preprocessed as ``cfg`` says (its ``val_fraction``, ``seed``,
    ``scaling``; ``dataset`` is recorded as the name asked for); ``sha256`` defaults to
    :func:`raw_sha256` of ``raw``."""
    return build_dataset(
        raw,
        cfg.val_fraction,
        cfg.seed,
        requested=cfg.dataset,
        sha256=sha256 or raw_sha256(raw),
        num_classes=10 if raw.name in TEN_CLASSES else None,
        scaling=cfg.scaling,
    )
