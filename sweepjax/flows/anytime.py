"""An ASHA sweep's training: the population width, and ``train_refilling`` for the runner.

The width is the user's (``width``), else the rule of :mod:`sweepjax.engine.width`
applied to a table of block times remembered for this machine and model
(:func:`sweepjax.engine.width.cached_width`), else measured once at widths 1, 2, 4, ...
(:func:`sweepjax.engine.width.choose_width`): a CPU gets the few members it trains at
full speed, widened while a time budget leaves room (the first full-length member
within :data:`FIRST_SHARE` of it), a GPU thousands.
"""

from __future__ import annotations

import dataclasses
import math
import os
import time

import jax
import numpy as np

from sweepjax.budget import process_elapsed
from sweepjax.data import Dataset
from sweepjax.engine import active, program, width
from sweepjax.engine.decisions import RungLog
from sweepjax.engine.distributed import Placement, put_members
from sweepjax.engine.keys import root_bits
from sweepjax.engine.outcome import PopulationResult
from sweepjax.engine.refill import train_refilling
from sweepjax.engine.setup import group_size, init_states, num_params, static
from sweepjax.errors import ConfigError
from sweepjax.flows.sweep_config import SweepConfig, scheduler_for

MAX_WIDTH = 4096  # the widest population measured


def width_cap(cfg: SweepConfig, ds: Dataset, where: Placement) -> int:
    """The widest population allowed: the memory budget's one program, at most
    :data:`MAX_WIDTH`, and without a budget at most the members the run creates."""
    info = ds.info
    g = group_size(MAX_WIDTH, cfg.model, cfg.train, ds.num_features, ds.num_classes,
                   info.input_shape)  # fmt: skip
    cap = min(g, MAX_WIDTH)
    if cfg.schedule.budget is None:
        cap = min(cap, cfg.trials)
    return _devices_multiple(cap, where)


