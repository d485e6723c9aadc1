"""The compiled population programs: one block of training, one full evaluation.

``over_members`` is THE place the member axis appears: it maps a function written for
one member (:mod:`sweepjax.engine.member`) over the population, with the data and the
step index shared. A chunk of training (an evaluation block: any number of steps, then
one evaluation) is one compiled XLA program (a loop over steps, minibatches drawn
inside, data resident, state donated); host code runs only between chunks. The block
length and the run length are traced, so a program compiles once per population size
and serves coarse and fine rounds alike.
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import PartitionSpec

from sweepjax.engine import aot, member
from sweepjax.engine.device_data import DeviceData, Slices, device_data  # noqa: F401 - re-exported
from sweepjax.engine.distributed import AXIS, Placement
from sweepjax.engine.member import Static
from sweepjax.engine.program_cache import PROGRAMS


@functools.lru_cache(maxsize=64)
def _traced_once(fn, static: Static, measure: bool | None = None):
    """``fn(own, shared, static[, measure])``, the body written for one member, as a
    jitted function held per static settings. Called inside the population programs it
    is traced once per process and member shape: JAX keeps a jitted callee's traced body,
    so the 2-10 programs of a flow (one per population width, two call sites each) stop
    tracing the model again (~0.2 s each for the built-in softmax on a CPU, more for a
    flax network); XLA inlines the call, so the compiled program computes the same."""
    kw = {} if measure is None else {"measure": measure}
    return jax.jit(functools.partial(fn, static=static, **kw))


# --------------------------------------------------------------------------- the member axis
def over_members(fn, member_batch: int = 0):
    """THE place the member axis appears: ``fn(own, shared)`` is written for one member;
    the returned function takes ``own`` with a leading member axis on every leaf (a
    container of per-member inputs: states, hyperparameters, folds, ...) and ``shared``
    without one (data, step index, keys), and returns ``fn``'s outputs with the member
    axis leading.

    ``member_batch`` is the layout (``Static.member_batch``, chosen by
    :func:`sweepjax.engine.setup.static`): 0 vmaps every member at once, so the
    population's matmuls run as one; ``k > 0`` loops over the members inside the same
    program, ``k`` at a time (a vmapped group of ``k``; ``k = 1`` a plain loop with no
    vmap), ``shared`` closed over. The loop is for operations whose batched form is
    slow: XLA:CPU runs a convolution vmapped over the members' kernels several times
    slower inside the training loop than the members' own one after another."""
    if member_batch <= 0:
        return jax.vmap(fn, in_axes=(0, None))

    def looped(own, shared):
        k = None if member_batch == 1 else member_batch  # lax.map: None is a plain scan
        return jax.lax.map(lambda o: fn(o, shared), own, batch_size=k)

    return looped


def _population_block(
    states,
    hps,
    folds,
    born,
    data: DeviceData,
    start_step,
    n_steps,
    horizon,
    key_bits,
    static: Static,
):
    """``n_steps`` steps of every member from global step ``start_step``, then one
    evaluation. ``n_steps`` and ``horizon`` are traced, so one compiled program serves
    every block length and every run length: only the population size and the static
    model settings ever compile.

    ``folds[M]`` is each member's held-out fold (ignored without cross-validation);
    ``born[M]`` the global step each member started at (its age is ``step - born``: an
    ASHA slot refilled mid-run runs its own schedule over ``horizon`` steps).
    Returns the new states (member axis leading) and ``EvalMetrics`` of ``[M]``.
    """
    # The key travels as raw bits (a plain uint32 array) so every process can pass it.
    data_key = jax.random.wrap_key_data(key_bits)
    mb = static.member_batch
    step = over_members(_traced_once(member.step, static), mb)
    measured = over_members(_traced_once(member.step, static, True), mb)
    evaluate = over_members(_traced_once(member.record_evaluation, static), mb)
    shared = member.Shared(
        data.x_train, data.y_train, data.fold_train, start_step, horizon, data_key
    )

    def own(s):
        return member.Own(s, hps, folds, born)

    def one_step(i, carry):
        s, loss_sum, acc_sum = carry
        s, m = step(own(s), shared._replace(t=start_step + i))
        return s, loss_sum + m.loss, acc_sum + m.acc

    zeros = jnp.zeros(hps.lr.shape, jnp.float32)
    states, loss_sum, acc_sum = jax.lax.fori_loop(0, n_steps - 1, one_step, (states, zeros, zeros))
    last = start_step + n_steps - 1
    # Only the block's last step measures the update/weight ratio: the ratio needs the
    # update tensor materialised, which the ordinary step fuses away.
    states, m = measured(own(states), shared._replace(t=last))
    n = n_steps.astype(jnp.float32)
    block = member.Block(
        own(states), (loss_sum + m.loss) / n, (acc_sum + m.acc) / n, m.update_ratio
    )
    # The best checkpoint's step is the steps each member has trained: last + 1 - born.
    return evaluate(block, member.Evaluation(data.quick, last + 1))


