"""One sweep spec, from flag to store: every option of ``coarse`` and ``fine`` declared
once, as a field of :class:`SweepSpec` with its type, default, help and command-line form.

From that one table come the CLI flags (:mod:`sweepjax.cli.options` generates them), the
TOML keys of ``--config`` (the field names), the keyword arguments of
:func:`sweepjax.coarse` / :func:`sweepjax.fine` (their signatures are generated from it)
and the stored form (:meth:`SweepSpec.to_dict` / :meth:`SweepSpec.from_dict`, versioned).

A field left ``None`` is "not given": ``coarse`` then takes :attr:`Opt.default`, ``fine``
the parent's value (or its own rule: steps, box, schedule). Values are normalised once,
here: a box ``(lo, hi)`` becomes a :class:`~sweepjax.config.Range`, an axis a number or a
Range on its scale, flags' strings numbers. Errors name the Python argument in backticks
(`` `lr` ``); the CLI shows the flag instead (:func:`flag_of`).
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sweepjax.config import (
    AXES,
    DEFAULT_BAND,
    DEFAULT_L2,
    DEFAULT_LR,
    DEFAULT_MARGIN,
    DEFAULT_TOP_K,
    DROPOUT_MAX,
    MOMENTUM_MAX,
    SCHEDULES,
    Range,
)
from sweepjax.errors import ConfigError

SPEC_VERSION = 1
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
# A box option that also takes a word, per command: coarse's lr "auto" (the finder's
# box), fine's lr_decay "off" (keep the rate constant).
BOX_WORDS = {("lr", "coarse"): "auto", ("lr_decay", "fine"): "off"}


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
        fixes, LO HI searches) or ``object`` (Python only).
      default: what ``coarse`` uses when the option is not given (None: the flow decides,
        said in the help).
      flag: the command-line flag (default ``--name-with-dashes``; "" = Python only).
        A ``bool`` option whose flag starts with ``--no-`` stores False.
      commands: the commands that take it.
      inherit: ``fine`` takes the parent's value when it is not given.
      stored: part of the stored spec (run-control options such as ``store`` are not).
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
    name: str = ""  # the field's name, filled in when the table is read


def opt(help: str, **kw) -> Any:
    return field(default=None, metadata={"opt": Opt(help, **kw)})


_AXIS_HELP = " (default: the parent's refined box if it searched it, else the parent's value)"


@dataclass(frozen=True)
class SweepSpec:
    """Every option of a ``coarse`` or ``fine`` sweep (None = not given).

    Build one with :meth:`create` (checks and normalises), read the table with
    :func:`options`. Example::

      spec = SweepSpec.create("coarse", trials=64, lr=(1e-3, 1.0))
      spec.lr  # Range(lo=0.001, hi=1.0, log=True)
    """

    command: str = "coarse"
    # data and model
    dataset: str | None = opt(
        "mnist | mnist-sample | fashion-mnist | npz:PATH (default: mnist; offline it falls "
        "back to the bundled mnist-sample)",
        default="mnist",
        metavar="NAME",
        group="data and model",
        fine_help="mnist | mnist-sample | fashion-mnist | npz:PATH (default: the data the "
        "parent used)",
    )
    data_dir: str | None = opt(
        "directory searched first for the data", kind="path", metavar="DIR", group="data and model"
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
        "loss(logits[B, K], labels[B]) -> [B] replacing your model's cross-entropy",
        kind="object",
        flag="",
        group="data and model",
        stored=False,
    )
    hidden: int | Range | None = opt(
        "MLP hidden width: N fixes it (default 256); LO HI searches whole widths "
        "log-uniformly, each member masked to its own inside one network HI wide "
        "(model mlp)",
        kind="axis",
        metavar="N | LO HI",
        group="data and model",
        fine_help="MLP hidden width: N fixes it, LO HI searches it" + _AXIS_HELP,
    )
    optimizer: str | None = opt(
        "sgd | momentum | adam (default: sgd for softmax, momentum (0.9) for mlp and your "
        "own models)",
        kind="choice",
        choices=OPTIMIZERS,
        group="data and model",
    )
    # search
    trials: int | None = opt(
        "members trained at once", kind="int", default=DEFAULT_TRIALS, metavar="N"
    )
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
        "halving's rungs, at steps/eta^N, steps/eta^(N-1), ... (default 3)",
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
        "do not retrain the winner on train + validation (default: refit it and report its "
        "test accuracy next to the early-stopped one)",
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
    name: str | None = opt(
        "sweep id to use instead of c<n> / f<n>",
        metavar="ID",
        group="output and store",
        inherit=False,
        stored=False,
    )
    report: bool | None = opt(
        "do not write the HTML report",
        kind="bool",
        default=True,
        flag="--no-report",
        group="output and store",
        inherit=False,
        stored=False,
    )
    resume: bool | None = opt(
        "continue an interrupted sweep (see below)",
        kind="bool",
        default=False,
        group="output and store",
        inherit=False,
        stored=False,
    )

    @classmethod
    def create(cls, command: str = "coarse", **given) -> SweepSpec:
        """The spec of ``command`` with the ``given`` options, checked and normalised.
        Raises ConfigError naming the argument for an unknown option or a bad value."""
        if command not in COMMANDS:
            raise ConfigError(f"unknown command {command!r}; choose coarse or fine")
        known = {o.name: o for o in options(command)}
        for k in given:
            if k not in known:
                raise ConfigError(
                    f"`{command}` takes no option {k!r}; known: {', '.join(sorted(known))}"
                )
        values = {k: normalise(k, v, command) for k, v in given.items() if v is not None}
        return cls(command=command, **values)

    def given(self) -> dict[str, Any]:
        """The options set (not None), by name."""
        return {
            o.name: getattr(self, o.name) for o in options() if getattr(self, o.name) is not None
        }

    def value(self, name: str) -> Any:
        """The option's value, or its default when not given."""
        v = getattr(self, name)
        return OPTS[name].default if v is None else v

    def replace(self, **changes) -> SweepSpec:
        """A copy with ``changes`` (checked and normalised like :meth:`create`)."""
        return dataclasses.replace(
            self,
            **{
                k: normalise(k, v, self.command) if v is not None else None
                for k, v in changes.items()
            },
        )

    def inherit(self, parent: SweepSpec) -> SweepSpec:
        """This (fine) spec with every inheritable option it does not give taken from
        ``parent`` (a stored, resolved spec)."""
        taken = {
            o.name: getattr(parent, o.name)
            for o in options(self.command)
            if o.inherit and getattr(self, o.name) is None and getattr(parent, o.name) is not None
        }
        return dataclasses.replace(self, **taken)

    # ---------------------------------------------------------------- stored form
    def to_dict(self) -> dict:
        """The stored form (JSON-able, versioned): the stored options that are set, boxes
        as ``[lo, hi]``. :meth:`from_dict` reads it back, older versions included."""
        out: dict[str, Any] = {"version": SPEC_VERSION, "command": self.command}
        for o in options():
            v = getattr(self, o.name)
            if v is None or not o.stored:
                continue
            if isinstance(v, Range):
                v = [v.lo, v.hi]
            elif o.name == "model" and not isinstance(v, str):
                continue  # a Python object: the stored model config names it
            out[o.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        """A spec from :meth:`to_dict`'s form (any version so far)."""
        d = migrate(dict(d))
        command = d.pop("command", "coarse")
        d.pop("version")
        return cls(command=command, **{k: normalise(k, v, command) for k, v in d.items()})


def migrate(d: dict) -> dict:
    """Bring a stored spec to :data:`SPEC_VERSION`. Version 0 is a sweep stored before
    specs existed: its resolved config (``kind``, ``data``, ``model``, ``train``,
    ``space``, ...), read into the options that produced it."""
    version = d.get("version", 0)
    if version > SPEC_VERSION:
        raise ConfigError(
            f"stored spec version {version} is newer than this sweepjax's {SPEC_VERSION}; "
            "upgrade sweepjax"
        )
    if version == 0:
        data, model, train = d.get("data", {}), d.get("model", {}), d.get("train", {})
        space = d.get("space", {})
        out = {
            "version": 1,
            "command": d.get("kind", "coarse"),
            "dataset": data.get("dataset"),
            "data_dir": data.get("data_dir"),
            "model": model.get("spec") or model.get("kind"),
            "hidden": space.get("hidden") or model.get("hidden"),
            "optimizer": train.get("optimizer"),
            "trials": d.get("trials"),
            "steps": train.get("steps"),
            "batch_size": train.get("batch_size"),
            "grid": d.get("grid"),
            "seed": data.get("seed"),
            "replicas": d.get("replicas"),
            "folds": d.get("folds"),
            "band": d.get("band"),
            "top_k": d.get("top_k"),
            **{k: space.get(k) for k in ("lr", "l2", "lr_decay")},
            **{k: space.get(k) or train.get(k) for k in ("dropout", "init_scale", "momentum")},
        }
        if out["model"] not in MODEL_DEFAULTS:
            out["hidden"] = None  # a user's model has no width of ours
        d = {k: v for k, v in out.items() if v is not None}
    return d


# --------------------------------------------------------------------------- the table
OPTS: dict[str, Opt] = {}


def _table() -> None:
    for f in dataclasses.fields(SweepSpec):
        if "opt" in f.metadata:
            OPTS[f.name] = dataclasses.replace(f.metadata["opt"], name=f.name)


def options(command: str | None = None) -> list[Opt]:
    """The option table, in declaration order (those ``command`` takes, if given). Each
    :class:`Opt` carries its field name as ``.name``."""
    return [o for o in OPTS.values() if command is None or command in o.commands]


def flag_of(name: str) -> str:
    """The command-line form of option ``name`` (``init_scale`` -> ``--init-scale``)."""
    o = OPTS.get(name)
    if o is not None and o.flag:
        return o.flag
    return "--" + name.replace("_", "-")


def help_of(o: Opt, command: str) -> str:
    """The option's help for ``command``, its default said once."""
    if command == "fine" and o.fine_help:
        return o.fine_help
    text = o.help
    if command == "fine" and o.inherit:
        return text + " (default: the parent's)"
    if o.default is not None and o.kind not in ("bool",) and "(default" not in text:
        d = o.default
        shown = f"{d.lo:g} {d.hi:g}" if isinstance(d, Range) else f"{d}"
        text += f" (default {shown})"
    return text


# --------------------------------------------------------------------------- values
def _box(name: str, value, command: str):
    """``(lo, hi)`` / Range / 'auto' (coarse lr) / 'off' (fine lr_decay) -> Range or word."""
    if isinstance(value, Range):
        return value
    vals = [value] if isinstance(value, str) else list(value)
    word = BOX_WORDS.get((name, command))
    if word and len(vals) == 1 and str(vals[0]).lower() == word:
        return word
    try:
        lo, hi = (float(v) for v in vals)
    except (TypeError, ValueError):
        also = f" or '{word}'" if word else ""
        raise ConfigError(
            f"`{name}` takes two numbers LO HI{also}, got {' '.join(map(str, vals))!r}"
        ) from None
    if name == "lr_decay" and hi > 1.0:
        raise ConfigError(f"`{name}` upper bound must be <= 1, got {hi:g}")
    try:
        return Range(lo, hi)
    except ConfigError as e:
        raise ConfigError(f"`{name}`: {e}") from None


def _axis(name: str, value):
    """One number (the axis fixed; an int for ``hidden``) or a pair / Range (searched on
    the axis's scale), inside the axis's caps."""
    ax = AXES[name]
    if isinstance(value, Range):
        try:
            ax.check(name, value)
        except ConfigError as e:
            raise ConfigError(f"`{name}`: {e}") from None
        return value
    vals = list(value) if isinstance(value, (list, tuple)) else [value]
    try:
        nums = [float(v) for v in vals]
    except (TypeError, ValueError):
        nums = []
    if len(nums) not in (1, 2):
        raise ConfigError(
            f"`{name}` takes one number (fixed) or two LO HI (searched), got "
            f"{' '.join(map(str, vals))!r}"
        )
    if not all(ax.admits(v) for v in nums):
        what = "bounds must lie" if len(nums) == 2 else "must be"
        got = " ".join(f"{v:g}" for v in nums)
        raise ConfigError(f"`{name}` {what} in {ax.bounds_text()}, got {got}")
    if len(nums) == 1:
        return int(nums[0]) if ax.integer else nums[0]
    try:
        return ax.range(*nums)
    except ConfigError as e:
        raise ConfigError(f"`{name}`: {e}") from None


def _number(name: str, value, kind: str):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"`{name}` takes a number, got {value!r}")
    try:
        v = float(value)
    except ValueError:
        raise ConfigError(f"`{name}` takes a number, got {value!r}") from None
    if kind == "int":
        if not v.is_integer():
            raise ConfigError(f"`{name}` must be a positive integer, got {value!r}")
        v = int(v)
    return v


