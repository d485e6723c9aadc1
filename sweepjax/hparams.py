"""Swept hyperparameters: one row per member, held as arrays so they can be traced.

Changing any value here never recompiles the training program; only the number of
members (the leading axis) is part of the program's shape.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class HParams(NamedTuple):
    """Per-member hyperparameters, each of shape ``[num_members]`` float32.

    Attributes:
      lr: base learning rate.
      l2: L2 strength lambda; the loss adds ``l2 * sum(w**2) / 2`` over weight matrices.
      lr_decay: the learning-rate multiplier reached at the end of the run (cosine from 1;
        1.0 = constant rate).

    Example::

      hp = HParams.create(lr=[1e-2, 1e-1], l2=[1e-4, 1e-3])
      hp.num_members  # 2
    """

    lr: np.ndarray
    l2: np.ndarray
    lr_decay: np.ndarray

    @classmethod
    def create(cls, lr, l2, lr_decay=None) -> HParams:
        lr = np.atleast_1d(np.asarray(lr, dtype=np.float32))
        l2 = np.broadcast_to(np.asarray(l2, dtype=np.float32), lr.shape).copy()
        if lr_decay is None:
            lr_decay = np.ones_like(lr)
        lr_decay = np.broadcast_to(np.asarray(lr_decay, dtype=np.float32), lr.shape).copy()
        return cls(lr=lr, l2=l2, lr_decay=lr_decay)

    @property
    def num_members(self) -> int:
        return int(np.shape(self.lr)[0])

    def take(self, idx) -> HParams:
        """Rows ``idx`` of every field (a sub-population)."""
        return HParams(*(np.asarray(f)[idx] for f in self))

    def as_columns(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(v) for name, v in zip(self._fields, self, strict=True)}
