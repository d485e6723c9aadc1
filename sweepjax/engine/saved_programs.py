"""Whole compiled programs saved on disk, so a warm run neither traces, lowers nor compiles.

JAX's persistent cache (:mod:`sweepjax.engine.compile_cache`) skips only XLA's compile:
its key is the lowered program, so every process still traces each program and lowers it
to StableHLO first: ~0.3 s per training program and ~0.1 s per evaluation program on the
2-core CPU, 1-2.5 s of each warm ``coarse`` or ``fine``. Here the executable itself is
kept (``jax.experimental.serialize_executable``), under a fingerprint of everything that
decides what the program computes, and a warm run loads it in 10-130 ms:

- sweepjax's own source (a hash of the package's files: any edit is a new key);
- the jax and jaxlib versions, the backend, its devices, ``XLA_FLAGS``, and JAX's
  configuration as the program is traced (global values and the tracing context);
- the program's kind, compiler options and static settings (model, optimizer, batch,
  metric, layout) written out field by field, and its arguments' shapes, dtypes, weak
  types and shardings.

Only settings sweepjax can write out deterministically get a fingerprint: numbers,
strings, sweepjax's own dataclasses and module-level functions, and functions of jax,
flax, optax or numpy (their versions are in the key). A user's model, loss or metric is
code this module cannot hash, so its programs take the ordinary path (traced, lowered,
compiled through JAX's cache): nothing is loaded for a program it might not be.

The files live in ``<compile cache>/sweepjax-programs`` (the command line turns the
cache on; ``SWEEPJAX_SAVED_PROGRAMS=0`` keeps JAX's cache only). Like JAX's cache they
are executables: load only your own. A file that cannot be read or loaded (corrupt,
cut short, from another jaxlib) is compiled again and rewritten; one that cannot be
written (a full disk) is skipped; past :data:`MAX_FILES` the least recently used go.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import pickle
import tempfile
import threading
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

FORMAT = 1  # the files' layout; a new layout is a new key
ENV = "SWEEPJAX_SAVED_PROGRAMS"  # "0" / "off": compile as before (JAX's cache only)
FOLDER = "sweepjax-programs"  # inside the compile cache's directory
MAX_FILES = 512  # past this, the least recently used programs are deleted
_DIR: Path | None = None  # set by enable(); None: programs are not saved
# What happened to the programs this process asked for (a debug API, as PROGRAMS.stats()):
# loaded, saved, unreadable (a corrupt or foreign file, compiled again), unkeyable (a
# user's code: compiled the ordinary way), refused (the backend refused the option a
# program to save is compiled with: compiled the ordinary way, not saved).
COUNTS: collections.Counter[str] = collections.Counter()

# The slowest fresh compile of each kind of program, in seconds: this process's, and the
# machine's as the last processes recorded it beside the saved files (SECONDS). A
# decision weighs moving to a program it would compile by it (engine.recompile).
COMPILE_S: dict[str, float] = {}
SECONDS = "compile-seconds.json"

# Functions of these packages are keyed by name: their versions are in the key.
_VERSIONED = ("jax", "jaxlib", "flax", "optax", "numpy")


class Unkeyable(Exception):
    """A setting this module cannot write out deterministically (a user's code)."""


def enable(directory: str | os.PathLike | None) -> Path | None:
    """Save and load programs under ``directory`` (None: off); returns the directory."""
    global _DIR
    _DIR = None if directory is None else Path(directory)
    return _DIR


# --------------------------------------------------------------------------- the fingerprint
@functools.lru_cache(maxsize=1)
def source_hash() -> str:
    """A hash of every Python file of the installed sweepjax package (path and bytes)."""
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for f in sorted(root.rglob("*.py")):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def _function(fn) -> str:
    mod = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", "")
    top = mod.split(".")[0]
    if top in _VERSIONED:
        return f"fn:{mod}.{name}"
    if top != "sweepjax" or not isinstance(fn, types.FunctionType):
        raise Unkeyable(f"{mod}.{name}")
    # sweepjax's source is in the key; the line tells two lambdas of one module apart,
    # and whatever a closure or a default holds is written out as well.
    code = fn.__code__
    cells = tuple(c.cell_contents for c in fn.__closure__ or ())
    rest = (cells, fn.__defaults__, fn.__kwdefaults__)
    return f"fn:{mod}.{name}@{code.co_firstlineno}{form(rest)}"


def form(obj: Any) -> str:
    """``obj`` written out deterministically (the same text in every process), or
    :class:`Unkeyable`."""
    if obj is None or isinstance(obj, (bool, int, str, bytes)):
        return repr(obj)
    if isinstance(obj, float):
        return obj.hex()
    if isinstance(obj, (np.dtype, np.generic)):
        return f"{type(obj).__name__}:{obj!r}"
    if isinstance(obj, type):
        return f"type:{obj.__module__}.{obj.__qualname__}"
    if isinstance(obj, tuple) and hasattr(obj, "_fields"):  # a NamedTuple
        return f"{form(type(obj))}({','.join(form(v) for v in obj)})"
    if isinstance(obj, (tuple, list)):
        return f"{type(obj).__name__}({','.join(form(v) for v in obj)})"
    if isinstance(obj, dict):
        items = sorted((form(k), form(v)) for k, v in obj.items())
        return "dict(" + ",".join(f"{k}:{v}" for k, v in items) + ")"
    if isinstance(obj, (set, frozenset)):
        return "set(" + ",".join(sorted(form(v) for v in obj)) + ")"
    if isinstance(obj, functools.partial):
        return f"partial({_function(obj.func)},{form(obj.args)},{form(obj.keywords)})"
    if isinstance(obj, jax.tree_util.PyTreeDef):
        return f"tree:{obj}"
    if dataclasses.is_dataclass(obj) and type(obj).__module__.split(".")[0] == "sweepjax":
        fields = {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
        return f"{form(type(obj))}{form(fields)}"
    if callable(obj):
        return _function(obj)
    raise Unkeyable(type(obj).__qualname__)


def _leaf(a) -> tuple:
    """One argument's shape, dtype, weak type and sharding."""
    sharding = getattr(a, "sharding", None)
    weak = getattr(a, "weak_type", isinstance(a, (bool, int, float)))
    return (np.shape(a), str(getattr(a, "dtype", type(a).__name__)), weak, repr(sharding))


@functools.lru_cache(maxsize=1)
def _environment() -> str:
    import jaxlib

    devices = jax.devices()
    return form(
        (
            FORMAT,
            source_hash(),
            jax.__version__,
            jaxlib.__version__,
            jax.default_backend(),
            [(d.platform, d.device_kind, d.id) for d in devices],
            jax.process_count(),
            os.environ.get("XLA_FLAGS", ""),
        )
    )


# What JAX prints, not what it compiles: `JAX_LOG_COMPILES=1` loads the same programs.
_LOGGING = frozenset(
    ("jax_log_compiles", "jax_explain_cache_misses", "jax_debug_log_modules", "jax_logging_level")
)


def _configuration() -> str:
    """JAX's configuration as this thread traces now: every global value and the
    tracing context (a ``with jax.default_matmul_precision(...)`` block among it), read
    at each fingerprint, since a notebook may change it between two sweeps."""
    from jax._src import config as jax_config

    values = sorted((k, repr(v)) for k, v in jax.config.values.items() if k not in _LOGGING)
    trace = getattr(jax_config, "trace_context", tuple)()
    text = repr((values, [_state(v) for v in trace]))
    if " at 0x" in text:  # an object without a stable text: no key, the ordinary path
        raise Unkeyable("a configuration value holding an object")
    return text


def _state(v) -> str:
    """A context value's text; an object that prints its address (JAX's axis
    environment) is written as its slots' values."""
    text = repr(v)
    slots = [n for n in getattr(type(v), "__slots__", ()) if not n.startswith("__")]
    if " at 0x" in text and slots:
        return f"{type(v).__qualname__}({[(n, repr(getattr(v, n, None))) for n in slots]})"
    return text


def fingerprint(kind: str, static_key: Any, args: Any, options: dict | None) -> str:
    """The file name of a program (raises :class:`Unkeyable` for a user's code)."""
    leaves, tree = jax.tree.flatten(args)
    text = form((kind, static_key, options, tree, [_leaf(a) for a in leaves]))
    return hashlib.sha256((_environment() + _configuration() + text).encode()).hexdigest()


# --------------------------------------------------------------------------- load and save
def load_or_compile(
    kind: str,
    static_key: Any,
    args: Any,
    options: dict | None,
    compile_: Callable[[dict | None], Any],
):
    """The program saved for these settings, else ``compile_(options)`` (then saved)."""
    d = _DIR
    if d is None:
        return _timed(kind, lambda: (compile_(options), True))[0]
    try:
        name = fingerprint(kind, static_key, args, options)
    except Unkeyable:
        COUNTS["unkeyable"] += 1
        return _timed(kind, lambda: (compile_(options), True))[0]
    path = d / f"{name}.exe"
    exe = _load(path)
    if exe is None:
        exe, fresh = _timed(kind, lambda: _compile_here(compile_, options))
        if fresh:
            _save(path, exe)
    return exe


def compile_seconds(kind: str) -> float | None:
    """The slowest fresh compile of ``kind`` measured in this process, else the one the
    saved files' directory records from earlier processes on this machine; None if
    neither has one."""
    if kind in COMPILE_S:
        return COMPILE_S[kind]
    with contextlib.suppress(OSError, ValueError, TypeError, LookupError):
        if _DIR is not None:
            return float(json.loads((_DIR / SECONDS).read_text())[kind])
    return None


def _timed(kind: str, compile_: Callable[[], tuple[Any, bool]]) -> tuple[Any, bool]:
    """``compile_()``, its seconds kept as ``kind``'s when it was a fresh compile (the
    slowest this process has seen, also written beside the saved files)."""
    t0 = time.perf_counter()
    exe, fresh = compile_()
    secs = time.perf_counter() - t0
    if fresh and secs > COMPILE_S.get(kind, 0.0):
        COMPILE_S[kind] = secs
        _record(kind, secs)
    return exe, fresh


def _record(kind: str, secs: float) -> None:
    if _DIR is None:
        return
    path = _DIR / SECONDS
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    with contextlib.suppress(OSError, TypeError):  # a full disk: nothing recorded
        known[kind] = secs
        _write_whole(path, json.dumps(known).encode())


# --------------------------------------------------------------------------- a fresh compile
_LOCAL = threading.local()  # the JAX cache hits seen by this thread's compile
_LISTENING: list = []
_HIT = "/jax/compilation_cache/cache_hits"
# A debug option at its default value: it changes JAX's cache key, not the program.
_UNCACHED = {"xla_embed_ir_in_executable": False}


def _on_event(event: str, *_, **__) -> None:
    seen = getattr(_LOCAL, "hits", None)
    if event == _HIT and seen is not None:
        seen.append(event)


def _compile_here(compile_: Callable[[dict | None], Any], options: dict | None):
    """``(executable, saveable)``: the program as XLA itself compiles it, never an
    executable out of one of JAX's caches. XLA:CPU cannot serialize again an executable
    it deserialized: the copy fails at its first run ("Function bitcast_add_fusion.4 not
    found", jaxlib 0.10.2). JAX hands out such executables from its persistent cache (a
    program an earlier run compiled) and from its cache in memory as well (the same
    program compiled before in this process, e.g. after :func:`program.clear_cache`),
    with no event for the latter: the tests ran into both. So a program to save is
    compiled with an option at its default value that JAX's cache key keeps (it drops
    the dump options), and is not written to JAX's persistent cache: none of JAX's
    caches ever holds such a program deserialized. The saved file takes the place of
    JAX's entry. Should JAX's cache answer even so, or the backend refuse the option,
    the program is used and nothing saved."""
    from jax._src import config as jax_config

    if not _LISTENING:
        jax.monitoring.register_event_listener(_on_event)
        _LISTENING.append(True)
    _LOCAL.hits = []
    try:
        with jax_config.persistent_cache_min_compile_time_secs(float("inf")):
            exe = compile_({**(options or {}), **_UNCACHED})
        fresh = not _LOCAL.hits
    except Exception:  # noqa: BLE001 - an option this backend refuses: JAX's own path
        COUNTS["refused"] += 1
        return compile_(options), False
    finally:
        _LOCAL.hits = None
    return exe, fresh


def _load(path: Path):
    from jax.experimental.serialize_executable import deserialize_and_load

    try:
        blob = path.read_bytes()
    except OSError:
        return None
    try:
        fmt, payload, in_tree, out_tree, ids = pickle.loads(blob)
        if fmt != FORMAT:
            raise ValueError(f"format {fmt}")
        by_id = {d.id: d for d in jax.devices()}
        # The devices it was compiled for, in order (by default JAX would load it onto
        # every device: a one-device program then expects one shard per device).
        devices = [by_id[i] for i in ids]
        exe = deserialize_and_load(payload, in_tree, out_tree, execution_devices=devices)
    except Exception:  # noqa: BLE001 - a corrupt or foreign file: compile again
        COUNTS["unreadable"] += 1
        path.unlink(missing_ok=True)
        return None
    COUNTS["loaded"] += 1
    # Touch it: the least recently used files are the ones pruned.
    with contextlib.suppress(OSError):
        os.utime(path)
    return exe


def _save(path: Path, exe) -> None:
    from jax.experimental.serialize_executable import serialize

    try:
        payload, in_tree, out_tree = serialize(exe)
        ids = _device_ids(exe)
        blob = pickle.dumps((FORMAT, payload, in_tree, out_tree, ids))
    except Exception:  # noqa: BLE001 - a backend that cannot serialize: nothing saved
        return
    try:
        _write_whole(path, blob)
        COUNTS["saved"] += 1
        _prune(path.parent)
    except OSError:  # a full or read-only disk: the program is simply not kept
        pass


def _write_whole(path: Path, data: bytes) -> None:
    """``data`` written to a temporary file beside ``path``, then renamed over it: a
    reader sees the old file or the new one, never a part (raises ``OSError``; the
    temporary file is removed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".part")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def _device_ids(exe) -> list[int]:
    """The ids of the devices ``exe`` was compiled for, in order (``device_list`` in
    jax 0.10, ``device_assignment`` at the 0.6.1 floor)."""
    unloaded = exe._executable._unloaded_executable
    devices = getattr(unloaded, "device_list", None)
    if devices is None:
        devices = unloaded.device_assignment
    return [d.id for d in devices]


def _prune(d: Path, keep: int = MAX_FILES) -> None:
    files = list(d.glob("*.exe"))
    if len(files) <= keep:
        return
    files.sort(key=lambda f: f.stat().st_mtime)
    for f in files[: len(files) - keep]:
        f.unlink(missing_ok=True)
