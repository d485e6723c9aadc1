"""Population throughput of the sweepjax engine on the CPU, against a user's own
member-after-member loop, the engine's own lone member (M=1) and this machine's matmul
rate; and the share of a default ``coarse`` sweep's training time spent evaluating.

    python benchmarks/bench_engine.py            # both cases, ~5 min on 2 cores
    python benchmarks/bench_engine.py --case cnn # the CNN case alone, ~2.5 min
    python benchmarks/bench_engine.py --quick    # smoke run, seconds

Writes ``results/engine-<backend>.json`` and ``.md`` (softmax) and
``results/engine-cnn-<backend>.json`` and ``.md`` (the CNN case: a user's
``examples.my_cnn:SmallCNN`` on the bundled MNIST sample, 16 members against the plain
per-member loop, and the population's layouts). Every ratio is taken within one run:
the repetitions of every configuration are interleaved and the median is kept, so a
neighbour's burst of load hits all configurations alike.

What is timed: ``Timing.train_s`` of :func:`sweepjax.train_population` (the compiled
chunk calls, blocked until ready); compilation is reported apart (``Timing.compile_s``)
and a warm-up repetition runs every configuration once before the timed ones.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import math
import os
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

# This checkout's sweepjax (not whichever copy is installed), and the helpers beside us.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
import common  # noqa: E402

from sweepjax import (  # noqa: E402
    DataConfig,
    HParams,
    ModelConfig,
    TrainConfig,
    load_dataset,
    train_population,
)
from sweepjax.engine import distributed  # noqa: E402

BATCH = 256
EVAL_ROWS = 256  # validation rows kept for the throughput runs (see throughput_dataset)


def throughput_dataset(ds, eval_rows: int = EVAL_ROWS):
    """The full training set with the validation set cut to ``eval_rows`` rows.

    Each timed run ends with exactly one evaluation (``eval_every = steps``). On the full
    6,000-row validation set that evaluation costs as much as ~14 training steps, which
    would dominate the short runs of a large population; cut to 256 rows it costs about
    one step. The training steps themselves are unchanged (54,000 training rows).
    """
    return ds._replace(x_val=ds.x_val[:eval_rows], y_val=ds.y_val[:eval_rows])


def population(m: int, seed: int = 0) -> HParams:
    """``m`` members log-uniform in a box where plain SGD neither stalls nor explodes, so
    every member does every step's work (a diverged member is frozen, not skipped)."""
    rng = np.random.default_rng(seed)
    return HParams.create(
        lr=np.exp(rng.uniform(np.log(1e-3), np.log(0.3), m)),
        l2=np.exp(rng.uniform(np.log(1e-6), np.log(1e-2), m)),
    )


def train_config(steps: int) -> TrainConfig:
    return TrainConfig(
        steps=steps,
        batch_size=BATCH,
        eval_every=steps,
        chunk_steps=steps,
        eval_batch_size=EVAL_ROWS,
    )


def flops_per_member_step(ds) -> int:
    """Forward ``W @ x.T`` and weight gradient ``g @ x``: 2 matmuls x 2 B D K FLOPs."""
    return 4 * BATCH * ds.num_features * ds.num_classes


@functools.cache
def user_member_trainer(n: int, d: int, k: int, steps: int):
    """The loop a user writes without sweepjax: ONE member's SGD softmax step (mean
    cross-entropy + L2 on the weights, minibatch drawn with replacement inside a
    ``lax.scan``), jitted and compiled once, then called member after member. No engine
    bookkeeping (no divergence masks, no evaluation), so the baseline is in the loop's
    favour. Returns ``(compiled f(w, b, x_all, y_all, key, lr, l2), compile_s)``."""

    def train_one(w, b, x_all, y_all, key, lr, l2):
        def loss(wb, x, y):
            logits = x @ wb[0].T + wb[1][None, :]
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return ce + 0.5 * l2 * jnp.sum(wb[0] ** 2)

        def step(wb, t):
            idx = jax.random.randint(jax.random.fold_in(key, t), (BATCH,), 0, x_all.shape[0])
            g = jax.grad(loss)(wb, x_all[idx], y_all[idx])
            return (wb[0] - lr * g[0], wb[1] - lr * g[1]), None

        (w, b), _ = jax.lax.scan(step, (w, b), jnp.arange(steps))
        return w, b

    f32 = jax.ShapeDtypeStruct((), jnp.float32)
    t0 = time.perf_counter()
    exe = (
        jax.jit(train_one)
        .lower(
            jax.ShapeDtypeStruct((k, d), jnp.float32),
            jax.ShapeDtypeStruct((k,), jnp.float32),
            jax.ShapeDtypeStruct((n, d), jnp.float32),
            jax.ShapeDtypeStruct((n,), jnp.int32),
            jax.random.key(0),
            f32,
            f32,
        )
        .compile()
    )
    return exe, time.perf_counter() - t0


def eval_config(steps: int, default_eval: bool) -> TrainConfig:
    """A default ``coarse`` sweep's training settings (batch 256, TrainConfig's default
    evaluation schedule and evaluation sizes) with evaluation either as by default or only
    once at the end. One chunk in both, so only the evaluations differ."""
    return TrainConfig(
        steps=steps,
        batch_size=BATCH,
        eval_every=None if default_eval else steps,
        chunk_steps=steps,
    )