def _member_eval(own, val: Slices, static: Static):
    """One member's validation loss and accuracy: ``own = (params, fold)``."""
    p, fold = own
    # No width mask needed: a member's units beyond its width hold exact zeros.
    rows = member.fold_mask(val.ms, val.fs, fold, static)
    return member.loss_and_accuracy(p, val.xs, val.ys, rows, static.network, None, static.task)


def _population_eval(params, folds, val: Slices, static: Static):
    """Validation loss and accuracy ``[M]`` of every member's ``params`` on ``val`` (with
    folds: each on the rows of its held-out fold ``folds[M]``)."""
    one = _traced_once(_member_eval, static)
    return over_members(one, static.member_batch)((params, folds), val)


def _init_block(init_key_bits, ids, hps, num_features: int, static: Static):
    """Initial states of a fixed-size block of members (ids and hyperparameters
    ``[INIT_BLOCK]``), from ``fold_in(init_key, id)``. A fixed block size means one small
    program serves any population size."""
    init_key = jax.random.wrap_key_data(init_key_bits)
    keys = jax.vmap(lambda i: jax.random.fold_in(init_key, i))(ids)

    def one(own, _):
        key, hp = own
        return member.init(key, hp, num_features, static)

    return over_members(one, static.member_batch)((keys, hps), None)


INIT_BLOCK = 64


def _fast_compile_options() -> dict | None:
    """Compiler options for programs that run once per member (initialisation): on a
    CPU, LLVM's optimisation passes take ~5 s over a network's random-number code
    (measured: softmax on Fashion-MNIST, 4 members: 5.6 s at the default level, 0.34 s
    at level 0) to speed up work that takes milliseconds."""
    return {"xla_backend_optimization_level": 0} if jax.default_backend() == "cpu" else None


def init_block(init_key_bits, ids, hps, num_features: int, static: Static):
    """:func:`_init_block`, compiled once per block size and static settings."""
    fn = functools.partial(_init_block, num_features=num_features, static=static)
    args = (init_key_bits, ids, hps)
    return aot.call("init", fn, args, (static, num_features), _fast_compile_options())


def init_shapes(num_features: int, static: Static, hps):
    """Shapes and dtypes of the initial states of members ``hps`` (nothing runs)."""
    ids = np.zeros(hps.num_members, np.uint32)
    fn = functools.partial(_init_block, num_features=num_features, static=static)
    return jax.eval_shape(fn, np.zeros(2, np.uint32), ids, hps)


def _refill(states, fresh, ids, hps, init_key_bits, num_features: int, static: Static):
    """The population with the slots ``fresh[W]`` replaced by new members (ids and
    hyperparameters ``[W]``; rows not fresh are ignored): fresh weights from
    ``fold_in(init_key, id)``, fresh optimizer state and health. Every slot's new state
    is computed (about one step's work) so the program has one shape for any refill."""
    new = _init_block(init_key_bits, ids, hps, num_features, static)

    def pick(n, o):
        return jnp.where(fresh.reshape((-1,) + (1,) * (o.ndim - 1)), n, o)

    return jax.tree.map(pick, new, states)


