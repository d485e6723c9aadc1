"""The vocabulary of the option table: :class:`Opt` (how one option appears outside
Python) and the defaults the table and the flows share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

COMMANDS = ("coarse", "fine")

# Defaults of ``python -m sweepjax coarse`` with no flags: 256 members x 300 steps of
# batch 256 on the bundled sample take ~20 s on 2 CPU cores (compile included).
DEFAULT_TRIALS = 256
DEFAULT_STEPS = 300
DEFAULT_BATCH = 256
# Each command's schedule when none is given (chosen by benchmarks/bench_time_to_quality.py).
DEFAULT_SCHEDULE = {"coarse": "halving", "fine": "halving"}
# How a fine round draws its members inside the model's box (analysis.verdict.propose).
SAMPLERS = ("uniform", "thompson", "ei")
DEFAULT_SAMPLER = "uniform"
OPTIMIZERS = ("sgd", "momentum", "adam")
# A fine round's members when not given: half its parent's, not below this (nor above the
# parent's). Its box is a fraction of the parent's, so half the members cover it as
# densely: on softmax Fashion-MNIST over 10 seeds, 128 members instead of 256 handed over
# a refit model 0.0001 +/- 0.0001 less accurate on test in 0.57 of the wall
# (benchmarks/results/fine-trials-softmax-cpu.md; the MLP's: fine-trials-mlp-cpu.md).
FINE_MIN_TRIALS = 64


def fine_trials(parent: int) -> int:
    """``fine``'s default members for a parent of ``parent`` members (256 -> 128, 100 ->
    64, 16 -> 16)."""
    return max(min(parent, FINE_MIN_TRIALS), parent // 2)


@dataclass(frozen=True)
class ModelDefaults:
    """What a model's flow uses when the command does not say (chosen by measurement:
    ``benchmarks/bench_time_to_quality.py --model mlp``; docs/performance.md)."""

    hidden: int  # the MLP's hidden width (unused by the softmax)
    optimizer: str
    fine_steps_factor: int  # a fine round's steps = this x the parent's


# The softmax converges in a few epochs of plain SGD. The MLP needs width and epochs: on
# full Fashion-MNIST (benchmarks/results/mlp-configs-cpu.md) width 256 with heavy-ball
# momentum over 4,800 steps reaches test 0.894-0.895; a user's model takes the MLP's.
MODEL_DEFAULTS = {
    "softmax": ModelDefaults(hidden=100, optimizer="sgd", fine_steps_factor=8),
    "mlp": ModelDefaults(hidden=256, optimizer="momentum", fine_steps_factor=16),
}


@dataclass(frozen=True)
class Opt:
    """How one option appears outside Python.

    Attributes:
      name: the option's name (its field of :class:`SweepSpec`, its TOML key and keyword).
      help: the help text (coarse's; ``fine_help`` replaces it for ``fine``, and an
        inherited option says "(default: the parent's)" there).
      kind: how a value is read: ``str``, ``path`` (a str or os.PathLike), ``int``,
        ``float``, ``bool`` (a switch), ``choice``, ``box`` (LO HI), ``axis`` (one number
        fixes, LO HI searches), ``budget`` (a :class:`~sweepjax.budget.Budget`, parsed
        once), ``choices`` (categorical axes NAME=V1,V2, repeatable), ``hparams`` (the
        user's own hyperparameters, ``NAME=LO:HI:SCALE`` or ``NAME=VALUE``, repeatable),
        ``optimizer`` (a choice or an optax factory's name) or ``object`` (Python only).
      default: what ``coarse`` uses when the option is not given (None: the flow decides,
        said in the help).
      flag: the command-line flag (default ``--name-with-dashes``; "" = Python only).
        A ``bool`` option whose flag starts with ``--no-`` stores False.
      commands: the commands that take it.
      inherit: ``fine`` takes the parent's value when it is not given.
      stored: part of the stored spec (run-control options such as ``store`` are not).
      flag_help: the command line's help where its flag reads otherwise than the keyword
        (``--no-report`` says what the switch turns off; ``help`` says what True does,
        for Python and TOML), or points to text only ``--help`` shows.
    """

    help: str
    kind: str = "str"
    default: Any = None
    metavar: str | None = None
    choices: tuple = ()
    group: str = "search"
    flag: str | None = None
    fine_help: str | None = None
    commands: tuple[str, ...] = COMMANDS
    inherit: bool = True
    stored: bool = True
    flag_help: str | None = None
    name: str = ""  # the field's name, filled in when the table is read


def opt(help: str, **kw) -> Any:
    return field(default=None, metadata={"opt": Opt(help, **kw)})


AXIS_HELP = " (default: the parent's refined box if it searched it, else the parent's value)"
