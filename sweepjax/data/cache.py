"""Prepared datasets on disk: the split, centred and scaled arrays, memory-mapped back.

Reading Fashion-MNIST's gzip files, checking them against the published hashes and
splitting and scaling them takes ~1.5 s of every process (coarse, then fine, then each
``auto`` stage's process); the prepared arrays load from ``.npy`` files by mapping them.

An entry is keyed by :func:`prepared_key`: the sha256 of the source files' bytes (so a
changed file is never served stale), their paths, and every setting that changes the
result (``dataset`` name, ``val_fraction``, ``seed``, ``scaling``) plus
:data:`FORMAT`, bumped whenever preprocessing changes what it computes.

The directory is ``$SWEEPJAX_DATA_CACHE`` (``0`` / ``off`` turns the cache off), or
``$XDG_CACHE_HOME/sweepjax/prepared`` (default ``~/.cache/sweepjax/prepared``). An entry is
written into a temporary directory and renamed into place, so a reader sees a whole
entry or none; one that is damaged afterwards (a missing or truncated file, a bad
header, labels or statistics whose checksum differs) reads as a miss and is rebuilt. The
large feature arrays are checked by size and header only: hashing them would cost
what the cache saves. At most :data:`MAX_ENTRIES` entries are kept (least recently used
go first).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from sweepjax.config import DataConfig
from sweepjax.data.dataset import Dataset, DatasetInfo

ENV_DIR = "SWEEPJAX_DATA_CACHE"  # a directory, or "0" / "off" to disable
FORMAT = 1  # bump when preprocessing changes what it computes for the same settings
MAX_ENTRIES = 6  # Fashion-MNIST's entry is ~220 MB
# Arrays whose bytes are hashed into the manifest (small); the rest: size and header.
_CHECKED = ("y_train", "y_val", "y_test", "mean", "scale")
_ARRAYS = tuple(f for f in Dataset._fields if f != "info")


def cache_dir() -> Path | None:
    """``$SWEEPJAX_DATA_CACHE``, or ``$XDG_CACHE_HOME/sweepjax/prepared``; None when the
    variable says ``0`` or ``off``."""
    env = os.environ.get(ENV_DIR)
    if env is not None and env.strip().lower() in ("0", "off", "no", "false", ""):
        return None
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sweepjax" / "prepared"


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def prepared_key(cfg: DataConfig, files: list[Path]) -> str:
    """The entry's name: sha256 over the files' paths and contents and the settings.

    Example::

      prepared_key(DataConfig(dataset="mnist-sample"), [SAMPLE_PATH])  # 'a3f0...'
    """
    parts = {
        "format": FORMAT,
        "dataset": cfg.dataset,
        "val_fraction": float(cfg.val_fraction),
        "seed": int(cfg.seed),
        "scaling": cfg.scaling,
        # only when not the default, so the prepared data of earlier versions stays keyed
        **({"targets": cfg.targets} if cfg.targets != "auto" else {}),
        "files": [[str(p.resolve()), file_sha256(p)] for p in files],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _digest(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).data).hexdigest()


def write_prepared(key: str, ds: Dataset, root: Path | None = None) -> Path | None:
    """Store ``ds`` as entry ``key`` (temp directory, then rename); its path, or None when
    the cache is off or the directory cannot be written (the cache is an optimisation:
    a read-only home must not fail a sweep)."""
    root = root if root is not None else cache_dir()
    if root is None:
        return None
    final = root / key
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key[:16]}-", dir=root))
    except OSError:
        return None
    try:
        manifest = {"info": _info_json(ds.info), "arrays": {}}
        for name in _ARRAYS:
            a = np.asarray(getattr(ds, name))
            np.save(tmp / f"{name}.npy", a, allow_pickle=False)
            entry = {"bytes": (tmp / f"{name}.npy").stat().st_size, "shape": list(a.shape)}
            entry["dtype"] = a.dtype.str
            if name in _CHECKED:
                entry["sha256"] = _digest(a)
            manifest["arrays"][name] = entry
        # The manifest is written last: an entry without one is incomplete by definition.
        (tmp / "manifest.json").write_text(json.dumps(manifest))
        os.rename(tmp, final)  # atomic; fails when another process got there first
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return final if (final / "manifest.json").is_file() else None
    _prune(root, keep=final)
    return final


def read_prepared(key: str, root: Path | None = None) -> Dataset | None:
    """Entry ``key`` as a Dataset whose arrays are read-only memory maps, or None (off,
    absent, or damaged: a damaged entry is removed so the caller rebuilds it)."""
    root = root if root is not None else cache_dir()
    if root is None or not (root / key).is_dir():
        return None
    entry = root / key
    try:
        manifest = json.loads((entry / "manifest.json").read_text())
        arrays = {}
        for name, want in manifest["arrays"].items():
            path = entry / f"{name}.npy"
            if path.stat().st_size != want["bytes"]:
                raise ValueError(f"{path}: truncated")
            a = np.asarray(np.load(path, mmap_mode="r", allow_pickle=False))
            if list(a.shape) != want["shape"] or a.dtype.str != want["dtype"]:
                raise ValueError(f"{path}: shape or dtype differs from the manifest")
            if "sha256" in want and _digest(a) != want["sha256"]:
                raise ValueError(f"{path}: checksum differs")
            arrays[name] = a
        if set(arrays) != set(_ARRAYS):
            raise ValueError(f"{entry}: arrays missing")
        info = _info_from_json(manifest["info"])
    except (OSError, ValueError, KeyError, TypeError, json.JSONDecodeError):
        shutil.rmtree(entry, ignore_errors=True)
        return None
    os.utime(entry)  # recently used: pruned last
    scale = arrays["scale"]
    arrays["scale"] = float(scale) if scale.ndim == 0 else scale
    return Dataset(info=info, **arrays)


def _info_json(info: DatasetInfo) -> dict:
    d = info.as_dict()
    if d["classes"] is not None:  # numpy scalars from a user's labels
        d["classes"] = [c.item() if isinstance(c, np.generic) else c for c in d["classes"]]
    return d


def _info_from_json(d: dict) -> DatasetInfo:
    d = dict(d, input_shape=tuple(d["input_shape"]))
    d["classes"] = None if d["classes"] is None else tuple(d["classes"])
    return DatasetInfo(**d)


def _prune(root: Path, keep: Path) -> None:
    """Remove the least recently used entries beyond :data:`MAX_ENTRIES`, and temporary
    directories a killed writer left (older than an hour: a live one is seconds old)."""
    now = time.time()
    for p in root.iterdir():
        if p.name.startswith(".") and p.is_dir() and now - p.stat().st_mtime > 3600:
            shutil.rmtree(p, ignore_errors=True)
    entries = [p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for p in entries[MAX_ENTRIES:]:
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)