@functools.cache
def bare_chunk(m: int, d: int, k: int, steps: int):
    """The same SGD softmax step with nothing but its arithmetic (no divergence masks,
    no loss bookkeeping, no flax): a reference for what the two matmuls plus the
    element-wise work cost when XLA fuses them. Returns a jitted ``f(W, b, X, Y, key)``."""

    def chunk(w, b, x_all, y_all, key, lr, l2):
        def step(carry, t):
            w, b = carry
            idx = jax.random.randint(jax.random.fold_in(key, t), (BATCH,), 0, x_all.shape[0])
            x, y = x_all[idx], y_all[idx]
            # Features-first, as the engine: logits [M*K, B] = W[M*K, D] @ x.T
            logits = (w @ x.T + b[:, None]).reshape(m, k, BATCH)
            p = jax.nn.softmax(logits, 1) - jax.nn.one_hot(y, k).T[None, :, :]
            g = (p / BATCH).reshape(m * k, BATCH)
            gw = g @ x + jnp.repeat(l2, k)[:, None] * w
            return (w - jnp.repeat(lr, k)[:, None] * gw, b - jnp.repeat(lr, k) * g.sum(1)), None

        (w, b), _ = jax.lax.scan(step, (w, b), jnp.arange(steps))
        return w, b

    return jax.jit(chunk, donate_argnums=(0, 1))


def plan_steps(ms, target_s: float, gflops: float, fpms: int, min_steps: int) -> dict:
    """Steps per population size so each timed run lasts about ``target_s``, from a prior
    of 70% of the measured matmul rate (a third of that for a lone member)."""
    out = {}
    for m in ms:
        rate = 0.7 * gflops * 1e9 / fpms * (1 / 3 if m == 1 else 1)
        out[m] = max(min_steps, int(math.ceil(target_s * rate / m / 10) * 10))
    return out


def bench(
    ds,
    ms=(1, 16, 64, 256, 1024),
    reps: int = 3,
    target_s: float = 2.5,
    n_seq: int = 8,
    min_steps: int = 20,
    progress=print,
    eval_ds=None,
    eval_members: int = 256,
    eval_steps: int = 300,
) -> dict:
    """Time every population size, the member-after-member loop and the matmuls,
    interleaved over ``reps`` repetitions after one warm-up repetition; and, on
    ``eval_ds`` (default ``ds``) with ``eval_members`` x ``eval_steps`` (a default coarse
    sweep), training with the default evaluation against evaluation only at the end."""
    eval_ds = ds if eval_ds is None else eval_ds
    model = ModelConfig(kind="softmax")
    d, k = ds.num_features, ds.num_classes
    fpms = flops_per_member_step(ds)
    gflops0 = common.square_matmul_gflops(2048 if target_s >= 1 else 512, reps=3)
    # Ratios are paired within a repetition (same minute of machine load), then the
    # median over repetitions is kept.
    steps = plan_steps(ms, target_s, gflops0, fpms, min_steps)
    seq_steps = max(min_steps, steps[1] // n_seq) if 1 in steps else min_steps * 5
    progress(f"plan: steps {steps}, sequential loop {n_seq} x {seq_steps} steps")

    runs = {m: {"compile_s": 0.0, "train_s": [], "groups": None} for m in ms}
    seq = {"compile_s": 0.0, "train_s": []}
    evals = {"default": [], "end_only": [], "compile_s": 0.0, "evaluations": None}
    bare = {m: [] for m in ms}
    square, shapes = [], {m: [] for m in ms}
    square_by = {m: [] for m in ms}
    sq_n = 2048 if target_s >= 1 else 512
    x_dev, y_dev = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)

    for rep in range(reps + 1):
        tag = "warm-up" if rep == 0 else f"rep {rep}/{reps}"
        for m in ms:
            res = train_population(ds, population(m), model, train_config(steps[m]))
            runs[m]["compile_s"] += res.timing.compile_s
            runs[m]["groups"] = (res.timing.num_groups, res.timing.group_size)
            if rep:
                runs[m]["train_s"].append(res.timing.train_s)
            progress(
                f"[{tag}] M={m:5d} steps={steps[m]:5d} compile {res.timing.compile_s:5.2f}s"
                f" run {res.timing.train_s:6.2f}s  {res.timing.model_steps_per_s:9,.0f}"
                " model-steps/s"
            )
            # The same work with only the arithmetic: the reference for overheads.
            f = bare_chunk(m, d, k, steps[m])
            lr, l2 = jnp.asarray(population(m).lr), jnp.asarray(population(m).l2)
            w, b = jnp.zeros((m * k, d)), jnp.zeros((m * k,))
            key = jax.random.key(0)
            if rep == 0:
                jax.block_until_ready(f(w, b, x_dev, y_dev, key, lr, l2))
                w, b = jnp.zeros((m * k, d)), jnp.zeros((m * k,))
            else:
                t0 = time.perf_counter()
                jax.block_until_ready(f(w, b, x_dev, y_dev, key, lr, l2))
                bare[m].append(time.perf_counter() - t0)
                shapes[m].append(common.step_matmul_seconds(BATCH, d, m * k, reps=5))
                # (b) this machine's dense float32 matmul rate, right next to the run it
                # is compared with (the load of a shared machine drifts within seconds).
                square.append(common.square_matmul_gflops(sq_n, reps=3))
                square_by[m].append(square[-1])

        # (a) a user's loop: one member's step, jitted and compiled once, member after
        # member (no per-call setup of train_population).
        hp = population(n_seq)
        exe, compile_s = user_member_trainer(x_dev.shape[0], d, k, seq_steps)
        seq["compile_s"] += compile_s
        t0 = time.perf_counter()
        for i in range(n_seq):
            w, b = jnp.zeros((k, d)), jnp.zeros((k,))
            key = jax.random.fold_in(jax.random.key(1), i)
            jax.block_until_ready(
                exe(w, b, x_dev, y_dev, key, jnp.float32(hp.lr[i]), jnp.float32(hp.l2[i]))
            )
        train_s = time.perf_counter() - t0
        if rep:
            seq["train_s"].append(train_s)
        progress(
            f"[{tag}] user loop {n_seq} x {seq_steps} steps: {train_s:.2f}s "
            f"({n_seq * seq_steps / train_s:,.0f} model-steps/s)"
        )

        # (c) evaluation's share of a default coarse sweep's training time.
        for variant, default_eval in (("default", True), ("end_only", False)):
            cfg = eval_config(eval_steps, default_eval)
            r = train_population(eval_ds, population(eval_members), model, cfg)
            evals["compile_s"] += r.timing.compile_s
            if default_eval:
                evals["evaluations"] = eval_steps // cfg.resolved_eval_every
            if rep:
                evals[variant].append(r.timing.train_s)
            progress(
                f"[{tag}] M={eval_members} x {eval_steps} steps, evaluation {variant}: "
                f"{r.timing.train_s:.2f}s"
            )
        if rep:
            progress(
                f"[{tag}] square matmul {', '.join(f'{g:.1f}' for g in square[-len(ms) :])} GFLOP/s"
            )

    peak = common.median(square)
    seq_rate = n_seq * seq_steps / common.median(seq["train_s"])
    seq_rates = [n_seq * seq_steps / x for x in seq["train_s"]]
    one_rates = [steps[1] / x for x in runs[1]["train_s"]] if 1 in ms else None
    rows = []
    for m in ms:
        t = common.median(runs[m]["train_s"])
        rate = m * steps[m] / t
        rates = [m * steps[m] / x for x in runs[m]["train_s"]]
        speedup = common.median([a / b for a, b in zip(rates, seq_rates, strict=True)])
        vs_one = (
            common.median([a / b for a, b in zip(rates, one_rates, strict=True)])
            if one_rates
            else None
        )
        fraction = common.median(
            [a * fpms / 1e9 / g for a, g in zip(rates, square_by[m], strict=True)]
        )
        sh = {key: common.median([s[key] for s in shapes[m]]) for key in shapes[m][0]}
        rows.append(
            {
                "members": m,
                "steps": steps[m],
                "compile_s": runs[m]["compile_s"],
                "train_s_median": t,
                "train_s_all": runs[m]["train_s"],
                "model_steps_per_s": rate,
                "speedup_vs_sequential": speedup,
                "speedup_vs_engine_m1": vs_one,
                "gflops": rate * fpms / 1e9,
                "fraction_of_square_matmul": fraction,
                "square_matmul_gflops_paired": square_by[m],
                "step_ms": t / steps[m] * 1e3,
                "step_matmuls_ms": sh["both_s"] * 1e3,
                "step_matmuls_gflops": sh["both_gflops"],
                "fraction_of_step_matmuls": rate * fpms / 1e9 / sh["both_gflops"],
                "fwd_matmul_gflops": sh["fwd_gflops"],
                "grad_matmul_gflops": sh["grad_gflops"],
                "bare_step_ms": common.median(bare[m]) / steps[m] * 1e3,
                "num_groups": runs[m]["groups"][0],
                "group_size": runs[m]["groups"][1],
            }
        )
    return {
        "settings": {
            "batch_size": BATCH,
            "model": "softmax",
            "optimizer": "sgd",
            "features": d,
            "classes": k,
            "n_train": int(ds.x_train.shape[0]),
            "eval_rows": int(ds.x_val.shape[0]),
            "evaluations_per_run": 1,
            "reps": reps,
            "warmup_reps": 1,
            "flops_per_member_step": fpms,
        },
        "square_matmul_gflops": peak,
        "square_matmul_gflops_all": square,
        "sequential": {
            "loop": "user's loop: one member's step jitted and compiled once, member after member",
            "members": n_seq,
            "steps": seq_steps,
            "compile_s": seq["compile_s"],
            "train_s_median": common.median(seq["train_s"]),
            "train_s_all": seq["train_s"],
            "model_steps_per_s": seq_rate,
        },
        "evaluation_share": {
            "members": eval_members,
            "steps": eval_steps,
            "batch_size": BATCH,
            "evaluations_default": evals["evaluations"],
            "val_rows": min(TrainConfig().val_subset, int(eval_ds.x_val.shape[0])),
            "train_eval_rows": 0,  # training accuracy is the minibatches' running mean
            "train_s_default_all": evals["default"],
            "train_s_end_only_all": evals["end_only"],
            "train_s_default_median": common.median(evals["default"]),
            "train_s_end_only_median": common.median(evals["end_only"]),
            # Paired within each repetition, then the median.
            "share": common.median(
                [1 - b / a for a, b in zip(evals["default"], evals["end_only"], strict=True)]
            ),
            "compile_s": evals["compile_s"],
        },
        "rows": rows,
    }


