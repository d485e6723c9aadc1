"""Ahead-of-time compiled programs: held in this process (:mod:`program_cache`) and kept
on disk across processes (:mod:`saved_programs`).

The population programs (:mod:`sweepjax.engine.program`) are built here, and so are the
small ones around them: the root keys, a block of fresh members, a gather of rows, a
winner's logits. Called as plain ``jax.jit`` functions or eager ``jax.numpy`` calls,
those were traced and lowered again in every process, JAX's persistent cache sparing
only XLA's compile: 15-18 of them, 0.43 s of a warm default ``coarse`` and 0.59 s of a
warm ``fine`` (trace, lowering and cache load as JAX's own monitoring events count them;
2-core CPU, jax 0.10.2). Through :func:`call` a warm process loads each whole.

``kind`` names one function: the saved file's key is the kind, the static settings and
the arguments' shapes (:func:`saved_programs.fingerprint`), not the function's code, so
two functions never share a kind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Hashable
from typing import Any

import jax
import numpy as np

from sweepjax.engine import saved_programs
from sweepjax.engine.program_cache import PROGRAMS


def build(kind: str, make: Callable[[], Any], args, static_key, options: dict | None = None):
    """The compile of a program not held in memory: loaded whole from disk where it was
    saved before, else ``make()`` (a jitted function) traced, lowered and compiled for
    ``args`` (arrays or ``jax.ShapeDtypeStruct``), and saved."""

    def compile_(opts):
        return make().lower(*args).compile(compiler_options=opts)

    return lambda: saved_programs.load_or_compile(kind, static_key, args, options, compile_)


def _key(args, static_key: Hashable) -> tuple:
    """The in-memory key: the static settings and each argument's shape, dtype and
    placement (a program compiled for one device's arrays cannot take another's)."""
    leaves, tree = jax.tree.flatten(args)
    shapes = tuple(
        (np.shape(a), str(a.dtype), getattr(a, "sharding", None)) for a in leaves
    )  # fmt: skip
    return (static_key, tree, shapes)


def call(kind: str, fn: Callable, args: tuple, static_key: Hashable = (), options=None):
    """``fn(*args)`` through the program compiled for these argument shapes (one compile
    per shape and static settings, loaded from disk in a warm process). ``fn`` takes
    arrays only: whatever else decides it is bound in (``functools.partial``) and named
    in ``static_key``; ``options``: XLA compiler options."""
    try:
        key = _key(args, static_key)
        hash(key)
    except TypeError:  # a setting that cannot key a cache: compile, hold nothing
        return jax.jit(fn, compiler_options=options)(*args)
    exe, _ = PROGRAMS.get(kind, key, build(kind, functools.partial(jax.jit, fn), args,
                                           static_key, options))  # fmt: skip
    return exe(*args)
