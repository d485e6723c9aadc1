"""RawData: the four arrays of a dataset as read from disk, before any split.

Every reader (IDX, npz, the bundled sample) returns this one container, and every one
goes through :func:`validate_raw`, so a corrupt or inconsistent file is caught in one
place with one kind of message, whatever its format.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
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
      note: a line for the user (a fallback, a carved test split, remapped labels;
        one line per remark), or None.
      classes: the user's own label of each class id, when their labels were remapped
        to ``0..K-1`` (:func:`remap_labels`), else None.
      val_images, val_labels: a validation split the caller chose (arrays passed from
        Python), used instead of a carved one; None (the readers) to carve it.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    name: str
    origin: str
    note: str | None = None
    classes: tuple | None = None
    val_images: np.ndarray | None = None
    val_labels: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(d) for d in self.train_images.shape[1:])


def _labels(y: np.ndarray, what: str, where: str) -> np.ndarray:
    """Return ``y`` as a 1-D array of integer (or, for the caller to remap, string) labels,
    or raise DataError."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:  # column vectors from pandas / sklearn
        y = y[:, 0]
    if y.ndim != 1:
        raise DataError(
            f"{where}: {what} must be 1-D [n], got shape {y.shape}; save integer "
            "class ids, not one-hot rows"
        )
    if y.dtype.kind in "iuU":
        return y
    if y.dtype.kind == "S":  # bytes labels (e.g. from HDF5): their text, to remap
        return np.char.decode(y, "utf-8", "replace")
    if y.dtype.kind == "b":
        return y.astype(np.int64)
    if y.dtype.kind == "f" and np.all(np.isfinite(y)) and np.all(y == np.round(y)):
        return y.astype(np.int64)  # integral floats, e.g. written by pandas
    bad = y[~(np.isfinite(y) & (y == np.round(y)))] if y.dtype.kind == "f" else y
    example = f" such as {bad[0].item()!r}" if len(bad) else ""
    raise DataError(
        f"{where}: {what} must be integer class ids or strings, got dtype {y.dtype} "
        f"with values{example}; save class labels, or for a regression pass `metric` mse "
        "(--metric mse) to read them as real targets"
    )


def wants_real(y, targets: str) -> bool:
    """Whether labels ``y`` are read as real-valued targets (a regression): ``targets``
    ``real``, or ``auto`` and ``y`` is a float array with a value that is not a whole
    number (a class id never is)."""
    if targets == "real":
        return True
    y = np.asarray(y)
    return (
        targets == "auto"
        and y.dtype.kind == "f"
        and bool(np.any(np.isfinite(y) & (y != np.round(y))))
    )