def verdict(res: dict, m: int = 256) -> dict:
    row = next((r for r in res["rows"] if r["members"] == m), res["rows"][-1])
    return {
        "at_members": row["members"],
        "speedup_vs_sequential": row["speedup_vs_sequential"],
        "speedup_vs_engine_m1": row.get("speedup_vs_engine_m1"),
        "speedup_target": 6.0,
        "speedup_met": row["speedup_vs_sequential"] >= 6.0,
        "fraction_of_matmul": row["fraction_of_square_matmul"],
        "fraction_target": 0.85,
        "fraction_met": row["fraction_of_square_matmul"] >= 0.85,
    }


def markdown(res: dict, cmd: str) -> str:
    mach, st, seq = res["machine"], res["settings"], res["sequential"]
    v = res["verdict"]
    rows = [
        [
            r["members"],
            r["steps"],
            r["compile_s"],
            r["train_s_median"],
            r["model_steps_per_s"],
            r["speedup_vs_sequential"],
            "-" if r.get("speedup_vs_engine_m1") is None else r["speedup_vs_engine_m1"],
            r["gflops"],
            f"{100 * r['fraction_of_square_matmul']:.0f}%",
            r["step_ms"],
            r["step_matmuls_ms"],
            r["bare_step_ms"],
            r["num_groups"],
        ]
        for r in res["rows"]
    ]
    head = [
        "members M",
        "steps",
        "compile s",
        "run s (median)",
        "model-steps/s",
        "x user loop",
        "x engine M=1",
        "GFLOP/s",
        "of square matmul",
        "ms/step",
        "ms 2 matmuls alone",
        "ms bare step",
        "groups",
    ]
    fwd = {r["members"]: (r["fwd_matmul_gflops"], r["grad_matmul_gflops"]) for r in res["rows"]}
    one = fwd.get(1)
    big = res["rows"][-1]
    lines = [
        f"# Engine throughput ({mach['backend']})",
        "",
        f"Machine: {common.machine_line(mach)}.",
        "",
        f"Reproduce: `{cmd}`",
        "",
        f"Softmax regression, SGD, batch {st['batch_size']}, {st['n_train']:,} training rows "
        f"of {st['features']} features, {st['classes']} classes. Each run ends with one "
        f"evaluation (eval_every = steps) on {st['eval_rows']} validation rows, about one "
        "step's work, so evaluation does not pollute the step rate. Run time is "
        "`Timing.train_s` (compiled calls, blocked until ready), the median of "
        f"{st['reps']} interleaved repetitions after a warm-up; compile time is apart. "
        f"FLOPs counted: 4 x batch x inputs x classes = {st['flops_per_member_step']:,} per "
        "member-step (forward and weight-gradient matmuls).",
        "",
        common.md_table(head, rows),
        "",
        f"- User loop ('x user loop'): one member's SGD step written in plain JAX (mean "
        "cross-entropy + L2, minibatch drawn inside a `lax.scan`), jitted and compiled once, "
        f"then run for {seq['members']} members one after another, {seq['steps']} steps "
        f"each: {seq['model_steps_per_s']:,.0f} model-steps/s (loop {seq['train_s_median']:.2f}"
        " s, median). It has none of the engine's bookkeeping (divergence masks, evaluation), "
        "so the ratio is in the loop's favour.",
        "- 'x engine M=1': against the engine's own lone member, the M=1 row (one long "
        "`train_population` call, so its per-call setup is amortised).",
        f"- Square float32 matmul (2048^2) through JAX: {res['square_matmul_gflops']:.1f} "
        f"GFLOP/s (median; all reps "
        f"{', '.join(format(g, '.1f') for g in res['square_matmul_gflops_all'])}).",
        "- 'x user loop', 'x engine M=1' and 'of square matmul' are medians of ratios "
        "paired within each "
        "repetition (the square matmul is timed right after each run), so load that drifts "
        "between repetitions cancels.",
        "- 'ms 2 matmuls alone': the step's forward `W[M*10,784] @ xt[784,256]` and gradient "
        "`g[M*10,256] @ x[256,784]` timed in isolation with the engine's layouts. "
        "'ms bare step': the same SGD step written with only its arithmetic (no divergence "
        "masks, no flax), scanned like the engine.",
        "",
        "## Targets at M={} ".format(v["at_members"]),
        "",
        f"- Speedup over the user's member-after-member loop: "
        f"{v['speedup_vs_sequential']:.1f}x (target {v['speedup_target']:.0f}x): "
        f"{'met' if v['speedup_met'] else 'missed'}"
        + (
            f"; over the engine's own lone member: {v['speedup_vs_engine_m1']:.1f}x."
            if v.get("speedup_vs_engine_m1") is not None
            else "."
        ),
        f"- Fraction of the square-matmul FLOP rate: {100 * v['fraction_of_matmul']:.0f}% "
        f"(target {100 * v['fraction_target']:.0f}%): "
        f"{'met' if v['fraction_met'] else 'missed'}.",
    ]
    tgt = next((r for r in res["rows"] if r["members"] == v["at_members"]), big)
    user_gflops = seq["model_steps_per_s"] * st["flops_per_member_step"] / 1e9
    if one:
        lone = next(r for r in res["rows"] if r["members"] == 1)
        lines += [
            f"- What bounds the speedup: a ratio can be at most (the population's "
            "FLOP rate) / (the lone member's). The user loop's lone member runs its step at "
            f"{user_gflops:.1f} GFLOP/s ({user_gflops / res['square_matmul_gflops']:.0%} of "
            "the square-matmul rate), the engine's (M=1) at "
            f"{lone['gflops']:.1f} GFLOP/s ({lone['fraction_of_square_matmul']:.0%}), while "
            f"M={tgt['members']} runs at {tgt['gflops']:.1f} GFLOP/s "
            f"({tgt['fraction_of_square_matmul']:.0%}); so on this CPU no population can "
            "beat the user loop by more than about "
            f"{res['square_matmul_gflops'] / max(user_gflops, 1e-9):.1f}x, whatever its size. "
            "The isolated "
            f"thin matmuls ({one[0]:.1f} / {one[1]:.1f} GFLOP/s forward / gradient, "
            f"{lone['step_matmuls_ms']:.2f} ms) are slower than the lone step itself "
            f"({lone['step_ms']:.2f} ms) because one tiny call is mostly dispatch; inside "
            "the scanned program they are not."
            + (
                ""
                if v["speedup_met"]
                else " The 6x target needs a device where one member leaves most of the "
                "hardware idle (a GPU: see gpu_check.sh)."
            ),
        ]
    for r in dict.fromkeys([tgt["members"], big["members"]]):
        row = next(x for x in res["rows"] if x["members"] == r)
        lines.append(
            f"- What bounds the fraction at M={r}: the step's two matmuls alone take "
            f"{row['step_matmuls_ms']:.1f} ms ({row['step_matmuls_gflops']:.1f} GFLOP/s at "
            f"these shapes); the engine's step takes {row['step_ms']:.1f} ms and the bare "
            f"step {row['bare_step_ms']:.1f} ms: the matmuls are "
            f"{100 * row['step_matmuls_ms'] / row['step_ms']:.0f}% of the step; the rest is "
            "element-wise, memory-bound work on "
            "the [M*10, 784] weights (L2 term, update, keeping diverged members frozen, "
            "softmax), which grows with M just as the matmuls do, so a larger population "
            "does not amortise it."
        )
    if not v["fraction_met"]:
        lines.append(
            "- What it would take: fewer passes over the weights per step (the bare step, "
            "with no engine bookkeeping, still takes well over the matmuls alone: XLA on the CPU "
            "does not fuse the L2 term and the update into the gradient matmul), or more "
            "FLOPs per weight byte: the element-wise work is per weight, the matmul work per "
            "weight x batch row, so a batch of 1024 would amortise the same element-wise "
            "work over 4x the FLOPs."
        )
    ev = res.get("evaluation_share")
    if ev:
        lines += [
            "",
            "## Evaluation's share of a default coarse sweep",
            "",
            f"{ev['members']} members x {ev['steps']} steps of batch {ev['batch_size']} (the "
            "`coarse` defaults are 256 x 300, batch 256; `--quick` runs fewer), trained once "
            "with TrainConfig's default evaluation schedule "
            f"({ev['evaluations_default']} evaluations, each on {ev['val_rows']:,} validation "
            f"rows; training accuracy comes free from the minibatches) and once evaluating only at "
            "the end; one chunk each, `Timing.train_s`, interleaved repetitions. Evaluation "
            f"takes **{100 * ev['share']:.0f}%** of the training time (median of paired "
            f"1 - end-only / default; medians {ev['train_s_default_median']:.2f} s vs "
            f"{ev['train_s_end_only_median']:.2f} s).",
        ]
    lines.append("")
    return "\n".join(lines)


