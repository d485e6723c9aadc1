"""Time to quality: best validation accuracy against wall time, whole process included.

    pip install -e '.[bench]'                                   # optuna, scikit-learn
    python benchmarks/bench_time_to_quality.py                  # full run (see README)
    python benchmarks/bench_time_to_quality.py --quick          # smoke run, ~1 min

What a user feels is how long until a winner they can trust. Every approach runs in its
own fresh subprocess (this script re-invoked with ``--worker NAME``), so data loading,
imports and compiling count for everyone. The worker's clock starts at the top of this
file, before any import; it records events ``(t, best-so-far validation accuracy on the
full validation split, test accuracy of that best model when known)`` and writes them
as JSON; the parent collects them, finds the time each approach needs to reach fixed
validation targets, and writes ``results/time-to-quality-<backend>.{json,md,png}``.

Approaches (same data, split and preprocessing: ``sweepjax.load_dataset``, split seed
``--seed``, which also seeds every approach's own randomness, so another seed is another
split and another search for everyone):

1. sweepjax flows through the public API: ``coarse(...)`` then ``fine(...)``, one
   variant per row of ``FLOWS`` (the default flow is exactly ``python -m sweepjax coarse``
   then ``python -m sweepjax fine``; ``sweepjax auto`` is ``auto(budget=...)``, the checks,
   the finder, one ASHA search and the refit); a variant whose keyword arguments this
   checkout's ``coarse``/``fine``/``auto`` do not take is reported as skipped, with the
   reason.
2. Optuna TPE + HyperbandPruner driving a per-trial jitted JAX trainer written here
   (sweepjax's model, initialisation and objective; SGD, batch 256 with replacement,
   cosine learning-rate schedule over 2,400 steps), reporting after every 240 steps.
3. Optuna's random sampler, no pruner, the same trainer, full runs.
4. scikit-learn ``LogisticRegression`` (lbfgs) over one lambda per decade (softmax only).
"""

from __future__ import annotations

import time

T0 = time.perf_counter()  # the worker's clock: before any other import

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import os  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import NamedTuple  # noqa: E402

# This checkout's sweepjax (not whichever copy is installed), and the helpers beside us.
sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

BATCH = 256
RUN_STEPS = 2400  # one full Optuna trial; the cosine schedule spans it
# The Optuna peer trains the model sweepjax's default flow trains (the defaults of
# ``coarse --model ...``), for as many steps as sweepjax's fine round (RUN_STEPS for the
# softmax, sweepjax.spec.MODEL_DEFAULTS' fine factor x coarse steps for the MLP; written out
# so a worker's clock does not start with importing sweepjax; a test keeps them equal).
PEER_MODEL = {
    "softmax": {"hidden": 0, "optimizer": "sgd", "run_steps": RUN_STEPS},
    "mlp": {"hidden": 256, "optimizer": "momentum", "run_steps": 4800},
}
CHUNK_STEPS = 240  # one report (Hyperband resource unit) per chunk
SPACE = {"lr": (1e-4, 3.0), "l2": (1e-6, 1.0), "lr_decay": (0.01, 1.0)}  # sweepjax's box
SKLEARN_LAMBDAS = [10.0**e for e in range(0, -7, -1)]  # 1 ... 1e-6, strongest first
TARGETS = {"softmax": [0.84, 0.85, 0.855], "mlp": [0.88, 0.89, 0.9]}
QUICK_TARGETS = {"softmax": [0.88, 0.9, 0.91], "mlp": [0.88, 0.9, 0.91]}

# sweepjax variants: name -> (coarse kwargs, fine kwargs). "sweepjax default" is the CLI's
# `coarse` then `fine` with no flags; the others need the `schedule=` argument.
FLOWS: dict[str, tuple[dict, dict]] = {
    "sweepjax default": ({}, {}),
    "sweepjax full": ({"schedule": "full"}, {"schedule": "full"}),
    "sweepjax halving": ({"schedule": "halving"}, {"schedule": "halving"}),
    "sweepjax hyperband": ({"schedule": "hyperband"}, {"schedule": "hyperband"}),
    "sweepjax pbt": ({"schedule": "pbt"}, {"schedule": "pbt"}),
    # fine draws its members from the response-surface model instead of uniformly
    "sweepjax thompson": ({}, {"sampler": "thompson"}),
    "sweepjax ei": ({}, {"sampler": "ei"}),
    # the default flow again, its programs loaded from JAX's persistent compilation cache
    # (what the CLI does on every run after the first; the parent fills the cache first)
    "sweepjax warm-cache": ({}, {}),
    # the anytime search (issue 17): one ASHA run over the box with lr_decay searched,
    # members of the peer's full length, stopped at the peer's budget (--budget-s)
    "sweepjax asha": ({"schedule": "asha", "lr_decay": SPACE["lr_decay"]}, None),
    # the same, as asynchronous Hyperband: three brackets (first judged at rung 0, 1 and
    # never), members spread over them in Hyperband's proportions
    "sweepjax asha-hb": (
        {"schedule": "asha", "brackets": 3, "lr_decay": SPACE["lr_decay"]},
        None,
    ),
    # `python -m sweepjax auto --budget`: sanity checks, the learning-rate finder's box, one
    # ASHA run over it (members of the peer's length: the model's fine round), the refit
    # of its winner on train + validation, all inside the peer's budget (--budget-s)
    "sweepjax auto": ({}, None),
}
ANYTIME = {"sweepjax asha", "sweepjax asha-hb"}
AUTO = {"sweepjax auto"}
CHECKPOINTS_S = (5, 10, 20, 40, 80, 160)  # the table of best-so-far at these times
WARM = {"sweepjax warm-cache"}
# --quick: small sweeps on the bundled sample (merged under each variant's kwargs).
QUICK_COARSE = {"trials": 16, "steps": 60}
QUICK_FINE = {"steps": 120}
PEERS = ("optuna tpe+hyperband", "optuna random", "sklearn")


