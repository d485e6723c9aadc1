"""An option's value, read once: flags' strings, TOML values and Python arguments become
what the flows read (a box a :class:`~sweepjax.config.Range`, an axis a number or a Range
on its scale), checked against the option's kind and limits. Errors name the argument in
backticks (the CLI shows the flag)."""

from __future__ import annotations

import math
import os
from typing import TYPE_CHECKING

from sweepjax.budget import Budget
from sweepjax.config import AXES, Range, check_user_name, is_factory_name
from sweepjax.errors import ConfigError
from sweepjax.metric import metric_name

if TYPE_CHECKING:
    from sweepjax.spec import Opt

# A box option that also takes a word, per command: coarse's lr "auto" (the finder's
# box), fine's lr_decay "off" (keep the rate constant).
BOX_WORDS = {("lr", "coarse"): "auto", ("lr_decay", "fine"): "off"}


def _box(name: str, value, command: str):
    """``(lo, hi)`` / Range / 'auto' (coarse lr) / 'off' (fine lr_decay) -> Range or word."""
    if isinstance(value, Range):
        return value
    # One number (l2=0.0) is not a box: said below in one line, not a TypeError.
    vals = [value] if isinstance(value, str) or not hasattr(value, "__iter__") else list(value)
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


def optimizer_name(value, builtin: tuple) -> str:
    """A built-in optimizer's name, or an optax factory's (``optax.adamw``,
    ``pkg.mod:fn``; a function from Python becomes its importable name). The factory is
    imported when the sweep is planned."""
    if callable(value) and not isinstance(value, str):
        import optax

        short = getattr(value, "__name__", "")
        if getattr(optax, short, None) is value:
            return f"optax.{short}"
        qual = getattr(value, "__qualname__", short)
        if "<" in qual or not getattr(value, "__module__", None):
            raise ConfigError(
                f"`optimizer` {value!r} has no importable name; define the factory at the top "
                "level of a module and pass it (or its name, pkg.mod:fn)"
            )
        return f"{value.__module__}:{qual}"
    if isinstance(value, str) and (value in builtin or is_factory_name(value)):
        return value
    raise ConfigError(
        f"`optimizer` must be one of {', '.join(builtin)} or an optax factory such as "
        f"optax.adamw or pkg.mod:fn, got {shown(value)}"
    )


SCALES = ("log", "linear")


def _hparam(name: str, value):
    """One user hyperparameter's value: a number fixes it; ``(lo, hi, scale)``, a Range or
    ``"lo:hi:scale"`` (scale ``log`` | ``linear``) searches it."""
    if isinstance(value, Range):
        return value
    if isinstance(value, str):
        value = value.split(":") if ":" in value else [value]
    vals = list(value) if isinstance(value, (list, tuple)) else [value]
    if len(vals) == 1:
        try:
            v = float(vals[0])
        except (TypeError, ValueError):
            v = math.nan
        if isinstance(vals[0], bool) or not math.isfinite(v):
            raise ConfigError(
                f"`hparams` {name}: a fixed value is a finite number, got {vals[0]!r}"
            )
        return v
    if len(vals) != 3 or str(vals[2]).strip() not in SCALES:
        raise ConfigError(
            f"`hparams` {name} takes a number (fixed) or LO:HI:SCALE with SCALE log or "
            f"linear (searched), got {':'.join(map(str, vals))!r}; e.g. {name}=0:0.2:linear"
        )
    try:
        lo, hi = float(vals[0]), float(vals[1])
    except (TypeError, ValueError):
        raise ConfigError(f"`hparams` {name}: bounds must be numbers, got {vals[:2]!r}") from None
    try:
        return Range(lo, hi, str(vals[2]).strip() == "log")
    except ConfigError as e:
        raise ConfigError(f"`hparams` {name}: {e}") from None


