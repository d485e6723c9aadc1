"""What a sweep ranks by: a per-example metric and its direction.

A :class:`Metric` is a per-example function ``per_example(outputs[B, K], targets[B]) ->
[B]`` whose mean over the validation set is a member's score, and the direction in
which the score is better. Built in: ``accuracy`` (the default; higher is better) and
``mse`` (mean squared error of a one-output regression; lower is better).

Values are kept in the metric's own units everywhere (the curves, the store, the
tables, the exports: an MSE of 2,900 is stored as 2,900, in the targets' units), and
every comparison orients them through :meth:`Metric.orient` (the score, higher is
better), so rungs, the best checkpoint, the winner, the tied set and the verdicts are
written once, for "higher is better". Storing the metric itself rather than the
oriented score keeps every number a reader sees (and every stored number an older
reader sees) a value of the metric, not its negation.

Example::

  def mae(outputs, y):                      # [B, 1], [B] -> [B]
      return jnp.abs(outputs[:, 0] - y)

  mae_metric = sweepjax.Metric("mae", mae, higher_is_better=False, targets="real")
  sweepjax.coarse(x_train=X, y_train=y, metric=mae_metric)
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from sweepjax.errors import ConfigError

TARGETS = ("classes", "real")


@dataclass(frozen=True)
class Metric:
    """A per-example metric and its direction.

    Attributes:
      name: how the sweep names it (stored; ``--metric NAME``).
      per_example: ``(outputs[B, K], targets[B]) -> [B]``; its mean is the score.
        ``outputs`` are the model's outputs (logits; for real targets, predictions in
        the targets' units), ``targets`` integer class ids or real numbers.
      higher_is_better: the direction.
      targets: ``classes`` (integer labels) or ``real`` (a regression: the data's
        targets are read as real numbers and the model has one output).
      label: the short name the tables print (``val acc``, ``val mse``); default ``name``.
      binomial: per-example values are 0 or 1: the SE is the binomial one from the score
        alone (accuracy); otherwise it is the per-example values' SD / sqrt(n).
    """

    name: str
    per_example: Callable
    higher_is_better: bool = True
    targets: str = "classes"
    label: str = ""
    binomial: bool = False
    # The features-first form ``(outputs_t[K, B], targets[B]) -> [B]`` of a built-in (the
    # trainer's layout; a user's metric is called on ``outputs_t.T``).
    per_example_t: Callable | None = None

    def __post_init__(self):
        if self.targets not in TARGETS:
            raise ConfigError(f"metric targets must be one of {', '.join(TARGETS)}")
        if not callable(self.per_example):
            raise ConfigError(f"metric {self.name!r}: per_example must be a function")

    @property
    def short(self) -> str:
        return self.label or self.name

    @property
    def real(self) -> bool:
        return self.targets == "real"

    def values_t(self, outputs_t, y):
        """Per-example values ``[B]`` of features-first outputs ``[K, B]``."""
        import jax.numpy as jnp  # here: `import sweepjax` and --help stay free of jax

        if self.per_example_t is not None:
            return self.per_example_t(outputs_t, y)
        return jnp.asarray(self.per_example(outputs_t.T, y), jnp.float32).reshape(-1)

    def orient(self, values):
        """The score of metric ``values`` (NumPy or JAX): higher is better. Accuracy's
        values are returned as they are (the same object)."""
        return values if self.higher_is_better else -values

    def fmt(self, value, width: int = 0) -> str:
        """``value`` as the tables print it: accuracy to 4 decimals, others to 4
        significant digits (an MSE of 2,904 and of 0.0123 alike)."""
        if value is None:
            return f"{'n/a':>{width}}"
        return f"{value:>{width}.4f}" if self.binomial else f"{value:>{width}.4g}"

    def best(self, values) -> float:
        """The best of ``values`` in the metric's direction, ignoring NaN (NaN if none)."""
        v = np.asarray(values, np.float64)
        if not np.isfinite(v).any():
            return math.nan
        return float(np.nanmax(v) if self.higher_is_better else np.nanmin(v))

    def better_of(self, a, b):
        """The better of ``a`` and ``b`` elementwise (``np.fmax`` / ``np.fmin``: NaN loses)."""
        return np.fmax(a, b) if self.higher_is_better else np.fmin(a, b)

    def worst(self) -> float:
        """The score given to a member with no value (NaN: diverged) when scores are
        averaged: accuracy's -1, below any real score; -inf otherwise."""
        return -1.0 if self.binomial else -math.inf

    def se(self, mean, mean_sq, n: int):
        """SE of the mean of ``n`` per-example values with mean ``mean`` and mean square
        ``mean_sq`` (arrays): binomial for accuracy, else ``SD(ddof=1) / sqrt(n)``.
        Without ``mean_sq`` (not measured) a non-binomial metric's SE is that of a mean
        square of Gaussian errors, ``|mean| * sqrt(2 / n)``."""
        mean = np.asarray(mean, np.float64)
        if self.binomial:  # analysis.surface.binomial_se's formula
            p = (mean * n + 0.5) / (n + 1.0)
            return np.sqrt(p * (1.0 - p) / n)
        if mean_sq is None:
            return np.abs(mean) * math.sqrt(2.0 / max(n, 1))
        var = np.maximum(np.asarray(mean_sq, np.float64) - mean**2, 0.0) * n / max(n - 1, 1)
        return np.sqrt(var / max(n, 1))