def now() -> float:
    return time.perf_counter() - T0


class Timeline:
    """Best-so-far events of one worker. ``pause()`` blocks leave the clock (bookkeeping
    that is not part of the approach, e.g. the test accuracy a user would not compute)."""

    def __init__(self):
        self.events: list[dict] = []
        self.excluded_s = 0.0
        self.best = -1.0

    def t(self) -> float:
        return now() - self.excluded_s

    def offer(self, val: float, test: float | None, t: float | None = None, **extra) -> bool:
        """Record an event when ``val`` improves on the best so far."""
        if not (math.isfinite(val) and val > self.best):
            return False
        self.best = val
        self.events.append({"t": self.t() if t is None else t, "val": val, "test": test, **extra})
        return True


# --------------------------------------------------------------------------- workers
def worker_sweepjax(args) -> dict:
    import sweepjax
    from sweepjax.flows.sweep import Callbacks

    coarse_kw, fine_kw = (None if kw is None else dict(kw) for kw in FLOWS[args.worker])
    coarse_kw["seed"] = args.seed  # the split's seed and the sweep's root seed
    if args.worker in ANYTIME:  # the peer's budget and member length
        steps = args.run_steps or PEER_MODEL[args.model]["run_steps"]
        coarse_kw.update(budget=f"{args.budget_s:g}s", steps=steps)
    if args.worker in WARM:
        sweepjax.engine.compile_cache.enable()  # the directory the parent put in the environment
    if args.quick and args.worker not in ANYTIME | AUTO:
        coarse_kw, fine_kw = {**QUICK_COARSE, **coarse_kw}, {**QUICK_FINE, **fine_kw}
    calls = [(sweepjax.coarse, coarse_kw)] + ([(sweepjax.fine, fine_kw)] if fine_kw else [])
    if args.worker in AUTO:  # the peer's budget; members of the peer's length, which are
        # the model's fine factor x auto's steps
        factor = sweepjax.spec.MODEL_DEFAULTS[args.model].fine_steps_factor
        steps = args.run_steps or PEER_MODEL[args.model]["run_steps"]
        coarse_kw.update(budget=f"{args.budget_s:g}s", steps=steps // factor)
        calls = [(sweepjax.auto, coarse_kw)]
    for fn, kw in calls:
        try:
            inspect.signature(fn).bind(**kw)
        except TypeError as e:
            return {"skipped": f"sweepjax.{fn.__name__}({_kw(kw)}): {e}"}

    tl = Timeline()
    stages = []

    def progress(sid, rep):
        # Only whole-validation-set numbers (known after a scheduler decision): the
        # per-block subset's best is a max over many noisy 1,000-row measurements.
        full = float(rep.best_full_val_acc)
        if full == full:
            tl.offer(full, None, stage=len(stages), step=rep.step)

    notes: list[str] = []
    begun: list[float] = []  # when each sweep's training started (auto: after its checks)
    cb = Callbacks(progress=progress, note=notes.append, begin=lambda *a: begun.append(tl.t()))
    with tempfile.TemporaryDirectory(prefix="sweepjax-ttq-") as tmp:
        store = Path(tmp) / "ttq.db"
        first = ("coarse", sweepjax.coarse)
        if args.worker in AUTO:
            first = ("auto", lambda **kw: sweepjax.auto(**kw).final)
        stages_to_run = [(*first, {"dataset": args.dataset, "model": args.model, **coarse_kw})]
        if fine_kw is not None:
            stages_to_run.append(("fine", sweepjax.fine, fine_kw))
        for kind, fn, kw in stages_to_run:
            t0 = tl.t()
            try:
                res = fn(store=store, report=False, callbacks=cb, **kw)
            except TypeError as e:
                if "unexpected keyword" not in str(e):
                    raise
                return {"skipped": f"sweepjax.{kind}({_kw(kw)}): {e}"}
            t1 = tl.t()
            w = res.winner
            # The winner's val is its best evaluation, the same number progress reports.
            # When progress already showed it, the winner's test accuracy joins that event.
            last = tl.events[-1] if tl.events else {}
            # No test accuracy: a budget that ended before any member finished leaves the
            # best one in flight as the winner.
            test = None if w.test_acc is None else float(w.test_acc)
            if (
                not tl.offer(float(w.val_acc), test, t=t1, stage=len(stages))
                and last.get("val") == w.val_acc
                and last.get("test") is None
            ):
                last["test"] = test
            stages.append(
                {
                    "stage": kind,
                    "kwargs": {k: v for k, v in kw.items() if k != "dataset"},
                    "start_s": t0,
                    "train_start_s": begun[-1] if begun else None,
                    "end_s": t1,
                    "wall_s": t1 - t0,
                    "compile_s": res.timing.compile_s,
                    "train_s": res.timing.train_s,
                    "refit_s": res.timing.refit_s,
                    "members": len(res.members),
                    "progress": res.progress,
                    "in_flight": res.in_flight,
                    "steps": res.config.train.steps,
                    "winner": w.as_dict(),
                }
            )
    best = max(stages, key=lambda s: s["winner"]["val_acc"])["winner"]
    return {
        "events": tl.events,
        "stages": stages,
        # fine's winner retrained on train + validation (issue 10's refit): the model the
        # default flow hands over; no validation accuracy is left to measure it on
        "final_refit_test": stages[-1]["winner"].get("refit_test_acc"),
        "notes": notes,
        "final_val": best["val_acc"],
        "final_test": best["test_acc"],
        "note": "val: the best member's best evaluation (sweepjax's winner); progress "
        "events carry no test accuracy, each stage's returned winner does",
    }


def _kw(kw: dict) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in kw.items())


