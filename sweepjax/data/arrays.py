"""Arrays passed straight from Python (a notebook's ``X``, ``y``): no file on disk.

``from_arrays(x_train, y_train, ...)`` is the Python twin of ``npz:PATH``: the same
checks (:func:`~sweepjax.data.raw.validate_raw`), the same fixed 10% test hold-out when
no test set is given (:func:`~sweepjax.data.npz.hold_out_test`), so the same arrays give
the same dataset bit for bit either way. A validation split may be given too; otherwise
it is carved with the seed, as for every source.

Errors are one line that names the argument and its type or shape, never its contents:
a notebook's arrays can have millions of values.
"""

from __future__ import annotations

import numpy as np

from sweepjax.config import DataConfig
from sweepjax.data.dataset import Dataset
from sweepjax.data.npz import hold_out_test
from sweepjax.data.preprocess import dataset_from_raw
from sweepjax.data.raw import RawData, validate_raw
from sweepjax.errors import DataError

ARRAYS = "arrays"  # the dataset name recorded for arrays passed from Python
ORIGIN = "python"
ARRAY_NAMES = ("x_train", "y_train", "x_test", "y_test", "x_val", "y_val")
_HOW = "pass NumPy arrays (or anything np.asarray reads: lists, pandas, JAX arrays)"


def as_array(value, what: str) -> np.ndarray:
    """``np.asarray(value)``, or DataError naming ``what`` and the value's type."""
    kind = type(value).__name__
    try:
        a = np.asarray(value)
    except Exception as e:  # ragged nested lists, objects NumPy cannot read
        raise DataError(f"`{what}` ({kind}) is not an array ({type(e).__name__}); {_HOW}") from None
    if a.dtype == object:
        raise DataError(f"`{what}` ({kind}) is not a numeric array (ragged or mixed rows); {_HOW}")
    return a


def _pair(x, y, split: str) -> tuple[np.ndarray, np.ndarray] | None:
    if x is None and y is None:
        return None
    if x is None or y is None:
        raise DataError(f"give both `x_{split}` and `y_{split}`, or neither")
    return as_array(x, f"x_{split}"), as_array(y, f"y_{split}")


def raw_arrays(
    x_train, y_train, x_test=None, y_test=None, x_val=None, y_val=None, targets: str = "auto"
) -> RawData:
    """The caller's arrays as checked :class:`RawData` named ``arrays``.

    Args:
      x_train: ``[N, D]`` features or ``[N, H, W(, C)]`` images, any real dtype.
      y_train: ``[N]`` labels: class ids, or any integers / strings (remapped, noted);
        or real-valued targets for a regression (``targets="real"``, or ``auto`` and
        floats that are not all whole numbers).
      x_test, y_test: the held-out test set; when not given, a fixed 10% of training
        (the same rows ``npz:PATH`` would hold out) is, and the note says so.
      x_val, y_val: the validation split; when not given it is carved from training
        with the seed (``DataConfig.val_fraction``).
    """
    train = _pair(x_train, y_train, "train")
    if train is None:
        raise DataError(f"no data: give `x_train` and `y_train`; {_HOW}")
    test, val = _pair(x_test, y_test, "test"), _pair(x_val, y_val, "val")
    note = None
    if test is None:
        arrays, note = hold_out_test(*train, ARRAYS, "the data passed")
        test = arrays["x_test"], arrays["y_test"]
        train = arrays["x_train"], arrays["y_train"]
    raw = RawData(
        *train,
        *test,
        name=ARRAYS,
        origin=ORIGIN,
        note=note,
        val_images=None if val is None else val[0],
        val_labels=None if val is None else val[1],
    )
    return validate_raw(raw, ARRAYS, targets=targets)


def from_arrays(
    x_train,
    y_train,
    x_test=None,
    y_test=None,
    x_val=None,
    y_val=None,
    *,
    scaling: str = "auto",
    val_fraction: float = 0.1,
    seed: int = 0,
    targets: str = "auto",
) -> Dataset:
    """A ready :class:`Dataset` (what ``train_population`` takes) from arrays in memory:
    checked, split and preprocessed like every source (:func:`raw_arrays` for the
    arguments; ``scaling`` as ``DataConfig.scaling``: ``auto`` standardises each
    feature of ``[N, D]`` data).

    Example::

      from sklearn.datasets import load_wine
      X, y = load_wine(return_X_y=True)
      ds = sweepjax.Dataset.from_arrays(X, y, seed=0)
      ds.x_train.shape, ds.info.scaling  # ((144, 13), 'feature'); 18 rows held out
    """
    raw = raw_arrays(x_train, y_train, x_test, y_test, x_val, y_val, targets=targets)
    cfg = DataConfig(
        dataset=ARRAYS, val_fraction=val_fraction, seed=seed, scaling=scaling, targets=targets
    )
    return dataset_from_raw(raw, cfg)
