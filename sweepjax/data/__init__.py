"""The data layer: load, verify, split and preprocess a dataset.

Public entries: :func:`load_dataset` (a named source) and :func:`from_arrays`, also
``Dataset.from_arrays`` (arrays in memory). Sources: ``mnist`` (falls back to the bundled
``mnist-sample`` when offline, saying so in ``Dataset.info.note``), ``fashion-mnist``,
``mnist-sample`` and ``npz:PATH``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sweepjax.config import DataConfig
from sweepjax.data.arrays import ARRAYS, from_arrays, raw_arrays
from sweepjax.data.cache import prepared_key, read_prepared, write_prepared
from sweepjax.data.dataset import Dataset, DatasetInfo
from sweepjax.data.download import Opener
from sweepjax.data.preprocess import dataset_from_raw
from sweepjax.data.raw import RawData, raw_sha256
from sweepjax.data.sources import NAMES, load_raw, source_files

SOURCES = NAMES

# ``Dataset.from_arrays(...)`` reads best in a notebook; it is attached here because
# building a Dataset needs the preprocessing module, which imports Dataset itself.
Dataset.from_arrays = staticmethod(from_arrays)

__all__ = [
    "ARRAYS",
    "SOURCES",
    "Dataset",
    "DatasetInfo",
    "RawData",
    "dataset_from_raw",
    "from_arrays",
    "load_dataset",
    "load_raw",
    "raw_arrays",
    "raw_sha256",
]


def load_dataset(cfg: DataConfig, opener: Opener | None = None) -> Dataset:
    """Load ``cfg.dataset``, carve the seeded validation split, and preprocess
    (``cfg.scaling``; the one used is ``info.scaling``); or map the arrays a previous
    process prepared from the same files and settings (:mod:`sweepjax.data.cache`).

    Raises DataError (one actionable line) for missing, corrupt or inconsistent data.
    ``info.note`` carries a one-line remark for the user (e.g. the offline fallback to
    ``mnist-sample``); the caller prints it, the library never does.

    Example:
      >>> ds = load_dataset(DataConfig(dataset="mnist-sample", seed=0))
      >>> ds.x_train.shape, ds.x_val.shape, ds.x_test.shape
      ((3600, 784), (400, 784), (1000, 784))
    """
    global _LAST
    files = source_files(cfg.dataset, cfg.data_dir)
    key = prepared_key(cfg, files) if files is not None else None
    if key is not None and _LAST is not None and _LAST[0] == key:
        return _LAST[1]
    ds = read_prepared(key) if key is not None else None
    if ds is None and key is not None and cfg.scaling != "auto":
        ds = _prepared_as_auto(cfg, files)
    if ds is None:
        raw = load_raw(cfg.dataset, cfg.data_dir, cfg.download, opener=opener, targets=cfg.targets)
        sha = raw_sha256(raw)
        if key is None:  # no files to name it by (a download, the fallback): the arrays
            key = (sha, raw.name, raw.origin, raw.note, cfg.dataset, cfg.val_fraction)
            key += (cfg.seed, cfg.scaling, cfg.targets)
            if _LAST is not None and _LAST[0] == key:
                return _LAST[1]
        ds = dataset_from_raw(raw, cfg, sha)
        if isinstance(key, str):
            write_prepared(key, ds)
    for a in ds:  # shared by every later load of the same data: nobody may write into it
        if isinstance(a, np.ndarray):
            a.setflags(write=False)
    _LAST = (key, ds)
    return ds


def _prepared_as_auto(cfg: DataConfig, files) -> Dataset | None:
    """The entry prepared for ``scaling="auto"`` where ``auto`` came to ``cfg.scaling``:
    the same arrays. ``coarse`` asks for ``auto`` and its ``fine`` for the scaling it
    used, so without this every ``fine`` after a first ``coarse`` split and scaled the
    data again and stored a second copy (Fashion-MNIST: 1.3 s of the cold flow on the
    2-core CPU, 210 MB)."""
    ds = read_prepared(prepared_key(dataclasses.replace(cfg, scaling="auto"), files))
    return ds if ds is not None and ds.info.scaling == cfg.scaling else None


# The last dataset built in this process, under everything it depends on (the source
# files' or raw arrays' sha256 included, so a changed file is never served stale): `fine` after
# `coarse`, `auto`'s stages and a notebook load the same data again, and the split and
# scaling are most of a load (Fashion-MNIST: ~0.7 s of ~1.2 s). One entry, so memory
# holds at most one dataset the caller has dropped.
_LAST: tuple[str | tuple, Dataset] | None = None