class Trainer(NamedTuple):
    init: Callable  # (trial_id) -> params
    chunk: Callable  # (params, t0, trial_id, lr, l2, decay) -> (params, finite)
    acc: Callable  # (params, x[N, D], y[N]) -> accuracy
    objective: Callable  # (params, x, y, l2) -> loss (not jitted)


def make_trainer(
    ds, model: str, hidden: int, run_steps: int, chunk_steps: int, seed: int, momentum=None
):
    """A one-trial JAX trainer (:class:`Trainer`). ``chunk`` runs ``chunk_steps`` SGD steps
    (heavy-ball momentum ``v = momentum * v + g; p -= lr_t * v`` when ``momentum`` is
    given: optax.trace, sweepjax's ``momentum`` optimizer)
    from step ``t0`` as one compiled ``lax.scan``, reused by every trial (the
    hyperparameters and ``t0`` are traced); its minibatches are ``fold_in(data key of
    the trial, t)``, so a trial's run does not depend on how it is chunked.

    sweepjax's model and objective: kernels stored ``[out, in]``, the hidden layer
    He-normal (truncated, fan-in), the read-out N(0, 1e-3), biases zero; mean
    cross-entropy + ``l2 * sum(kernel**2) / 2``; minibatches of 256 drawn with
    replacement; ``lr_t = lr * (d + (1 - d) * (1 + cos(pi t / run_steps)) / 2)``.
    """
    import jax
    import jax.numpy as jnp

    from sweepjax.models.builtin import OUTPUT_INIT_STD

    x_tr, y_tr = jnp.asarray(ds.x_train), jnp.asarray(ds.y_train)
    n, d = ds.x_train.shape
    k = ds.num_classes
    init_key, data_key = jax.random.split(jax.random.key(seed))
    he = jax.nn.initializers.he_normal()
    out_init = jax.nn.initializers.normal(OUTPUT_INIT_STD)

    def init(trial_id):
        k1, k2 = jax.random.split(jax.random.fold_in(init_key, trial_id))
        if model == "softmax":
            return {"out": {"kernel": out_init(k1, (d, k)).T, "bias": jnp.zeros(k)}}
        return {
            "hidden": {"kernel": he(k1, (d, hidden)).T, "bias": jnp.zeros(hidden)},
            "out": {"kernel": out_init(k2, (hidden, k)).T, "bias": jnp.zeros(k)},
        }

    def logits(p, x):
        if "hidden" in p:
            x = jax.nn.relu(x @ p["hidden"]["kernel"].T + p["hidden"]["bias"][None, :])
        return x @ p["out"]["kernel"].T + p["out"]["bias"][None, :]

    def objective(p, x, y, l2):
        z = logits(p, x)
        ce = jnp.mean(jax.nn.logsumexp(z, -1) - jnp.take_along_axis(z, y[:, None], -1)[:, 0])
        pen = sum(jnp.sum(jnp.square(layer["kernel"])) for layer in p.values())
        return ce + l2 * 0.5 * pen

    def chunk(p, t0, trial_id, lr, l2, decay):
        key = jax.random.fold_in(data_key, trial_id)
        params, vel = p

        def step(carry, t):
            p, v = carry
            idx = jax.random.randint(jax.random.fold_in(key, t), (BATCH,), 0, n)
            loss, g = jax.value_and_grad(objective)(p, x_tr[idx], y_tr[idx], l2)
            if momentum is not None:
                v = jax.tree.map(lambda vi, gi: momentum * vi + gi, v, g)
                g = v
            cos = 0.5 * (1.0 + jnp.cos(jnp.pi * t.astype(jnp.float32) / run_steps))
            lr_t = lr * (decay + (1.0 - decay) * cos)
            return (jax.tree.map(lambda a, b: a - lr_t * b, p, g), v), loss

        (params, vel), losses = jax.lax.scan(step, (params, vel), t0 + jnp.arange(chunk_steps))
        p = (params, vel)
        finite = jnp.all(jnp.isfinite(losses)) & jnp.all(
            jnp.array([jnp.all(jnp.isfinite(a)) for a in jax.tree.leaves(p)])
        )
        return p, finite

    def acc(p, x, y):
        return jnp.mean(jnp.argmax(logits(p[0], x), -1) == y)

    def init_state(trial_id):  # (params, velocity)
        p = init(trial_id)
        return p, jax.tree.map(jnp.zeros_like, p)

    return Trainer(jax.jit(init_state), jax.jit(chunk), jax.jit(acc), objective)


