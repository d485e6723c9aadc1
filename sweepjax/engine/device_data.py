"""The data every member shares, resident on the device: the training rows, the whole
validation set and a fixed validation subset, the latter two in features-first slices
(the evaluation programs' layout). Built once per run and passed to every program call.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import numpy as np

from sweepjax.config import TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.data.folds import Folds
from sweepjax.engine.distributed import SINGLE, Placement, put_replicated


class Slices(NamedTuple):
    """Evaluation rows in features-first slices: ``xs[S, D, rows]``, ``ys``/``ms``/``fs``
    ``[S, rows]`` (``ms`` is 1 for real rows, 0 for padding; ``fs`` each row's fold
    under cross-validation, -1 for padding, 0 without folds)."""

    xs: jax.Array
    ys: jax.Array
    ms: jax.Array
    fs: jax.Array


class DeviceData(NamedTuple):
    """Data shared by every member, resident on the device."""

    x_train: jax.Array  # [N, D]
    y_train: jax.Array  # [N]
    fold_train: jax.Array  # [N] int32 fold of each training row (0 without folds)
    val: Slices  # the whole validation set (decisions, the final best accuracy)
    quick: Slices  # a fixed validation subset (every evaluation block)


def _slices(x: np.ndarray, y: np.ndarray, rows: int, f: np.ndarray | None = None) -> Slices:
    """``[n, D]`` -> features-first slices ``[S, D, rows]`` zero-padded, with a mask and
    the rows' folds ``f[n]`` (default 0)."""
    n = x.shape[0]
    f = np.zeros(n, np.int32) if f is None else np.asarray(f, np.int32)
    rows = max(1, min(rows, n))
    s = math.ceil(n / rows)
    pad = s * rows - n
    xs = np.concatenate([x, np.zeros((pad, x.shape[1]), x.dtype)]).reshape(s, rows, -1)
    xs = np.ascontiguousarray(xs.transpose(0, 2, 1), dtype=np.float32)
    ys = np.concatenate([y, np.zeros((pad,), y.dtype)]).reshape(s, rows).astype(label_dtype(y))
    ms = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]).reshape(s, rows)
    fs = np.concatenate([f, np.full(pad, -1, np.int32)]).reshape(s, rows)
    return Slices(xs, ys, ms, fs)


def label_dtype(y: np.ndarray):
    """int32 class ids, or float32 real targets (a regression) as they are."""
    return np.float32 if np.asarray(y).dtype.kind == "f" else np.int32


def eval_rows(config: TrainConfig, n_val: int, k: int = 1) -> int:
    """Rows of the fixed validation subset evaluated every block.

    A fixed size (not tied to the block length), so coarse and fine rounds share their
    compiled programs. An evaluation row costs about half a training row (a forward pass
    only; training accuracy comes free from the minibatches): at the default 20
    evaluations per run and batch 256, 512 rows cost under a tenth of a 300-step run's
    training and far less of longer runs (``benchmarks/bench_overheads.py``).
    With ``k`` folds a member is scored on its own fold only, so the subset is ``k``
    times larger (about ``val_subset`` rows of each fold; every member still evaluates
    all of them, masked: ``k`` times the evaluation cost of a plain member).
    """
    return min(config.val_subset * k, n_val)


def device_data(
    dataset: Dataset, config: TrainConfig, where: Placement = SINGLE, folds: Folds | None = None
) -> DeviceData:
    """Put the shared data on the device once (sliced for evaluation)."""
    rng = np.random.default_rng(config.seed)
    n_all = dataset.x_val.shape[0]
    n_val = eval_rows(config, n_all, folds.k if folds is not None else 1)
    quick = np.sort(rng.permutation(n_all)[:n_val])
    rows = config.eval_batch_size
    fv = np.zeros(n_all, np.int32) if folds is None else np.asarray(folds.val, np.int32)
    ft = (
        np.zeros(dataset.x_train.shape[0], np.int32)
        if folds is None
        else np.asarray(folds.train, np.int32)
    )
    val = _slices(dataset.x_val, dataset.y_val, rows, fv)
    host = DeviceData(
        np.asarray(dataset.x_train, np.float32),  # no copy when already float32
        np.asarray(dataset.y_train, label_dtype(dataset.y_train)),
        ft,
        val,
        val
        if n_val == n_all
        else _slices(dataset.x_val[quick], dataset.y_val[quick], rows, fv[quick]),
    )
    return put_replicated(host, where)
