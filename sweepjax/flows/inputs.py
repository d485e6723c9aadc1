"""The data a planned sweep trains on, from whatever the caller gave: a source's name
(loaded by :func:`~sweepjax.flows.runner.load_inputs`), arrays from Python (split and
preprocessed here as the spec says) or a ready :class:`~sweepjax.data.Dataset`.

The returned :class:`DataConfig` records what was done (the name ``arrays`` for arrays,
the scaling really used), so the stored sweep, its refit and a ``fine`` round reproduce
it. Remarks about the data (a fallback, a carved test set, feature scales far apart, a
small validation split) go to the caller's callbacks, one line each.
"""

from __future__ import annotations

import dataclasses
import logging

import numpy as np

from sweepjax.config import DataConfig
from sweepjax.data import ARRAYS, Dataset, RawData, dataset_from_raw
from sweepjax.errors import ConfigError
from sweepjax.flows.runner import Callbacks, load_inputs
from sweepjax.metric import DEFAULT, resolve

log = logging.getLogger("sweepjax")


def plan_data(
    given, cfg: DataConfig, scaling_given: str | None, cb: Callbacks
) -> tuple[DataConfig, Dataset]:
    """``(config, dataset)`` for the ``dataset`` option's value ``given``.

    Args:
      given: a name (``mnist``, ``npz:PATH``, ...), RawData (arrays from Python,
        :func:`sweepjax.data.raw_arrays`) or a ready Dataset (used as it is).
      cfg: the split seed, ``data_dir`` and the scaling asked for.
      scaling_given: the ``scaling`` the caller gave explicitly (None: not given); a
        ready Dataset whose scaling differs is refused.
    """
    if isinstance(given, Dataset):
        used = given.info.scaling
        if scaling_given not in (None, "auto", used):
            raise ConfigError(
                f"the Dataset given was scaled `scaling` {used}, not {scaling_given}; "
                f"build it with Dataset.from_arrays(..., scaling={scaling_given!r}) or drop "
                "`scaling`"
            )
        cfg = dataclasses.replace(cfg, dataset=given.info.name)
        ds = given
        _warn(ds, cb)
    elif isinstance(given, RawData):
        cfg = dataclasses.replace(cfg, dataset=ARRAYS)
        ds = dataset_from_raw(_as_targets(given, cfg.targets), cfg)
        _warn(ds, cb)
    else:
        ds = load_inputs(dataclasses.replace(cfg, dataset=given), cb)
        cfg = dataclasses.replace(cfg, dataset=given)
    return dataclasses.replace(cfg, scaling=ds.info.scaling), ds


def _warn(ds: Dataset, cb: Callbacks) -> None:
    if ds.info.note:  # as load_inputs shows a loaded source's note
        (cb.note or log.warning)(ds.info.note)


def _as_targets(raw: RawData, targets: str) -> RawData:
    """Arrays read as class labels (whole numbers) that a regression's metric wants as
    real targets (a fine round of an mse parent given its arrays again): the original
    values back from the remapped ids (``raw.classes``), as float32."""
    if targets != "real" or raw.train_labels.dtype.kind == "f":
        return raw

    def real(y):
        y = np.asarray(y)
        return (np.asarray(raw.classes)[y] if raw.classes is not None else y).astype(np.float32)

    val = {} if raw.val_labels is None else {"val_labels": real(raw.val_labels)}
    return raw._replace(
        train_labels=real(raw.train_labels),
        test_labels=real(raw.test_labels),
        classes=None,
        note=None if raw.classes is not None else raw.note,
        **val,
    )


def data_targets(metric: str | None) -> str:
    """How a sweep's data reads its labels for the ``metric`` option's value: ``real``
    for a regression metric, else ``auto`` (real-valued floats are a regression)."""
    return "real" if metric is not None and resolve(metric).real else "auto"


def settle_metric(given: str | None, ds: Dataset) -> str:
    """The metric a sweep uses: the one ``given``, else accuracy for class labels and
    mse for real-valued targets. A metric that does not fit the targets is refused in one
    line."""
    name = given if given is not None else ("mse" if ds.info.real else DEFAULT)
    metric = resolve(name)
    if metric.real != ds.info.real:
        have = "real-valued targets" if ds.info.real else "class labels"
        fix = "`metric` mse" if ds.info.real else "`metric` accuracy"
        raise ConfigError(
            f"`metric` {name} scores {'real-valued targets' if metric.real else 'class labels'}"
            f" but the data has {have}; use {fix}"
        )
    return name