def normalise(name: str, value, command: str = "coarse"):
    """One option's value, checked: the single place flags' strings, TOML values and
    Python arguments become what the flows read."""
    o = OPTS[name]
    if o.kind == "box":
        return _box(name, value, command)
    if o.kind == "axis":
        return _axis(name, value)
    if o.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"`{name}` takes true or false, got {value!r}")
        return value
    if o.kind == "choice":
        if value not in o.choices:
            raise ConfigError(f"`{name}` must be one of {', '.join(o.choices)}, got {value!r}")
        return value
    if o.kind in ("int", "float"):
        v = _number(name, value, o.kind)
        _check_range(name, v)
        return v
    if o.kind == "path" and isinstance(value, os.PathLike):
        return os.fspath(value)
    if o.kind in ("str", "path") and not isinstance(value, str) and name != "model":
        raise ConfigError(f"`{name}` takes a string, got {value!r}")
    return value


# Numeric options' admissible values (lower bound, upper bound, a suggestion).
_LIMITS = {
    "folds": (2, math.inf, 5),
    "band": (0.0, 0.5, 0.1),
    "margin": (0.0, 1.0, 0.1),
    "seed": (0, math.inf, 0),
}


def _check_range(name: str, v) -> None:
    lo, hi, hint = _LIMITS.get(name, (1, math.inf, None))
    if lo <= v <= hi:
        return
    if OPTS[name].kind == "int" and hi == math.inf:
        need = "a positive integer" if lo == 1 else f"an integer >= {lo:g}"
        raise ConfigError(f"`{name}` must be {need}, got {v!r}")
    raise ConfigError(f"`{name}` must be in [{lo:g}, {hi:g}], got {v}; try {hint}")


_table()
