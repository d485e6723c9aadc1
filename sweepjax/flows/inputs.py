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

from sweepjax.config import DataConfig
from sweepjax.data import ARRAYS, Dataset, RawData, dataset_from_raw
from sweepjax.errors import ConfigError
from sweepjax.flows.runner import Callbacks, load_inputs

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
        ds = dataset_from_raw(given, cfg)
        _warn(ds, cb)
    else:
        ds = load_inputs(dataclasses.replace(cfg, dataset=given), cb)
        cfg = dataclasses.replace(cfg, dataset=given)
    return dataclasses.replace(cfg, scaling=ds.info.scaling), ds


def _warn(ds: Dataset, cb: Callbacks) -> None:
    if ds.info.note:  # as load_inputs shows a loaded source's note
        (cb.note or log.warning)(ds.info.note)
