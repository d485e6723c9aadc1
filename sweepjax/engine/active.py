"""The active members' training state between chunks, and what the host loop does to it.

The state lives on the device padded to a program size (one compiled program holds
every active member), or on the host in groups when the population is larger than the
memory budget allows in one program. A scheduler's decision is one gather on the member
axis; the survivors move to a smaller program only when that saves more than a compile.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from sweepjax.engine import aot, lanes, program
from sweepjax.engine.distributed import Placement, put_members, put_replicated, to_host
from sweepjax.engine.hparams import HParams
from sweepjax.engine.member import Static


class Active(NamedTuple):
    """The training members' state: ``states`` on the device padded to ``size`` rows
    (one program holds them all), or a host pytree of ``n`` rows trained group by
    group (a population larger than the memory budget allows in one program)."""

    states: Any
    n: int
    size: int
    on_device: bool


def round_up(n: int, k: int) -> int:
    return max(k, -(-n // k) * k)


def pad_rows(n: int, size: int) -> np.ndarray:
    """Row indices ``[size]``: ``0..n-1`` then row 0 again as padding (results dropped)."""
    return np.concatenate([np.arange(n), np.zeros(size - n, np.int64)])


def take_rows(tree, idx):
    return jax.tree.map(lambda a: np.asarray(a)[idx], tree)


def bucket(n: int, gsize: int, ndev: int) -> int:
    """The program size for ``n`` members after a decision: the next power of two (so few
    shapes ever compile), at most the group size, a multiple of the device count."""
    return round_up(min(pow2_at_least(n), round_up(gsize, ndev)), ndev)


def pow2_at_least(n: int) -> int:
    """The power of two at or above ``n`` (1 for ``n <= 1``): the program sizes."""
    return 1 << max(int(n) - 1, 0).bit_length()


def ride_rows(n: int, gsize: int, cap: int) -> int:
    """The rows ``n`` survivors of a last decision train in on every placement, at the
    least: the power of two at or above ``n`` when it fits ``cap`` and the group, else
    ``n``. A program for ``n`` members has at least those rows whatever :func:`gather`
    picks (a larger one held, or kept because a smaller one does not pay for its
    compile) and however many devices share it (multiples of their count), so the spare
    ones are computed as padding anyway; the count depends only on ``n``, not on what a
    process holds, measured or runs on."""
    p = pow2_at_least(n)
    return p if p <= min(cap, gsize) else n


def place(host_states, n: int, gsize: int, where: Placement, size: int | None = None) -> Active:
    """The active members' state where it trains: on the device padded to ``size`` rows
    (default: ``n`` rounded up to the device count), or on the host in groups."""
    ndev = where.num_devices
    if n > gsize:  # trained in place group by group (run_chunk): arrays of its own
        return Active(jax.tree.map(owned, host_states), n, gsize, False)
    size = round_up(n, ndev) if size is None else size
    return Active(put_members(take_rows(host_states, pad_rows(n, size)), where), n, size, True)


def owned(a) -> np.ndarray:
    """``a`` as a writable host array: itself when it is one (no copy of a population
    that may barely fit), else a copy (a checkpoint's read-only buffers)."""
    return a if isinstance(a, np.ndarray) and a.flags.writeable else np.array(a)


def to_host_rows(act: Active, where: Placement):
    if not act.on_device:
        return act.states
    return take_rows(to_host(act.states, where), np.arange(act.n))


def groups(act: Active):
    """``(rows [size], real count)`` of each program call."""
    if act.on_device:
        return [(None, act.n)]
    out = []
    for g in range(0, act.n, act.size):
        real = np.arange(g, min(g + act.size, act.n))
        out.append((np.concatenate([real, np.zeros(act.size - len(real), np.int64)]), len(real)))
    return out


# A new (smaller) program costs a compile: on a CPU about as long as this many
# member-steps of training (a fixed number, so the sizes chosen, and with them the
# float rounding of the results, are the same on every run and on resume).
COMPILE_COST_MEMBER_STEPS = 10_000


def gather(
    act: Active, src: np.ndarray, gsize: int, where: Placement, steps_left: int, moves=None
) -> Active:
    """One gather on the member axis: slot ``j`` takes the state of row ``src[j]``.

    The survivors move to a smaller program only when the compute it saves before the
    next decision (``steps_left`` steps) outweighs compiling it; otherwise they keep the
    current program, padded (the padding rows' results are dropped). ``moves(size,
    new)`` decides it (:func:`sweepjax.engine.recompile.pays` on this run's measured
    costs); default: a compile weighed as :data:`COMPILE_COST_MEMBER_STEPS`.
    """
    n = len(src)
    host = take_rows(to_host_rows(act, where), src)
    if n == 0:  # nobody continues (every member diverged): nothing left to train
        return Active(host, 0, 0, False)
    if n > gsize:
        return place(host, n, gsize, where)
    # Members trained in host groups were in the group's program (``gsize`` rows): the
    # survivors that fit it keep it unless a smaller one pays.
    now = act.size if act.on_device else gsize
    new = bucket(n, gsize, where.num_devices)
    if moves is None:
        ok = new >= now or (now - new) * steps_left > COMPILE_COST_MEMBER_STEPS
    else:
        ok = moves(now, new)
    size = new if ok else now
    return place(host, n, gsize, where, size)


def run_chunk(
    act,
    hp_active: HParams,
    fold_active,
    data,
    step,
    n_steps,
    horizon,
    key_bits,
    st,
    where,
    born_active=None,
):
    """Train the active members ``n_steps`` steps and evaluate them once; returns
    (active, metrics ``[n]``, compile seconds, train seconds). ``fold_active[n]``: each
    member's held-out fold (-1: none); ``born_active[n]``: the global step each started
    at (default 0: a population that starts together).

    Every transfer is explicit (``put_members``/``put_replicated`` in, ``to_host`` out),
    so a block runs under ``jax.transfer_guard("disallow")``; the state is donated to
    the program (the input's buffers are reused, not copied). Nothing waits on the
    device but the metrics: a group's program is dispatched before the previous group's
    results are copied back, so the host stages one group while the device trains the
    other. Train seconds run from the first dispatch to the last metrics on the host.
    Host groups are written back in place into ``act.states`` (the arrays are the
    Active's own, see :func:`place`): a second copy of a population that needs host
    groups is what does not fit.
    """
    if born_active is None:
        born_active = np.zeros(act.n, np.int32)
    fold_active = np.asarray(fold_active, np.int32)
    born_active = np.asarray(born_active, np.int32)
    shared = put_replicated(
        (np.int32(step), np.int32(n_steps), np.int32(horizon), np.asarray(key_bits)), where
    )
    compile_s, t0 = 0.0, None
    rows_out = []
    states = act.states
    pending = None  # (metrics, new states, rows, real): dispatched, not yet on the host
    for rows, real in groups(act):
        take = pad_rows(act.n, act.size) if act.on_device else rows
        s_dev = states if act.on_device else put_members(take_rows(states, rows), where)
        mine = put_members((hp_active.take(take), fold_active[take], born_active[take]), where)
        s_dev, met, c, t = launch((s_dev, *mine, data, *shared), st, where, real, step, n_steps)
        compile_s += c
        t0 = t if t0 is None else t0
        if pending is not None:
            rows_out.append(_collect(pending, states, where))
        pending = (met, None if act.on_device else s_dev, rows, real)
        if act.on_device:
            states = s_dev
    rows_out.append(_collect(pending, states, where))
    train_s = time.perf_counter() - t0
    met = jax.tree.map(lambda *a: np.concatenate(a, axis=0)[:, None], *rows_out)
    return act._replace(states=states), met, compile_s, train_s


def launch(args, st: Static, where: Placement, real: int, step: int, n_steps: int):
    """Dispatch one program call of a block (``args`` as
    :func:`program.compiled_block`'s, on the device; ``step``/``n_steps`` its first
    global step and length); returns its new states and metrics (device arrays: JAX
    returns before the program, or the last step, ends), the compile seconds and the
    time it was dispatched. Host-driven steps run over the lanes (:mod:`lanes`)."""
    by_steps = st.host_steps and where.mesh is None
    compiled = program.compiled_steps if by_steps else program.compiled_block
    exe, c = compiled(args, st, where)
    others, c_lanes = (
        lanes.compiled(args, st, lanes.lanes_for(real, where)) if by_steps else ((), 0)
    )
    t0 = time.perf_counter()
    if by_steps:
        s_dev, met = lanes.by_steps(exe, others, args, step, n_steps, real, where)
    else:
        s_dev, met = exe(*args)
    return s_dev, met, c + c_lanes, t0


def _collect(pending, host_states, where: Placement):
    """A dispatched group's metrics ``[real]`` on the host (waiting for its program), its
    new state written into the host rows it came from (host groups)."""
    met, s_dev, rows, real = pending
    out = jax.tree.map(lambda a: np.asarray(a)[:real], to_host(met, where))
    if s_dev is not None:
        host = to_host(s_dev, where)
        for dst, src in zip(jax.tree.leaves(host_states), jax.tree.leaves(host), strict=True):
            dst[rows[:real]] = np.asarray(src)[:real]
    return out


def evaluate(act: Active, which: str, data, st: Static, where: Placement, fold_active):
    """Whole-validation-set loss and accuracy ``[n]`` of the active members' current
    (``which="params"``) or best (``"best"``) parameters (with folds: each on its fold),
    the seconds, and the metric's per-example mean square ``[n]`` (its SE's moment)."""
    fold_active = np.asarray(fold_active, np.int32)
    if where.mesh is None and not act.on_device:  # host groups: EVAL_ROWS rows a call
        tree = act.states.params if which == "params" else act.states.best.params
        return _eval_program(tree, fold_active, data, st, where)
    out = []
    secs = 0.0
    for rows, real in groups(act):
        if act.on_device:
            states, take = act.states, pad_rows(act.n, act.size)
        else:
            states, take = put_members(take_rows(act.states, rows), where), rows
        params = states.params if which == "params" else states.best.params
        folds = put_members(fold_active[take], where)
        got = _eval_program(params, folds, data, st, where, np.arange(real))
        secs += got[2]
        out.append((got[0][:real], got[1][:real], got[3][:real]))
    loss, acc, sq = (
        np.concatenate([o[j] for o in out]) if out else np.zeros(0, np.float32) for j in range(3)
    )
    return loss, acc, secs, sq


# Compiling a new evaluation program (~0.3 s on a CPU) is worth about this much forward
# computation (FLOPs); a fixed number, so the same members are measured the same way on
# every run and on resume. Measured on the 2-core CPU (default coarse on Fashion-MNIST):
# a 256-softmax evaluation of 6,000 rows (2.4e10 FLOPs) takes ~0.6 s, so 0.3 s of
# compiling is worth ~1e10 (5e10 re-measured every member for a quarter of them).
# (Over a mesh only: on one device every evaluation runs in EVAL_ROWS-row calls.)
COMPILE_COST_FLOPS = 1e10
# On one device, members are evaluated in blocks of EVAL_ROWS rows by one program,
# whatever the population's size: a flow compiled an evaluation program per size
# (coarse 5, fine 5; ~0.35 s each cold on the 2-core CPU) and now compiles one. A call
# of 32 softmax members over Fashion-MNIST's 6,000 validation rows is ~3e9 FLOPs
# (~30 ms), so the per-call cost is small; a block past the last row is padded. A
# population narrower than that of a model whose padding costs more than a compile
# (eval_block) is evaluated in blocks of its own power of two: a width-1 MLP-256 (ASHA's
# width on this CPU) spent 15 of 60 s evaluating 32 copies of itself.
EVAL_ROWS = 32


def member_params_count(tree) -> int:
    """Parameters of one member (the leaves' leading axis is the program's rows)."""
    leaves = jax.tree.leaves(tree)
    return sum(int(np.prod(np.shape(a)[1:])) for a in leaves)


def eval_block(n: int, rows: int, params: int) -> int:
    """Rows per evaluation call for a population of ``n`` rows of ``params`` parameters
    over ``rows`` validation rows: :data:`EVAL_ROWS`, or, for fewer rows whose padding
    would cost more than a compile (:data:`COMPILE_COST_FLOPS`), the power of two that
    holds them.

    Example::

      eval_block(1, 6000, 7_850)  # 32: a softmax's padding is cheaper than a compile
      eval_block(1, 6000, 203_530)  # 1: an MLP-256's is not
    """
    size = min(EVAL_ROWS, pow2_at_least(n))
    saved = 2.0 * (EVAL_ROWS - size) * rows * params
    return EVAL_ROWS if saved < COMPILE_COST_FLOPS else size


def evaluate_members(
    act: Active, which: str, idx: np.ndarray, data, st: Static, where: Placement, fold_active
):
    """:func:`evaluate` for the active members ``idx`` only (positions ``0..n-1``): on one
    device in :data:`EVAL_ROWS`-row calls of the rows ``idx``; over a mesh in a program
    of the next power-of-two size (at most the current program's). A decision that needs
    a few members' best checkpoints measured does not pay for all of them."""
    idx = np.asarray(idx, np.int64)
    tree = act.states.params if which == "params" else act.states.best.params
    if where.mesh is None:
        folds = np.asarray(fold_active, np.int32)
        if act.on_device:
            folds = put_members(folds[pad_rows(act.n, act.size)], where)
        return _eval_program(tree, folds, data, st, where, idx)
    size = round_up(min(pow2_at_least(len(idx)), act.size), where.num_devices)
    rows = int(np.prod(np.shape(data.val.ms)))
    saved = 2.0 * (act.size - size) * rows * member_params_count(tree)
    if len(idx) > size or saved < COMPILE_COST_FLOPS:
        # More than one program holds them, or the smaller program would cost more to
        # compile than it saves (a softmax): measure everyone in the current program.
        loss, acc, secs, sq = evaluate(act, which, data, st, where, fold_active)
        return loss[idx], acc[idx], secs, sq[idx]
    pad = np.concatenate([idx, np.full(size - len(idx), idx[0], np.int64)])
    if act.on_device:  # gathered on the device: no copy of the population's weights
        take = jax.device_put(pad)
        sub = put_members(jax.tree.map(lambda a: a[take], tree), where)
    else:
        sub = put_members(take_rows(tree, pad), where)
    folds = put_members(np.asarray(fold_active, np.int32)[pad], where)
    loss, acc, secs, sq = _eval_program(sub, folds, data, st, where)
    return loss[: len(idx)], acc[: len(idx)], secs, sq[: len(idx)]


def _rows(tree, idx):
    return jax.tree.map(lambda a: a[idx], tree)


def _row_taker(tree):
    """``take(idx)``: rows ``idx`` of every leaf of ``tree``. On a CPU, in numpy over
    the device's own memory (a view, no copy of the population; dropped before the next
    block, so donation still applies): a gather program compiles per population width,
    0.1-0.2 s each in a cold process on the 2-core CPU. Elsewhere one small program on
    the device (no round trip through the host)."""
    if all(_on_cpu(a) for a in jax.tree.leaves(tree)):
        host = jax.tree.map(np.asarray, tree)
        return lambda idx: jax.tree.map(lambda a: a[idx], host)
    return lambda idx: aot.call("gather", _rows, (tree, jax.device_put(idx)))


def _on_cpu(a) -> bool:
    return not isinstance(a, jax.Array) or all(d.platform == "cpu" for d in a.devices())


def _eval_program(params, folds, data, st: Static, where: Placement, rows=None):
    """Whole-validation-set ``(loss, acc, seconds, mean square)`` of placed ``params``
    (seconds include any compile). On one device: of the rows ``rows`` (default: all),
    :data:`EVAL_ROWS` at a time through one program; over a mesh: of every row, in the
    program compiled for their row count."""
    if where.mesh is not None:
        return _eval_call(params, folds, data, st, where)
    n = len(jax.tree.leaves(params)[0])
    rows = np.arange(n) if rows is None else np.asarray(rows, np.int64)
    loss, acc, sq = (np.zeros(n, np.float32) for _ in range(3))
    secs = 0.0
    take_rows_of = _row_taker((params, folds))
    k = eval_block(n, int(np.prod(np.shape(data.val.ms))), member_params_count(params))
    # Row r is always evaluated at position r % k of the block of rows r // k (past the
    # last row: row 0 again), whichever rows were asked for: a member's numbers do not
    # depend on who else a decision measures (a vectorised sum may round differently at
    # another position), so a resumed run measures as the whole run did.
    for b in np.unique(rows // k):
        block = np.arange(b * k, (b + 1) * k)
        take = np.where(block < n, block, 0).astype(np.int32)
        sub, f = take_rows_of(take)
        if not isinstance(f, jax.Array):  # host groups' rows: placed explicitly
            sub, f = put_members((sub, f), where)
        got = _eval_call(sub, f, data, st, where)
        secs += got[2]
        real = block < n
        for out, g in zip((loss, acc, sq), (got[0], got[1], got[3]), strict=True):
            out[block[real]] = np.asarray(g)[real]
    return loss[rows], acc[rows], secs, sq[rows]


def _eval_call(params, folds, data, st: Static, where: Placement):
    """One call of the evaluation program compiled for ``params``' row count."""
    args = (params, folds, data.val)
    exe, c = program.compiled_eval(args, st, where)
    t0 = time.perf_counter()
    loss, acc, sq = to_host(exe(*args), where)
    return np.asarray(loss), np.asarray(acc), time.perf_counter() - t0 + c, np.asarray(sq)


def state_bytes(act: Active) -> int:
    rows = sum(int(np.asarray(a.shape[0])) for a in jax.tree.leaves(act.states)[:1]) or 1
    total = sum(int(a.nbytes) for a in jax.tree.leaves(act.states))
    return total * act.n // rows


def small(act: Active, where: Placement) -> dict[str, np.ndarray]:
    """The active members' health and best-checkpoint scalars (a small transfer)."""
    s = act.states
    leaves = {
        "alive": s.health.alive,
        "diverged_at": s.health.diverged_at,
        "initial_loss": s.health.initial_loss,
        "best_step": s.best.step,
        "best_acc": s.best.acc,
    }
    host = to_host(leaves, where) if act.on_device else leaves
    return {k: np.asarray(v)[: act.n] for k, v in host.items()}