def _devices_multiple(w: int, where: Placement) -> int:
    """``w`` rounded down to a multiple of the device count (at least one per device)."""
    n = where.num_devices
    return max(n, w // n * n)


def _key(cfg: SweepConfig, ds: Dataset, where: Placement) -> str:
    dev = jax.devices()[0]
    kind = f"{dev.platform}:{dev.device_kind} x{where.num_devices}"
    if dev.platform == "cpu":
        kind += f" cores={os.cpu_count()}"
    p = num_params(cfg.model, ds.num_features, ds.num_classes, ds.info.input_shape)
    model = f"{cfg.model.spec or cfg.model.kind} params={p} eval={cfg.train.val_subset}"
    return width.width_key(kind, model, cfg.train.batch_size, cfg.train.optimizer)


# With a time budget, the first full-length member should arrive within this share of
# it: the width may grow past the factor rule while that holds (and the wider program
# still pays, see sweepjax.engine.width), so a long search trains more members.
FIRST_SHARE = 1 / 8


def choose(cfg: SweepConfig, ds: Dataset, where: Placement, say) -> int:
    """The population width of an ASHA sweep (see the module docstring)."""
    cap = width_cap(cfg, ds, where)
    if cfg.schedule.width is not None:
        return _devices_multiple(min(cfg.schedule.width, cap), where)
    custom = cfg.model.kind == "custom"
    probe_steps = scheduler_for(cfg, cfg.trials).block() if custom else PROBE_STEPS
    limit = block_limit(cfg, probe_steps)
    key = _key(cfg, ds, where)
    memo = width.cached_width(key)
    if memo is not None:
        try:
            return _devices_multiple(width.pick(memo.table, cap, block_limit=limit).width, where)
        except ConfigError:  # a hand-edited memo without a lone member's time: measure
            pass
    time_block = _program_probe(cfg, ds, where) if custom else _dense_probe(cfg, ds)
    t0 = time.perf_counter()
    choice = width.choose_width(time_block, max_width=cap, block_limit=limit)
    width.remember_width(key, choice)
    say(f"asha: {choice.reason} (measured in {time.perf_counter() - t0:.1f}s, remembered)")
    return _devices_multiple(choice.width, where)


def block_limit(cfg: SweepConfig, probe_steps: int) -> float | None:
    """The probe's block time at which a member of the run's full length would train in
    :data:`FIRST_SHARE` of a time budget (None without one: the factor rule alone)."""
    budget = cfg.schedule.budget
    if budget is None or budget.seconds is None:
        return None
    return FIRST_SHARE * budget.seconds * probe_steps / cfg.train.steps


PROBE_STEPS = 40
PROBE_REPEATS = 5  # timings per width (milliseconds each; compiling costs ~1 s)


def _dense_probe(cfg: SweepConfig, ds: Dataset):
    """Seconds of ``PROBE_STEPS`` training steps of ``w`` built-in dense members (their
    matmuls forward and backward on a shared minibatch, vmapped and features-first as
    the engine's networks run, so the members' first layers are one matmul): the work
    that grows with the width, in a program that compiles in about a second (the real
    one takes several)."""
    run, weights, x = dense_program(cfg, ds)

    def time_block(w: int) -> float:
        ws, key = weights(w), jax.random.key(0)
        ws = jax.block_until_ready(run(ws, x, key))  # compile and warm up
        best = math.inf
        for _ in range(PROBE_REPEATS):  # noise only adds time: keep the fastest
            t0 = time.perf_counter()
            ws = jax.block_until_ready(run(ws, x, key))
            best = min(best, time.perf_counter() - t0)
        return best

    return time_block


def dense_program(cfg: SweepConfig, ds: Dataset):
    """The dense probe's program: ``(run, weights, x)``, ``run(weights(w), x, key)`` one
    probe block of ``w`` members (jitted, weights donated), ``x[N, D]`` the stand-in
    training rows. Each step's matmuls are those of the real program's training step
    (tests/test_width.py compares the two programs)."""
    import jax.numpy as jnp

    from sweepjax.engine.minibatch import minibatch_indices

    # The minibatch the run trains with: at most the training rows (setup.static's rule).
    b = min(cfg.train.batch_size, ds.x_train.shape[0])
    d, k = ds.num_features, ds.num_classes
    dims = [d, cfg.model.hidden, k] if cfg.model.kind == "mlp" else [d, k]
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal((ds.x_train.shape[0], d)), jnp.float32)

    def loss(ws, xb_t):
        h = xb_t
        for i, w in enumerate(ws):
            h = w @ h  # [out, in] @ [in, B]
            h = jax.nn.relu(h) if i < len(ws) - 1 else h
        return jnp.mean(jax.nn.logsumexp(h, axis=0))

    def block(ws, x, key):
        def one(i, ws):
            idx = minibatch_indices(key, i, b, x.shape[0], cfg.train.minibatch)
            grads = jax.vmap(jax.grad(loss), in_axes=(0, None))(ws, x[idx].T)
            return [w - 1e-3 * g for w, g in zip(ws, grads, strict=True)]

        return jax.lax.fori_loop(0, PROBE_STEPS, one, ws)

    def weights(w: int) -> list:
        return [jnp.asarray(rng.standard_normal((w, n, m)) * 0.01, jnp.float32)
                for m, n in zip(dims, dims[1:], strict=False)]  # fmt: skip

    return jax.jit(block, donate_argnums=(0,)), weights, x


def _program_probe(cfg: SweepConfig, ds: Dataset, where: Placement):
    """One block of the real program at width ``w`` (a user's model: its cost is its
    own); each width compiles once."""
    scheduler = scheduler_for(cfg, cfg.trials)
    st = static(ds, cfg.model, cfg.train, False, scheduler.corners())
    data = program.device_data(ds, cfg.train, where)
    _, key_bits = root_bits(cfg.train.seed)
    b, total = scheduler.block(), cfg.train.steps

    def time_block(w: int) -> float:
        w = _devices_multiple(w, where)
        hp = scheduler.draw(np.arange(w), RungLog.empty(int(ds.x_val.shape[0])), None)
        states = init_states(ds, hp, cfg.model, cfg.train, np.arange(w))
        act = active.Active(put_members(states, where), w, w, True)
        no_fold, born = np.full(w, -1, np.int32), np.zeros(w, np.int32)
        args = (act, hp, no_fold, data, 0, b, total, key_bits, st, where, born)
        act, *_ = active.run_chunk(*args)  # compiles, then runs once (warm-up)
        t0 = time.perf_counter()
        active.run_chunk(act, *args[1:])
        return time.perf_counter() - t0

    return time_block


