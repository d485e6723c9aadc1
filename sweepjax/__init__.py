"""sweepjax: vectorized hyperparameter sweeps in JAX.

Hundreds of (learning rate, L2 lambda, ...) softmax-regression or MLP members are trained
at once as one jitted XLA program (``jax.vmap`` over members, ``lax.scan`` over steps).
Your own flax module sweeps the same way: ``coarse(model=MyNet())`` (:mod:`sweepjax.models.custom`),
and your arrays too: ``coarse(x_train=X, y_train=y)``; ``load(store)`` reopens a sweep.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from sweepjax.errors import (
    AllDivergedError,
    ConfigError,
    DataError,
    NothingFinishedError,
    StoreError,
    SweepjaxError,
)

if TYPE_CHECKING:
    from sweepjax.budget import Budget
    from sweepjax.config import DataConfig, ModelConfig, Range, SearchSpace, TrainConfig
    from sweepjax.data import Dataset, DatasetInfo, load_dataset
    from sweepjax.engine import PopulationResult, compile_cache, train_population
    from sweepjax.engine.hparams import HParams
    from sweepjax.flows.auto import auto
    from sweepjax.flows.sweep import coarse, fine, load
    from sweepjax.metric import Metric
    from sweepjax.models.custom import Custom, from_flax
    from sweepjax.models.eqx_net import from_equinox
    from sweepjax.models.nnx_net import from_nnx
    from sweepjax.results.records import SweepResult

__version__ = "0.1.0"

# Public names imported on first use (PEP 562): `import sweepjax` and the CLI's --help
# then skip jax, flax and optax (seconds), which only training needs.
_LAZY = {
    "DataConfig": "sweepjax.config",
    "ModelConfig": "sweepjax.config",
    "Budget": "sweepjax.budget",
    "Range": "sweepjax.config",
    "SearchSpace": "sweepjax.config",
    "TrainConfig": "sweepjax.config",
    "Dataset": "sweepjax.data",
    "DatasetInfo": "sweepjax.data",
    "load_dataset": "sweepjax.data",
    "PopulationResult": "sweepjax.engine",
    "compile_cache": "sweepjax.engine.compile_cache",  # a module
    "train_population": "sweepjax.engine",
    "HParams": "sweepjax.engine.hparams",
    "auto": "sweepjax.flows.auto",
    "coarse": "sweepjax.flows.sweep",
    "fine": "sweepjax.flows.sweep",
    "load": "sweepjax.flows.sweep",
    "Custom": "sweepjax.models.custom",
    "Metric": "sweepjax.metric",
    "from_flax": "sweepjax.models.custom",
    "from_nnx": "sweepjax.models.nnx_net",
    "from_equinox": "sweepjax.models.eqx_net",
    "SweepResult": "sweepjax.results.records",
}
_MODULES = frozenset({"compile_cache"})  # public names that are modules themselves
# Subpackages reachable as attributes after a bare `import sweepjax`, as when it imported
# them eagerly (`sweepjax.engine.compile_cache.enable()`).
_SUBMODULES = frozenset(
    {"analysis", "cli", "config", "data", "engine", "flows", "models", "report", "results"}
    | {"schedulers", "search", "spec", "store"}
)


def __getattr__(name: str):
    if name in _LAZY:
        value = importlib.import_module(_LAZY[name])
        if name not in _MODULES:  # `auto` is a function of the module sweepjax.flows.auto
            value = getattr(value, name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY, *_SUBMODULES})


__all__ = [
    "AllDivergedError",
    "Budget",
    "ConfigError",
    "Custom",
    "DataConfig",
    "DataError",
    "NothingFinishedError",
    "Dataset",
    "DatasetInfo",
    "HParams",
    "Metric",
    "ModelConfig",
    "PopulationResult",
    "Range",
    "SearchSpace",
    "StoreError",
    "SweepResult",
    "SweepjaxError",
    "TrainConfig",
    "__version__",
    "auto",
    "coarse",
    "compile_cache",
    "fine",
    "from_equinox",
    "from_flax",
    "from_nnx",
    "load",
    "load_dataset",
    "train_population",
]
