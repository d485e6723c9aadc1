"""Hidden-unit activation statistics of one MLP member: the lecture's activation pictures.

Pure numpy (no jit, no store, no report): given one member's parameters (the built-in
MLP's ``{"hidden": {"kernel": [H, D], "bias": [H]}, ...}``) and a fixed sample of
inputs ``[N, D]``, :func:`activation_stats` gives

- a histogram of the hidden activations (after the ReLU) on fixed bins shared by every
  member and sweep: one bin for exact zeros (the ReLU's "off"), then log-spaced bins
  for positive values, so members compare at a glance and the counts store compactly;
- per-unit firing rates (the fraction of the sample where the unit is positive);
- dead units: a unit that is zero on every row of the sample.

Only the member's own units count. A member with a swept width ``hidden < H`` trains
masked inside the widest network (:class:`sweepjax.models.network.BuiltIn`): its units
``j >= hidden`` are exact zeros by construction, not dead ones, and are left out.

Example::

    stats = activation_stats(params, dataset.x_val[:1000], width=64)
    stats.dead_fraction, stats.firing_rate  # float, [64]
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Rows of the validation set the statistics are computed on (the first ones: fixed).
SAMPLE_ROWS = 1000
# Edges of the positive bins: 1e-3 .. 1e3, four per decade. Values below the first edge
# land in the first bin, values above the last in the last one.
EDGES = np.logspace(-3.0, 3.0, 25)


@dataclass(frozen=True)
class ActivationStats:
    """One member's hidden-layer statistics on a sample of ``rows`` inputs.

    Attributes:
      member: the member's id.
      width: the member's own units (the ones counted), ``<= units``.
      units: the compiled hidden width ``H``.
      rows: sample rows ``N``.
      zeros: activations exactly 0 (own units x rows).
      counts: ``[len(edges) - 1]`` positive activations per log bin;
        ``zeros + counts.sum() == width * rows``.
      edges: the positive bins' edges (:data:`EDGES`).
      fires: ``[width]`` rows on which each own unit is positive.
    """

    member: int
    width: int
    units: int
    rows: int
    zeros: int
    counts: np.ndarray
    edges: np.ndarray
    fires: np.ndarray

    @property
    def firing_rate(self) -> np.ndarray:
        """``[width]`` fraction of the sample each own unit fires on."""
        return self.fires / max(self.rows, 1)

    @property
    def dead(self) -> int:
        """Own units that fire on no row of the sample."""
        return int((self.fires == 0).sum())

    @property
    def dead_fraction(self) -> float:
        return self.dead / self.width if self.width else 0.0

    def as_dict(self) -> dict:
        """A JSON-ready dict (integers and the bin edges), for the store."""
        return {
            "member": int(self.member),
            "width": int(self.width),
            "units": int(self.units),
            "rows": int(self.rows),
            "zeros": int(self.zeros),
            "counts": [int(c) for c in self.counts],
            "edges": [float(e) for e in self.edges],
            "fires": [int(f) for f in self.fires],
        }

    @classmethod
    def from_dict(cls, d: dict) -> ActivationStats:
        return cls(
            member=int(d["member"]),
            width=int(d["width"]),
            units=int(d["units"]),
            rows=int(d["rows"]),
            zeros=int(d["zeros"]),
            counts=np.asarray(d["counts"], np.int64),
            edges=np.asarray(d["edges"], np.float64),
            fires=np.asarray(d["fires"], np.int64),
        )


def is_mlp(params, num_features: int | None = None) -> bool:
    """Whether ``params`` have the built-in MLP's hidden layer: a ``[H, D]`` kernel
    (``D == num_features`` when given) and an ``[H]`` bias."""
    try:
        shape = np.shape(params["hidden"]["kernel"])
        bias = np.shape(params["hidden"]["bias"])
    except (KeyError, TypeError, IndexError):
        return False
    return (
        len(shape) == 2
        and bias == shape[:1]
        and (num_features is None or shape[1] == int(num_features))
    )


def own_width(hidden, units: int) -> int:
    """The units a member with swept width ``hidden`` uses out of ``units``: the model
    keeps unit ``j`` where ``j < hidden``, so ``ceil(hidden)`` of them; ``None``, ``inf``
    or NaN mean the full width."""
    if hidden is None or not np.isfinite(hidden):
        return int(units)
    return int(min(max(math.ceil(float(hidden)), 0), units))


def hidden_activations(params, x: np.ndarray, width: int | None = None) -> np.ndarray:
    """ReLU activations ``[N, width]`` of the MLP's first ``width`` hidden units on
    ``x[N, D]``: ``relu(x @ W.T + b)``, the :class:`sweepjax.models.builtin.MLP` hidden layer
    (its kernel is stored ``[H, D]``)."""
    w = np.asarray(params["hidden"]["kernel"], np.float32)
    b = np.asarray(params["hidden"]["bias"], np.float32)
    k = w.shape[0] if width is None else int(width)
    return np.maximum(np.asarray(x, np.float32) @ w[:k].T + b[:k], 0.0)


def histogram(act: np.ndarray, edges: np.ndarray = EDGES) -> tuple[int, np.ndarray]:
    """``(zeros, counts[len(edges) - 1])`` of activations ``act`` (any shape, >= 0):
    exact zeros apart, positive values on ``edges`` (clipped into the end bins)."""
    a = np.asarray(act, np.float64).ravel()
    pos = a[a > 0]
    clipped = np.clip(pos, edges[0], edges[-1])
    counts, _ = np.histogram(clipped, bins=edges)
    return int(a.size - pos.size), counts.astype(np.int64)


def activation_stats(
    params, x: np.ndarray, width=None, member: int = -1, edges: np.ndarray = EDGES
) -> ActivationStats:
    """The hidden-layer statistics of one member on the sample ``x[N, D]``.

    Args:
      params: one member's MLP parameters (host or device arrays).
      x: the sample, preprocessed as in training (e.g. ``dataset.x_val[:1000]``).
      width: the member's own width (its ``hidden`` hyperparameter; ``None`` / ``inf``
        = every unit). Units beyond it are left out of every statistic.
      member: the member's id, recorded in the result.
    """
    units = int(np.shape(params["hidden"]["kernel"])[0])
    k = own_width(width, units)
    act = hidden_activations(params, x, k)
    zeros, counts = histogram(act, edges)
    return ActivationStats(
        member=int(member),
        width=k,
        units=units,
        rows=int(act.shape[0]),
        zeros=zeros,
        counts=counts,
        edges=np.asarray(edges, np.float64),
        fires=(act > 0).sum(axis=0).astype(np.int64),
    )


__all__ = [
    "EDGES",
    "SAMPLE_ROWS",
    "ActivationStats",
    "activation_stats",
    "hidden_activations",
    "histogram",
    "is_mlp",
    "own_width",
]
