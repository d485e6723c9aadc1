"""sweepjax: vectorized hyperparameter sweeps in JAX.

Hundreds of (learning rate, L2 lambda, ...) softmax-regression or MLP members are trained
at once as one jitted XLA program (``jax.vmap`` over members, ``lax.scan`` over steps).
Your own flax module sweeps the same way: ``coarse(model=MyNet())`` (:mod:`sweepjax.models.custom`).
"""

from sweepjax.config import DataConfig, ModelConfig, Range, SearchSpace, TrainConfig
from sweepjax.data import Dataset, DatasetInfo, load_dataset
from sweepjax.engine import PopulationResult, compile_cache, train_population
from sweepjax.engine.hparams import HParams
from sweepjax.errors import (
    AllDivergedError,
    ConfigError,
    DataError,
    StoreError,
    SweepjaxError,
)
from sweepjax.flows.auto import auto
from sweepjax.flows.sweep import coarse, fine
from sweepjax.models.custom import Custom, from_flax
from sweepjax.results.records import SweepResult

__version__ = "0.1.0"

__all__ = [
    "AllDivergedError",
    "ConfigError",
    "Custom",
    "DataConfig",
    "DataError",
    "Dataset",
    "DatasetInfo",
    "HParams",
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
    "from_flax",
    "load_dataset",
    "train_population",
]