# --------------------------------------------------------------------------- CNN case
CNN_SPEC = "examples.my_cnn:SmallCNN"


@functools.cache
def user_cnn_trainer(n: int, shape: tuple, k: int, steps: int):
    """The loop a user writes without sweepjax for ``examples.my_cnn.SmallCNN``: ONE
    member's SGD step (mean cross-entropy + L2 on the kernels, minibatch drawn with
    replacement inside a ``lax.scan``), jitted and compiled once, then called member
    after member. No engine bookkeeping, so the baseline is in the loop's favour.
    Returns ``(compiled f(params, x_all, y_all, key, lr, l2), initial params,
    compile_s)``."""
    from examples.my_cnn import SmallCNN

    net = SmallCNN(num_classes=k)
    shape = tuple(shape)

    def kernels(p):
        leaves = jax.tree_util.tree_leaves_with_path(p)
        return [w for path, w in leaves if getattr(path[-1], "key", None) == "kernel"]

    def train_one(params, x_all, y_all, key, lr, l2):
        def loss(p, x, y):
            logits = net.apply({"params": p}, x.reshape((x.shape[0], *shape)))
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return ce + 0.5 * l2 * sum(jnp.sum(w**2) for w in kernels(p))

        def step(p, t):
            idx = jax.random.randint(jax.random.fold_in(key, t), (BATCH,), 0, x_all.shape[0])
            g = jax.grad(loss)(p, x_all[idx], y_all[idx])
            return jax.tree.map(lambda w, d: w - lr * d, p, g), None

        return jax.lax.scan(step, params, jnp.arange(steps))[0]

    params = net.init(jax.random.key(0), jnp.zeros((1, *shape), jnp.float32))["params"]
    d = math.prod(shape)
    f32 = jax.ShapeDtypeStruct((), jnp.float32)
    t0 = time.perf_counter()
    exe = (
        jax.jit(train_one)
        .lower(
            params,
            jax.ShapeDtypeStruct((n, d), jnp.float32),
            jax.ShapeDtypeStruct((n,), jnp.int32),
            jax.random.key(0),
            f32,
            f32,
        )
        .compile()
    )
    return exe, params, time.perf_counter() - t0


