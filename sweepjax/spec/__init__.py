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
from dataclasses import dataclass
from typing import Any

from sweepjax.budget import Budget
from sweepjax.config import Range
from sweepjax.errors import ConfigError
from sweepjax.spec.opt import (
    COMMANDS,
    DEFAULT_BATCH,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULE,
    DEFAULT_STEPS,
    DEFAULT_TRIALS,
    MODEL_DEFAULTS,
    OPTIMIZERS,
    SAMPLERS,
    ModelDefaults,
    Opt,
    fine_trials,
)
from sweepjax.spec.table import Options
from sweepjax.spec.values import BOX_WORDS, hparams_stored, normalise

SPEC_VERSION = 1


@dataclass(frozen=True)
class SweepSpec(Options):
    """Every option of a ``coarse`` or ``fine`` sweep (None = not given; the fields are
    declared in :mod:`sweepjax.spec.table`).

    Build one with :meth:`create` (checks and normalises), read the table with
    :func:`options`. Example::

      spec = SweepSpec.create("coarse", trials=64, lr=(1e-3, 1.0))
      spec.lr  # Range(lo=0.001, hi=1.0, log=True)
    """

    @classmethod
    def create(cls, command: str = "coarse", **given) -> SweepSpec:
        """The spec of ``command`` with the ``given`` options, checked and normalised.
        Raises ConfigError naming the argument for an unknown option or a bad value."""
        if command not in COMMANDS:
            raise ConfigError(f"unknown command {command!r}; choose coarse or fine")
        known = {o.name for o in options(command)}
        for k in given:
            if k not in known:
                raise ConfigError(
                    f"`{command}` takes no option {k!r}; known: {', '.join(sorted(known))}"
                )
        return cls(command=command, **_normalised(given, command))

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
        unset = {k: None for k, v in changes.items() if v is None}
        return dataclasses.replace(self, **_normalised(changes, self.command), **unset)

    def inherit(self, parent: SweepSpec, **derived) -> SweepSpec:
        """This (fine) spec with every inheritable option it does not give taken from
        ``parent`` (a stored, resolved spec), and each of ``derived`` (a value the round
        derives from its parent's) where it does not give that."""
        taken = {
            o.name: getattr(parent, o.name)
            for o in options(self.command)
            if o.inherit and getattr(self, o.name) is None and getattr(parent, o.name) is not None
        }
        taken |= {k: v for k, v in derived.items() if getattr(self, k) is None}
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
            elif isinstance(v, Budget):
                v = str(v)  # its one spelling; from_dict parses it back
            elif o.kind == "hparams":
                v = hparams_stored(v)
            elif o.kind == "choices":  # a list of pairs: the order survives sorted keys
                v = [[n, list(vals)] for n, vals in v]
            elif o.name in ("model", "dataset") and not isinstance(v, str):
                continue  # a Python object: the stored config names it
            out[o.name] = v
        return out

    @classmethod
    def from_dict(cls, d: dict) -> SweepSpec:
        """A spec from :meth:`to_dict`'s form (any version so far)."""
        d = migrate(dict(d))
        command = d.pop("command", "coarse")
        d.pop("version")
        return cls(command=command, **_normalised(d, command))


def _normalised(values: dict, command: str) -> dict:
    """Each given (not None) value read by its option's kind (:func:`normalise`)."""
    return {k: normalise(OPTS[k], v, command) for k, v in values.items() if v is not None}


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
            "schedule": (d.get("schedule") or {}).get("name"),
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


def help_of(o: Opt, command: str, python: bool = False) -> str:
    """The option's help for ``command``, its default said once: on the command line
    (``flag_help`` where the flag reads otherwise), or for Python's keyword argument
    (``python``: a switch is described by what True does, with its default)."""
    if command == "fine" and o.fine_help:
        return o.fine_help
    text = o.help if python else (o.flag_help or o.help)
    if command == "fine" and o.inherit:
        return text + " (default: the parent's)"
    if o.default is not None and (python or o.kind != "bool") and "(default" not in text:
        d = o.default
        shown = f"{d.lo:g} {d.hi:g}" if isinstance(d, Range) else f"{d}"
        text += f" (default {shown})"
    return text


_table()


__all__ = [
    "BOX_WORDS",
    "COMMANDS",
    "DEFAULT_BATCH",
    "DEFAULT_SAMPLER",
    "DEFAULT_SCHEDULE",
    "DEFAULT_STEPS",
    "DEFAULT_TRIALS",
    "MODEL_DEFAULTS",
    "OPTIMIZERS",
    "OPTS",
    "SAMPLERS",
    "SPEC_VERSION",
    "ModelDefaults",
    "Opt",
    "SweepSpec",
    "fine_trials",
    "flag_of",
    "help_of",
    "migrate",
    "options",
]
