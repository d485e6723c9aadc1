"""The population trainer: one member's step, vmapped once, scanned per chunk.

Shape conventions: ``M`` members, ``B`` batch, ``D`` features, ``K`` classes,
``E`` evaluations. Everything under ``_member_*`` is written for ONE member; the
member axis is added in exactly one place, :func:`_over_members`.

A chunk of ``n_blocks * eval_every`` steps is one compiled XLA program: ``lax.scan``
over steps, minibatch indices drawn from a PRNG key inside the scan, the data resident
on the device, the state buffers donated. Host code runs only between chunks.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import PartitionSpec

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.distributed import AXIS, SINGLE, Placement, put_members, put_replicated, to_host
from sweepjax.hparams import HParams
from sweepjax.models import build_model, init_params, l2_penalty

# Incremented each time the population program is traced; tests assert that new
# hyperparameter values do not increase it (the values are traced arrays).
TRACE_COUNT = 0


# --------------------------------------------------------------------------- containers
class MemberState(NamedTuple):
    """State of one member (the trainer stacks a leading ``[M]`` axis on every leaf)."""

    params: Any
    opt_state: Any
    alive: jax.Array  # bool: False once diverged; the member is then frozen
    diverged_at: jax.Array  # int32 step at which it diverged, -1 if alive
    initial_loss: jax.Array  # float32 loss of the first minibatch (the "original cost")
    best_val_acc: jax.Array  # float32
    best_step: jax.Array  # int32 steps completed when best_val_acc was reached
    best_params: Any  # the parameters at best_val_acc (early stopping's choice)


class EvalMetrics(NamedTuple):
    """One evaluation of one member (stacked to ``[M, E]`` in :class:`Curves`)."""

    train_loss: jax.Array  # mean minibatch objective (data loss + L2) over the block
    val_loss: jax.Array  # mean cross-entropy on the whole validation set
    val_acc: jax.Array
    train_acc: jax.Array  # accuracy on a fixed training subset
    update_ratio: jax.Array  # ||update|| / ||params|| at the block's last step


class Curves(NamedTuple):
    """Every evaluation of every member. ``step[E]``; each metric ``[M, E]``.

    Entries after a member diverged are NaN.
    """

    step: np.ndarray
    train_loss: np.ndarray
    val_loss: np.ndarray
    val_acc: np.ndarray
    train_acc: np.ndarray
    update_ratio: np.ndarray

    @classmethod
    def empty(cls, num_members: int) -> Curves:
        z = np.zeros((num_members, 0), np.float32)
        return cls(np.zeros((0,), np.int64), z, z, z, z, z)

    def append(self, steps: np.ndarray, m: EvalMetrics) -> Curves:
        return Curves(
            np.concatenate([self.step, steps]),
            *(
                np.concatenate([old, np.asarray(new)], axis=1)
                for old, new in zip(self[1:], m, strict=True)
            ),
        )


class Timing(NamedTuple):
    compile_s: float  # ahead-of-time compilation of the population programs
    train_s: float  # wall time of the compiled calls (blocked until ready)
    model_steps_per_s: float  # members x steps / train_s
    num_groups: int  # programs the population was split into (memory budget)
    group_size: int


class Checkpoint(NamedTuple):
    """Everything needed to continue training exactly where it stopped.

    ``states`` is a host pytree of :class:`MemberState` with a leading ``[M]`` axis.
    """

    step: int
    states: Any
    curves: Curves


class ChunkReport(NamedTuple):
    """Handed to ``on_chunk`` after every chunk (all groups at the same step)."""

    step: int
    total_steps: int
    alive: int
    num_members: int
    best_val_acc: float
    elapsed_s: float
    checkpoint: Checkpoint


class PopulationResult(NamedTuple):
    """What :func:`train_population` returns. Per-member arrays are ``[M]``."""

    member_ids: np.ndarray
    hparams: HParams
    alive: np.ndarray
    diverged_at: np.ndarray
    initial_loss: np.ndarray
    best_val_acc: np.ndarray
    best_step: np.ndarray
    final_train_loss: np.ndarray
    final_val_loss: np.ndarray
    final_val_acc: np.ndarray
    final_train_acc: np.ndarray
    curves: Curves
    params: Any  # final parameters, host pytree, leading [M] axis
    best_params: Any  # parameters at each member's best validation accuracy
    timing: Timing
    completed: bool  # False when on_chunk asked to stop early
    checkpoint: Checkpoint

    @property
    def num_members(self) -> int:
        return int(self.member_ids.shape[0])

    @property
    def status(self) -> list[str]:
        return ["ok" if a else "diverged" for a in self.alive]


class DeviceData(NamedTuple):
    """Data shared by every member, resident on the device."""

    x_train: jax.Array  # [N, D]
    y_train: jax.Array  # [N]
    x_val: jax.Array  # [S, D, Eb] validation set in features-first slices (padded)
    y_val: jax.Array  # [S, Eb]
    m_val: jax.Array  # [S, Eb] 1.0 for real rows, 0.0 for padding
    x_tev: jax.Array  # fixed training subset, same layout as the validation slices
    y_tev: jax.Array
    m_tev: jax.Array


@dataclasses.dataclass(frozen=True)
class ChunkSpec:
    """Static (hashable) description of one compiled chunk program."""

    model: ModelConfig
    num_classes: int
    optimizer: str
    momentum: float
    batch_size: int
    eval_every: int
    n_blocks: int
    explode_factor: float
    steps_per_epoch: int


# --------------------------------------------------------------------------- one member
def _direction(spec: ChunkSpec) -> optax.GradientTransformation:
    """The optimizer without its learning rate; the (traced, per-member, decayed) rate
    multiplies its output, so one program serves every learning rate."""
    if spec.optimizer == "sgd":
        return optax.identity()
    if spec.optimizer == "momentum":
        return optax.trace(decay=spec.momentum)
    return optax.scale_by_adam()


def minibatch_indices(data_key, t, batch_size: int, n_train: int) -> jax.Array:
    """Rows of the minibatch at global step ``t``: drawn with replacement, as the
    lecture's ``np.random.choice(num_train, batch_size)``, from ``fold_in(data_key, t)``
    so they depend only on the seed and the step (not on chunking or population)."""
    return jax.random.randint(jax.random.fold_in(data_key, t), (batch_size,), 0, n_train)


def _cross_entropy_t(logits_t, y):
    """Per-example cross-entropy of features-first logits ``[K, B]`` and labels ``[B]``."""
    picked = jnp.take_along_axis(logits_t, y[None, :], axis=0)[0]
    return jax.nn.logsumexp(logits_t, axis=0) - picked


def _objective(params, x, y, l2, model):
    """Mean cross-entropy + ``l2 * sum(w**2)/2`` for one member on a batch ``x[B, D]``.

    The model runs features-first (``x.T``, see :class:`sweepjax.models.Dense`): the
    transpose is of the shared minibatch, once per step, not of any member's weights.
    """
    logits_t = model.apply({"params": params}, x.T, True)
    return _cross_entropy_t(logits_t, y).mean() + l2 * l2_penalty(params)


def _member_evaluate(params, xs, ys, ms, model):
    """Mean cross-entropy and accuracy of one member over sliced, masked data
    (``xs[S, D, rows]`` features-first, ``ys`` and ``ms`` ``[S, rows]``)."""

    def body(acc, slc):
        x_t, y, m = slc
        logits_t = model.apply({"params": params}, x_t, True)
        ce = _cross_entropy_t(logits_t, y)
        correct = (jnp.argmax(logits_t, axis=0) == y).astype(jnp.float32)
        return (acc[0] + jnp.sum(ce * m), acc[1] + jnp.sum(correct * m)), None

    (ce_sum, correct), _ = jax.lax.scan(body, (0.0, 0.0), (xs, ys, ms))
    n = jnp.sum(ms)
    return ce_sum / n, correct / n


def _member_init(member_key, num_features: int, spec: ChunkSpec) -> MemberState:
    """Initial state of one member (weights do not depend on its hyperparameters)."""
    model = build_model(spec.model, spec.num_classes)
    params = init_params(model, member_key, num_features)
    return MemberState(
        params=params,
        opt_state=_direction(spec).init(params),
        alive=jnp.array(True),
        diverged_at=jnp.array(-1, jnp.int32),
        initial_loss=jnp.array(jnp.nan, jnp.float32),
        best_val_acc=jnp.array(0.0, jnp.float32),
        best_step=jnp.array(0, jnp.int32),
        best_params=params,
    )


def _member_step(
    st: MemberState,
    hp: HParams,
    data: DeviceData,
    t,
    data_key,
    spec: ChunkSpec,
    measure: bool = False,
):
    """One SGD/momentum/Adam step of one member at global step ``t``.

    Returns the new state, the minibatch objective (0 once diverged) and, when
    ``measure``, the update/weight norm ratio (else 0). Only the last step of an
    evaluation block measures: the ratio needs the update tensor materialised, which
    the ordinary step fuses away.
    """
    model = build_model(spec.model, spec.num_classes)
    tx = _direction(spec)
    # Same indices for every member: t and data_key carry no member axis, so the
    # gather and the matmuls are shared across the population.
    idx = minibatch_indices(data_key, t, spec.batch_size, data.x_train.shape[0])
    x, y = data.x_train[idx], data.y_train[idx]
    loss, grads = jax.value_and_grad(_objective)(st.params, x, y, hp.l2, model)
    direction, opt_state = tx.update(grads, st.opt_state, st.params)
    lr_t = hp.lr * hp.lr_decay ** (t // spec.steps_per_epoch).astype(jnp.float32)
    updates = jax.tree.map(lambda d: -lr_t * d, direction)
    new_params = optax.apply_updates(st.params, updates)

    initial = jnp.where(t == 0, loss, st.initial_loss)
    exploded = ~jnp.isfinite(loss) | (loss > spec.explode_factor * initial)
    newly = st.alive & exploded
    alive = st.alive & ~exploded

    if measure:
        ratio = optax.global_norm(updates) / (optax.global_norm(st.params) + 1e-12)
    else:
        ratio = jnp.zeros((), jnp.float32)

    # Frozen once diverged: keep the old values, so a NaN never spreads further.
    keep = lambda new, old: jnp.where(alive, new, old)  # noqa: E731
    st = st._replace(
        params=jax.tree.map(keep, new_params, st.params),
        opt_state=jax.tree.map(keep, opt_state, st.opt_state),
        alive=alive,
        diverged_at=jnp.where(newly, t, st.diverged_at),
        initial_loss=initial,
    )
    return st, jnp.where(alive, loss, 0.0), ratio


def _member_eval(st: MemberState, hp: HParams, data: DeviceData, done, extra, spec: ChunkSpec):
    """Evaluate one member after ``done`` steps; ``extra = (mean train loss, ratio)``.

    Updates the member's best validation accuracy; metrics are NaN once diverged.
    """
    del hp
    model = build_model(spec.model, spec.num_classes)
    train_loss, ratio = extra
    val_loss, val_acc = _member_evaluate(st.params, data.x_val, data.y_val, data.m_val, model)
    _, train_acc = _member_evaluate(st.params, data.x_tev, data.y_tev, data.m_tev, model)
    better = st.alive & (val_acc > st.best_val_acc)
    st = st._replace(
        best_val_acc=jnp.where(better, val_acc, st.best_val_acc),
        best_step=jnp.where(better, done, st.best_step),
        best_params=jax.tree.map(lambda p, b: jnp.where(better, p, b), st.params, st.best_params),
    )
    nan = jnp.float32(jnp.nan)
    metrics = EvalMetrics(
        *(jnp.where(st.alive, v, nan) for v in (train_loss, val_loss, val_acc, train_acc, ratio))
    )
    return st, metrics


# --------------------------------------------------------------------------- population
def _over_members(fn, spec: ChunkSpec, extra_axis, num_outputs: int):
    """THE place the member axis appears. ``fn(state, hparams, data, t, extra, spec)`` is
    written for one member; the result maps it over the population. Data and the step
    index are shared by all members (no member axis); ``extra`` is shared when
    ``extra_axis`` is None and per member when it is 0."""
    return jax.vmap(
        functools.partial(fn, spec=spec),
        in_axes=(0, 0, None, None, extra_axis),
        out_axes=(0,) * num_outputs,
    )


def _init_block(init_key_bits, ids, num_features, spec):
    """Initial states of a fixed-size block of members (ids ``[INIT_BLOCK]``).

    A fixed block size means one small compiled program serves any population size.
    """
    init_key = jax.random.wrap_key_data(init_key_bits)
    keys = jax.vmap(lambda i: jax.random.fold_in(init_key, i))(ids)
    return jax.vmap(lambda k: _member_init(k, num_features, spec))(keys)


def _population_chunk(states, hps, data, start_step, data_key_bits, spec):
    """``spec.n_blocks`` evaluation blocks of ``spec.eval_every`` steps, for all members.

    Returns the new states (member axis leading) and ``EvalMetrics`` of ``[M, n_blocks]``.
    """
    global TRACE_COUNT
    TRACE_COUNT += 1  # runs at trace time only
    # The key travels as raw bits (a plain uint32 array) so every process can pass it.
    data_key = jax.random.wrap_key_data(data_key_bits)
    step = _over_members(_member_step, spec, extra_axis=None, num_outputs=3)
    measured_step = _over_members(
        functools.partial(_member_step, measure=True), spec, extra_axis=None, num_outputs=3
    )
    evaluate = _over_members(_member_eval, spec, extra_axis=0, num_outputs=2)

    def one_step(carry, t):
        st, loss_sum = carry
        st, loss, _ = step(st, hps, data, t, data_key)
        return (st, loss_sum + loss), None

    def block(st, b):
        t0 = start_step + b * spec.eval_every
        zeros = jnp.zeros(hps.lr.shape, jnp.float32)
        (st, loss_sum), _ = jax.lax.scan(
            one_step, (st, zeros), t0 + jnp.arange(spec.eval_every - 1)
        )
        last = t0 + spec.eval_every - 1
        st, loss, ratio = measured_step(st, hps, data, last, data_key)
        return evaluate(st, hps, data, last + 1, ((loss_sum + loss) / spec.eval_every, ratio))

    states, metrics = jax.lax.scan(block, states, jnp.arange(spec.n_blocks))
    return states, jax.tree.map(lambda a: a.T, metrics)  # [n_blocks, M] -> [M, n_blocks]


INIT_BLOCK = 64
_init_jit = jax.jit(_init_block, static_argnames=("num_features", "spec"))
_COMPILED: dict = {}


def _chunk_program(spec: ChunkSpec, where: Placement):
    """The jitted population program; over a mesh, each device runs it on its own slice
    of members (``shard_map``), with the data and the step index replicated."""
    fn = functools.partial(_population_chunk, spec=spec)
    if where.mesh is not None:
        member, shared = PartitionSpec(AXIS), PartitionSpec()
        fn = jax.shard_map(
            fn,
            mesh=where.mesh,
            in_specs=(member, member, shared, shared, shared),
            out_specs=(member, member),
            check_vma=False,
        )
    return jax.jit(fn, donate_argnums=(0,))


def _compiled_chunk(args, spec: ChunkSpec, where: Placement):
    """Ahead-of-time compiled chunk program, cached by (spec, placement, shapes); returns
    ``(executable, seconds spent compiling)``."""
    shapes = str(jax.tree.map(lambda a: (a.shape, a.dtype), args[:3]))
    key = (spec, where.key, shapes)
    if key in _COMPILED:
        return _COMPILED[key], 0.0
    t0 = time.perf_counter()
    exe = _chunk_program(spec, where).lower(*args).compile()
    _COMPILED[key] = exe
    return exe, time.perf_counter() - t0


def _slices(x: np.ndarray, y: np.ndarray, rows: int):
    """``[n, D]`` -> features-first slices ``[S, D, rows]`` zero-padded, with a
    ``[S, rows]`` mask."""
    n = x.shape[0]
    rows = max(1, min(rows, n))
    s = math.ceil(n / rows)
    pad = s * rows - n
    xs = np.concatenate([x, np.zeros((pad, x.shape[1]), x.dtype)]).reshape(s, rows, -1)
    xs = np.ascontiguousarray(xs.transpose(0, 2, 1))
    ys = np.concatenate([y, np.zeros((pad,), y.dtype)]).reshape(s, rows)
    ms = np.concatenate([np.ones(n, np.float32), np.zeros(pad, np.float32)]).reshape(s, rows)
    return xs, ys, ms


def device_data(dataset: Dataset, config: TrainConfig, where: Placement = SINGLE) -> DeviceData:
    """Put the shared data on the device once (sliced for evaluation)."""
    rng = np.random.default_rng(config.seed)
    n_tev = min(config.train_eval_size, dataset.x_train.shape[0])
    tev = np.sort(rng.permutation(dataset.x_train.shape[0])[:n_tev])
    xv, yv, mv = _slices(dataset.x_val, dataset.y_val, config.eval_batch_size)
    xt, yt, mt = _slices(dataset.x_train[tev], dataset.y_train[tev], config.eval_batch_size)
    host = DeviceData(
        dataset.x_train.astype(np.float32),
        dataset.y_train.astype(np.int32),
        xv.astype(np.float32),
        yv.astype(np.int32),
        mv,
        xt.astype(np.float32),
        yt.astype(np.int32),
        mt,
    )
    return put_replicated(host, where)


def num_params(model_cfg: ModelConfig, num_features: int, num_classes: int) -> int:
    if model_cfg.kind == "softmax":
        return num_features * num_classes + num_classes
    h = model_cfg.hidden
    return num_features * h + h + h * num_classes + num_classes


def member_bytes(
    model_cfg: ModelConfig, config: TrainConfig, num_features: int, num_classes: int
) -> int:
    """Rough device bytes one member needs inside a chunk program (params, best params,
    optimizer slots, gradient and update temporaries, per-member activations)."""
    p = num_params(model_cfg, num_features, num_classes)
    slots = {"sgd": 0, "momentum": 1, "adam": 2}[config.optimizer]
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
) -> int:
    """Members per compiled program under ``config.memory_budget_mb``."""
    per = member_bytes(model_cfg, config, num_features, num_classes)
    fit = max(1, (config.memory_budget_mb * 2**20) // per)
    return int(min(num_members, fit))


def _spec(
    dataset: Dataset, model_cfg: ModelConfig, config: TrainConfig, n_blocks: int
) -> ChunkSpec:
    return ChunkSpec(
        model=model_cfg,
        num_classes=dataset.num_classes,
        optimizer=config.optimizer,
        momentum=float(config.momentum),
        batch_size=min(config.batch_size, dataset.x_train.shape[0]),
        eval_every=config.resolved_eval_every,
        n_blocks=n_blocks,
        explode_factor=float(config.explode_factor),
        steps_per_epoch=max(1, dataset.x_train.shape[0] // config.batch_size),
    )


def _root_keys(seed: int):
    """(init key, data key) derived from the one root seed."""
    root = jax.random.key(seed)
    return jax.random.fold_in(root, 0), jax.random.fold_in(root, 1)  # (init, data)


def init_states(
    dataset: Dataset, hparams: HParams, model_cfg: ModelConfig, config: TrainConfig, member_ids=None
):
    """Initial population state (host pytree, leading ``[M]`` axis).

    Member ``i`` is initialised from ``fold_in(init_key, member_ids[i])``, so its weights do
    not depend on which other members run with it.
    """
    m = hparams.num_members
    ids = np.arange(m) if member_ids is None else np.asarray(member_ids)
    init_key, _ = _root_keys(config.seed)
    bits = np.asarray(jax.random.key_data(init_key))
    spec = _spec(dataset, model_cfg, config, 1)
    padded = np.resize(ids, math.ceil(m / INIT_BLOCK) * INIT_BLOCK).astype(np.uint32)
    blocks = []
    with jax.default_device(jax.local_devices()[0]):  # local work, also multi-process
        for start in range(0, len(padded), INIT_BLOCK):
            blocks.append(
                jax.device_get(
                    _init_jit(
                        bits,
                        padded[start : start + INIT_BLOCK],
                        num_features=dataset.num_features,
                        spec=spec,
                    )
                )
            )
    return jax.tree.map(lambda *b: np.concatenate(b)[:m], *blocks)


def _take(tree, idx):
    return jax.tree.map(lambda a: np.asarray(a)[idx], tree)


def _put_rows(tree, idx, rows):
    def put(a, r):
        a[idx] = np.asarray(r)[: len(idx)]
        return a

    return jax.tree.map(put, tree, rows)


def train_population(
    dataset: Dataset,
    hparams: HParams,
    model_cfg: ModelConfig,
    config: TrainConfig,
    *,
    member_ids=None,
    on_chunk: Callable[[ChunkReport], bool | None] | None = None,
    resume: Checkpoint | None = None,
    placement: Placement | None = None,
) -> PopulationResult:
    """Train every member of ``hparams`` at once.

    Args:
      dataset: preprocessed splits (see :func:`sweepjax.data.load_dataset`).
      hparams: ``[M]`` per-member values; new values never recompile.
      model_cfg, config: static settings shared by all members.
      member_ids: stable ids ``[M]`` used to derive each member's initial weights
        (default ``arange(M)``).
      on_chunk: called after every chunk with a :class:`ChunkReport` (progress and a
        host checkpoint). Returning ``False`` stops training at that boundary.
      resume: a checkpoint from an earlier, interrupted call with the same arguments.
      placement: devices to spread the members over (:func:`sweepjax.distributed.placement`);
        default: one device. Results match the one-device run up to float rounding.

    Returns:
      :class:`PopulationResult`.

    Example::

      hp = HParams.create(lr=np.geomspace(1e-3, 1, 64), l2=1e-4)
      res = train_population(ds, hp, ModelConfig(), TrainConfig(steps=500))
      res.best_val_acc.argmax()
    """
    m = hparams.num_members
    ids = np.arange(m) if member_ids is None else np.asarray(member_ids)
    if ids.shape != (m,):
        raise ValueError(f"member_ids must have shape ({m},), got {ids.shape}")
    eval_every = config.resolved_eval_every
    chunk = config.resolved_chunk_steps
    total = config.steps
    where = SINGLE if placement is None else placement
    _, data_key = _root_keys(config.seed)
    key_bits = np.asarray(jax.random.key_data(data_key))
    data = device_data(dataset, config, where)

    if resume is not None:
        step, states, curves = resume.step, resume.states, resume.curves
    else:
        step, curves = 0, Curves.empty(m)
        states = init_states(dataset, hparams, model_cfg, config, ids)

    gsize = group_size(m, model_cfg, config, dataset.num_features, dataset.num_classes)
    # Each program's members split evenly over the devices (padding rows as needed).
    gsize = math.ceil(gsize / where.num_devices) * where.num_devices
    ngroups = math.ceil(m / gsize)
    # Pad every group to the same size (repeating row 0) so one program serves all;
    # the padding rows' results are dropped.
    groups, counts = [], []
    for g in range(ngroups):
        real = np.arange(g * gsize, min((g + 1) * gsize, m))
        groups.append(np.concatenate([real, np.zeros(gsize - len(real), np.int64)]))
        counts.append(len(real))

    on_device = None
    if ngroups == 1:  # keep the whole population on the device between chunks
        on_device = put_members(_take(states, groups[0]), where)
    compile_s = train_s = 0.0
    t_start = time.perf_counter()
    completed = True
    first_step = step
    while step < total:
        n_steps = min(chunk, total - step)
        spec = _spec(dataset, model_cfg, config, n_steps // eval_every)
        metrics_rows = []
        if on_device is None:  # fresh host copy: checkpoints already handed out stay intact
            states = jax.tree.map(np.array, states)
        for g, idx in enumerate(groups):
            st = on_device if on_device is not None else put_members(_take(states, idx), where)
            hp = put_members(hparams.take(idx), where)
            args = (st, hp, data, np.int32(step), key_bits)
            exe, c = _compiled_chunk(args, spec, where)
            compile_s += c
            t0 = time.perf_counter()
            st, met = exe(*args)
            jax.block_until_ready(st)
            train_s += time.perf_counter() - t0
            met = to_host(met, where)
            metrics_rows.append(jax.tree.map(lambda a, n=counts[g]: a[:n], met))
            if on_device is not None:
                on_device = st
            else:
                states = _put_rows(states, idx[: counts[g]], to_host(st, where))
        if on_device is not None:
            states = _take(to_host(on_device, where), np.arange(m))
        met = jax.tree.map(lambda *a: np.concatenate(a, axis=0), *metrics_rows)
        steps = step + eval_every * np.arange(1, spec.n_blocks + 1)
        curves = curves.append(steps, met)
        step += n_steps
        ckpt = Checkpoint(step=step, states=states, curves=curves)
        if on_chunk is not None:
            best = np.nanmax(np.where(states.alive, states.best_val_acc, np.nan), initial=0.0)
            report = ChunkReport(
                step,
                total,
                int(np.sum(states.alive)),
                m,
                float(best),
                time.perf_counter() - t_start,
                ckpt,
            )
            if on_chunk(report) is False and step < total:
                completed = False
                break

    def last(a):
        return a[:, -1] if a.shape[1] else np.full((m,), np.nan, np.float32)

    return PopulationResult(
        member_ids=ids,
        hparams=hparams,
        alive=np.asarray(states.alive),
        diverged_at=np.asarray(states.diverged_at),
        initial_loss=np.asarray(states.initial_loss),
        best_val_acc=np.asarray(states.best_val_acc),
        best_step=np.asarray(states.best_step),
        final_train_loss=last(curves.train_loss),
        final_val_loss=last(curves.val_loss),
        final_val_acc=last(curves.val_acc),
        final_train_acc=last(curves.train_acc),
        curves=curves,
        params=states.params,
        best_params=states.best_params,
        timing=Timing(
            compile_s,
            train_s,
            m * (step - first_step) / train_s if train_s else 0.0,
            ngroups,
            gsize,
        ),
        completed=completed,
        checkpoint=Checkpoint(step=step, states=states, curves=curves),
    )


def member_params(result: PopulationResult, i: int, *, best: bool = True):
    """Parameters of member row ``i`` (no member axis): at its best validation accuracy
    (default, the early-stopping choice used for test accuracy), or its final ones."""
    tree = result.best_params if best else result.params
    return jax.tree.map(lambda a: np.asarray(a)[i], tree)


def accuracy(
    params, model_cfg: ModelConfig, num_classes: int, x: np.ndarray, y: np.ndarray
) -> float:
    """Accuracy of ONE member's ``params`` on ``(x, y)`` (e.g. a winner on the test set)."""
    model = build_model(model_cfg, num_classes)
    logits = jax.jit(model.apply)({"params": params}, jnp.asarray(x))
    return float(jnp.mean(jnp.argmax(logits, -1) == jnp.asarray(y)))
