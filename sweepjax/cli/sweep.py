"""``sweepjax coarse`` and ``sweepjax fine``: register the two commands, plan and run the
spec the flags give (Ctrl-C stops at a chunk boundary; multi-process runs are joined
first), print the results. The flags are generated from the spec's option table
(:mod:`sweepjax.cli.options`)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from contextlib import contextmanager, suppress

from sweepjax.cli.formats import to_json_text
from sweepjax.cli.inspect import one_line_errors
from sweepjax.cli.options import EPILOG, add_options, cli_message, resolve
from sweepjax.cli.progress import Progress
from sweepjax.cli.render import render_result
from sweepjax.config import DEFAULT_MARGIN
from sweepjax.errors import AllDivergedError, ConfigError
from sweepjax.spec import MODEL_DEFAULTS


def register(sub) -> None:
    p = one_line_errors(
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
    add_options(p, "coarse")
    p.set_defaults(func=run, kind="coarse")

    p = one_line_errors(
        sub.add_parser(
            "fine",
            help="refine around the best region of a previous sweep, train longer",
            description="Fine search around a parent sweep (default: the newest coarse one). "
            "The new box comes from the parent's response-surface model: per axis, the "
            "members tied with the winner, the modelled optimum and its flat range, widened "
            f"by --margin (default {DEFAULT_MARGIN:g}) of the parent's width; past an edge "
            "the modelled score still rises toward, the box extends (never past a cap); with "
            "too few members for a model, the span of the --top best. It trains half the "
            "parent's members (at least 64, or all of a smaller parent's) for "
            f"{MODEL_DEFAULTS['softmax'].fine_steps_factor}x the parent's steps for the "
            f"softmax, {MODEL_DEFAULTS['mlp'].fine_steps_factor}x for the MLP and your own "
            "models, unless --steps is given, searches the learning-rate decay too, and "
            "takes every other setting from the parent unless a flag overrides it. --from "
            "a fine sweep chains rounds.",
            epilog=EPILOG,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
    )
    add_options(p, "fine")
    p.set_defaults(func=run, kind="fine")


@contextmanager
def _stop_on_sigint(progress: Progress):
    """First Ctrl-C: finish the current chunk, checkpoint, stop. Second: abort now.

    SIGTERM (what Slurm and Kubernetes send before they preempt a job) stops the same
    way, quietly: the sweep's one line comes when its checkpoint is stored, and the
    command exits 143 (128 + SIGTERM). The stop function's ``signum`` says which came."""
    state = {"stop": False}

    def stop() -> bool:
        return state["stop"]

    stop.signum = None

    def handler(signum, frame):
        if state["stop"]:
            raise KeyboardInterrupt
        state["stop"] = True
        stop.signum = signum
        progress.close()
        if signum == signal.SIGINT:
            print(
                "sweepjax: stopping after this chunk (Ctrl-C again to abort now)",
                file=sys.stderr,
                flush=True,
            )

    old = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        # not the main thread (e.g. embedded): no handler, the signal acts as it would
        with suppress(ValueError):
            old[sig] = signal.signal(sig, handler)
    try:
        yield stop
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


def run(args: argparse.Namespace) -> int:
    # Deferred to the run (like distributed below): they import jax, which --help skips.
    from sweepjax.flows import sweep as flows
    from sweepjax.store import default_path

    spec, s = resolve(args, args.kind)
    fmt = s.get("format", "text")
    if fmt not in ("text", "json"):
        raise ConfigError(f"format must be text or json, got {fmt!r}")
    store = spec.store or default_path()
    _join_processes(s)
    progress = Progress(sys.stderr, enabled=fmt != "json")

    def note(msg: str) -> None:
        progress.close()
        print(cli_message(msg), file=sys.stderr, flush=True)

    flow = flows.coarse if args.kind == "coarse" else flows.fine
    with _stop_on_sigint(progress) as stop:
        cb = flows.Callbacks(note=note, progress=progress, stop=stop, begin=progress.begin)
        try:
            result = flow(callbacks=cb, **{**spec.given(), "store": store})
            code = 0
        except flows.SweepInterrupted as e:
            progress.close()
            if stop.signum == signal.SIGTERM:  # a preempted job's log: one line
                print(
                    f"sweepjax: SIGTERM: sweep {e.sweep_id} stopped at step {e.step}/{e.total} "
                    f"(checkpoint stored); continue it with the same command plus --resume",
                    file=sys.stderr,
                )
                return 128 + signal.SIGTERM
            print(f"sweepjax: {e}", file=sys.stderr)
            print(
                f"sweepjax: to continue: python -m sweepjax {e.kind} <same flags> --resume"
                f"  (or add --name {e.sweep_id} --resume)",
                file=sys.stderr,
            )
            return 130
        except AllDivergedError as e:
            progress.close()
            result, code = e.result, e.exit_code
            if result is None:
                raise
            _print(result, fmt, store)
            print(f"sweepjax: error: {cli_message(str(e))}", file=sys.stderr)
            return code
        finally:
            progress.close()
    _print(result, fmt, store)
    return code


def _join_processes(s: dict) -> None:
    """Join a multi-process run before any JAX work, if asked to."""
    from sweepjax.engine import distributed

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