@functools.cache
def user_cnn_step(n: int, shape: tuple, k: int):
    """The loop a user writes as the Flax examples and the NNX MNIST tutorial teach:
    ONE SGD step of one SmallCNN member (same loss as :func:`user_cnn_trainer`), jitted
    with the parameters donated, called from a Python ``for`` loop over the steps. In
    the loop's favour: the data stay on the device, the minibatch drawn inside the step
    (no host loader), and nothing waits until the last member's last step. Returns
    ``(compiled f(params, x_all, y_all, key, t, lr, l2), compile_s)``."""
    from examples.my_cnn import SmallCNN

    net = SmallCNN(num_classes=k)
    shape = tuple(shape)

    def train_step(params, x_all, y_all, key, t, lr, l2):
        def loss(p, x, y):
            logits = net.apply({"params": p}, x.reshape((x.shape[0], *shape)))
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            kernels = [w for path, w in jax.tree_util.tree_leaves_with_path(p)
                       if getattr(path[-1], "key", None) == "kernel"]  # fmt: skip
            return ce + 0.5 * l2 * sum(jnp.sum(w**2) for w in kernels)

        idx = jax.random.randint(jax.random.fold_in(key, t), (BATCH,), 0, x_all.shape[0])
        g = jax.grad(loss)(params, x_all[idx], y_all[idx])
        return jax.tree.map(lambda w, d: w - lr * d, params, g)

    params = net.init(jax.random.key(0), jnp.zeros((1, *shape), jnp.float32))["params"]
    d = math.prod(shape)
    f32, i32 = jax.ShapeDtypeStruct((), jnp.float32), jax.ShapeDtypeStruct((), jnp.int32)
    t0 = time.perf_counter()
    exe = (
        jax.jit(train_step, donate_argnums=(0,))
        .lower(params, jax.ShapeDtypeStruct((n, d), jnp.float32),
               jax.ShapeDtypeStruct((n,), jnp.int32), jax.random.key(0), i32, f32, f32)
        .compile()
    )  # fmt: skip
    return exe, time.perf_counter() - t0


def python_loop(exe, params0, x_dev, y_dev, hp: HParams, members: int, steps: int) -> float:
    """Seconds for ``members`` members x ``steps`` steps of the Python loop."""
    ts = [jnp.int32(t) for t in range(steps)]
    t0 = time.perf_counter()
    out = []
    for i in range(members):
        key = jax.random.fold_in(jax.random.key(1), i)
        lr, l2 = jnp.float32(hp.lr[i]), jnp.float32(hp.l2[i])
        p = jax.tree.map(jnp.copy, params0)  # donated below
        for t in ts:
            p = exe(p, x_dev, y_dev, key, t, lr, l2)
        out.append(p)
    jax.block_until_ready(out)
    return time.perf_counter() - t0


