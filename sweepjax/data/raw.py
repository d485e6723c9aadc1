"""RawData: the four arrays of a dataset as read from disk, before any split.

Every reader (IDX, npz, the bundled sample) returns this one container, and every one
goes through :func:`validate_raw`, so a corrupt or inconsistent file is caught in one
place with one kind of message, whatever its format.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sweepjax.errors import DataError

# More classes than this is almost surely a mistake (e.g. regression targets saved as
# labels); one-hot matrices of that width would also not fit the population program.
MAX_CLASSES = 10_000


class RawData(NamedTuple):
    """Images (or feature vectors) and integer labels, train and test, as loaded.

    Attributes:
      train_images: ``[n_train, *input_shape]`` any real dtype (uint8 for MNIST).
      train_labels: ``[n_train]`` integer labels.
      test_images, test_labels: the held-out test set, same layout.
      name: the source actually used (``mnist``, ``mnist-sample``, ``npz:PATH``, ...).
      origin: where it was read from: a path, or ``bundled``.
      note: one line for the user (a fallback, a carved test split), or None.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    name: str
    origin: str
    note: str | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train_images.shape[1:])


def _labels(y: np.ndarray, what: str, where: str) -> np.ndarray:
    """Return ``y`` as a 1-D integer array, or raise DataError."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # column vectors from pandas / sklearn
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{where}: {what} must be 1-D [n], got shape {y.shape}; save integer "
            "class ids, not one-hot rows"
        )
    if y.dtype.kind in "iu":
        return y
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)  # integral floats, e.g. written by pandas
    raise DataError(
        f"{where}: {what} must be integer class ids, got dtype {y.dtype} with "
        "non-integer values; convert them with np.asarray(y, dtype=int)"
    )


def _features(x: np.ndarray, what: str, where: str) -> np.ndarray:
    x = np.asarray(x)
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: {what} must be real numbers, got dtype {x.dtype}")
    if x.ndim < 2:
        raise DataError(f"{where}: {what} must be [n, ...features], got shape {x.shape}")
    if x.dtype.kind == "f" and not np.all(np.isfinite(x)):
        bad = int(np.count_nonzero(~np.isfinite(x)))
        raise DataError(f"{where}: {what} has {bad} NaN/inf values; clean or impute them first")
    return x


def validate_raw(raw: RawData, where: str, max_label: int | None = None) -> RawData:
    """Check shapes, dtypes and label ranges; return the raw data with 1-D int labels.

    Args:
      raw: as read from ``where``.
      where: the file or directory named in error messages.
      max_label: largest allowed label (9 for MNIST), or None to allow up to
        ``MAX_CLASSES - 1``; test labels must also lie within the training range.
    """
    xtr = _features(raw.train_images, "x_train", where)
    xte = _features(raw.test_images, "x_test", where)
    ytr = _labels(raw.train_labels, "y_train", where)
    yte = _labels(raw.test_labels, "y_test", where)
    for x, y, split in ((xtr, ytr, "train"), (xte, yte, "test")):
        if len(x) != len(y):
            raise DataError(
                f"{where}: x_{split} has {len(x)} rows but y_{split} has {len(y)}; "
                "images and labels must pair up one to one"
            )
    if len(xtr) == 0:
        raise DataError(f"{where}: the training set is empty")
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(
            f"{where}: train examples have shape {xtr.shape[1:]} but test examples "
            f"{xte.shape[1:]}; both splits must share one shape"
        )
    limit = MAX_CLASSES - 1 if max_label is None else max_label
    for y, split in ((ytr, "y_train"), (yte, "y_test")):
        if len(y) and (y.min() < 0 or y.max() > limit):
            raise DataError(
                f"{where}: {split} has labels in [{y.min()}, {y.max()}], outside "
                f"[0, {limit}]; labels must be class ids 0..K-1"
            )
    if len(yte) and yte.max() > ytr.max():
        raise DataError(
            f"{where}: y_test has label {yte.max()} but y_train only goes up to "
            f"{ytr.max()}; every test class must appear in training"
        )
    return raw._replace(train_images=xtr, train_labels=ytr, test_images=xte, test_labels=yte)
