"""Download MNIST / Fashion-MNIST from public mirrors into the cache, atomically.

Each file is written to a temporary file in the destination directory, fsynced,
checked, and only then renamed into place with ``os.replace``: an interrupted or
corrupt download never leaves a file that a later run would trust.

Checksums are of the DECOMPRESSED content: Debian (and some mirrors) re-gzip the
files, so hashes of the ``.gz`` differ between equally good copies while the content
does not. The keras ``mnist.npz`` is a zip, not a gzip, so its hash is of the file.

The opener is a parameter so tests serve files from a local directory; tests never
touch the network.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import tempfile
import urllib.request
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, NamedTuple

from sweepjax.errors import DataError

KERAS_MNIST_URL = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/mnist.npz"
# sha256 of the keras file as published in keras' own ``mnist.load_data`` (file_hash).
KERAS_MNIST_SHA256 = "731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1"
KERAS_MNIST_SIZE = 11_490_434

MNIST_IDX_MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/",)
FASHION_IDX_MIRRORS = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)

# sha256 of the decompressed IDX files, keyed by the file stem.
# Fashion-MNIST: computed here from Debian's dataset-fashion-mnist copy, whose decompressed
# content matches upstream. MNIST: not computable on the build machine (no copy); these
# are the widely published values, cross-checked across several independent projects
# that pin them. Each image file must also have the exact size below.
# (``sha256sum`` format, so a user can check their own copy with ``sha256sum -c``.)
_MNIST_SHA256 = """
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
"""
_FASHION_SHA256 = """
c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888  train-images-idx3-ubyte
bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9  train-labels-idx1-ubyte
5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b  t10k-images-idx3-ubyte
0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34  t10k-labels-idx1-ubyte
"""


def _parse_sums(text: str) -> dict[str, str | None]:
    return {name: digest for digest, name in (line.split() for line in text.strip().splitlines())}


IDX_SHA256: dict[str, dict[str, str | None]] = {
    "mnist": _parse_sums(_MNIST_SHA256),
    "fashion-mnist": _parse_sums(_FASHION_SHA256),
}
# Decompressed sizes (identical for both datasets): 16-byte header + 60000*784, etc.
IDX_SIZES = {
    "train-images-idx3-ubyte": 47_040_016,
    "train-labels-idx1-ubyte": 60_008,
    "t10k-images-idx3-ubyte": 7_840_016,
    "t10k-labels-idx1-ubyte": 10_008,
}
IDX_STEMS = tuple(IDX_SIZES)

Opener = Callable[..., BinaryIO]  # opener(url, timeout=seconds) -> readable, closable
_CHUNK = 1 << 20


class DownloadError(Exception):
    """No mirror could be reached (offline, timeout, HTTP error). Callers fall back or
    turn it into a DataError; the message is one line."""


class RemoteFile(NamedTuple):
    """One file to fetch: its name in the cache, mirror URLs, and expected content."""

    filename: str
    urls: tuple[str, ...]
    sha256: str | None  # of the decompressed content (of the file itself if not gzip)
    size: int | None  # decompressed bytes


def _default_opener(url: str, timeout: float) -> BinaryIO:
    return urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (fixed https URLs)


def remote_files(name: str) -> tuple[tuple[RemoteFile, ...], ...]:
    """Alternative file sets for ``name``, tried in order (one complete set is enough)."""
    if name == "mnist":
        npz = (RemoteFile("mnist.npz", (KERAS_MNIST_URL,), KERAS_MNIST_SHA256, KERAS_MNIST_SIZE),)
        mirrors = MNIST_IDX_MIRRORS
    elif name == "fashion-mnist":
        npz, mirrors = None, FASHION_IDX_MIRRORS
    else:
        raise ValueError(f"nothing to download for {name!r}")
    idx = tuple(
        RemoteFile(
            f"{s}.gz", tuple(m + f"{s}.gz" for m in mirrors), IDX_SHA256[name].get(s), IDX_SIZES[s]
        )
        for s in IDX_STEMS
    )
    return (npz, idx) if npz else (idx,)


def content_digest(path: Path) -> tuple[str, int]:
    """(sha256, size) of the decompressed content of ``path`` (raw if not gzip)."""
    with open(path, "rb") as f:
        gz = f.read(2) == b"\x1f\x8b"
    h, size = hashlib.sha256(), 0
    with gzip.open(path, "rb") if gz else open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def fetch(
    remote: RemoteFile, dest_dir: Path, opener: Opener | None = None, timeout: float = 60.0
) -> Path:
    """Download ``remote`` into ``dest_dir`` atomically and verify it.

    Tries each mirror in turn. Raises DownloadError when no mirror answers, and DataError
    when a mirror answers with content that fails the checksum (nothing is left behind).
    """
    opener = opener or _default_opener
    dest_dir.mkdir(parents=True, exist_ok=True)
    final = dest_dir / remote.filename
    net_errors, bad = [], []
    for url in remote.urls:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{remote.filename}.", suffix=".part", dir=dest_dir)
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with opener(url, timeout=timeout) as resp:
                        while chunk := resp.read(_CHUNK):
                            out.write(chunk)
                except (OSError, http.client.HTTPException, ValueError) as e:
                    # URLError, HTTPError, timeouts and resets are all OSError.
                    net_errors.append(f"{url}: {e}")
                    continue
                out.flush()
                os.fsync(out.fileno())
            try:
                digest, size = content_digest(tmp)
            except (EOFError, OSError, zlib.error) as e:
                bad.append(f"{url} sent a corrupt gzip ({e})")
                continue
            if remote.size is not None and size != remote.size:
                bad.append(f"{url} sent {size} bytes, expected {remote.size}")
                continue
            if remote.sha256 is not None and digest != remote.sha256:
                bad.append(
                    f"{url} sent content with sha256 {digest[:16]}..., expected "
                    f"{remote.sha256[:16]}..."
                )
                continue
            os.replace(tmp, final)
            _fsync_dir(dest_dir)
            return final
        finally:
            tmp.unlink(missing_ok=True)
    if bad:
        raise DataError(
            f"download of {remote.filename} failed verification: {bad[0]}; "
            "retry later or download it yourself into " + str(dest_dir)
        )
    raise DownloadError(net_errors[0] if net_errors else f"no mirror for {remote.filename}")


def _fsync_dir(path: Path) -> None:
    """Make the rename durable; best effort (not every platform can open a directory)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def download_dataset(
    name: str, dest_dir: str | Path, opener: Opener | None = None, timeout: float = 60.0
) -> Path:
    """Fetch ``mnist`` or ``fashion-mnist`` into ``dest_dir``; returns ``dest_dir``.

    Files already present are kept (each was verified when it was written), so an
    interrupted download resumes file by file.

    Example:
      >>> download_dataset("fashion-mnist", "~/.cache/sweepjax/fashion-mnist")  # doctest: +SKIP
    """
    dest_dir = Path(dest_dir).expanduser()
    first_error = None
    for files in remote_files(name):
        try:
            for remote in files:
                if not (dest_dir / remote.filename).is_file():
                    fetch(remote, dest_dir, opener, timeout)
            return dest_dir
        except DownloadError as e:
            first_error = first_error or e
    raise DownloadError(str(first_error).replace("\n", " "))
