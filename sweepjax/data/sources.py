"""Where each named dataset comes from: local look-up, download, offline fallback.

``load_raw(name, data_dir, download)`` searches, for ``mnist`` and ``fashion-mnist``:

1. ``data_dir`` (the ``--data-dir`` flag),
2. ``$SWEEPJAX_DATA``,
3. the user cache ``$XDG_CACHE_HOME/sweepjax`` (default ``~/.cache/sweepjax``),
4. keras's ``~/.keras/datasets`` (mnist only),
5. system directories such as Debian's ``/usr/share/datasets/fashion-mnist``,

and in each of them (and its ``<name>/`` subdirectory) accepts the IDX layout (.gz or
raw, ``train-images-idx3-ubyte`` or ``train-images.idx3-ubyte``) or ``<name>.npz``.
Then it downloads into the cache, if allowed. Full MNIST that cannot be found or
fetched falls back to the bundled sample with a one-line note, because the main
command must work offline; the note is never silent and ``RawData.name`` records the
substitution. The library never prints: the CLI shows the note.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from sweepjax.data import download as dl
from sweepjax.data.idx import idx_header, read_idx
from sweepjax.data.npz import read_npz
from sweepjax.data.raw import RawData, validate_raw
from sweepjax.data.sample import SAMPLE_PATH, load_sample
from sweepjax.errors import DataError

NAMES = ("mnist", "fashion-mnist", "mnist-sample", "npz:PATH")
# Directories a distribution may install datasets into; a tuple so tests can monkeypatch.
SYSTEM_DIRS: dict[str, tuple[str, ...]] = {
    "mnist": ("/usr/share/datasets/mnist",),
    "fashion-mnist": ("/usr/share/datasets/fashion-mnist",),
}
_SPLITS = (
    ("train-images", 3, "images"),
    ("train-labels", 1, "labels"),
    ("t10k-images", 3, "images"),
    ("t10k-labels", 1, "labels"),
)


def cache_dir() -> Path:
    """The user cache, ``$XDG_CACHE_HOME/sweepjax`` or ``~/.cache/sweepjax``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "sweepjax"


def search_dirs(name: str, data_dir: str | Path | None = None) -> list[Path]:
    """The directories searched for ``name``, in order (they need not exist)."""
    roots = []
    if data_dir:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get("SWEEPJAX_DATA"):
        roots.append(Path(os.environ["SWEEPJAX_DATA"]).expanduser())
    roots.append(cache_dir())
    dirs = []
    for r in roots:  # a per-dataset subdirectory first: both datasets share file names
        dirs += [r / name, r]
    if name == "mnist":
        dirs.append(Path.home() / ".keras" / "datasets")
    dirs += [Path(d) for d in SYSTEM_DIRS.get(name, ())]
    return dirs


def _find_idx(d: Path, stem: str, dim: int) -> Path | None:
    for base in (f"{stem}-idx{dim}-ubyte", f"{stem}.idx{dim}-ubyte"):
        for fname in (base + ".gz", base):
            if (d / fname).is_file():
                return d / fname
    return None


def idx_digest(array: np.ndarray) -> str:
    """sha256 of ``array`` encoded as a uint8 IDX file (header + payload): the same value
    whether it was read from IDX, gzip or npz."""
    h = hashlib.sha256(idx_header(array))
    h.update(np.ascontiguousarray(array).data)
    return h.hexdigest()


def verify_known(name: str, raw: RawData, where: Path, npz_sha: str | None = None) -> None:
    """DataError if ``raw`` differs from the published ``name`` files (when hashes are
    known), e.g. a corrupt copy, or Fashion-MNIST sitting where MNIST was expected."""
    if npz_sha is not None and name == "mnist" and npz_sha == dl.KERAS_MNIST_SHA256:
        return  # the genuine keras file
    arrays = (raw.train_images, raw.train_labels, raw.test_images, raw.test_labels)
    for (stem, dim, _), arr in zip(_SPLITS, arrays, strict=True):
        key = f"{stem}-idx{dim}-ubyte"
        want = dl.IDX_SHA256.get(name, {}).get(key)
        if want is not None and (arr.dtype != np.uint8 or idx_digest(arr) != want):
            raise DataError(
                f"{where}: {key} is not the published {name} data (checksum "
                "mismatch); it is corrupt or another dataset: delete it and rerun "
                "to re-download, or pass `data_dir` with the right files"
            )