def worker_optuna(args) -> dict:
    import jax.numpy as jnp
    import optuna

    import sweepjax

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    ds = sweepjax.load_dataset(sweepjax.DataConfig(dataset=args.dataset, seed=args.seed))
    t_data = now()
    peer = PEER_MODEL[args.model]
    init, chunk, acc, _ = make_trainer(
        ds,
        args.model,
        peer["hidden"],
        args.run_steps,
        args.chunk_steps,
        args.seed,
        0.9 if peer["optimizer"] == "momentum" else None,
    )
    x_val, y_val = jnp.asarray(ds.x_val), jnp.asarray(ds.y_val)
    x_te, y_te = jnp.asarray(ds.x_test), jnp.asarray(ds.y_test)
    reports = args.run_steps // args.chunk_steps
    tpe = args.worker == "optuna tpe+hyperband"
    if tpe:
        sampler = optuna.samplers.TPESampler(seed=args.seed)
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=1, max_resource=reports, reduction_factor=3
        )
    else:
        sampler, pruner = optuna.samplers.RandomSampler(seed=args.seed), optuna.pruners.NopPruner()
    # Named: HyperbandPruner puts trial k in the bracket crc32(f"{study_name}_{k}") picks,
    # and an unnamed study gets a random name, so the same seed ran another search in
    # every process (the same target reached at 15.1 s in one run, 28.6 s in the next).
    study = optuna.create_study(
        study_name=f"ttq-seed{args.seed}", direction="maximize", sampler=sampler, pruner=pruner
    )
    tl = Timeline()  # completed-or-pruned trials' best reported value
    any_report = Timeline()  # every reported value (an upper bound on what a user sees)
    # What Optuna itself answers: ``study.best_value`` counts completed trials only (a
    # pruned trial is never ``best_trial``), as sweepjax's winner is a finished member.
    complete = Timeline()
    counts = {"complete": 0, "pruned": 0, "nonfinite": 0, "chunks": 0}

    def objective(trial):
        lr = trial.suggest_float("lr", *SPACE["lr"], log=True)
        l2 = trial.suggest_float("l2", *SPACE["l2"], log=True)
        decay = trial.suggest_float("lr_decay", *SPACE["lr_decay"], log=True)
        hp = (jnp.float32(lr), jnp.float32(l2), jnp.float32(decay))
        p = init(trial.number)
        best, best_p = -1.0, None
        outcome = "complete"
        for r in range(1, reports + 1):
            p, finite = chunk(p, jnp.int32((r - 1) * args.chunk_steps), trial.number, *hp)
            counts["chunks"] += 1
            if not bool(finite):
                counts["nonfinite"] += 1
                outcome = "nonfinite"
                break
            a = float(acc(p, x_val, y_val))
            trial.report(a, r)
            any_report.offer(a, None)
            if a > best:
                best, best_p = a, p
            if trial.should_prune():
                outcome = "pruned"
                break
        if best_p is not None and best > tl.best:
            t = tl.t()
            t_ex = now()
            test = float(acc(best_p, x_te, y_te))  # not the user's cost: off the clock
            tl.excluded_s += now() - t_ex
            any_report.excluded_s = tl.excluded_s
            tl.offer(best, test, t=t, trial=trial.number, outcome=outcome, params=trial.params)
        complete.excluded_s = tl.excluded_s
        if outcome == "complete":
            complete.offer(best, None, trial=trial.number)
        counts["complete" if outcome == "complete" else "pruned"] += 1
        if outcome != "complete":
            raise optuna.TrialPruned()
        return best

    t_study = now()
    study.optimize(objective, timeout=args.budget_s)
    t_end = now()
    return {
        "events": tl.events,
        "events_any_report": any_report.events,
        "events_complete": complete.events,
        "final_val": tl.best,
        "final_test": tl.events[-1]["test"] if tl.events else None,
        "trials": len(study.trials),
        "counts": counts,
        "steps_trained": counts["chunks"] * args.chunk_steps,
        "data_s": t_data,
        "study_start_s": t_study,
        "study_wall_s": t_end - t_study,
        "excluded_test_eval_s": tl.excluded_s,
        "sampler": type(sampler).__name__,
        "pruner": type(pruner).__name__,
        "reports_per_trial": reports,
        "optuna": optuna.__version__,
    }


