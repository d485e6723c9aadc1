"""JAX's persistent compilation cache, so a second run compiles (almost) nothing.

A cold ``sweepjax coarse`` on a 2-core CPU spends about 2 s of its ~9 s compiling the
population programs; with the cache on disk a rerun (another seed, another box, the
``fine`` that follows) loads them instead (measured: 2.4 s -> 0.5 s of compiling,
``benchmarks/bench_time_to_quality.py``). The command line turns it on; a notebook can
call :func:`enable` once.
"""

from __future__ import annotations

import os
from pathlib import Path

ENV_DIR = "SWEEPJAX_COMPILE_CACHE"  # a directory, or "0" / "off" to disable
OFF = ("0", "off", "no", "false", "")


def default_dir() -> Path | None:
    """``$SWEEPJAX_COMPILE_CACHE``, or ``$XDG_CACHE_HOME/sweepjax/xla`` (default
    ``~/.cache/sweepjax/xla``); None when the variable says ``0`` or ``off``."""
    env = os.environ.get(ENV_DIR)
    if env is not None and env.strip().lower() in OFF:
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sweepjax" / "xla"


def enable(path: str | os.PathLike | None = None) -> Path | None:
    """Point JAX's persistent compilation cache at ``path`` (default :func:`default_dir`).

    Every program is kept, however quick its compile: a sweep's process also compiles
    some 35 small host-side programs (gathers of the survivors' rows, key derivation,
    masks) of 10-160 ms each, about 1 s per process that a warm run paid again under the
    previous 0.2 s floor; loading one from disk takes a few ms. A directory that cannot be
    created leaves the cache off (compiling still works); returns the directory used,
    or None.
    """
    import jax

    from sweepjax.engine import saved_programs

    d = Path(path).expanduser() if path is not None else default_dir()
    if d is None:
        return None
    try:
        d.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", str(d))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    # The population programs are also kept whole (traced, lowered and compiled), in a
    # folder of their own inside this one, unless $SWEEPJAX_SAVED_PROGRAMS says 0 / off.
    keep = os.environ.get(saved_programs.ENV, "1").strip().lower() not in OFF
    saved_programs.enable(d / saved_programs.FOLDER if keep else None)
    return d
