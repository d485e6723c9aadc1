"""The population's static settings, root keys, initial state and memory sizing."""

from __future__ import annotations

import math

import jax
import numpy as np

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.engine import program
from sweepjax.engine.hparams import HParams
from sweepjax.engine.member import Static
from sweepjax.models import build_network


def static(
    dataset: Dataset,
    model_cfg: ModelConfig,
    config: TrainConfig,
    folds: bool = False,
    hparams: HParams | None = None,
) -> Static:
    """The static settings of a population with hyperparameters ``hparams``: the width
    mask and dropout are compiled in only when some member uses them."""
    width_mask = dropout = False
    if hparams is not None and model_cfg.kind == "mlp":
        width_mask = bool(np.any(np.asarray(hparams.hidden) < model_cfg.hidden))
        dropout = bool(np.any(np.asarray(hparams.dropout) > 0))
    elif hparams is not None and model_cfg.kind == "custom":
        from sweepjax.models.custom import check_axes

        used = {"hidden": np.isfinite(hparams.hidden), "dropout": np.asarray(hparams.dropout) > 0}
        check_axes(model_cfg, [a for a, on in used.items() if np.any(on)])
    shape = dataset.info.input_shape
    return Static(
        network=build_network(model_cfg, dataset.num_classes, width_mask, dropout, shape),
        optimizer=config.optimizer,
        batch_size=min(config.batch_size, dataset.x_train.shape[0]),
        explode_factor=float(config.explode_factor),
        folds=folds,
    )


def root_keys(seed: int):
    """(init key, data key) derived from the one root seed."""
    root = jax.random.key(seed)
    return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)


def init_states(
    dataset: Dataset, hparams: HParams, model_cfg: ModelConfig, config: TrainConfig, member_ids=None
):
    """Initial population state (host pytree, leading ``[M]`` axis).

    Member ``i`` is initialised from ``fold_in(init_key, member_ids[i])``, so its weights do
    not depend on which other members run with it.
    """
    m = hparams.num_members
    ids = np.arange(m) if member_ids is None else np.asarray(member_ids)
    init_key, _ = root_keys(config.seed)
    bits = np.asarray(jax.random.key_data(init_key))
    st = static(dataset, model_cfg, config, hparams=hparams)
    blk = program.INIT_BLOCK
    n = math.ceil(m / blk) * blk
    padded = np.resize(ids, n).astype(np.uint32)
    hps = HParams(*(np.resize(np.asarray(f, np.float32), n) for f in hparams))
    blocks = []
    with jax.default_device(jax.local_devices()[0]):  # local work, also multi-process
        for start in range(0, len(padded), blk):
            out = program.init_block(
                bits,
                padded[start : start + blk],
                hps.take(slice(start, start + blk)),
                num_features=dataset.num_features,
                static=st,
            )
            blocks.append(jax.device_get(out))
    return jax.tree.map(lambda *b: np.concatenate(b)[:m], *blocks)


def _custom_sizes(model_cfg: ModelConfig, num_features, num_classes, input_shape):
    from sweepjax.models.custom import sizes

    net = build_network(model_cfg, num_classes, input_shape=input_shape)
    return sizes(net, num_features)


def num_params(
    model_cfg: ModelConfig, num_features: int, num_classes: int, input_shape=None
) -> int:
    """Parameters of one member (a custom model's from ``jax.eval_shape`` of its init on
    examples of ``input_shape``, the dataset's; None: flat)."""
    if model_cfg.kind == "custom":
        return _custom_sizes(model_cfg, num_features, num_classes, input_shape)[0]
    if model_cfg.kind == "softmax":
        return num_features * num_classes + num_classes
    h = model_cfg.hidden
    return num_features * h + h + h * num_classes + num_classes


def member_bytes(
    model_cfg: ModelConfig,
    config: TrainConfig,
    num_features: int,
    num_classes: int,
    input_shape=None,
) -> int:
    """Rough device bytes one member needs inside a chunk program (params, best params,
    optimizer slots, gradient and update temporaries, per-member activations; a custom
    model's activations are every intermediate of its forward pass on one example)."""
    p = num_params(model_cfg, num_features, num_classes, input_shape)
    slots = {"sgd": 0, "momentum": 1, "adam": 2}[config.optimizer]
    if model_cfg.kind == "custom":
        width = _custom_sizes(model_cfg, num_features, num_classes, input_shape)[1]
    else:
        width = num_classes + (model_cfg.hidden if model_cfg.kind == "mlp" else 0)
    return 4 * (
        p * (5 + slots) + config.batch_size * width * 4 + config.eval_batch_size * width * 2
    )


def group_size(
    num_members: int,
    model_cfg: ModelConfig,
    config: TrainConfig,
    num_features: int,
    num_classes: int,
    input_shape=None,
) -> int:
    """Members per compiled program under ``config.memory_budget_mb``."""
    per = member_bytes(model_cfg, config, num_features, num_classes, input_shape)
    fit = max(1, (config.memory_budget_mb * 2**20) // per)
    return int(min(num_members, fit))