def _accuracy_t(outputs_t, y):
    import jax.numpy as jnp

    return (jnp.argmax(outputs_t, axis=0) == y).astype(jnp.float32)


def _squared_error_t(outputs_t, y):
    import jax.numpy as jnp

    return jnp.square(outputs_t[0] - y)


ACCURACY = Metric(
    "accuracy",
    lambda out, y: _accuracy_t(out.T, y),
    True,
    "classes",
    "acc",
    binomial=True,
    per_example_t=_accuracy_t,
)
MSE = Metric(
    "mse",
    lambda out, y: _squared_error_t(out.T, y),
    False,
    "real",
    "mse",
    per_example_t=_squared_error_t,
)
BUILTIN = {m.name: m for m in (ACCURACY, MSE)}
DEFAULT = "accuracy"

# name -> a Metric object given from Python (this process), as custom models are kept.
_OBJECTS: dict[str, Metric] = {}


def metric_name(metric) -> str:
    """The stored name of a ``metric=`` value: a built-in's name, ``package.module:name``
    (checked now), or a :class:`Metric` object (remembered in this process under
    ``module:name``; a new process imports it by that name when it can)."""
    if metric is None:
        return DEFAULT
    if isinstance(metric, Metric):
        if metric.name in BUILTIN and BUILTIN[metric.name] is metric:
            return metric.name
        name = metric.name if ":" in metric.name else f"{_module_of(metric)}:{metric.name}"
        _OBJECTS[name] = metric
        return name
    if isinstance(metric, str):
        resolve(metric)
        return metric
    raise ConfigError(
        f"metric must be {' | '.join(BUILTIN)}, package.module:name or a sweepjax.Metric, "
        f"got {type(metric).__name__}"
    )


def _module_of(metric: Metric) -> str:
    return getattr(metric.per_example, "__module__", None) or "__main__"


def resolve(name: str | None) -> Metric:
    """The :class:`Metric` a stored name stands for (None: accuracy). Raises
    ConfigError (one line) for an unknown name."""
    if name is None:
        return ACCURACY
    if name in BUILTIN:
        return BUILTIN[name]
    if name in _OBJECTS:
        return _OBJECTS[name]
    if ":" not in name:
        raise ConfigError(
            f"unknown metric {name!r}; choose {' | '.join(BUILTIN)} or package.module:name "
            "(a sweepjax.Metric)"
        )
    mod, _, attr = name.partition(":")
    try:
        obj = getattr(importlib.import_module(mod), attr)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"metric {name}: cannot import it ({type(e).__name__}); from Python pass the "
            "sweepjax.Metric itself"
        ) from None
    if not isinstance(obj, Metric):
        raise ConfigError(f"metric {name} is a {type(obj).__name__}, not a sweepjax.Metric")
    _OBJECTS[name] = obj
    return obj
