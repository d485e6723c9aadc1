"""The command line: ``python -m sweepjax <command>`` (also the ``sweepjax`` script).

Each command lives in a small module of this package that exposes
``register(subparsers)``; the module adds its parser and sets ``func`` to a function
``(args) -> int``. This is the only package that parses flags and prints. The modules
without a command of their own: ``options`` (the ``coarse`` / ``fine`` flags, generated
from :mod:`sweepjax.spec`), ``reference`` (docs/cli.md from the parser), ``render`` and
``formats`` (the printed text: tables, JSON, CSV), ``progress`` (the progress line).

Exit codes: 0 ok, 1 runtime failure, 2 usage / config / data / store error,
3 every member diverged, 130 interrupted by Ctrl-C and 143 by SIGTERM (checkpointed:
continue with --resume), 141 stdout closed (a pipe's reader left).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from sweepjax.errors import SweepjaxError

# Modules that register subcommands, in the order they appear in --help.
COMMAND_MODULES = ("sweep", "auto_cmd", "inspect", "babysit", "report_cmd", "watch")


def build_parser() -> argparse.ArgumentParser:
    from sweepjax import __version__

    parser = argparse.ArgumentParser(
        prog="sweepjax",
        description="Vectorized hyperparameter sweeps: train hundreds of models at once.",
    )
    parser.add_argument("--version", action="version", version=f"sweepjax {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            mod = importlib.import_module(f"sweepjax.cli.{name}")
        except ModuleNotFoundError as e:  # a command module not written yet
            if e.name != f"sweepjax.cli.{name}":
                raise
            continue
        mod.register(sub)
    return parser


# Flags whose value may start with '-' and a digit: argparse would take "-3s" for a
# flag ("expected one argument"); attached as --budget=-3s, the value reaches its own
# check ("a time budget must be positive").
DASH_VALUE_FLAGS = ("--budget",)


def _attach_dash_values(argv: list[str]) -> list[str]:
    out, i = [], 0
    while i < len(argv):
        a = argv[i]
        nxt = argv[i + 1] if i + 1 < len(argv) else ""
        if a in DASH_VALUE_FLAGS and nxt[:1] == "-" and nxt[1:2].isdigit():
            out.append(f"{a}={nxt}")
            i += 2
        else:
            out.append(a)
            i += 1
    return out


def _closed_pipe() -> int:
    """The reader of stdout went away (``sweepjax show c1 | head``): end quietly, as
    commands killed by SIGPIPE do (exit 141), with stdout on /dev/null so the flush at
    exit raises nothing (Python's recipe for SIGPIPE)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return 128 + 13  # SIGPIPE


def _multi_process(args: argparse.Namespace) -> bool:
    keys = ("coordinator", "num_processes", "process_id", "distributed")
    return any(getattr(args, k, None) not in (None, False) for k in keys)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(_attach_dash_values(list(sys.argv[1:] if argv is None else argv)))
    # After parsing: --help and usage errors exit before jax is imported (seconds).
    from sweepjax.engine import compile_cache

    # Reruns load their compiled programs from disk (SWEEPJAX_COMPILE_CACHE=0 turns it off).
    if getattr(args, "compiles", True):  # `watch` only reads the store: no jax (~2 s)
        if argv is None and not _multi_process(args):  # our own process: lanes
            from sweepjax.engine import distributed

            distributed.request_lanes()  # CPU devices for a CNN's steps (SWEEPJAX_LANES=1: off)
        compile_cache.enable()
    try:
        code = int(args.func(args) or 0)
        sys.stdout.flush()  # here, so a closed pipe is caught below, not at exit
        return code
    except BrokenPipeError:
        return _closed_pipe()
    except SweepjaxError as e:
        from sweepjax.cli.options import cli_message

        print(f"sweepjax: error: {cli_message(str(e))}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("sweepjax: interrupted", file=sys.stderr)
        return 130