# Sizing a time-budgeted search to what the budget has left (issue 27: a 20-s `auto` spent
# 10 s on its checks and ended with no member finished). Once the program is compiled
# (COMPILE_S), the first member of the run's length should finish within FIT_SHARE of the
# time left; its step time is the width probe's scaled to the real program's
# (evaluations, optimizer updates, data: REAL_OVER_PROBE).
FIT_SHARE = 1 / 2
REAL_OVER_PROBE = 2.0
COMPILE_S = 3.0


def block_seconds(cfg: SweepConfig, ds: Dataset, where: Placement, w: int) -> float | None:
    """The remembered probe time of one block of :data:`PROBE_STEPS` steps at width ``w``
    (the nearest measured width at or above it), or None when nothing is remembered."""
    if cfg.model.kind == "custom":
        return None  # its probe times a block of the scheduler's length, not PROBE_STEPS
    memo = width.cached_width(_key(cfg, ds, where))
    if memo is None:
        return None
    table = sorted(memo.table)
    above = [t for ww, t in table if ww >= w]
    return above[0] if above else table[-1][1] * w / table[-1][0]


def fit_length(
    cfg: SweepConfig, block_s: float | None, remaining_s: float
) -> tuple[SweepConfig, str | None]:
    """``cfg`` with its members' length cut so that the first one finishes within
    :data:`FIT_SHARE` of what ``remaining_s`` leaves once compiled (a multiple of
    ``eta ** rungs`` steps, at least that many), and the line that says so; unchanged
    (and None) when it already fits or nothing is known of the step time."""
    if block_s is None or remaining_s <= 0:
        return cfg, None
    per_step = block_s / PROBE_STEPS * REAL_OVER_PROBE
    steps = cfg.train.steps
    need = steps * per_step
    room = FIT_SHARE * max(remaining_s - COMPILE_S, 0.0)  # training time once compiled
    if need <= room:
        return cfg, None
    unit = cfg.schedule.eta**cfg.schedule.rungs
    fit = max(unit, int(room / per_step) // unit * unit)
    if fit >= steps:
        return cfg, None
    train = dataclasses.replace(cfg.train, steps=fit, chunk_steps=min(cfg.train.chunk_steps, fit))
    out = dataclasses.replace(cfg, train=train)
    note = (
        f"asha: the budget leaves {remaining_s:.0f}s for the search; a {steps}-step member "
        f"would train ~{need:.0f}s here, so members train {fit} steps (raise `budget` for "
        f"the full length)"
    )
    return out, note


def fit_to_budget(cfg: SweepConfig, ds: Dataset, where: Placement, w: int, say) -> SweepConfig:
    """An anytime run with a time budget: members no longer than the budget has left once
    the sweep is set up (:func:`fit_length`; the budget counts the whole process), said
    in one line; any other run unchanged."""
    b = cfg.schedule.budget
    if b is None or b.seconds is None:
        return cfg
    block = block_seconds(cfg, ds, where, w)
    cfg, note = fit_length(cfg, block, b.seconds - process_elapsed())
    if note:
        say(note)
    return cfg


def with_length(cfg: SweepConfig, stored: SweepConfig) -> SweepConfig:
    """``cfg`` with the members' length the ``stored`` run started with (a resumed run
    keeps the length its budget gave it: the checkpoint's members are that long)."""
    steps = stored.train.steps
    if steps == cfg.train.steps:
        return cfg
    train = dataclasses.replace(
        cfg.train, steps=steps, chunk_steps=min(cfg.train.chunk_steps, steps)
    )
    return dataclasses.replace(cfg, train=train)


def train(
    cfg: SweepConfig, ds: Dataset, w: int, *, on_chunk, resume, where: Placement, folds=None
) -> PopulationResult:
    """Train an ASHA sweep of width ``w`` until its budget (or ``trials`` configs) is
    spent (``folds``: ``ds`` pooled for K-fold cross-validation)."""
    budget = cfg.schedule.budget
    return train_refilling(
        ds,
        cfg.model,
        cfg.train,
        scheduler_for(cfg, cfg.trials),
        width=w,
        budget=budget,
        max_members=None if budget is not None else cfg.trials * cfg.group,
        on_chunk=on_chunk,
        resume=resume,
        placement=where,
        folds=folds,
    )