def hparams_value(value) -> tuple:
    """The ``hparams`` option read: ``((name, Range | float), ...)`` sorted by name, from a
    mapping (Python, TOML, the stored form) or the command line's ``NAME=VALUE`` list."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
        pairs = {}
        for item in value:
            name, eq, spec = item.partition("=")
            if not eq:
                raise ConfigError(
                    f"`hparams` takes NAME=VALUE or NAME=LO:HI:SCALE, got {item!r}; "
                    "e.g. label_smoothing=0:0.2:linear"
                )
            if name.strip() in pairs:
                raise ConfigError(f"`hparams` {name.strip()} is given twice")
            pairs[name.strip()] = spec
        value = pairs
    elif isinstance(value, tuple):
        value = dict(value)
    if not isinstance(value, dict):
        raise ConfigError(
            f"`hparams` takes a mapping {{name: (lo, hi, scale) | value}}, got {shown(value)}"
        )
    out = {}
    for name, v in value.items():
        check_user_name(name)
        out[name] = _hparam(name, v)
    return tuple(sorted(out.items()))


def hparams_stored(value: tuple) -> dict:
    """The stored (JSON) form of the ``hparams`` option: ``{name: [lo, hi, scale] | value}``."""
    return {
        n: [v.lo, v.hi, "log" if v.log else "linear"] if isinstance(v, Range) else v
        for n, v in value
    }


def shown(value) -> str:
    """``value`` for a one-line message: its repr when short, else its type (and shape):
    an array passed by mistake must not fill the terminal."""
    text = repr(value)
    if len(text) <= 60 and "\n" not in text:
        return text
    shape = getattr(value, "shape", None)
    kind = type(value).__name__
    return f"a {kind} of shape {tuple(shape)}" if shape is not None else f"a {kind}"


def _data(value):
    """A ``dataset`` given from Python: a name, or a data container (a
    :class:`sweepjax.Dataset` or the data layer's RawData), recognised by its fields
    (the spec sits above the data layer)."""
    if isinstance(value, str):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if hasattr(value, "x_train") and hasattr(value, "info") or hasattr(value, "train_images"):
        return value
    what = f"a {type(value).__name__} of {len(value)}" if isinstance(value, tuple) else shown(value)
    raise ConfigError(
        f"`dataset` takes a name (mnist, mnist-sample, fashion-mnist, npz:PATH) or a "
        f"sweepjax.Dataset, got {what}; pass arrays as x_train=X, y_train=y (x_test, "
        "y_test, x_val, y_val optional)"
    )


def _number(name: str, value, kind: str):
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"`{name}` takes a number, got {shown(value)}")
    try:
        v = float(value)
    except ValueError:
        raise ConfigError(f"`{name}` takes a number, got {value!r}") from None
    if kind == "int":
        if not v.is_integer():
            raise ConfigError(f"`{name}` must be a positive integer, got {value!r}")
        v = int(v)
    return v


def normalise(o: Opt, value, command: str = "coarse"):
    """Option ``o``'s value, checked: the single place flags' strings, TOML values and
    Python arguments become what the flows read."""
    name = o.name
    if o.kind == "box":
        return _box(name, value, command)
    if o.kind == "axis":
        return _axis(name, value)
    if o.kind == "hparams":
        return hparams_value(value)
    if o.kind == "optimizer":
        return optimizer_name(value, o.choices)
    if o.kind == "bool":
        if not isinstance(value, bool):
            raise ConfigError(f"`{name}` takes true or false, got {value!r}")
        return value
    if o.kind == "choice":
        if not isinstance(value, str) or value not in o.choices:
            raise ConfigError(f"`{name}` must be one of {', '.join(o.choices)}, got {shown(value)}")
        return value
    if o.kind in ("int", "float"):
        v = _number(name, value, o.kind)
        _check_range(name, o.kind, v)
        return v
    if o.kind == "choices":  # categorical axes: ((name, (values)), ...)
        from sweepjax.spec.choices import normalise_choices

        return normalise_choices(value)
    if o.kind == "budget":  # read once here; it stays a Budget (a string where stored)
        if not isinstance(value, str | Budget):  # a bare number: seconds or member-steps?
            raise ConfigError(
                f"`{name}` takes a string with its unit (60s, 5M), got {shown(value)}"
            )
        return Budget.parse(value)
    if name == "dataset":
        return _data(value)
    if name == "metric":  # a Metric object becomes its stored name (remembered here)
        return metric_name(value)
    if o.kind == "path" and isinstance(value, os.PathLike):
        return os.fspath(value)
    if o.kind in ("str", "path") and not isinstance(value, str) and name != "model":
        raise ConfigError(f"`{name}` takes a string, got {shown(value)}")
    return value


# Numeric options' admissible values (lower bound, upper bound, a suggestion).
_LIMITS = {
    "folds": (2, math.inf, 5),
    "band": (0.0, 0.5, 0.1),
    "margin": (0.0, 1.0, 0.1),
    "seed": (0, math.inf, 0),
}


def _check_range(name: str, kind: str, v) -> None:
    lo, hi, hint = _LIMITS.get(name, (1, math.inf, None))
    if lo <= v <= hi:
        return
    if kind == "int" and hi == math.inf:
        need = "a positive integer" if lo == 1 else f"an integer >= {lo:g}"
        raise ConfigError(f"`{name}` must be {need}, got {v!r}")
    raise ConfigError(f"`{name}` must be in [{lo:g}, {hi:g}], got {v}; try {hint}")