def compiled_refill(args, num_features: int, static: Static, where: Placement):
    """The refill program for ``args = (states, fresh, ids, hparams, init_key_bits)``."""

    def make():
        fn = functools.partial(_refill, num_features=num_features, static=static)
        return jax.jit(_sharded(fn, where, 4, 1), donate_argnums=(0,))

    return _compiled("refill", make, args, (static, num_features), where, _fast_compile_options())


# --------------------------------------------------------------------------- compile cache
def compile_counts() -> dict[str, int]:
    """How many programs of each kind (``"chunk"``, ``"eval"``) were compiled in this
    process (:data:`~sweepjax.engine.program_cache.PROGRAMS`). New hyperparameter VALUES
    never add to it; new population sizes or chunk lengths do."""
    return PROGRAMS.counts()


def clear_cache() -> None:
    """Forget every compiled program (the next call of each shape compiles again)."""
    PROGRAMS.clear()


def _sharded(fn, where: Placement, n_member_in: int, n_shared_in: int):
    """Over a mesh, each device runs ``fn`` on its own slice of members (``shard_map``)
    with everything else replicated: no communication inside the program.

    Every output carries the member axis, so one spec covers the whole output, whatever
    its structure: a tuple of results (chunk, eval) or a single state tree (refill). A
    tuple of specs, one per output, would not fit a program that returns one tree."""
    if where.mesh is None:
        return fn
    m, s = PartitionSpec(AXIS), PartitionSpec()
    return jax.shard_map(
        fn,
        mesh=where.mesh,
        in_specs=(m,) * n_member_in + (s,) * n_shared_in,
        out_specs=m,
        check_vma=False,
    )


def _compiled(kind: str, make, args, static_key, where: Placement, options=None):
    """Ahead-of-time compiled program, cached by (kind, static settings, placement,
    argument shapes); returns ``(executable, seconds spent compiling)``. ``options``:
    XLA compiler options for this program only."""
    return PROGRAMS.get(
        kind,
        _key(args, static_key, where),
        aot.build(kind, make, args, (static_key, where.key), options),
    )


def _key(args, static_key, where: Placement):
    leaves, tree = jax.tree.flatten(args)
    shapes = (tree, tuple((np.shape(a), str(getattr(a, "dtype", type(a)))) for a in leaves))
    return (static_key, where.key, shapes)


def held(kind: str, args, static_key, where: Placement) -> bool:
    """Whether the program of ``kind`` for ``args`` (arrays or ``jax.ShapeDtypeStruct``)
    is compiled and held already (calling it would not compile)."""
    return PROGRAMS.holds(kind, _key(args, static_key, where))


def _block_jit(static: Static, where: Placement):
    fn = functools.partial(_population_block, static=static)
    return jax.jit(_sharded(fn, where, 4, 5), donate_argnums=(0,))


def compiled_block(args, static: Static, where: Placement):
    """The training program for ``args = (states, hparams, folds, born, data,
    start_step, n_steps, horizon, key_bits)``: one evaluation block of any length."""
    return _compiled("chunk", lambda: _block_jit(static, where), args, static, where)


def start_block(args, static: Static, where: Placement) -> bool:
    """Start compiling :func:`compiled_block`'s program for ``args`` (arrays or
    ``jax.ShapeDtypeStruct``) on a background thread; False if held or started."""
    make = functools.partial(_block_jit, static, where)
    build = aot.build("chunk", make, args, (static, where.key))
    return PROGRAMS.start("chunk", _key(args, static, where), build)


def _eval_jit(static: Static, where: Placement):
    return jax.jit(_sharded(functools.partial(_population_eval, static=static), where, 2, 1))


def compiled_eval(args, static: Static, where: Placement):
    """The full-evaluation program for ``args = (params, folds, val slices)``."""
    return _compiled("eval", lambda: _eval_jit(static, where), args, static, where)


