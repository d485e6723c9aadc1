"""A user's loss for the built-in softmax and MLP, stored by name.

``coarse(model="mlp", loss=fn)`` trains the built-in network on ``fn`` under the same
contract as a custom model's loss: ``fn(logits[B, K], labels[B]) -> [B]``, and a loss
with a third argument (or an ``hp`` keyword) receives the member's own hyperparameters
at training steps (:mod:`sweepjax.models.user_hp`). The sweep's stored model names the
loss: ``package.module:name`` when that name re-imports the very function (``fine`` and
``--resume`` in a new process rebuild it), otherwise that name plus ``#`` and a digest of
its code, which only this process (or the object passed again) resolves.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
import re
import sys
import types
from collections.abc import Callable

import jax
import jax.numpy as jnp

from sweepjax.errors import ConfigError
from sweepjax.models.user_hp import probe_loss

# name -> the function passed through the Python API (this process).
_LOSSES: dict[str, Callable] = {}


def loss_name(fn: Callable) -> str:
    """The stored name of ``fn``, remembered so :func:`resolve_loss` finds ``fn`` again.

    Example::

      loss_name(mypkg.losses.smoothed)  # 'mypkg.losses:smoothed'
      loss_name(lambda z, y: ...)       # '__main__:<lambda>#3f2a...'
    """
    if not callable(fn):
        raise ConfigError(f"loss must be callable, got {fn!r}")
    mod = getattr(fn, "__module__", None) or type(fn).__module__
    qual = getattr(fn, "__qualname__", None) or type(fn).__qualname__
    name = f"{mod}:{qual}"
    if not _importable(fn, mod, qual):
        name = f"{name}#{_digest(fn)}"
    _LOSSES[name] = fn
    return name


def resolve_loss(name: str | None) -> Callable | None:
    """The loss stored as ``name`` (None: cross-entropy). Raises ConfigError (one line)
    when the name does not import, or was an object of another session."""
    if name is None:
        return None
    if name in _LOSSES:
        return _LOSSES[name]
    if "#" in name:
        raise ConfigError(
            f"loss {name} was a Python object of another session, not an importable name; "
            "define it at a module's top level, or from Python pass model= and loss= again"
        )
    mod_name, _, attr = name.partition(":")
    try:
        obj = importlib.import_module(mod_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as e:
        raise ConfigError(f"cannot import loss {name}: {type(e).__name__}: {e}") from None
    _LOSSES[name] = obj
    return obj


def check_loss(fn: Callable, logits, who: str) -> None:
    """``fn`` on abstract ``logits`` ``[2, K]`` and labels ``[2]`` returns ``[2]`` (no
    computation); ``who`` names it in the one-line ConfigError otherwise."""
    k = logits.shape[-1] if len(logits.shape) > 1 else 1
    try:
        labels = jax.ShapeDtypeStruct((2,), jnp.int32)
        loss = jax.eval_shape(probe_loss(fn), logits, labels)
    except Exception as e:
        first = (str(e).strip().splitlines() or [""])[0]
        raise ConfigError(
            f"{who} fails on logits [2, {k}] and labels [2]: {type(e).__name__}: {first}"
        ) from None
    if getattr(loss, "shape", None) != (2,):
        raise ConfigError(
            f"{who} returns shape {list(getattr(loss, 'shape', []))} for a batch of 2; "
            "it must return one loss per example, [B]"
        )


def _importable(fn, mod: str, qual: str) -> bool:
    if mod == "__main__" or "<" in qual or mod not in sys.modules:
        return False
    obj = sys.modules[mod]
    for part in qual.split("."):
        obj = getattr(obj, part, None)
    return obj is fn


def _digest(fn) -> str:
    """A digest of ``fn``'s code and constants (its closure's plain values included),
    the same in every process for the same source."""
    code = getattr(fn, "__code__", None)
    # Not a function (a partial, a callable object): its repr without memory addresses.
    parts = [_code_text(code) if code is not None else re.sub(r" at 0x[0-9a-fA-F]+", "", repr(fn))]
    for cell in getattr(fn, "__closure__", None) or ():
        value = cell.cell_contents
        if isinstance(value, int | float | str | bool | tuple) or value is None:
            parts.append(repr(value))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:10]


def _code_text(code: types.CodeType) -> str:
    consts = [_code_text(c) if inspect.iscode(c) else repr(c) for c in code.co_consts]
    return f"{code.co_code.hex()}|{code.co_names}|{consts}"