def worker_sklearn(args) -> dict:
    import numpy as np
    import sklearn
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    import sweepjax

    if args.model != "softmax":
        return {
            "skipped": "scikit-learn runs the softmax model only (MLPClassifier omitted: "
            "minutes per fit on full Fashion-MNIST with 2 cores)"
        }
    ds = sweepjax.load_dataset(sweepjax.DataConfig(dataset=args.dataset, seed=args.seed))
    t_data = now()
    n = ds.x_train.shape[0]
    tl = Timeline()
    fits = []
    # One estimator along the regularization path, strongest first, each fit starting
    # from the previous solution (scikit-learn's documented warm_start): the way to run
    # a C grid quickly; a cold start per C needs several times the iterations.
    clf = LogisticRegression(solver="lbfgs", max_iter=args.sklearn_max_iter, warm_start=True)
    for lam in SKLEARN_LAMBDAS:
        t1 = now()
        clf.set_params(C=1.0 / (lam * n))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            clf.fit(ds.x_train, ds.y_train)
        n_warn = sum(issubclass(w.category, ConvergenceWarning) for w in caught)
        val = float(clf.score(ds.x_val, ds.y_val))
        t_fit, t_ex = tl.t(), now()
        fit_s = t_ex - t1
        test = float(clf.score(ds.x_test, ds.y_test))  # off the clock, like Optuna's
        tl.excluded_s += now() - t_ex
        tl.offer(val, test, t=t_fit, **{"lambda": lam})
        it = int(np.max(clf.n_iter_))
        fits.append(
            {
                "lambda": lam,
                "C": 1.0 / (lam * n),
                "fit_s": fit_s,
                "n_iter": it,
                "hit_max_iter": it >= args.sklearn_max_iter,
                "convergence_warnings": n_warn,
                "val_acc": val,
                "test_acc": test,
            }
        )
    best = max(fits, key=lambda f: f["val_acc"])
    return {
        "events": tl.events,
        "final_val": best["val_acc"],
        "final_test": best["test_acc"],
        "fits": fits,
        "data_s": t_data,
        "max_iter": args.sklearn_max_iter,
        "fits_at_max_iter": sum(f["hit_max_iter"] for f in fits),
        "convergence_warnings": sum(f["convergence_warnings"] for f in fits),
        "excluded_test_eval_s": tl.excluded_s,
        "sklearn": sklearn.__version__,
        "blas_threads": _blas_threads(),
    }


