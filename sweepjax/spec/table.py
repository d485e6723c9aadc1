"""The option table itself: one field per option of ``coarse`` / ``fine``, each with its
type, default, help and command-line form (:class:`~sweepjax.spec.opt.Opt`). What is done
with the table (creating, inheriting, storing a spec; generating flags) is in
:mod:`sweepjax.spec`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sweepjax.budget import Budget
from sweepjax.config import (
    DEFAULT_BAND,
    DEFAULT_L2,
    DEFAULT_LR,
    DEFAULT_MARGIN,
    DEFAULT_TOP_K,
    DROPOUT_MAX,
    MOMENTUM_MAX,
    SCALINGS,
    SCHEDULES,
    Range,
)
from sweepjax.spec.opt import (
    AXIS_HELP,
    DEFAULT_BATCH,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULE,
    DEFAULT_STEPS,
    DEFAULT_TRIALS,
    FINE_MIN_TRIALS,
    MODEL_DEFAULTS,
    OPTIMIZERS,
    SAMPLERS,
    opt,
)


@dataclass(frozen=True)
class Options:
    """Every option of a ``coarse`` or ``fine`` sweep (None = not given): the fields of
    :class:`sweepjax.spec.SweepSpec`."""

    command: str = "coarse"
    # data and model
    dataset: Any = opt(
        "mnist | mnist-sample | fashion-mnist | npz:PATH (default: mnist; offline it falls "
        "back to the bundled mnist-sample); from Python also a sweepjax.Dataset "
        "(Dataset.from_arrays), or pass arrays as x_train=, y_train= (x_val, y_val, "
        "x_test, y_test optional; docs/data.md)",
        flag_help="mnist | mnist-sample | fashion-mnist | npz:PATH (default: mnist; offline it "
        "falls back to the bundled mnist-sample)",
        default="mnist",
        metavar="NAME",
        group="data and model",
        fine_help="mnist | mnist-sample | fashion-mnist | npz:PATH (default: the data the "
        "parent used)",
    )
    data_dir: str | None = opt(
        "directory searched first for the data", kind="path", metavar="DIR", group="data and model"
    )
    scaling: str | None = opt(
        "how features are scaled after centring with the training mean: feature divides "
        "each by its own training std (standardisation, scikit-learn's StandardScaler), "
        "global all by one std; auto: feature for [N, D] tabular data, global for images "
        "(the one used is recorded with the results)",
        kind="choice",
        choices=SCALINGS,
        default="auto",
        group="data and model",
        fine_help="feature | global | auto (default: the scaling the parent used)",
    )
    model: Any = opt(
        "softmax | mlp | package.module:Name, your own flax module (the working directory "
        "is importable; docs/custom-models.md); from Python also a flax module or a "
        "sweepjax.Custom",
        default="softmax",
        metavar="NAME",
        group="data and model",
    )
    loss: Callable | None = opt(
        "loss(logits[B, K], labels[B]) -> [B] replacing the cross-entropy of your model or "
        "the built-in softmax or mlp (stored by its importable name)",
        kind="object",
        flag="",
        group="data and model",
        stored=False,
    )
    metric: Any = opt(
        "what members are scored, ranked and stopped by: accuracy (higher is better), mse "
        "(mean squared error of a regression on real-valued targets, lower is better) or "
        "package.module:name of a sweepjax.Metric (its direction is its own); from Python "
        "also a sweepjax.Metric (default: accuracy, mse for real-valued targets; "
        "docs/metrics.md)",
        flag_help="accuracy | mse | package.module:name (default: accuracy, mse for "
        "real-valued targets; docs/metrics.md)",
        metavar="NAME",
        group="data and model",
        fine_help="accuracy | mse | package.module:name (default: the parent's)",
    )
    hidden: int | Range | None = opt(
        "MLP hidden width: N fixes it (default 256); LO HI searches whole widths "
        "log-uniformly, each member masked to its own inside one network HI wide "
        "(`model` mlp)",
        kind="axis",
        metavar="N | LO HI",
        group="data and model",
        fine_help="MLP hidden width: N fixes it, LO HI searches it" + AXIS_HELP,
    )
    optimizer: str | None = opt(
        "sgd | momentum | adam (default: sgd for softmax, momentum (0.9) for mlp and your "
        "own models), or any optax optimizer factory: optax.adamw, pkg.mod:fn (from Python "
        "also the function), its float arguments traced per member: learning_rate the "
        "member's scheduled lr, b1 / momentum the momentum axis, any other one (weight_decay, "
        "b2, ...) your hyperparameter of that name (`hparams`; docs/hyperparameters.md)",
        kind="optimizer",
        choices=OPTIMIZERS,
        metavar="NAME",
        group="data and model",
    )
    choices: Any = opt(
        "categorical axes, values that change the compiled program: optimizer (sgd, "
        "momentum, adam), activation (relu, gelu, tanh; `model` mlp) or hidden (whole "
        "widths; `model` mlp), as NAME=V1,V2; repeatable (several: every combination). "
        "The members are spread evenly over the values, each value's trained as one "
        "population with its own program, one after another, in one sweep; from Python "
        "a dict, e.g. {'optimizer': ['sgd', 'adam']} (docs/workflow.md#categorical-axes)",
        kind="choices",
        flag="--choice",
        metavar="NAME=V1,V2",
        group="data and model",
        fine_help="categorical axes NAME=V1,V2 (default: the parent's values tied with its "
        "best, the clearly worse ones dropped)",
    )
    # search
    trials: int | None = opt(
        "members trained at once", kind="int", default=DEFAULT_TRIALS, metavar="N", inherit=False,
        fine_help=f"members (default: half the parent's, at least min({FINE_MIN_TRIALS}, its))",
    )  # fmt: skip
    steps: int | None = opt(
        "optimizer steps per member",
        kind="int",
        default=DEFAULT_STEPS,
        metavar="N",
        inherit=False,
        fine_help="optimizer steps per member (default: "
        f"{MODEL_DEFAULTS['softmax'].fine_steps_factor}x the parent's for the softmax, "
        f"{MODEL_DEFAULTS['mlp'].fine_steps_factor}x for the MLP and your own models)",
    )
    batch_size: int | None = opt("minibatch size", kind="int", default=DEFAULT_BATCH, metavar="N")
    lr: Range | str | None = opt(
        "learning-rate box, searched in log space (pixels are centred and scaled, so the "
        "lecture's 1e-7..1e-3 for raw 0-255 pixels would barely move); 'auto' takes it "
        "from the learning-rate finder (as `sweepjax sanity` reports it)",
        kind="box",
        default=DEFAULT_LR,
        inherit=False,
        fine_help="replace the refined learning-rate box",
    )
    l2: Range | None = opt(
        "L2 strength (lambda) box, log space",
        kind="box",
        default=DEFAULT_L2,
        inherit=False,
        fine_help="replace the refined L2 box",
    )
    lr_decay: Range | str | None = opt(
        "box of the learning-rate multiplier reached at the end of the run (cosine from 1), "
        "log space, at most 1 (default: constant rate; fine rounds search it)",
        kind="box",
        inherit=False,
        fine_help="box of the learning-rate multiplier reached at the end of the run (cosine "
        "from 1), log space, at most 1 (default: the parent's refined box, or [0.01, 1] when "
        "the parent kept the rate constant; 'off' keeps it constant)",
    )
    dropout: float | Range | None = opt(
        "dropout rate of the MLP's hidden units at training steps (`model` mlp): P fixes it "
        f"(default 0), LO HI searches it on a linear scale, within [0, {DROPOUT_MAX:g}]",
        kind="axis",
        metavar="P | LO HI",
    )
    init_scale: float | Range | None = opt(
        "multiplier of the initial weight matrices: S fixes it (default 1), LO HI searches "
        "it in log space",
        kind="axis",
        metavar="S | LO HI",
    )
    momentum: float | Range | None = opt(
        "momentum coefficient (`optimizer` momentum: the trace decay; adam: b1): B fixes it "
        f"(default 0.9), LO HI searches it on a linear scale, within [0, {MOMENTUM_MAX:g}]",
        kind="axis",
        metavar="B | LO HI",
    )
    hparams: tuple | None = opt(
        "your own hyperparameter, read by your loss or model (docs/hyperparameters.md): "
        "NAME=LO:HI:SCALE searches it (SCALE log or linear), NAME=VALUE fixes it; "
        "repeatable. From Python and TOML a mapping {name: (lo, hi, scale) | value}. "
        "Sampled, traced, searched, refined and reported like lr",
        flag_help="your own hyperparameter, read by your loss or model "
        "(docs/hyperparameters.md): NAME=LO:HI:SCALE searches it (SCALE log or linear), "
        "NAME=VALUE fixes it; repeatable",
        kind="hparams",
        metavar="NAME=LO:HI:SCALE",
        flag="--hparam",
        fine_help="your own hyperparameter: NAME=LO:HI:SCALE replaces its box, NAME=VALUE "
        "fixes it (default: the parent's refined box, or its fixed value); repeatable",
    )
    grid: bool | None = opt(
        "evenly spaced grid in log space instead of random (trials rounded to a perfect square)",
        kind="bool",
        default=False,
    )
    seed: int | None = opt(
        "root seed: same seed and options give the same members and results",
        kind="int",
        default=0,
        metavar="N",
    )
    replicas: int | None = opt(
        "train R seeds (initial weights) of every sampled config in the same program; "
        "results are grouped by config (mean +/- std) and the winner is a config",
        kind="int",
        default=1,
        metavar="R",
    )
    folds: int | None = opt(
        "K-fold cross-validation of every config over train + validation pooled (the test "
        "set untouched): K replicas, replica r holds out fold r and is scored on it",
        kind="int",
        metavar="K",
    )
    band: float | None = opt(
        "edge band: an edge is flagged when the modelled score still rises significantly "
        "across this outer fraction of the axis's width toward it",
        kind="float",
        default=DEFAULT_BAND,
        metavar="F",
        inherit=False,
    )
    eval_every: int | None = opt(
        "steps between evaluations (default: about 20 per sweep)",
        kind="int",
        metavar="N",
        inherit=False,
    )
    chunk_steps: int | None = opt(
        "at most N steps per compiled call (default: a call ends at each of the ~20 "
        "evaluations and at each scheduler decision)",
        kind="int",
        metavar="N",
        inherit=False,
    )
    # budget
    schedule: str | None = opt(
        "full: every member trains every step; halving: rungs keep the best 1/eta; "
        "hyperband: several halving brackets in one population; pbt: the bottom 20% copy "
        f"the top 20% and perturb lr and lambda (default: {DEFAULT_SCHEDULE['coarse']}, "
        "or full when the run is too short for a rung)",
        kind="choice",
        choices=SCHEDULES,
        group="budget: how the steps are spent",
        inherit=False,
    )
    eta: int | None = opt(
        "halving / hyperband keep the best 1/N (default 3)",
        kind="int",
        metavar="N",
        group="budget: how the steps are spent",
        inherit=False,
    )
    rungs: int | None = opt(
        "halving's and asha's rungs, at steps/eta^N, steps/eta^(N-1), ... (default 3; asha 2)",
        kind="int",
        metavar="N",
        group="budget: how the steps are spent",
        inherit=False,
    )
    pbt_interval: int | None = opt(
        "steps between PBT's exploit/explore decisions (default: a tenth of the run)",
        kind="int",
        metavar="N",
        group="budget: how the steps are spent",
        inherit=False,
    )
    budget: Budget | None = opt(
        "an anytime search: stop after this much wall time of the whole process (60s, "
        "2m) or this many member-steps (5M); the winner is the best member that "
        "finished. Implies --schedule asha (default: none: asha creates --trials members)",
        kind="budget",
        metavar="TIME|STEPS",
        group="budget: how the steps are spent",
        inherit=False,
    )
    width: int | None = opt(
        "asha's population width: members training at once, each stopped member's slot "
        "refilled at once (default: measured, the widest population whose block takes "
        "at most 2x a lone member's while each doubling buys 1.1x the member-steps/s; "
        "wider with a time budget while the first member still finishes in an eighth)",
        kind="int",
        metavar="N",
        group="budget: how the steps are spent",
        inherit=False,
    )
    brackets: int | None = opt(
        "asha as asynchronous Hyperband: N brackets, bracket b first judged at rung b (the "
        "last, at N = rungs + 1, trains its members the whole run), new members spread "
        "over them in Hyperband's proportions (default 1: plain asha)",
        kind="int",
        metavar="N",
        group="budget: how the steps are spent",
        inherit=False,
    )
    # fine only: the parent and how its surface becomes the new box
    parent: str | None = opt(
        "parent sweep id (default: the newest finished coarse sweep)",
        metavar="SWEEP",
        flag="--from",
        group="refinement",
        commands=("fine",),
        inherit=False,
    )
    top_k: int | None = opt(
        "with too few members for a model, the new box is the span of the K best",
        kind="int",
        default=DEFAULT_TOP_K,
        metavar="K",
        flag="--top",
        group="refinement",
        inherit=False,
    )
    margin: float | None = opt(
        "widening of the new box on each side, a fraction of the parent's width",
        kind="float",
        default=DEFAULT_MARGIN,
        metavar="F",
        group="refinement",
        commands=("fine",),
        inherit=False,
    )
    sampler: str | None = opt(
        "how members are drawn in the new box: uniform, or from the parent's response "
        "surface: thompson (each member the best point of its own posterior surface) or ei "
        "(expected improvement); a quarter stays uniform",
        kind="choice",
        choices=SAMPLERS,
        default=DEFAULT_SAMPLER,
        group="refinement",
        commands=("fine",),
        inherit=False,
    )
    refit: bool | None = opt(
        "retrain the winner on train + validation and report its test accuracy next to the "
        "early-stopped one; False keeps the early-stopped winner only",
        flag_help="do not retrain the winner on train + validation (default: refit it and "
        "report its test accuracy next to the early-stopped one)",
        kind="bool",
        default=True,
        flag="--no-refit",
        group="refinement",
        commands=("fine",),
        inherit=False,
    )
    # devices and the store: how and where it runs (results do not depend on these)
    devices: int | None = opt(
        "spread the members over N local devices (default: all)",
        kind="int",
        metavar="N",
        group="devices and hosts (results do not depend on these)",
        inherit=False,
        stored=False,
    )
    store: str | None = opt(
        "results store (default: $SWEEPJAX_STORE or ./sweepjax.db)",
        kind="path",
        metavar="PATH",
        group="output and store",
        inherit=False,
        stored=False,
    )
    optuna_storage: str | None = opt(
        "also write each member into a new Optuna study in this storage as its fate is "
        "known (stopped: PRUNED, diverged: FAIL, finished: COMPLETE), e.g. "
        "sqlite:///optuna.db; the study is named after the sweep (needs optuna)",
        metavar="URL",
        group="output and store",
        inherit=False,
        stored=False,
    )
    name: str | None = opt(
        "sweep id to use instead of c<n> / f<n>",
        metavar="ID",
        group="output and store",
        inherit=False,
        stored=False,
    )
    report: bool | None = opt(
        "write the self-contained HTML report next to the store when the sweep ends "
        "(sweepjax-reports/SWEEP/index.html beside sweepjax.db); False skips it (`sweepjax "
        "report SWEEP` writes it later)",
        flag_help="do not write the HTML report",
        kind="bool",
        default=True,
        flag="--no-report",
        group="output and store",
        inherit=False,
        stored=False,
    )
    resume: bool | None = opt(
        "continue an interrupted sweep from its last checkpoint instead of starting a new "
        "one: the sweep named `name`, else the newest unfinished sweep of this kind whose "
        "settings equal these; it ends with exactly the results of an uninterrupted run "
        "(different settings or device counts are refused)",
        flag_help="continue an interrupted sweep (see below)",
        kind="bool",
        default=False,
        group="output and store",
        inherit=False,
        stored=False,
    )