def start_eval(args, static: Static, where: Placement) -> bool:
    """:func:`start_block` for :func:`compiled_eval`'s program."""
    make = functools.partial(_eval_jit, static, where)
    build = aot.build("eval", make, args, (static, where.key))
    return PROGRAMS.start("eval", _key(args, static, where), build)


# --------------------------------------------------------------------------- host-driven steps
def _member_step(states, sums, hps, folds, born, data, i, t, horizon, key_bits, static, measure):
    """Step ``t`` of member ``i`` alone (``Static.host_steps``): the member's rows are
    sliced out of the population ``[M]``, stepped with no loop and no member axis around
    the step (XLA:CPU runs a convolution inside a loop 1.5-2.5x slower than alone), and
    written back in place (the population is donated). ``sums`` (loss, accuracy, update
    ratio ``[M]``) accumulate as :func:`_population_block`'s loop carry does."""
    pick = lambda a: jax.lax.dynamic_index_in_dim(a, i, keepdims=False)  # noqa: E731
    put = lambda a, b: jax.lax.dynamic_update_index_in_dim(a, b, i, 0)  # noqa: E731
    own = jax.tree.map(pick, member.Own(states, hps, folds, born))
    key = jax.random.wrap_key_data(key_bits)
    shared = member.Shared(data.x_train, data.y_train, data.fold_train, t, horizon, key)
    s, m = member.step(own, shared, static=static, measure=measure)
    loss, acc, ratio = sums
    sums = (put(loss, pick(loss) + m.loss), put(acc, pick(acc) + m.acc), put(ratio, m.update_ratio))
    return jax.tree.map(put, states, s), sums


def _population_finish(states, sums, hps, folds, born, data, end, n_steps, static: Static):
    """The evaluation that ends a host-driven block of ``n_steps`` steps (global steps
    completed ``end``): :func:`_population_block`'s last lines."""
    evaluate = over_members(_traced_once(member.record_evaluation, static), 1)
    n = n_steps.astype(jnp.float32)
    block = member.Block(member.Own(states, hps, folds, born), sums[0] / n, sums[1] / n, sums[2])
    return evaluate(block, member.Evaluation(data.quick, end))


class Steps(NamedTuple):
    """The host-driven form of one block (:func:`compiled_steps`)."""

    step: object  # f(states, sums, hps, folds, born, data, i, t, horizon, key_bits)
    measured: object  # the same, measuring the update/weight ratio (a block's last step)
    finish: object  # f(states, sums, hps, folds, born, data, end, n_steps)


def compiled_steps(args, static: Static, where: Placement, lane: int | None = None):
    """The programs of a host-driven block for ``args`` as :func:`compiled_block`'s, one
    device only; returns ``(Steps, seconds spent compiling)``. Nothing in them depends on
    a hyperparameter value, a step or a block length: each compiles once per population
    size. ``lane``: the id of the device ``args`` are on (a lane's: steps only)."""
    states, hps, folds, born, data, _, n_steps, horizon, key_bits = args
    sums = (hps.lr, hps.lr, hps.lr)  # three float32 [M]: only their shapes matter here
    scalar = n_steps
    step_args = (states, sums, hps, folds, born, data, scalar, scalar, horizon, key_bits)
    out, secs = [], 0.0
    for measure in (False, True):
        fn = functools.partial(_member_step, static=static, measure=measure)
        make = functools.partial(jax.jit, fn, donate_argnums=(0, 1))
        exe, c = _compiled("step", make, step_args, (static, measure, lane), where)
        out.append(exe)
        secs += c
    if lane is not None:
        return Steps(*out, None), secs
    fn = functools.partial(_population_finish, static=static)
    make = functools.partial(jax.jit, fn, donate_argnums=(0,))
    fin_args = (states, sums, hps, folds, born, data, scalar, scalar)
    exe, c = _compiled("finish", make, fin_args, static, where)
    return Steps(*out, exe), secs + c