def _blas_threads() -> list | None:
    """The BLAS pools lbfgs ran on (they spin-wait badly on a loaded 2-core machine)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [(p.get("internal_api"), p.get("num_threads")) for p in threadpool_info()]


def worker(args) -> None:
    if args.worker in FLOWS:
        out = worker_sweepjax(args)
    elif args.worker.startswith("optuna"):
        out = worker_optuna(args)
    elif args.worker == "sklearn":
        out = worker_sklearn(args)
    else:
        raise SystemExit(f"unknown worker {args.worker!r}")
    out["wall_s"] = now()
    out["pid"] = os.getpid()
    text = json.dumps(out)
    if args.result:
        Path(args.result).write_text(text)
    print(text)


# --------------------------------------------------------------------------- the parent
def run_worker(name: str, model: str, args, progress=print) -> dict:
    with tempfile.TemporaryDirectory(prefix="ttq-") as tmp:
        result = Path(tmp) / "result.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", name]
        cmd += ["--model", model, "--dataset", args.dataset, "--result", str(result)]
        cmd += ["--budget-s", str(args.budget_s), "--seed", str(args.seed)]
        run_steps = args.run_steps or PEER_MODEL[model]["run_steps"]
        cmd += ["--run-steps", str(run_steps), "--chunk-steps", str(args.chunk_steps)]
        cmd += ["--sklearn-max-iter", str(args.sklearn_max_iter)]
        cmd += ["--quick"] if args.quick else []
        env = dict(os.environ)
        if name in WARM:  # a first, untimed run fills a fresh compilation cache
            env["SWEEPJAX_COMPILE_CACHE"] = str(Path(tmp) / "xla")
            subprocess.run(cmd, capture_output=True, text=True, env=env)
            result.unlink(missing_ok=True)
        t0 = time.perf_counter()
        out = subprocess.run(cmd, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if out.returncode != 0 or not result.exists():
            tail = (out.stderr.strip().splitlines() or ["?"])[-1]
            progress(f"[{model}] {name}: failed: {tail}")
            return {
                "approach": name,
                "error": tail,
                "stderr_tail": out.stderr[-3000:],
                "subprocess_wall_s": wall,
            }
        row = {"approach": name, **json.loads(result.read_text()), "subprocess_wall_s": wall}
    if "skipped" in row:
        progress(f"[{model}] {name}: skipped: {row['skipped']}")
    else:
        progress(
            f"[{model}] {name}: best val {row['final_val']:.4f} (test "
            f"{_fmt(row['final_test'])}) after {row['wall_s']:.1f}s, {len(row['events'])} events"
        )
    return row


def _fmt(x, spec=".4f") -> str:
    return "-" if x is None else format(x, spec)


def time_to(events: list[dict], target: float) -> float | None:
    """Seconds until the best-so-far validation accuracy first reaches ``target``."""
    return next((e["t"] for e in events if e["val"] >= target - 1e-12), None)


def summarize(rows: list[dict], targets: list[float]) -> dict:
    ok = {r["approach"]: r for r in rows if "events" in r}
    tpe = ok.get("optuna tpe+hyperband")
    tgt = list(targets)
    if tpe and tpe["events"]:
        tgt.append(tpe["final_val"])
    for r in ok.values():
        r["time_to_target"] = {f"{t:.4f}": time_to(r["events"], t) for t in tgt}
    ratio = None
    sj = ok.get("sweepjax default")
    if tpe and tpe["events"] and sj:
        t_tpe = time_to(tpe["events"], tpe["final_val"])
        t_sj = time_to(sj["events"], tpe["final_val"])
        ratio = {
            "target_val": tpe["final_val"],
            "optuna_tpe_hb_s": t_tpe,
            "sweepjax_default_s": t_sj,
            "ratio": t_tpe / t_sj if t_sj else None,
            "goal": 5.0,
            "met": bool(t_sj and t_tpe / t_sj >= 5.0),
        }
    for r in ok.values():
        r["best_at"] = {str(t): best_at(r["events"], t) for t in CHECKPOINTS_S}
    return {"targets": tgt, "ratio_tpe_hb_vs_sweepjax_default": ratio}


def best_at(events: list[dict], t: float) -> float | None:
    """The best-so-far validation accuracy ``t`` seconds after the process started."""
    vals = [e["val"] for e in events if e["t"] <= t]
    return max(vals) if vals else None


def remember_width(model: str, args, progress=print) -> None:
    """An untimed 5-s anytime search first, so this machine's width table for ``model``
    is remembered (as after a user's first ``--budget`` run) whichever approach runs
    first: otherwise the first anytime flow alone pays the width probe (4.3-4.6 s here)."""
    short = argparse.Namespace(**{**vars(args), "budget_s": 5.0})
    run_worker("sweepjax asha", model, short, lambda msg: progress(f"(width table) {msg}"))


def bench(args, progress=print) -> dict:
    models = ["softmax", "mlp"] if args.model == "both" else [args.model]
    approaches = [*args.flows, *args.peers]
    out = {}
    for model in models:
        if ANYTIME.union(AUTO).intersection(approaches):
            remember_width(model, args, progress)
        rows = [run_worker(name, model, args, progress) for name in approaches]
        targets = args.targets or (QUICK_TARGETS if args.quick else TARGETS)[model]
        out[model] = {"rows": rows, **summarize(rows, targets)}
    return out


# --------------------------------------------------------------------------- outputs
def plot(res: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(res["models"])
    fig, axes = plt.subplots(1, len(models), figsize=(7 * len(models), 4.8), squeeze=False)
    # one colour per approach across the panels
    names = list(dict.fromkeys(r["approach"] for m in res["models"].values() for r in m["rows"]))
    for ax, model in zip(axes[0], models, strict=True):
        m = res["models"][model]
        for r in m["rows"]:
            ev = r.get("events") or []
            if not ev:
                continue
            ts = [e["t"] for e in ev] + [r["wall_s"]]
            vs = [e["val"] for e in ev] + [ev[-1]["val"]]
            c = f"C{names.index(r['approach'])}"
            ax.step(ts, vs, where="post", color=c, label=r["approach"])
            ax.plot(ts[:-1], vs[:-1], ".", color=c, ms=4)
        for t in m["targets"]:
            ax.axhline(t, color="gray", lw=0.6, ls="--")
            ax.annotate(f"{t:.4g}", (1.0, t), xycoords=("axes fraction", "data"), fontsize=7)
        ax.set_xscale("log")
        lo = min(m["targets"]) - 0.05
        ax.set_ylim(lo, max(m["targets"]) + 0.02)
        ax.set_xlabel("wall time since the process started, s (log)")
        ax.set_ylabel("best-so-far validation accuracy")
        ax.set_title(f"{model}, {res['settings']['dataset']}", fontsize=10)
        ax.legend(fontsize=8, loc="lower right")
    mach = res["machine"]
    fig.suptitle(f"time to quality: {mach['cpu']}, {mach['backend']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def markdown(res: dict) -> str:
    import common

    st = res["settings"]
    lines = [f"# Time to quality ({res['machine']['backend']})", ""]
    for model, m in res["models"].items():
        tg = m["targets"]
        head = ["approach", "best val", "its test", "refit test", "total s"] + [
            f"s to val {float(t):.4f}" for t in tg
        ]
        rows = []
        for r in m["rows"]:
            if "events" not in r:
                why = "skipped" if "skipped" in r else "failed"
                rows.append([r["approach"], why] + ["-"] * (len(head) - 2))
                continue
            tt = r["time_to_target"]
            rows.append(
                [
                    r["approach"],
                    _fmt(r["final_val"]),
                    _fmt(r["final_test"]),
                    _fmt(r.get("final_refit_test")),
                    f"{r['wall_s']:.1f}",
                ]
                + [_fmt(tt[f"{t:.4f}"], ".1f") if tt[f"{t:.4f}"] else "not reached" for t in tg]
            )
        lines += [f"## {model}", "", common.md_table(head, rows), ""]
        at_head = ["approach"] + [f"best val at {t} s" for t in CHECKPOINTS_S]
        at_rows = [
            [r["approach"]] + [_fmt(r["best_at"].get(str(t))) for t in CHECKPOINTS_S]
            for r in m["rows"]
            if "best_at" in r
        ]
        if at_rows:
            lines += [
                "Best-so-far validation accuracy at each time since the process started "
                "('-': nothing yet):",
                "",
                common.md_table(at_head, at_rows),
                "",
            ]
        rat = m["ratio_tpe_hb_vs_sweepjax_default"]
        if rat:
            if rat["ratio"] is None:
                sj = next(r for r in m["rows"] if r["approach"] == "sweepjax default")
                verdict = (
                    f"never reached it (its best: {max(e['val'] for e in sj['events']):.4f}): "
                    "**missed**"
                )
            else:
                verdict = (
                    f"**{rat['ratio']:.1f}x** (goal >= {rat['goal']:g}x: "
                    f"{'met' if rat['met'] else 'missed'})"
                )
            lines += [
                f"Optuna TPE+Hyperband reached its own final best ({rat['target_val']:.4f}) "
                f"after {_fmt(rat['optuna_tpe_hb_s'], '.1f')} s; sweepjax default "
                + (
                    f"reached it after {rat['sweepjax_default_s']:.1f} s: {verdict}."
                    if rat["sweepjax_default_s"] is not None
                    else f"{verdict}."
                ),
                "",
            ]
        for r in m["rows"]:
            lines += _details(r)
        lines.append("")
    lines += [
        "## How it was measured",
        "",
        f"Machine: {common.machine_line(res['machine'])}.",
        "",
        "Reproduce: "
        + "; ".join(
            f"{name}: `{m.get('command', res['command'])}`" for name, m in res["models"].items()
        ),
        "",
        f"Data: {st['dataset']} through `sweepjax.load_dataset` (split seed "
        f"{st.get('seed', 0)}, training-mean centred and scaled) in every worker. Each "
        "approach runs in a fresh subprocess; its clock starts at the top of the script, "
        "before imports, so imports, data loading and compiling are on everyone's "
        "timeline. 'best val' is the best-so-far validation accuracy on the full "
        "validation split; 'its test' the test accuracy of that model; 'refit test' "
        "(sweepjax) that of fine's winner retrained on train + validation, the model the "
        "default flow ends with (its time is in 'total s'). Test accuracies computed only"
        " for this table (Optuna, scikit-learn) are taken off the clock. Validation "
        "accuracies within about one SE (0.0046 on 6,000 images) are not distinguishable,"
        " and a best-so-far maximum over many evaluated trials is biased upward by the "
        "number of looks.",
        "",
        f"- sweepjax: `coarse(dataset, model, **coarse_kw)` then `fine(**fine_kw)` with a "
        f"temporary store and `report=False`; variants {st['flows']}. Events: after every "
        "chunk (progress callback, no test accuracy) and when each call returns (its "
        "winner: val = the best member's best evaluation, with its test accuracy).",
        f"- Optuna: a jitted one-trial JAX trainer (sweepjax's model, initialisation and "
        f"objective; softmax: SGD; MLP: hidden 256, momentum 0.9 as sweepjax's MLP default; "
        f"batch {BATCH} with replacement; lr cosine from lr to lr x lr_decay "
        f"over {st['run_steps']} steps); {st['chunk_steps']}-step chunks, one compiled "
        "`lax.scan` shared by all trials, the full-validation accuracy reported after each; "
        f"lr in {SPACE['lr']}, lambda in {SPACE['l2']}, lr_decay in {SPACE['lr_decay']}, all "
        f"log-uniform; `study.optimize(timeout={st['budget_s']:g})` (trials started "
        "before the timeout finish). A trial's value is its best reported accuracy "
        "(a best-checkpoint rule, as sweepjax's winner); the timeline is updated when a "
        "completed or pruned trial beats the best so far (`events_any_report` in the JSON "
        "has the upper bound over every report; `events_complete` what Optuna itself "
        "answers, `study.best_value`, over completed trials only). A non-finite loss "
        "prunes the trial. "
        "TPE+Hyperband: `TPESampler(seed)`, `HyperbandPruner(min_resource=1, "
        "max_resource=reports per trial, reduction_factor=3)`; random: `RandomSampler(seed)`, "
        "no pruner; the study named `ttq-seed<seed>` (its name decides Hyperband's brackets: "
        "a run is reproducible only when it is fixed).",
        "- scikit-learn: `LogisticRegression(solver='lbfgs', C=1/(lambda n), warm_start=True)` "
        "(one estimator along the path, each fit starting from the previous) for lambda = "
        "1, 0.1, ..., 1e-6 in that order; sklearn minimises `||W||^2/2 + C sum(loss)`, which "
        "is `n C` times `mean(loss) + lambda ||W||^2/2` (sweepjax's objective; intercepts "
        "unpenalised in both). Softmax only (MLPClassifier omitted: minutes per fit here).",
    ]
    return "\n".join(lines) + "\n"


def _details(r: dict) -> list[str]:
    name = r["approach"]
    if "skipped" in r or "error" in r:
        return [f"- {name}: " + (f"skipped: {r['skipped']}" if "skipped" in r else r["error"])]
    if "stages" in r:
        return [
            f"- {name}: "
            + "; ".join(
                f"{s['stage']} {s['members']} x {s['steps']} steps {s['start_s']:.1f}-"
                f"{s['end_s']:.1f} s ("
                + (
                    f"checks and finder until {s['train_start_s']:.1f} s, "
                    if s["stage"] == "auto" and s.get("train_start_s")
                    else ""
                )
                + f"compile {s['compile_s']:.1f} s, train "
                f"{s['train_s']:.1f} s, other {s['wall_s'] - s['compile_s'] - s['train_s']:.1f} s)"
                for s in r["stages"]
            )
        ]
    if "counts" in r:
        c = r["counts"]
        return [
            f"- {name}: {r['trials']} trials ({c['complete']} complete, {c['pruned']} "
            f"pruned, {c['nonfinite']} of them non-finite), {r['steps_trained']:,} steps; "
            f"data ready at {r['data_s']:.1f} s, study {r['study_start_s']:.1f}-"
            f"{r['study_start_s'] + r['study_wall_s']:.1f} s; test evaluations off the "
            f"clock {r['excluded_test_eval_s']:.2f} s."
        ]
    if "fits" in r:
        return [
            f"- {name} {r['sklearn']} (BLAS threads {r.get('blas_threads')}): max_iter "
            f"{r['max_iter']}, {r['fits_at_max_iter']} of "
            f"{len(r['fits'])} fits hit it, {r['convergence_warnings']} ConvergenceWarnings; "
            "per fit (lambda: s, iterations, val): "
            + ", ".join(
                f"{f['lambda']:g}: {f['fit_s']:.1f} s, {f['n_iter']}, {f['val_acc']:.4f}"
                for f in r["fits"]
            )
        ]
    return []


# --------------------------------------------------------------------------- main
def parse(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=("softmax", "mlp", "both"), default="both")
    ap.add_argument(
        "--flows",
        default=",".join(FLOWS),
        help="comma-separated sweepjax variants (FLOWS keys, 'sweepjax ' optional), or none",
    )
    ap.add_argument("--peers", default=",".join(PEERS), help=f"comma-separated of {PEERS}, or none")
    ap.add_argument("--budget-s", type=float, default=None, help="Optuna's timeout (120)")
    ap.add_argument("--seed", type=int, default=0, help="samplers and the Optuna trainer")
    ap.add_argument("--sklearn-max-iter", type=int, default=None, help="lbfgs cap (1000)")
    ap.add_argument("--run-steps", type=int, default=None, help=f"Optuna trial ({RUN_STEPS})")
    ap.add_argument("--chunk-steps", type=int, default=None, help=f"per report ({CHUNK_STEPS})")
    ap.add_argument("--targets", type=float, nargs="+", default=None)
    ap.add_argument("--quick", action="store_true", help="mnist-sample, tiny budgets")
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--add",
        action="store_true",
        help="keep the other approaches' rows of the model from the results already there",
    )
    ap.add_argument("--dataset", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--result", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    q = args.quick
    args.dataset = args.dataset or ("mnist-sample" if q else "fashion-mnist")
    args.budget_s = args.budget_s if args.budget_s is not None else (10.0 if q else 120.0)
    args.sklearn_max_iter = args.sklearn_max_iter or (200 if q else 1000)
    # None: each model's PEER_MODEL run (a worker always receives it explicitly)
    args.run_steps = args.run_steps or (240 if q else None)
    args.chunk_steps = args.chunk_steps or (24 if q else CHUNK_STEPS)

    def names(s: str, known, prefix=""):
        out = []
        for x in filter(None, (v.strip() for v in s.split(","))):
            if x == "none":
                continue
            x = x if x in known else prefix + x
            if x not in known:
                ap.error(f"unknown approach {x!r}; choose from {', '.join(known)}")
            out.append(x)
        return out

    if args.worker is None:
        args.flows = names(args.flows, list(FLOWS), "sweepjax ")
        args.peers = names(args.peers, PEERS)
    return args


def main(argv=None) -> dict | None:
    args = parse(argv)
    if args.worker:
        worker(args)
        return None
    import common
    import jax

    backend = jax.default_backend()
    res = {
        "machine": common.machine(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "settings": {
            "dataset": args.dataset,
            "flows": {f: FLOWS[f] for f in args.flows},
            "quick_sweep_kwargs": {"coarse": QUICK_COARSE, "fine": QUICK_FINE}
            if args.quick
            else None,
            "peers": args.peers,
            "budget_s": args.budget_s,
            "seed": args.seed,
            "run_steps": args.run_steps
            or {m: PEER_MODEL[m]["run_steps"] for m in ("softmax", "mlp")},
            "peer_model": PEER_MODEL,
            "chunk_steps": args.chunk_steps,
            "batch_size": BATCH,
            "space": SPACE,
            "sklearn_lambdas": SKLEARN_LAMBDAS,
            "sklearn_max_iter": args.sklearn_max_iter,
            "event": "{t: s since the worker started (before imports), val: best-so-far "
            "full-validation accuracy, test: that model's test accuracy or null}",
        },
        "models": bench(args),
    }
    for m in res["models"].values():  # each model's section says how it was made
        m["command"], m["machine"] = res["command"], res["machine"]
    out = args.out or common.RESULTS
    stem = f"time-to-quality-{backend}" + ("-quick" if args.quick else "")
    old = out / f"{stem}.json"
    if old.exists():  # keep the other model's section from an earlier run (--model X)
        try:
            prev = json.loads(old.read_text())
            for name, m in prev.get("models", {}).items():
                if name not in res["models"]:
                    m.setdefault("command", prev.get("command"))
                    m.setdefault("machine", prev.get("machine"))
                    res["models"][name] = m
                elif args.add:  # this run's rows beside the earlier run's other ones
                    ran = {r["approach"] for r in res["models"][name]["rows"]}
                    kept = [r for r in m["rows"] if r["approach"] not in ran]
                    res["models"][name]["rows"][:0] = kept
                    res["models"][name]["command"] += f" (added to: {m.get('command')})"
            # The settings name every variant and peer whose rows the file keeps.
            ps, rs = prev.get("settings", {}), res["settings"]
            present = {r["approach"] for m in res["models"].values() for r in m["rows"]}
            flows = {**ps.get("flows", {}), **rs["flows"]}
            rs["flows"] = {k: v for k, v in flows.items() if k in present}
            peers = dict.fromkeys([*ps.get("peers", []), *rs["peers"]])
            rs["peers"] = [p for p in peers if p in present]
        except (OSError, ValueError):
            pass
    common.write_json(out / f"{stem}.json", res)
    (out / f"{stem}.md").write_text(markdown(res))
    plot(res, out / f"{stem}.png")
    print(f"wrote {out / stem}.{{json,md,png}}")
    return res


if __name__ == "__main__":
    main()
