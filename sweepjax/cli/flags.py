"""The flags of ``sweepjax coarse`` and ``sweepjax fine``: the argparse definitions, their
help texts and the shared epilog. What the parsed values mean is
:mod:`sweepjax.cli.settings`; the commands themselves are :mod:`sweepjax.cli.sweep`."""

from __future__ import annotations

import argparse

from sweepjax import search
from sweepjax.analysis import verdict
from sweepjax.config import DEFAULT_L2, DEFAULT_LR, DROPOUT_MAX, MOMENTUM_MAX
from sweepjax.flows import sweep as flows

EPILOG = """\
exit codes: 0 ok, 1 runtime failure, 2 usage / config / data / store error,
3 every member diverged (results are still stored), 130 interrupted (resume with --resume).

resume: a sweep is checkpointed in the store between chunks (throttled so checkpoints
take at most ~5% of the time). Ctrl-C stops at the next chunk boundary and checkpoints;
after Ctrl-C or a crash, rerun the SAME command plus --resume. It continues the
unfinished sweep named --name or, without --name, the newest unfinished sweep of this
kind whose settings equal the command's, and ends with exactly the results of an
uninterrupted run. Different settings, or a different device count, are refused.

--config FILE.toml takes the same keys as the flags (e.g. trials = 64, lr = [1e-3, 1.0],
batch_size = 128); flags given on the command line win."""


