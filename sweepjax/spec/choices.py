"""Categorical axes: values that change the compiled program (the optimizer, the MLP's
activation, the MLP's compiled width). A sweep with choices splits its population into
one part per combination of values, each trained as its own population with its own
program, one part after another (:mod:`sweepjax.flows.choices`).

Pure configuration: which names exist, how a value is read, which combination a member
trains with, and the model / training config of that combination.

Members are spread evenly over the combinations by their sampled config: config ``c``
trains with combination ``c % n`` (``n`` combinations, in the declared order). A
member's float values are drawn exactly as without choices, so the same id gets the same
lr whichever value it trains with.

Example::

  ch = normalise_choices({"optimizer": ["sgd", "adam"]})  # (("optimizer", ("sgd", "adam")),)
  combos(ch)  # [{"optimizer": "sgd"}, {"optimizer": "adam"}]
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Mapping

from sweepjax.config import ACTIVATIONS, OPTIMIZERS, ModelConfig, TrainConfig
from sweepjax.errors import ConfigError

# name -> its admissible values (None: any positive whole number), and what it changes.
CHOICE_NAMES = {"optimizer": OPTIMIZERS, "activation": ACTIVATIONS, "hidden": None}
Choices = tuple  # ((name, (value, ...)), ...): hashable, in the declared order


def _values(name: str, raw) -> tuple:
    if isinstance(raw, str):
        raw = [v for v in raw.split(",") if v.strip()]
    if not isinstance(raw, (list, tuple)) or not raw:
        raise ConfigError(f"`choices` {name} takes a list of values, e.g. {name}=a,b")
    allowed = CHOICE_NAMES[name]
    out = []
    for v in raw:
        if allowed is None:  # the MLP's compiled width
            try:
                w = float(v)
            except (TypeError, ValueError):
                w = 0.0
            if not (w >= 1 and w.is_integer()):
                raise ConfigError(f"`choices` hidden takes whole widths >= 1, got {v!r}")
            out.append(int(w))
        else:
            s = str(v).strip()
            if s not in allowed:
                raise ConfigError(f"`choices` {name} takes {', '.join(allowed)}, got {s!r}")
            out.append(s)
    if len(set(out)) != len(out):
        raise ConfigError(f"`choices` {name} lists a value twice: {out}")
    return tuple(out)


def normalise_choices(value) -> Choices:
    """The choices as given (a dict ``{"optimizer": ["sgd", "adam"]}``, a list of flag
    strings ``["optimizer=sgd,adam"]``, or this form) -> ``((name, (values)), ...)``."""
    if isinstance(value, str):
        value = [value]
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, (list, tuple)):
        pairs = []
        for item in value:
            if isinstance(item, str):
                name, eq, vals = item.partition("=")
                if not eq:
                    raise ConfigError(
                        f"`choices` takes NAME=V1,V2 (e.g. optimizer=sgd,adam), got {item!r}"
                    )
                pairs.append((name.strip(), vals))
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((item[0], item[1]))
            else:
                raise ConfigError(f"`choices` takes NAME=V1,V2, got {item!r}")
    else:
        raise ConfigError(
            "`choices` takes a dict such as {'optimizer': ['sgd', 'adam']} "
            "(on the command line: --choice optimizer=sgd,adam)"
        )
    out: dict[str, tuple] = {}
    for name, vals in pairs:
        if name not in CHOICE_NAMES:
            raise ConfigError(f"`choices` takes {', '.join(CHOICE_NAMES)}, got {name!r}")
        if name in out:
            raise ConfigError(f"`choices` names {name} twice; list its values once")
        out[name] = _values(name, vals)
    return tuple(out.items())


def as_stored(choices: Choices) -> list:
    """The JSON form, ``[["optimizer", ["sgd", "adam"]], ...]``: a list, so the declared
    order (which combination a member trains with) survives a store that sorts keys
    (:func:`normalise_choices` reads it)."""
    return [[n, list(v)] for n, v in choices]


def combos(choices: Choices) -> list[dict]:
    """Every combination of values, the first name varying slowest (declared order)."""
    if not choices:
        return [{}]
    names = [n for n, _ in choices]
    return [
        dict(zip(names, vals, strict=True)) for vals in itertools.product(*(v for _, v in choices))
    ]


def combo_index(config_id: int, choices: Choices) -> int:
    """The combination config ``config_id`` trains with: ``config_id % n``."""
    return int(config_id) % len(combos(choices))


def label(combo: Mapping) -> str:
    """A short name of a combination: ``adam``, ``adam+gelu``."""
    return "+".join(str(v) for v in combo.values())


def applied(model: ModelConfig, train: TrainConfig, combo: Mapping):
    """``(model, train)`` of the members that train with ``combo``."""
    if "optimizer" in combo:
        train = train.replace(optimizer=combo["optimizer"])
    changes = {k: combo[k] for k in ("activation", "hidden") if k in combo}
    if changes:
        model = dataclasses.replace(model, **changes)
    return model, train


def check(choices: Choices, model: ModelConfig, searched_hidden: bool, momentum: bool) -> None:
    """Choices that fit the sweep: activation and width are the built-in MLP's; a width
    choice goes without the `hidden` option (``searched_hidden``: given, or searched in
    a fine box); sgd has no momentum (``momentum``: searched or fixed by the user)."""
    names = dict(choices)
    for n in ("activation", "hidden"):
        if n in names and model.kind != "mlp":
            raise ConfigError(f"`choices` {n} is the built-in MLP's; add `model` mlp")
    if "hidden" in names and searched_hidden:
        raise ConfigError("`choices` hidden compiles one width per value; drop `hidden`")
    if momentum and "sgd" in names.get("optimizer", ()):
        raise ConfigError("`momentum` needs `optimizer` momentum or adam (sgd has no momentum)")
