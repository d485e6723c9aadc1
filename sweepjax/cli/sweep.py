"""``sweepjax coarse`` and ``sweepjax fine``: parse flags (and ``--config FILE.toml``),
run :func:`sweepjax.sweep.coarse` / :func:`sweepjax.sweep.fine`, print the results."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport has the same API
    import tomli as tomllib

from sweepjax import distributed, search, verdict
from sweepjax import sweep as flows
from sweepjax.cli.inspect import _one_line_errors, render_result, to_json_text
from sweepjax.cli.progress import Progress
from sweepjax.config import DEFAULT_L2, DEFAULT_LR, DROPOUT_MAX, MOMENTUM_MAX
from sweepjax.errors import AllDivergedError, ConfigError
from sweepjax.store import default_path

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

# Flag keys (argparse dests) a TOML file may set, per command.
COMMON_KEYS = (
    "dataset",
    "data_dir",
    "model",
    "hidden",
    "optimizer",
    "trials",
    "steps",
    "batch_size",
    "lr",
    "l2",
    "lr_decay",
    "dropout",
    "init_scale",
    "momentum",
    "grid",
    "seed",
    "store",
    "name",
    "format",
    "no_report",
    "resume",
    "eval_every",
    "chunk_steps",
    "band",
    "devices",
    "schedule",
    "eta",
    "rungs",
    "pbt_interval",
    "replicas",
    "folds",
)
FINE_KEYS = ("from_", "top", "margin", "sampler", "no_refit")
# Flag dest -> keyword of the flow function.
RENAME = {"from_": "parent", "top": "top_k"}
CLI_ONLY = (
    "store",
    "format",
    "no_report",
    "config",
    "resume",
    "name",
    "func",
    "command",
    "coordinator",
    "num_processes",
    "process_id",
    "distributed",
)


def _add_common(p: argparse.ArgumentParser, fine: bool) -> None:
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
        "directory is importable; see sweepjax.custom) "
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

    g = p.add_argument_group("budget: how the steps are spent (sweepjax.schedule)")
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


def register(sub) -> None:
    p = _one_line_errors(
        sub.add_parser(
            "coarse",
            help="random log-space search over a wide box",
            description="Coarse search: sample --trials members log-uniformly over the --lr x "
            "--l2 box (and over every other axis given as LO HI: --lr-decay, --hidden, "
            "--dropout, --init-scale, --momentum), train them all at once for --steps in one "
            "compiled program, print them sorted by best validation accuracy, flag winners on "
            "the edge of the box, store everything.",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    _add_common(p, fine=False)
    p.set_defaults(func=run, kind="coarse")

    p = _one_line_errors(
        sub.add_parser(
            "fine",
            help="refine around the best region of a previous sweep, train longer",
            description="Fine search around a parent sweep (default: the newest coarse one). "
            "The new box, per axis, is the span of the parent's --top best members widened "
            f"by --margin (default {verdict.DEFAULT_MARGIN:g}) of the parent's log-width and "
            "clipped to the parent's box; where the parent's winner sat in an edge's band the "
            "box extends past that edge instead. It trains "
            f"{flows.FINE_STEPS_FACTOR}x the parent's steps unless --steps is given and reuses "
            "the parent's data, model and optimizer unless flags override. --from a fine "
            "sweep chains rounds.",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
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
    _add_common(p, fine=True)
    p.set_defaults(func=run, kind="fine")


def _read_toml(path: str, kind: str) -> dict:
    p = Path(path)
    try:
        with p.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found; check the --config path") from None
    except OSError as e:
        raise ConfigError(f"cannot read config file {path} ({e.strerror})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file {path} is not valid TOML ({e})") from None
    allowed = COMMON_KEYS + (FINE_KEYS if kind == "fine" else ())
    out = {}
    for key, value in data.items():
        k = key.replace("-", "_")
        k = "from_" if k == "from" else k
        if k == "report":
            k, value = "no_report", not value
        if k not in allowed:
            names = ", ".join(sorted(a.rstrip("_") for a in allowed))
            raise ConfigError(f"unknown key {key!r} in {path}; known keys: {names}")
        out[k] = value
    return out


def resolve(args: argparse.Namespace) -> dict:
    """Flags over TOML over defaults -> the settings dict (flag dest names)."""
    settings = _read_toml(args.config, args.kind) if args.config else {}
    for k, v in vars(args).items():
        if v is not None and k not in ("config", "func", "command", "kind"):
            settings[k] = v
    return settings


@contextmanager
def _stop_on_sigint(progress: Progress):
    """First Ctrl-C: finish the current chunk, checkpoint, stop. Second: abort now."""
    state = {"stop": False}

    def handler(signum, frame):
        if state["stop"]:
            raise KeyboardInterrupt
        state["stop"] = True
        progress.close()
        print(
            "sweepjax: stopping after this chunk (Ctrl-C again to abort now)",
            file=sys.stderr,
            flush=True,
        )

    try:
        old = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread (e.g. embedded): no handler, Ctrl-C aborts
        old = None
    try:
        yield lambda: state["stop"]
    finally:
        if old is not None:
            signal.signal(signal.SIGINT, old)


def run(args: argparse.Namespace) -> int:
    s = resolve(args)
    fmt = s.get("format", "text")
    if fmt not in ("text", "json"):
        raise ConfigError(f"format must be text or json, got {fmt!r}")
    store = s.get("store") or default_path()
    kwargs = {RENAME.get(k, k): v for k, v in s.items() if k not in CLI_ONLY}
    if "no_refit" in kwargs:
        kwargs["refit"] = not kwargs.pop("no_refit")
    for k in ("lr", "l2"):
        if k in kwargs:
            kwargs[k] = _box(k, kwargs[k], allow_auto=(k == "lr" and args.kind == "coarse"))
    if "lr_decay" in kwargs:
        v = kwargs["lr_decay"]
        v = [v] if isinstance(v, str) else v
        if args.kind == "fine" and len(v) == 1 and str(v[0]).lower() == "off":
            kwargs["lr_decay"] = "off"
        else:
            kwargs["lr_decay"] = _box("lr-decay", v, allow_auto=False)
    for k in AXIS_ARGS:
        if k in kwargs:
            kwargs[k] = _value_or_box(k, kwargs[k])
    _join_processes(s)
    progress = Progress(sys.stderr, enabled=fmt != "json")

    def note(msg: str) -> None:
        progress.close()
        print(msg, file=sys.stderr, flush=True)

    flow = flows.coarse if args.kind == "coarse" else flows.fine
    with _stop_on_sigint(progress) as stop:
        cb = flows.Callbacks(note=note, progress=progress, stop=stop, begin=progress.begin)
        try:
            result = flow(
                store=store,
                name=s.get("name"),
                report=not s.get("no_report"),
                resume=bool(s.get("resume")),
                callbacks=cb,
                **kwargs,
            )
            code = 0
        except flows.SweepInterrupted as e:
            progress.close()
            print(f"sweepjax: {e}", file=sys.stderr)
            print(
                f"sweepjax: to continue: python -m sweepjax {e.kind} <same flags> --resume"
                f"  (or add --name {e.sweep_id} --resume)",
                file=sys.stderr,
            )
            return 130
        except AllDivergedError as e:
            progress.close()
            result, code = getattr(e, "result", None), e.exit_code
            if result is None:
                raise
            _print(result, fmt, store)
            print(f"sweepjax: error: {e}", file=sys.stderr)
            return code
        finally:
            progress.close()
    _print(result, fmt, store)
    return code


def _box(name: str, value, allow_auto: bool):
    """``--lr LO HI`` / ``--lr auto`` (flags give strings, TOML numbers or a string)."""
    if isinstance(value, str):
        value = [value]
    if allow_auto and len(value) == 1 and str(value[0]).lower() == "auto":
        return "auto"
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError):
        hint = " or 'auto'" if allow_auto else ""
        raise ConfigError(
            f"--{name} takes two numbers LO HI{hint}, got {' '.join(map(str, value))!r}; "
            f"e.g. --{name} 1e-4 1"
        ) from None
    return lo, hi


AXIS_ARGS = ("hidden", "dropout", "init_scale", "momentum")
EXAMPLES = {"hidden": "8 64", "dropout": "0 0.5", "init_scale": "0.5 2", "momentum": "0.5 0.99"}


def _value_or_box(name: str, value):
    """``--dropout P`` (fixed) or ``--dropout LO HI`` (searched): a number or a pair of
    numbers (flags give strings; TOML a number or a list)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    f = "--" + name.replace("_", "-")
    try:
        nums = [float(v) for v in values]
    except (TypeError, ValueError):
        nums = []
    if len(nums) not in (1, 2):
        raise ConfigError(
            f"{f} takes one number (fixed) or two LO HI (searched), got "
            f"{' '.join(map(str, values))!r}; e.g. {f} {EXAMPLES[name]}"
        )
    return nums[0] if len(nums) == 1 else (nums[0], nums[1])


def _join_processes(s: dict) -> None:
    """Join a multi-process run before any JAX work, if asked to."""
    multi = [s.get(k) for k in ("coordinator", "num_processes", "process_id")]
    if any(v is not None for v in multi):
        if any(v is None for v in multi):
            raise ConfigError(
                "a multi-process run needs all of --coordinator HOST:PORT, "
                "--num-processes N and --process-id I (or --distributed under a launcher)"
            )
        distributed.initialize(*multi)
    elif s.get("distributed"):
        distributed.initialize()
    else:
        return
    # The collectives library prints connection lines on fd 1; keep stdout for our JSON
    # by giving Python a private copy of it and pointing fd 1 at stderr.
    sys.stdout.flush()
    sys.stdout = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)


def _print(result, fmt: str, store: str) -> None:
    if fmt == "json":
        print(to_json_text(result))
    else:
        print(render_result(result, store))