def add_common(p: argparse.ArgumentParser, fine: bool) -> None:
    """The flags ``coarse`` and ``fine`` share; ``fine`` says what a fine round inherits."""
    inherit = " (default: the parent's)" if fine else ""
    g = p.add_argument_group("data and model")
    g.add_argument(
        "--dataset",
        metavar="NAME",
        help="mnist | mnist-sample | fashion-mnist | npz:PATH "
        + (
            "(default: the data the parent used)"
            if fine
            else "(default: mnist; offline it falls back to the bundled mnist-sample)"
        ),
    )
    g.add_argument("--data-dir", metavar="DIR", help="directory searched first for the data")
    g.add_argument(
        "--model",
        metavar="NAME",
        help="softmax | mlp | package.module:Name, your own flax module (the working "
        "directory is importable; see sweepjax.models.custom) "
        + ("(default: the parent's)" if fine else "(default: softmax)"),
    )
    g.add_argument(
        "--hidden",
        nargs="+",
        metavar="N | LO HI",
        help="MLP hidden width: N fixes it"
        + (
            " (default: the parent's width, or its refined box when it searched one); "
            if fine
            else " (default 256); "
        )
        + "LO HI searches whole widths log-uniformly, each member masked to its own "
        "inside one network HI wide (--model mlp)",
    )
    g.add_argument(
        "--optimizer",
        choices=("sgd", "momentum", "adam"),
        help=(
            "default: the parent's"
            if fine
            else "default: sgd for softmax, momentum (0.9) for mlp and your own models"
        ),
    )

    g = p.add_argument_group("search")
    g.add_argument(
        "--trials",
        type=int,
        metavar="N",
        help=f"members trained at once (default {flows.DEFAULT_TRIALS}"
        + (", or the parent's)" if fine else ")"),
    )
    g.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help=(
            f"optimizer steps per member (default {flows.FINE_STEPS_FACTOR}x the parent's)"
            if fine
            else f"optimizer steps per member (default {flows.DEFAULT_STEPS})"
        ),
    )
    g.add_argument(
        "--batch-size",
        type=int,
        metavar="N",
        help=f"minibatch size (default {flows.DEFAULT_BATCH})" + inherit,
    )
    g.add_argument(
        "--lr",
        nargs="+",
        metavar="LO HI" if fine else "LO HI | auto",
        help=(
            "replace the refined learning-rate box"
            if fine
            else f"learning-rate box, searched in log space (default "
            f"{DEFAULT_LR.lo:g} {DEFAULT_LR.hi:g}: sweepjax centres and scales "
            "the pixels, so the lecture's 1e-7..1e-3 for raw 0-255 pixels "
            "would barely move); 'auto' takes the box from the learning-rate finder "
            "(as `sweepjax sanity` reports it)"
        ),
    )
    g.add_argument(
        "--l2",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help=(
            "replace the refined L2 box"
            if fine
            else f"L2 strength (lambda) box, log space (default {DEFAULT_L2.lo:g} "
            f"{DEFAULT_L2.hi:g})"
        ),
    )
    g.add_argument(
        "--lr-decay",
        nargs="+",
        metavar="LO HI" + (" | off" if fine else ""),
        help=(
            "box of the learning-rate multiplier reached at the end of the run (cosine "
            "from 1), log space, at most 1 (default: the "
            f"parent's refined box, or [{flows.FINE_LR_DECAY.lo:g}, {flows.FINE_LR_DECAY.hi:g}] "
            "when the parent kept the rate constant; 'off' keeps it constant)"
            if fine
            else "box of the learning-rate multiplier reached at the end of the run (cosine "
            "from 1), log space, at most 1 (default: constant rate; fine rounds search it)"
        ),
    )
    inherit_box = (
        " (default: the parent's refined box if it searched it, else the parent's value)"
        if fine
        else ""
    )
    g.add_argument(
        "--dropout",
        nargs="+",
        metavar="P | LO HI",
        help="dropout rate of the MLP's hidden units at training steps (--model mlp): P "
        f"fixes it (default 0), LO HI searches it on a linear scale, within [0, {DROPOUT_MAX:g}]"
        + inherit_box,
    )
    g.add_argument(
        "--init-scale",
        nargs="+",
        metavar="S | LO HI",
        help="multiplier of the initial weight matrices: S fixes it (default 1), LO HI "
        "searches it in log space" + inherit_box,
    )
    g.add_argument(
        "--momentum",
        nargs="+",
        metavar="B | LO HI",
        help="momentum coefficient (--optimizer momentum: the trace decay; adam: b1): B fixes "
        f"it (default 0.9), LO HI searches it on a linear scale, within [0, {MOMENTUM_MAX:g}]"
        + inherit_box,
    )
    g.add_argument(
        "--grid",
        action="store_true",
        default=None,
        help="evenly spaced grid in log space instead of random (trials rounded "
        "to a perfect square)",
    )
    g.add_argument(
        "--seed",
        type=int,
        metavar="N",
        help="root seed: same seed and flags give the same members and results",
    )
    g.add_argument(
        "--replicas",
        type=int,
        metavar="R",
        help="train R seeds (initial weights) of every sampled config in the same program; "
        "results are grouped by config (mean +/- std over replicas) and the winner is a "
        "config" + (" (default: the parent's)" if fine else " (default 1)"),
    )
    g.add_argument(
        "--folds",
        type=int,
        metavar="K",
        help="K-fold cross-validation of every config over train + validation pooled (the "
        "test set untouched): K replicas, replica r holds out fold r and is scored on it"
        + (" (default: the parent's)" if fine else ""),
    )
    g.add_argument(
        "--band",
        type=float,
        metavar="F",
        help="edge band: an edge is flagged when the modelled score still rises "
        "significantly across this outer fraction of the axis's log-width toward it "
        f"(default {verdict.DEFAULT_BAND})",
    )
    g.add_argument(
        "--eval-every",
        type=int,
        metavar="N",
        help="steps between evaluations (default: about 20 per sweep)",
    )
    g.add_argument(
        "--chunk-steps",
        type=int,
        metavar="N",
        help="at most N steps per compiled call (default: a call ends at each of the ~20 "
        "evaluations and at each scheduler decision)",
    )

    g = p.add_argument_group("budget: how the steps are spent (sweepjax.schedulers.rules)")
    kind = "fine" if fine else "coarse"
    g.add_argument(
        "--schedule",
        choices=("full", "halving", "hyperband", "pbt"),
        help=f"full: every member trains every step; halving: rungs keep the best 1/eta; "
        f"hyperband: several halving brackets in one population; pbt: the bottom 20%% copy "
        f"the top 20%% and perturb lr and lambda (default: {flows.DEFAULT_SCHEDULE[kind]})",
    )
    g.add_argument(
        "--eta", type=int, metavar="N", help="halving / hyperband keep the best 1/N (default 3)"
    )
    g.add_argument(
        "--rungs",
        type=int,
        metavar="N",
        help="halving's rungs, at steps/eta^N, steps/eta^(N-1), ... (default 3)",
    )
    g.add_argument(
        "--pbt-interval",
        type=int,
        metavar="N",
        help="steps between PBT's exploit/explore decisions (default: a tenth of the run)",
    )

    g = p.add_argument_group("devices and hosts (results do not depend on these)")
    g.add_argument(
        "--devices",
        type=int,
        metavar="N",
        help="spread the members over N local devices (default: all)",
    )
    g.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        help="multi-process run: process 0's address (every process runs the "
        "same command; process 0 writes the store)",
    )
    g.add_argument("--num-processes", type=int, metavar="N", help="multi-process run: N")
    g.add_argument("--process-id", type=int, metavar="I", help="multi-process run: 0..N-1")
    g.add_argument(
        "--distributed",
        action="store_true",
        default=None,
        help="join a multi-process run from the launcher's environment "
        "(Slurm, TPU pod, MPI) via jax.distributed.initialize()",
    )

    g = p.add_argument_group("output and store")
    g.add_argument(
        "--store", metavar="PATH", help="results store (default: $SWEEPJAX_STORE or ./sweepjax.db)"
    )
    g.add_argument("--name", metavar="ID", help="sweep id to use instead of c<n> / f<n>")
    g.add_argument(
        "--format",
        choices=("text", "json"),
        help="text table (default) or one JSON document on stdout",
    )
    g.add_argument(
        "--no-report", action="store_true", default=None, help="do not write the HTML report"
    )
    g.add_argument(
        "--resume",
        action="store_true",
        default=None,
        help="continue an interrupted sweep (see below)",
    )
    g.add_argument(
        "--config",
        metavar="FILE.toml",
        help="read settings from a TOML file (same keys as the flags)",
    )


def add_fine(p: argparse.ArgumentParser) -> None:
    """The flags only ``fine`` has: the parent and how its surface becomes the new box."""
    p.add_argument(
        "--from",
        dest="from_",
        metavar="SWEEP",
        help="parent sweep id (default: the newest finished coarse sweep)",
    )
    p.add_argument(
        "--top",
        type=int,
        metavar="K",
        help=f"members whose span defines the new box (default {search.DEFAULT_TOP_K})",
    )
    p.add_argument(
        "--margin",
        type=float,
        metavar="F",
        help=f"widening on each side, fraction of the parent's log-width "
        f"(default {verdict.DEFAULT_MARGIN:g})",
    )
    p.add_argument(
        "--sampler",
        choices=flows.SAMPLERS,
        help="how members are drawn in the new box: uniform, or from the parent's response "
        "surface: thompson (each member the best point of its own posterior surface) or ei "
        f"(expected improvement); a quarter stays uniform (default {flows.DEFAULT_SAMPLER})",
    )
    p.add_argument(
        "--no-refit",
        action="store_true",
        default=None,
        help="do not retrain the winner on train + validation (default: refit it and report "
        "its test accuracy next to the early-stopped one)",
    )
