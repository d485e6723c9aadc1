"""The population's static settings, root keys, initial state and memory sizing."""

from __future__ import annotations

import math

import jax
import numpy as np

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.engine import program
from sweepjax.engine.hparams import HParams
from sweepjax.engine.keys import root_bits
from sweepjax.engine.member import Static, Task
from sweepjax.errors import ConfigError
from sweepjax.metric import resolve as resolve_metric
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
    mb = member_batch(model_cfg, dataset.num_features, dataset.num_classes, shape)
    return Static(
        network=build_network(model_cfg, dataset.num_classes, width_mask, dropout, shape),
        optimizer=config.optimizer,
        batch_size=min(config.batch_size, dataset.x_train.shape[0]),
        explode_factor=float(config.explode_factor),
        folds=folds,
        member_batch=mb,
        host_steps=host_steps(mb),
        metric=checked_metric(config, dataset),
        target=target_of(dataset),
        minibatch=config.minibatch,
    )


def checked_metric(config: TrainConfig, dataset: Dataset):
    """``config.metric``'s Metric, refused in one line when it does not fit the data's
    targets (accuracy on a regression's real targets, an MSE on class labels)."""
    metric = resolve_metric(config.metric)
    if metric.real != (target_of(dataset) is not None):
        have = "real-valued targets" if metric.real is False else "class labels"
        raise ConfigError(
            f"metric {metric.name} does not fit the data's {have}; pass "
            f"TrainConfig(metric={'mse' if not metric.real else 'accuracy'!r})"
        )
    return metric


def task_of(dataset: Dataset, config: TrainConfig) -> Task:
    """What a member's outputs are scored against on ``dataset`` (``Static.task``)."""
    return Task(resolve_metric(config.metric), target_of(dataset))


def target_of(dataset: Dataset) -> tuple[float, float] | None:
    """A regression's training-target ``(mean, std)`` (``Static.target``), else None."""
    info = dataset.info
    if getattr(info, "targets", "classes") != "real":
        return None
    return (float(info.target_mean), float(info.target_scale))


# The population's layout (Static.member_batch, program.over_members), a cost rule.
# vmap turns the members' convolutions into ONE convolution over every member's kernels
# (members x filters outputs on the shared minibatch; a grouped convolution where the
# input is per member, as in a second layer), which XLA:CPU runs far slower inside the
# compiled training loop than the members' own convolutions one after another (grouped
# ones on GPU too: jax-ml/jax#26568). So a custom model whose forward pass holds a
# convolution loops over its members inside the program, CONV_MEMBER_BATCH at a time;
# every other model (softmax, MLP, a dense custom model) vmaps them all, which is where
# their speed comes from (one wide matmul).
# Measured on 2 CPU cores, examples.my_cnn:SmallCNN on the bundled MNIST sample, SGD,
# batch 256, 16 members in one program, ms per member-step against the user's plain
# jitted loop timed right after (benchmarks/bench_engine.py --case cnn, its layouts
# table in results/engine-cnn-cpu.md; docs/performance.md): vmap 276 ms (0.20x the
# loop), groups of 4 160 ms (0.41x), groups of 2 61 ms (0.64x), one at a time 56 ms
# (1.12x); in the run's timed repetitions one at a time takes 35.9 ms to the loop's
# 36.1 (1.01x). So k = 1: a plain loop (lax.map with no vmap). (That "loop" was a scan,
# itself slow; against a Python loop of one jitted step, see host_steps below.)
CONV = "conv_general_dilated"
CONV_MEMBER_BATCH = 1


def member_batch(model_cfg: ModelConfig, num_features: int, num_classes: int, input_shape=None):
    """The population's layout: 0 (vmap every member at once) unless the model is a
    custom one whose forward pass on one example holds a convolution; then
    :data:`CONV_MEMBER_BATCH` (members looped over, that many at a time)."""
    if model_cfg.kind != "custom":
        return 0
    from sweepjax.models.custom import primitives

    net = build_network(model_cfg, num_classes, input_shape=input_shape)
    return CONV_MEMBER_BATCH if CONV in primitives(net, num_features) else 0


def host_steps(member_batch_: int) -> bool:
    """Whether a chunk runs as host-driven steps (``Static.host_steps``): for a model
    whose members are looped over (a convolution) on a CPU, where XLA runs a convolution
    inside a loop (``fori_loop``, ``scan``, ``lax.map``) 1.5-2.5x slower than the same
    step called alone. Measured on 2 loaded CPU cores, SmallCNN, 16 members, SGD, batch
    256, against a Python loop of one jitted step in the same run (benchmarks/
    bench_engine.py --case cnn, results/engine-cnn-cpu.md, docs/performance.md):
    host-driven 33.9 ms per member-step to the loop's 34.3 (1.07x; 0.88x in an earlier
    run: parity within the load's noise), the in-program loop 0.44x. Dense models keep
    the in-program loop (one vmapped step of every member is one wide matmul, far ahead
    of any loop of single steps); so does a GPU (one small step per call would leave it
    idle)."""
    return member_batch_ > 0 and jax.default_backend() == "cpu"


def root_keys(seed: int):
    """(init key, data key) derived from the one root seed (typed keys; the engine
    itself takes their bits from :func:`root_bits`)."""
    root = jax.random.key(seed)
    return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)


