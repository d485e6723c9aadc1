"""From parsed flags and ``--config FILE.toml`` to the keywords of
:func:`sweepjax.flows.sweep.coarse` / :func:`sweepjax.flows.sweep.fine`: which keys a TOML file may
set, how they are renamed, and how the box and axis values (``--lr LO HI | auto``,
``--dropout P | LO HI``, ...) are checked and turned into numbers."""

from __future__ import annotations

import argparse
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the tomli backport has the same API
    import tomli as tomllib

from sweepjax.errors import ConfigError

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


def flow_kwargs(s: dict, kind: str) -> dict:
    """The settings dict -> keyword arguments of the flow function (CLI-only keys dropped,
    flag names renamed, boxes and axis values parsed)."""
    kwargs = {RENAME.get(k, k): v for k, v in s.items() if k not in CLI_ONLY}
    if "no_refit" in kwargs:
        kwargs["refit"] = not kwargs.pop("no_refit")
    for k in ("lr", "l2"):
        if k in kwargs:
            kwargs[k] = _box(k, kwargs[k], allow_auto=(k == "lr" and kind == "coarse"))
    if "lr_decay" in kwargs:
        v = kwargs["lr_decay"]
        v = [v] if isinstance(v, str) else v
        if kind == "fine" and len(v) == 1 and str(v[0]).lower() == "off":
            kwargs["lr_decay"] = "off"
        else:
            kwargs["lr_decay"] = _box("lr-decay", v, allow_auto=False)
    for k in AXIS_ARGS:
        if k in kwargs:
            kwargs[k] = _value_or_box(k, kwargs[k])
    return kwargs


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