@contextlib.contextmanager
def forced_layout(k: int | str | None):
    """Train with the population layout ``k`` instead of the engine's rule: an int is
    ``Static.member_batch`` inside the in-program loop (0 vmaps every member, k > 0
    loops over them k at a time); ``"host"`` the host-driven steps (``Static.host_steps``,
    members one at a time); None: the rule. Only for comparing layouts here."""
    from sweepjax.engine import setup

    rule, host_rule = setup.member_batch, setup.host_steps
    if k is not None:
        mb = 1 if k == "host" else k
        setup.member_batch = lambda *a, **kw: mb
        setup.host_steps = lambda *a, **kw: k == "host"
    try:
        yield
    finally:
        setup.member_batch, setup.host_steps = rule, host_rule


def bench_cnn(
    ds,
    members: int = 16,
    steps: int = 20,
    reps: int = 3,
    n_seq: int = 16,
    layouts=(0, 1, "host"),
    layout_steps: int = 6,
    progress=print,
) -> dict:
    """The CNN case: ``members`` SmallCNNs in the engine (its own layout, the rule's)
    against the user's Python loop of one jitted step (the baseline) and the user's
    ``scan`` loop over ``n_seq`` members, and the engine's lone member, ``steps`` steps
    each, SGD, batch 256, interleaved over ``reps`` repetitions after a warm-up that
    compiles every program (the engine's ``steps`` are traced, so a 1-step warm-up
    compiles the timed program); then the population per forced layout (see
    :func:`forced_layout`), ``layout_steps`` steps each, the Python loop timed next to
    each for a paired ratio."""
    from sweepjax.engine import setup

    model = ModelConfig(kind="custom", spec=CNN_SPEC)
    shape = tuple(ds.info.input_shape) + ((1,) if len(ds.info.input_shape) == 2 else ())
    d, k = ds.num_features, ds.num_classes
    cfg = train_config(steps)
    rule = setup.member_batch(model, d, k, ds.info.input_shape)
    host_rule = setup.host_steps(rule)
    x_dev, y_dev = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    hp_loop = population(n_seq)
    exe, params0, loop_compile = user_cnn_trainer(x_dev.shape[0], shape, k, steps)
    step_exe, step_compile = user_cnn_step(x_dev.shape[0], shape, k)
    # Engine runs: (members, lanes): the lanes the CLI's process gets (request_lanes at
    # main's start) and one lane (SWEEPJAX_LANES=1), so both are rows of the same run.
    lanes = max(1, len(distributed.lane_devices()))
    runs = [(1, 1), (members, lanes)] + ([(members, 1)] if lanes > 1 else [])
    engine = {r: {"compile_s": 0.0, "train_s": [], "groups": None} for r in runs}
    loop_s, scan_s = [], []
    python_loop(step_exe, params0, x_dev, y_dev, hp_loop, 1, 2)  # warm-up

    def engine_train(m, n_lanes, config):
        with lanes_env(n_lanes):
            return train_population(ds, population(m), model, config)

    for m, n_lanes in engine:  # warm-up: compile
        res = engine_train(m, n_lanes, train_config(1))
        engine[m, n_lanes]["compile_s"] += res.timing.compile_s
        progress(f"[warm-up] CNN M={m}, {n_lanes} lane(s): compile {res.timing.compile_s:.2f}s")

    def engine_run(m, rep, n_lanes=1):
        res = engine_train(m, n_lanes, cfg)
        engine[m, n_lanes]["train_s"].append(res.timing.train_s)
        engine[m, n_lanes]["groups"] = (res.timing.num_groups, res.timing.group_size)
        progress(
            f"[rep {rep}/{reps}] CNN M={m}, {n_lanes} lane(s) x {steps} steps: "
            f"{res.timing.train_s:.2f}s, "
            f"{1e3 * res.timing.train_s / (m * steps):.1f} ms per member-step"
        )

    def loop_run(rep):
        loop_s.append(python_loop(step_exe, params0, x_dev, y_dev, hp_loop, n_seq, steps))
        t0 = time.perf_counter()
        for i in range(n_seq):
            key = jax.random.fold_in(jax.random.key(1), i)
            lr, l2 = jnp.float32(hp_loop.lr[i]), jnp.float32(hp_loop.l2[i])
            jax.block_until_ready(exe(params0, x_dev, y_dev, key, lr, l2))
        scan_s.append(time.perf_counter() - t0)
        progress(
            f"[rep {rep}/{reps}] CNN user loops {n_seq} x {steps} steps: Python "
            f"{1e3 * loop_s[-1] / (n_seq * steps):.1f}, scan "
            f"{1e3 * scan_s[-1] / (n_seq * steps):.1f} ms per member-step"
        )

    for rep in range(1, reps + 1):
        # The population and the loops do the same work (n_seq = members), back to back,
        # in alternating order, so a neighbour's load drifting within a repetition
        # favours neither.
        order = ["engine", "loop"] + (["one lane"] if lanes > 1 else [])
        for which in order if rep % 2 else order[::-1]:
            if which == "loop":
                loop_run(rep)
            else:
                engine_run(members, rep, lanes if which == "engine" else 1)
        engine_run(1, rep)
    loop_ms = [1e3 * t / (n_seq * steps) for t in loop_s]
    scan_ms = [1e3 * t / (n_seq * steps) for t in scan_s]
    rows = []
    for (m, n_lanes), e in engine.items():
        ms = [1e3 * t / (m * steps) for t in e["train_s"]]
        rows.append(
            {
                "members": m,
                "lanes": n_lanes,
                "steps": steps,
                "member_batch": rule,
                "host_steps": host_rule,
                "compile_s": e["compile_s"],
                "train_s_all": e["train_s"],
                "ms_per_member_step_all": ms,
                "ms_per_member_step": common.median(ms),
                "model_steps_per_s": 1e3 / common.median(ms),
                # Paired within each repetition (same minute of load), then the median.
                "speedup_vs_user_loop": common.median(
                    [a / b for a, b in zip(loop_ms, ms, strict=True)]
                ),
                "speedup_vs_scan_loop": common.median(
                    [a / b for a, b in zip(scan_ms, ms, strict=True)]
                ),
                "num_groups": e["groups"][0],
                "group_size": e["groups"][1],
            }
        )
    lay = []
    for k_ in layouts:
        with forced_layout(k_), lanes_env(lanes if k_ == "host" else 1):
            warm = train_population(ds, population(members), model, train_config(1))
            res = train_population(ds, population(members), model, train_config(layout_steps))
        near_s = python_loop(step_exe, params0, x_dev, y_dev, hp_loop, 2, layout_steps)
        near = 1e3 * near_s / (2 * layout_steps)
        ms = 1e3 * res.timing.train_s / (members * layout_steps)
        lay.append(
            {
                "layout": k_,
                "steps": layout_steps,
                "compile_s": warm.timing.compile_s,
                "ms_per_member_step": ms,
                "user_loop_ms_per_member_step": near,
                "speedup_vs_user_loop": near / ms,
                "num_groups": res.timing.num_groups,
            }
        )
        progress(
            f"[layout] {k_}: {ms:.1f} ms per member-step (Python loop {near:.1f}), "
            f"compile {warm.timing.compile_s:.2f}s"
        )
    return {
        "settings": {
            "model": CNN_SPEC,
            "optimizer": "sgd",
            "batch_size": BATCH,
            "input_shape": list(shape),
            "classes": k,
            "n_train": int(ds.x_train.shape[0]),
            "eval_rows": int(ds.x_val.shape[0]),
            "members": members,
            "steps": steps,
            "reps": reps,
            "rule_member_batch": rule,
            "rule_host_steps": host_rule,
            "lanes": lanes,
            "member_bytes_estimate": setup.member_bytes(model, cfg, d, k, ds.info.input_shape),
        },
        "user_loop": {
            "loop": "a Python for loop calling one SmallCNN SGD step, jitted once with the "
            "parameters donated, member after member (as the Flax examples teach)",
            "members": n_seq,
            "steps": steps,
            "compile_s": step_compile,
            "train_s_all": loop_s,
            "ms_per_member_step_all": loop_ms,
            "ms_per_member_step": common.median(loop_ms),
        },
        "scan_loop": {
            "loop": "one SmallCNN member's steps inside lax.scan, jitted once, member after member",
            "members": n_seq,
            "steps": steps,
            "compile_s": loop_compile,
            "train_s_all": scan_s,
            "ms_per_member_step_all": scan_ms,
            "ms_per_member_step": common.median(scan_ms),
        },
        "rows": rows,
        "layouts": lay,
    }


