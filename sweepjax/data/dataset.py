"""The Dataset container handed from the data layer to the trainer."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class DatasetInfo(NamedTuple):
    """Identity of the data a sweep really used (recorded with every result).

    Attributes:
      name: the source name actually used (``mnist``, ``mnist-sample``, ``npz:...``).
      requested: the name the user asked for (differs from ``name`` after a fallback).
      origin: where it was read from (a path, or ``bundled``).
      n_train, n_val, n_test: split sizes.
      num_classes: number of label values.
      input_shape: shape of one example before flattening, e.g. ``(28, 28)``.
      sha256: hash of the raw arrays (images and labels, train and test) as loaded.
      note: remarks for the user, one line each (the offline fallback, a carved test
        set, remapped labels), or None.
      classes: the user's own label of each class id when their labels were not
        ``0..K-1`` and were remapped (e.g. ``(1, 2, 3)`` or ``("cat", "dog")``), else None.
      scaling: how the centred features were scaled: ``feature`` (each by its own
        training std) or ``global`` (all by one std).
      targets: ``classes`` (integer labels) or ``real`` (a regression: float targets,
        ``num_classes`` 1, the model's one output).
      target_mean, target_scale: a regression's training-target mean and std: members
        train on standardised targets ``(y - mean) / scale`` and are scored in the
        targets' own units (``sweepjax.engine.member``).
    """

    name: str
    requested: str
    origin: str
    n_train: int
    n_val: int
    n_test: int
    num_classes: int
    input_shape: tuple[int, ...]
    sha256: str
    note: str | None = None
    classes: tuple | None = None
    scaling: str = "global"
    targets: str = "classes"
    target_mean: float = 0.0
    target_scale: float = 1.0

    @property
    def real(self) -> bool:
        return self.targets == "real"

    def as_dict(self) -> dict:
        d = self._asdict()
        if not self.real:  # a classifier's record reads as before regression existed
            for k in ("targets", "target_mean", "target_scale"):
                del d[k]
        d["input_shape"] = list(self.input_shape)
        d["classes"] = None if self.classes is None else list(self.classes)
        return d


class Dataset(NamedTuple):
    """Preprocessed, flattened splits as host arrays.

    Attributes:
      x_train: ``[n_train, D]`` float32, zero-centred with the training mean and scaled.
      y_train: ``[n_train]`` int32 labels in ``[0, num_classes)``.
      x_val, y_val: the seeded validation split carved from the training set.
      x_test, y_test: the held-out test set (used only to report winners).
      mean: ``[D]`` training mean subtracted from every split (float32; float64 for
        float64 data, whose small deviations float32 would round away).
      scale: what every split was divided by after centring: one scalar
        (``info.scaling`` global) or ``[D]`` float32, each feature's training std
        (``feature``).
      info: :class:`DatasetInfo`.
      raw_train_images: a few raw training images ``[k, *input_shape]`` for pictures.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray
    scale: float | np.ndarray
    info: DatasetInfo
    raw_train_images: np.ndarray

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def num_classes(self) -> int:
        return int(self.info.num_classes)