def init_block_size(m: int) -> int:
    """Members per initialisation call: :data:`program.INIT_BLOCK`, or the power of two
    at or above ``m`` when that is smaller. The block's members all draw their weights,
    so a small population in a 64-member block paid for 64: 2.4 s of a 5-member
    width-256 MLP's 3.5-s overfit run (the check's, run by ``auto`` before it searches;
    optimisation level 0, loaded 2-core CPU). At most seven sizes ever compile, each in
    about 0.3 s at that level; a member's weights depend only on its id, not its block."""
    return min(program.INIT_BLOCK, 1 << max(int(m) - 1, 0).bit_length())


def init_states(
    dataset: Dataset, hparams: HParams, model_cfg: ModelConfig, config: TrainConfig, member_ids=None
):
    """Initial population state (host pytree, leading ``[M]`` axis).

    Member ``i`` is initialised from ``fold_in(init_key, member_ids[i])``, so its weights do
    not depend on which other members run with it.
    """
    m = hparams.num_members
    ids = np.arange(m) if member_ids is None else np.asarray(member_ids)
    bits, _ = root_bits(config.seed)
    st = static(dataset, model_cfg, config, hparams=hparams)
    blk = init_block_size(m)
    n = math.ceil(m / blk) * blk
    padded = np.resize(ids, n).astype(np.uint32)
    hps = hparams.map(lambda f: np.resize(np.asarray(f, np.float32), n))
    # Filled block by block into arrays allocated once: collecting the blocks and then
    # concatenating them held the population's state twice (13 GB more for 4,096 Adam
    # MLP-256 members, what the kernel killed in issue 29).
    out = None
    with jax.default_device(jax.local_devices()[0]):  # local work, also multi-process
        for start in range(0, m, blk):
            block = program.init_block(
                bits,
                padded[start : start + blk],
                hps.take(slice(start, start + blk)),
                num_features=dataset.num_features,
                static=st,
            )
            block = jax.device_get(block)
            if out is None:
                out = jax.tree.map(lambda b: np.empty((m,) + b.shape[1:], b.dtype), block)
            rows = min(blk, m - start)
            for dst, src in zip(jax.tree.leaves(out), jax.tree.leaves(block), strict=True):
                dst[start : start + rows] = src[:rows]
    return out


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


def _bytes(model_cfg: ModelConfig, config: TrainConfig, num_features, num_classes, input_shape):
    """``(state, activations)``: rough device bytes of one member inside a chunk program.

    State: params, best params, optimizer slots, gradient and update temporaries.
    Activations, built-ins: ``width = K (+ hidden)`` values per row, 4 copies per
    training row and 2 per evaluation row. A custom model's, from its forward pass on one
    example (``custom.sizes``): every intermediate twice per training row (its value kept
    for the backward pass and its cotangent), and twice the largest intermediate per
    evaluation row (a forward pass holds about one operation's input and output). Both
    overstate what XLA keeps, as an upper bound should: for examples.my_cnn:SmallCNN on
    28x28 images (23,558 intermediate values per example, the largest 6,272) XLA's own
    memory analysis of the chunk program finds about 1.2x the intermediates per training
    row for a lone member and 0.6x per member for 4 vmapped ones (not 2x), and exactly 2x
    the largest per evaluation row; training and evaluation are never live together,
    and the sum counts both.
    """
    p = num_params(model_cfg, num_features, num_classes, input_shape)
    # a user's optax factory: counted as Adam's two slots (most keep at most two)
    slots = {"sgd": 0, "momentum": 1, "adam": 2}.get(config.optimizer, 2)
    if model_cfg.kind == "custom":
        sz = _custom_sizes(model_cfg, num_features, num_classes, input_shape)
        per_row = config.batch_size * sz.activations * 2 + config.eval_batch_size * sz.largest * 2
    else:
        width = num_classes + (model_cfg.hidden if model_cfg.kind == "mlp" else 0)
        per_row = config.batch_size * width * 4 + config.eval_batch_size * width * 2
    return 4 * p * (5 + slots), 4 * per_row


def member_bytes(
    model_cfg: ModelConfig,
    config: TrainConfig,
    num_features: int,
    num_classes: int,
    input_shape=None,
) -> int:
    """Rough device bytes one member needs inside a chunk program when every member is
    vmapped at once: its state (params, best params, optimizer slots, gradient and update
    temporaries) and its activations (see :func:`_bytes`)."""
    return sum(_bytes(model_cfg, config, num_features, num_classes, input_shape))


def program_bytes(
    members: int,
    model_cfg: ModelConfig,
    config: TrainConfig,
    num_features: int,
    num_classes: int,
    input_shape=None,
) -> int:
    """Rough device bytes of one chunk program of ``members`` members beyond the shared
    data (an upper bound of XLA's memory analysis, see :func:`_bytes`): vmapped members
    (layout 0) each hold their own activations; members looped over ``k`` at a time
    (:func:`member_batch`) share the activations of ``k``."""
    state, acts = _bytes(model_cfg, config, num_features, num_classes, input_shape)
    k = member_batch(model_cfg, num_features, num_classes, input_shape)
    return members * (state + acts) if k == 0 else members * state + min(k, members) * acts


def group_size(
    num_members: int,
    model_cfg: ModelConfig,
    config: TrainConfig,
    num_features: int,
    num_classes: int,
    input_shape=None,
) -> int:
    """Members per compiled program under ``config.memory_budget_mb``
    (:func:`program_bytes` of the group at most the budget; at least one member)."""
    state, acts = _bytes(model_cfg, config, num_features, num_classes, input_shape)
    budget = config.memory_budget_mb * 2**20
    k = member_batch(model_cfg, num_features, num_classes, input_shape)
    fit = budget // (state + acts) if k == 0 else (budget - k * acts) // state
    return int(min(num_members, max(1, fit)))