@contextlib.contextmanager
def lanes_env(n: int):
    """Train over at most ``n`` lanes (``$SWEEPJAX_LANES``, read at each block)."""
    old = os.environ.get(distributed.LANES_ENV)
    os.environ[distributed.LANES_ENV] = str(n)
    try:
        yield
    finally:
        if old is None:
            del os.environ[distributed.LANES_ENV]
        else:
            os.environ[distributed.LANES_ENV] = old


def _layout_name(k) -> str:
    if k == "host":
        return "host-driven steps (one member per call)"
    return "in-program loop, vmap" if k == 0 else f"in-program loop, members {k} at a time"


def markdown_cnn(res: dict, cmd: str) -> str:
    mach, st, loop, scan = res["machine"], res["settings"], res["user_loop"], res["scan_loop"]
    pop = next(r for r in res["rows"] if r["members"] == st["members"])  # most lanes first
    rule = "host" if st["rule_host_steps"] else st["rule_member_batch"]
    lines = [
        f"# Engine throughput, a user's CNN ({mach['backend']})",
        "",
        f"Machine: {common.machine_line(mach)}.",
        "",
        f"Reproduce: `{cmd}`",
        "",
        f"`{st['model']}` (conv 3x3, 8 filters -> ReLU -> 2x2 average pool -> dense) on "
        f"the bundled MNIST sample ({st['n_train']:,} training rows, examples "
        f"{'x'.join(map(str, st['input_shape']))}, {st['classes']} classes), SGD, batch "
        f"{st['batch_size']}, {st['steps']} steps per run, one evaluation at the end on "
        f"{st['eval_rows']} validation rows. Time per member-step: `Timing.train_s` "
        "(compiled calls, blocked until ready) / (members x steps), the median of "
        f"{st['reps']} interleaved repetitions; compile time apart (a warm-up compiles "
        "every program). The baseline ('user loop') is a Python `for` loop calling one "
        "jitted SGD step (parameters donated, minibatch drawn on the device, no wait "
        "until the end), as the Flax examples teach; the `scan` loop is the same member's "
        "steps inside one compiled `lax.scan`. The engine's layout (its rule, "
        f"`setup.member_batch` and `setup.host_steps`): {_layout_name(rule)}, over "
        f"{st.get('lanes', 1)} lane(s): the CPU devices the command line's process asks "
        "JAX for (`distributed.request_lanes`, called here at the start), each lane "
        "stepping its members on its own device concurrently (docs/performance.md); the "
        "'1 lane(s)' row is the same population with `SWEEPJAX_LANES=1`. The user loops "
        "run on device 0 alone, as a user's process does.",
        "",
        common.md_table(
            ["run", "compile s", "ms per member-step (median)", "x user loop", "groups"],
            [
                [
                    f"user loop: Python for, one jitted step ({loop['members']} members)",
                    loop["compile_s"],
                    loop["ms_per_member_step"],
                    1.0,
                    "-",
                ],
                [
                    f"user loop: lax.scan ({scan['members']} members)",
                    scan["compile_s"],
                    scan["ms_per_member_step"],
                    common.median(
                        [
                            a / b
                            for a, b in zip(
                                loop["ms_per_member_step_all"],
                                scan["ms_per_member_step_all"],
                                strict=True,
                            )
                        ]
                    ),
                    "-",
                ],
            ]  # fmt: skip
            + [
                [
                    f"engine, M={r['members']}, {r.get('lanes', 1)} lane(s)",
                    r["compile_s"],
                    r["ms_per_member_step"],
                    r["speedup_vs_user_loop"],
                    f"{r['num_groups']} x {r['group_size']}",
                ]
                for r in res["rows"]
            ],
        ),
        "",
        f"- Target: the population of {st['members']} at least as fast per member-step "
        f"as the Python loop: {pop['speedup_vs_user_loop']:.2f}x, "
        f"{'met' if pop['speedup_vs_user_loop'] >= 1.0 else 'missed'} ('x user loop' is "
        "the median of ratios paired within each repetition); "
        f"{pop['speedup_vs_scan_loop']:.2f}x the scan loop.",
        f"- Memory: the estimate is {st['member_bytes_estimate'] / 2**20:.0f} MiB per "
        "member if vmapped; looped, the members share one member's activations, so "
        f"{st['members']} members are {pop['num_groups']} group(s) under the default "
        "2 GiB budget.",
    ]
    if res.get("layouts"):
        lines += [
            "",
            "## Layouts of the population",
            "",
            f"The population of {st['members']} trained once per forced layout "
            f"({res['layouts'][0]['steps']} steps each, one timed run after a compiling "
            "warm-up; the Python loop timed right after each, for the ratio). vmap: the "
            "convolution runs over all members' kernels at once; members k at a time: "
            "`lax.map` inside the compiled step loop (k = 1 with no vmap at all); "
            "host-driven: each step of each member one call of one compiled program.",
            "",
            common.md_table(
                ["layout", "compile s", "ms per member-step", "Python loop ms", "x user loop"],
                [
                    [
                        _layout_name(r["layout"]),
                        r["compile_s"],
                        r["ms_per_member_step"],
                        r["user_loop_ms_per_member_step"],
                        r["speedup_vs_user_loop"],
                    ]
                    for r in res["layouts"]
                ],
            ),
        ]
    lines.append("")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    p.add_argument("--out", type=Path, default=common.RESULTS, help="results directory")
    p.add_argument("--reps", type=int, default=None)
    p.add_argument(
        "--target-s",
        type=float,
        default=None,
        help="seconds each timed run should last (default 2.5, quick 0.2)",
    )
    p.add_argument("--dataset", default="fashion-mnist")
    p.add_argument(
        "--case",
        choices=("all", "softmax", "cnn"),
        default="all",
        help="softmax: the population sizes, the user loop, evaluation's share; cnn: "
        "examples.my_cnn:SmallCNN against its user loop, and the layouts (default: both)",
    )
    p.add_argument("--cnn-dataset", default="mnist-sample")
    a = p.parse_args(argv)
    # The CPU devices the command line's process asks for (lanes for a CNN's host-driven
    # steps), before JAX's backend starts; the user loops run on device 0 alone.
    distributed.request_lanes()
    mach = common.machine()
    cmd = common.command_line(__file__, argv)
    if a.case in ("all", "cnn"):
        main_cnn(a, mach, cmd)
    if a.case == "cnn":
        return 0
    t_all = time.perf_counter()
    ds = load_dataset(DataConfig(dataset=a.dataset))
    if ds.info.note:
        print(ds.info.note, file=sys.stderr)
    ms = (1, 16, 64) if a.quick else (1, 16, 64, 256, 1024)
    reps = a.reps or (1 if a.quick else 3)
    target = a.target_s or (0.2 if a.quick else 2.5)
    res = bench(
        throughput_dataset(ds),
        ms=ms,
        reps=reps,
        target_s=target,
        n_seq=2 if a.quick else 8,
        min_steps=10 if a.quick else 20,
        eval_ds=ds,  # the full validation split, as a real sweep evaluates it
        eval_members=32 if a.quick else 256,
        eval_steps=60 if a.quick else 300,
    )
    res = {"machine": mach, "dataset": ds.info.as_dict(), "quick": a.quick, **res}
    res["verdict"] = verdict(res)
    res["total_wall_s"] = time.perf_counter() - t_all
    name = f"engine-{mach['backend']}" + ("-quick" if a.quick else "")
    common.write_json(a.out / f"{name}.json", res)
    (a.out / f"{name}.md").write_text(markdown(res, cmd))
    print(f"wrote {a.out / name}.json and .md in {res['total_wall_s']:.0f}s")
    return 0


def main_cnn(a, mach: dict, cmd: str) -> None:
    t_all = time.perf_counter()
    ds = load_dataset(DataConfig(dataset=a.cnn_dataset))
    if ds.info.note:
        print(ds.info.note, file=sys.stderr)
    res = bench_cnn(
        throughput_dataset(ds),
        steps=4 if a.quick else 20,
        reps=a.reps or (1 if a.quick else 3),
        n_seq=2 if a.quick else 16,
        layouts=("host",) if a.quick else (0, 1, "host"),
        layout_steps=2 if a.quick else 6,
    )
    res = {"machine": mach, "dataset": ds.info.as_dict(), "quick": a.quick, **res}
    res["total_wall_s"] = time.perf_counter() - t_all
    name = f"engine-cnn-{mach['backend']}" + ("-quick" if a.quick else "")
    common.write_json(a.out / f"{name}.json", res)
    (a.out / f"{name}.md").write_text(markdown_cnn(res, cmd))
    print(f"wrote {a.out / name}.json and .md in {res['total_wall_s']:.0f}s")


if __name__ == "__main__":
    raise SystemExit(main())