def real_targets(y: np.ndarray, what: str, where: str) -> np.ndarray:
    """``y`` as 1-D float32 regression targets, or DataError (not a number, not finite)."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1 or y.dtype.kind not in "iufb":
        raise DataError(
            f"{where}: {what} must be 1-D [n] real targets for a regression, got shape "
            f"{y.shape} dtype {y.dtype}"
        )
    y = y.astype(np.float32)
    if not np.all(np.isfinite(y)):
        raise DataError(f"{where}: {what} holds NaN or infinite targets; drop those rows")
    return y


def _label_values(values: np.ndarray, limit: int = 8) -> str:
    """``[1, 2, 3]`` or ``['a', 'b']``, the middle elided past ``limit`` values."""
    shown = [v.item() if hasattr(v, "item") else v for v in values]
    if len(shown) > limit:
        return f"[{', '.join(map(repr, shown[: limit - 2]))}, ..., {shown[-1]!r}]"
    return f"[{', '.join(map(repr, shown))}]"


def remap_labels(
    ytr: np.ndarray, yte: np.ndarray, where: str
) -> tuple[np.ndarray, np.ndarray, tuple | None, str | None]:
    """Class ids ``0..K-1`` for a user's labels: ``(y_train, y_test, classes, note)``.

    Labels already ``0..K-1`` (every id present in training) are kept as they are
    (``classes`` and ``note`` None). Anything else (``{1, 2, 3}``, ``{-1, 1}``, gaps,
    strings) is mapped in sorted order, ``classes[i]`` being the label that became
    class ``i``, and ``note`` says so in one line. Raises DataError for a single class,
    more than ``MAX_CLASSES`` classes, or a test label that training lacks.

    Example:
      >>> _, _, classes, note = remap_labels(np.array([3, 1, 2]), np.array([1]), "f.npz")
      >>> classes
      (1, 2, 3)
    """
    uniq = np.unique(ytr)
    if len(uniq) < 2:
        only = f" ({uniq[0].item()!r})" if len(uniq) else ""
        raise DataError(
            f"{where}: y_train holds a single class{only}; a classifier needs at least "
            "two: check that you saved the label column, not a constant"
        )
    if len(uniq) > MAX_CLASSES:
        raise DataError(
            f"{where}: y_train has {len(uniq)} distinct labels, more than {MAX_CLASSES:,}; "
            "save class labels, not continuous targets"
        )
    unseen = np.setdiff1d(np.unique(yte), uniq)
    if len(unseen):
        raise DataError(
            f"{where}: y_test has label(s) {_label_values(unseen)} that y_train lacks; "
            "every test class must appear in training"
        )
    if uniq.dtype.kind in "iu" and uniq[0] == 0 and uniq[-1] == len(uniq) - 1:
        return ytr, yte, None, None  # as stored: the content hash stays what it was
    classes = tuple(v.item() for v in uniq)
    pairs = [f"{v!r}->{i}" for i, v in enumerate(classes)]
    if len(pairs) > 8:
        pairs = [*pairs[:6], "...", pairs[-1]]
    note = (
        f"sweepjax: {Path(where).name}: labels {_label_values(uniq)} are not class ids "
        f"0..{len(uniq) - 1}; using {', '.join(pairs)} ({len(uniq)} classes)"
    )
    return np.searchsorted(uniq, ytr), np.searchsorted(uniq, yte), classes, note


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


def validate_raw(
    raw: RawData, where: str, max_label: int | None = None, targets: str = "auto"
) -> RawData:
    """Check shapes, dtypes and label ranges; return the raw data with 1-D int labels,
    or 1-D float32 targets for a regression (:func:`wants_real` with ``targets``).

    Args:
      raw: as read from ``where``.
      where: the file or directory named in error messages.
      max_label: largest allowed label (9 for MNIST); None for the user's own labels,
        which :func:`remap_labels` maps to class ids ``0..K-1`` (noted) when they are not
        already. Test labels must also appear in training.
    """
    xtr = _features(raw.train_images, "x_train", where)
    xte = _features(raw.test_images, "x_test", where)
    if max_label is None and wants_real(raw.train_labels, targets):
        return _validate_real(raw, xtr, xte, where)
    ytr = _labels(raw.train_labels, "y_train", where)
    yte = _labels(raw.test_labels, "y_test", where)
    pairs = [(xtr, ytr, "train"), (xte, yte, "test")]
    if raw.val_images is not None:
        xva = _features(raw.val_images, "x_val", where)
        yva = _labels(raw.val_labels, "y_val", where)
        pairs.append((xva, yva, "val"))
        if len(xva) == 0 or xva.shape[1:] != xtr.shape[1:]:
            raise DataError(
                f"{where}: x_val has shape {xva.shape}; it needs at least one row of the "
                f"training examples' shape {xtr.shape[1:]}"
            )
    for x, y, split in pairs:
        if len(x) != len(y):
            raise DataError(
                f"{where}: x_{split} has {len(x)} rows but y_{split} has {len(y)}; "
                f"{pairing(x)} and labels must pair up one to one"
            )
    if len(xtr) == 0:
        raise DataError(f"{where}: the training set is empty")
    if xtr.shape[1:] != xte.shape[1:]:
        raise DataError(
            f"{where}: train examples have shape {xtr.shape[1:]} but test examples "
            f"{xte.shape[1:]}; both splits must share one shape"
        )
    note, classes = raw.note, None
    if raw.val_images is not None:
        # Checked and remapped with the test labels: a class training lacks is refused.
        yte = np.concatenate([yte, pairs[2][1]])
    if max_label is None:  # the user's own labels: class ids 0..K-1, remapped if need be
        ytr, yte, classes, remapped = remap_labels(ytr, yte, where)
        note = "\n".join(n for n in (note, remapped) if n) or None
    else:
        for y, split in ((ytr, "y_train"), (yte, "y_test")):
            if y.dtype.kind not in "iu":
                raise DataError(f"{where}: {split} must be integer class ids 0..{max_label}")
            if len(y) and (y.min() < 0 or y.max() > max_label):
                raise DataError(
                    f"{where}: {split} has labels in [{y.min()}, {y.max()}], outside "
                    f"[0, {max_label}]; labels must be class ids 0..K-1"
                )
        if len(yte) and yte.max() > ytr.max():
            raise DataError(
                f"{where}: y_test has label {yte.max()} but y_train only goes up to "
                f"{ytr.max()}; every test class must appear in training"
            )
    val = {}
    if raw.val_images is not None:  # split the test and validation labels again
        val = {"val_images": pairs[2][0], "val_labels": yte[len(xte) :]}
        yte = yte[: len(xte)]
    return raw._replace(
        train_images=xtr,
        train_labels=ytr,
        test_images=xte,
        test_labels=yte,
        note=note,
        classes=classes,
        **val,
    )


def _validate_real(raw: RawData, xtr, xte, where: str) -> RawData:
    """:func:`validate_raw` for real-valued targets: float32, finite, paired with rows."""
    ys = {"train": real_targets(raw.train_labels, "y_train", where)}
    ys["test"] = real_targets(raw.test_labels, "y_test", where)
    xs = {"train": xtr, "test": xte}
    if raw.val_images is not None:
        xs["val"] = _features(raw.val_images, "x_val", where)
        ys["val"] = real_targets(raw.val_labels, "y_val", where)
    for split, x in xs.items():
        if len(x) != len(ys[split]):
            raise DataError(
                f"{where}: x_{split} has {len(x)} rows but y_{split} has {len(ys[split])}; "
                f"{pairing(x)} and targets must pair up one to one"
            )
        if x.shape[1:] != xtr.shape[1:]:
            raise DataError(
                f"{where}: x_{split} examples have shape {x.shape[1:]}, training's "
                f"{xtr.shape[1:]}; every split must share one shape"
            )
    if len(xtr) < 2:
        raise DataError(f"{where}: need at least 2 training examples, got {len(xtr)}")
    val = {"val_images": xs["val"], "val_labels": ys["val"]} if "val" in xs else {}
    return raw._replace(
        train_images=xtr,
        train_labels=ys["train"],
        test_images=xte,
        test_labels=ys["test"],
        **val,
    )


def pairing(x: np.ndarray) -> str:
    """What the rows of ``x`` are called in messages: images, or feature rows."""
    return "images" if np.ndim(x) >= 3 else "feature rows"


def raw_sha256(raw: RawData) -> str:
    """sha256 over train images, train labels, test images, test labels bytes, in order
    (then validation images and labels, when the caller gave a validation split)."""
    h = hashlib.sha256()
    arrays = [raw.train_images, raw.train_labels, raw.test_images, raw.test_labels]
    if raw.val_images is not None:
        arrays += [raw.val_images, raw.val_labels]
    for a in arrays:
        h.update(np.ascontiguousarray(a).data)
    return h.hexdigest()