def source_files(name: str, data_dir: str | Path | None = None) -> list[Path] | None:
    """The files :func:`load_raw` would read for ``name``, found as it finds them, or
    None when it would not read files alone (absent: a download or the fallback next)."""
    if name == "mnist-sample":
        return [SAMPLE_PATH]
    if name.startswith("npz:"):
        path = Path(name[4:]).expanduser()
        return [path] if name[4:] and path.is_file() else None
    if name not in ("mnist", "fashion-mnist"):
        return None
    for d in search_dirs(name, data_dir):
        if not d.is_dir():
            continue
        found = [_find_idx(d, stem, dim) for stem, dim, _ in _SPLITS]
        if all(found):
            return found
        if (d / f"{name}.npz").is_file():
            return [d / f"{name}.npz"]
    return None


def read_dir(name: str, d: Path) -> RawData | None:
    """The dataset in directory ``d`` (IDX or ``<name>.npz``), or None if absent."""
    found = [_find_idx(d, stem, dim) for stem, dim, _ in _SPLITS]
    if all(found):
        arrays = [read_idx(p, kind) for p, (_, _, kind) in zip(found, _SPLITS, strict=True)]
        raw = validate_raw(RawData(*arrays, name=name, origin=str(d)), str(d), max_label=9)
        verify_known(name, raw, d)
        return raw
    npz = d / f"{name}.npz"
    if npz.is_file():
        raw = read_npz(npz, name=name, max_label=9, require_test=True)
        verify_known(name, raw, npz, hashlib.sha256(npz.read_bytes()).hexdigest())
        return raw._replace(origin=str(npz))
    return None


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def load_raw(
    name: str,
    data_dir: str | Path | None = None,
    download: bool = True,
    opener: dl.Opener | None = None,
    targets: str = "auto",
) -> RawData:
    """Load the raw arrays of a named dataset (an npz's labels read as ``targets``:
    :func:`~sweepjax.data.raw.wants_real`).

    Args:
      name: ``mnist`` | ``fashion-mnist`` | ``mnist-sample`` | ``npz:PATH``.
      data_dir: searched first (see the module docstring for the full order).
      download: whether a missing mnist / fashion-mnist may be downloaded into the cache.
      opener: ``opener(url, timeout=...)`` for downloads (tests inject a local one).

    Returns:
      RawData; ``name`` is what was really used (``mnist-sample`` after the offline
      fallback) and ``note`` a one-line message for the user, or None.

    Example:
      >>> raw = load_raw("mnist", download=False)  # doctest: +SKIP
      >>> raw.name, raw.note  # offline and no copy: the bundled sample, said so
      ('mnist-sample', 'sweepjax: full MNIST not found in [...] ...')
    """
    if name == "mnist-sample":
        return load_sample()
    if name == "arrays":  # the name recorded for arrays from Python (data.arrays.ARRAYS)
        raise DataError(
            "dataset 'arrays' names arrays passed from Python, which the store does not "
            "keep; pass them again (x_train=..., y_train=...) or save them with np.savez "
            "and pass npz:PATH"
        )
    if name.startswith("npz:"):
        path = Path(name[4:]).expanduser()
        if not name[4:] or not path.is_file():
            raise DataError(
                f"npz:{name[4:]}: no such file (searched {path.resolve()}); pass "
                "npz:/path/to/file.npz with x_train, y_train [, x_test, y_test]"
            )
        return read_npz(path, name=name, targets=targets)
    if name not in ("mnist", "fashion-mnist"):
        raise DataError(f"unknown dataset {name!r}; choose one of {', '.join(NAMES)}")

    dirs = search_dirs(name, data_dir)
    for d in dirs:
        if d.is_dir() and (raw := read_dir(name, d)) is not None:
            return raw

    target = cache_dir() / name
    if download:
        try:
            dl.download_dataset(name, target, opener=opener)
            raw = read_dir(name, target)
            if raw is not None:
                return raw
            reason = f"download left no complete dataset in {target}"
        except dl.DownloadError as e:
            reason = f"download failed ({_one_line(e)})"
    else:
        reason = "download disabled"
    searched = ", ".join(str(d) for d in dirs)
    if name == "mnist":
        note = (
            f"sweepjax: full MNIST not found in [{searched}] and {reason}; using the "
            "bundled 5,000-digit sample (mnist-sample). Put mnist.npz in "
            f"{cache_dir()} or pass `data_dir`."
        )
        return load_sample(note=_one_line(note))
    raise DataError(
        _one_line(
            f"fashion-mnist not found in [{searched}] and {reason}; install it with "
            "`apt-get install dataset-fashion-mnist`, put the four IDX files in "
            f"{target}, or pass `data_dir`"
        )
    )
