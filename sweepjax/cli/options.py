"""``coarse`` / ``fine`` flags, generated from the spec's option table
(:mod:`sweepjax.spec`), plus the few that only steer the command line (``--format``,
``--config``, joining a multi-process run). ``--config FILE.toml`` takes the spec's
option names as keys; flags given on the command line win. Library errors name Python
arguments in backticks; :func:`cli_message` shows them as flags."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport has the same API
    import tomli as tomllib

from sweepjax.errors import ConfigError
from sweepjax.spec import BOX_WORDS, OPTS, Opt, SweepSpec, flag_of, help_of, options
from sweepjax.spec.values import normalise

EPILOG = """\
exit codes: 0 ok, 1 runtime failure, 2 usage / config / data / store error,
3 every member diverged (results are still stored), 130 interrupted by Ctrl-C and 143 by
SIGTERM (resume with --resume), 141 stdout closed (e.g. `| head`).

resume: a sweep is checkpointed in the store between chunks (throttled so checkpoints
take at most ~5% of the time). Ctrl-C or SIGTERM (a scheduler's preemption) stops at the
next chunk boundary and checkpoints that step; a full disk keeps the last checkpoint.
After any of these or a crash, rerun the SAME command plus --resume. It continues the
unfinished sweep named --name or, without --name, the newest unfinished sweep of this
kind whose settings equal the command's, and ends with exactly the results of an
uninterrupted run. Different settings, or a different device count, are refused.

--config FILE.toml takes the options' names as keys (e.g. trials = 64, lr = [1e-3, 1.0],
batch_size = 128, report = false); flags given on the command line win."""

# Options of the command line only (how it prints, where it reads settings, how it joins
# other processes): the same declaration as the spec's, never stored.
_MULTI = "devices and hosts (results do not depend on these)"
CLI_OPTIONS = {
    "format": Opt(
        "text table (default) or one JSON document on stdout",
        kind="choice",
        choices=("text", "json"),
        group="output and store",
        name="format",
    ),
    "config": Opt(
        "read settings from a TOML file (the options' names as keys)",
        metavar="FILE.toml",
        group="output and store",
        name="config",
    ),
    "coordinator": Opt(
        "multi-process run: process 0's address (every process runs the same command; "
        "process 0 writes the store)",
        metavar="HOST:PORT",
        group=_MULTI,
        name="coordinator",
    ),
    "num_processes": Opt(
        "multi-process run: N", kind="int", metavar="N", group=_MULTI, name="num_processes"
    ),
    "process_id": Opt(
        "multi-process run: 0..N-1", kind="int", metavar="I", group=_MULTI, name="process_id"
    ),
    "distributed": Opt(
        "join a multi-process run from the launcher's environment (Slurm, TPU pod, MPI) via "
        "jax.distributed.initialize()",
        kind="bool",
        group=_MULTI,
        name="distributed",
    ),
}


def add_options(
    p: argparse.ArgumentParser, command: str, only: tuple[str, ...] | None = None
) -> None:
    """Every option ``command`` takes (or those named in ``only``: another command that
    shares some, e.g. ``auto``), one flag each, in the table's groups and order. Values
    stay raw here (strings from the shell): :meth:`SweepSpec.create` reads them."""
    groups: dict[str, argparse._ArgumentGroup] = {}
    table = [*(OPTS.values() if only else options(command)), *CLI_OPTIONS.values()]
    for o in table:
        if o.flag == "" or (only is not None and o.name not in only):
            continue  # Python only, or not an option of this command
        if o.group not in groups:
            groups[o.group] = p.add_argument_group(o.group)
        g = groups[o.group]
        text = cli_message(help_of(o, command)).replace("%", "%%")
        kw: dict = {"dest": o.name, "default": None, "help": text}
        if o.kind == "bool":
            kw["action"] = "store_const"
            kw["const"] = not _negated(o)
        else:
            kw["metavar"] = o.metavar
            if o.kind == "choice":
                kw["choices"] = o.choices
                kw["metavar"] = o.metavar or "{" + ",".join(o.choices) + "}"
            elif o.kind in ("int", "float"):
                kw["type"] = int if o.kind == "int" else float
            word = BOX_WORDS.get((o.name, command))
            if o.kind == "box" and word:
                kw["nargs"], kw["metavar"] = "+", f"LO HI | {word}"
            elif o.kind == "box":
                kw["nargs"], kw["metavar"] = 2, ("LO", "HI")
            elif o.kind == "axis":
                kw["nargs"] = "+"
            elif o.kind in ("hparams", "choices"):  # repeatable: --choice optimizer=sgd,adam
                kw["action"] = "append"
        g.add_argument(flag_of(o.name), **kw)


def _negated(o: Opt) -> bool:
    return (o.flag or "").startswith("--no-")


def _toml_names(command: str) -> dict[str, tuple[str, bool]]:
    """TOML key -> (option, negated): the option's name, and its flag's spelling too
    (``pbt-interval``, ``from``, ``top``, ``no_report``) so older files keep working."""
    names: dict[str, tuple[str, bool]] = {}
    for o in [*options(command), *CLI_OPTIONS.values()]:
        if o.flag == "":
            continue
        names[o.name] = (o.name, False)
        alias = flag_of(o.name)[2:].replace("-", "_")
        names.setdefault(alias, (o.name, _negated(o)))
    return names


def read_toml(path: str, command: str) -> dict:
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
    names = _toml_names(command)
    out = {}
    for key, value in data.items():
        k = key.replace("-", "_")
        if k not in names:
            known = ", ".join(sorted(n for n in names if n in OPTS or n in CLI_OPTIONS))
            raise ConfigError(f"unknown key {key!r} in {path}; known keys: {known}")
        name, negated = names[k]
        out[name] = (not value) if negated and isinstance(value, bool) else value
    return out


def resolve(args: argparse.Namespace, command: str) -> tuple[SweepSpec, dict]:
    """Flags over TOML -> (the sweep's spec, the command line's own settings)."""
    settings = read_toml(args.config, command) if getattr(args, "config", None) else {}
    for k, v in vars(args).items():
        if v is not None and (k in OPTS or k in CLI_OPTIONS):
            settings[k] = v
    cli = {k: settings.pop(k) for k in list(settings) if k in CLI_OPTIONS}
    return SweepSpec.create(command, **settings), cli


def shared_values(args: argparse.Namespace, names: tuple[str, ...]) -> tuple[dict, dict]:
    """For a command that takes some of the table's options (``add_options(only=...)``):
    the given ones, read like the sweep's (:func:`~sweepjax.spec.values.normalise`), and
    the command line's own (``format``) apart."""
    given = {k: getattr(args, k) for k in names if getattr(args, k) is not None}
    cli = {k: given.pop(k) for k in list(given) if k in CLI_OPTIONS}
    return {k: normalise(OPTS[k], v) for k, v in given.items()}, cli


_MENTION = re.compile(r"`([a-z][a-z0-9_]*)`")


def cli_message(message: str) -> str:
    """A library message as the command line says it: `` `init_scale` `` -> ``--init-scale``
    (only the spec's options; other backticked words stay as they are)."""
    return _MENTION.sub(lambda m: flag_of(m[1]) if m[1] in OPTS else m[0], message)
