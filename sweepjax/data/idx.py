"""Reader (and, for tests and checksums, writer) of the IDX format used by MNIST.

An IDX file is a 4-byte magic number ``00 00 TT NN`` (TT = element type, 0x08 for
unsigned bytes; NN = number of dimensions), NN big-endian uint32 sizes, then the
payload. Only the unsigned-byte files MNIST and Fashion-MNIST ship are accepted:
``0x00000803`` (images ``[n, rows, cols]``) and ``0x00000801`` (labels ``[n]``).

Files may be gzip-compressed or raw; we tell them apart by content (the gzip magic
``1f 8b``), not by name, because people gunzip files and keep the ``.gz`` name or vice
versa.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import numpy as np

from sweepjax.errors import DataError

IMAGES_MAGIC = 0x00000803
LABELS_MAGIC = 0x00000801
_GZIP_MAGIC = b"\x1f\x8b"
_FIX = "delete it and rerun to re-download, or replace it with a good copy"


def read_bytes(path: str | Path) -> bytes:
    """The decompressed content of ``path`` (gzip or raw); DataError if unreadable."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(
            f"cannot read {path}: {e.strerror or e}; check the path and permissions"
        ) from e
    if data[:2] != _GZIP_MAGIC:
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError, zlib.error) as e:  # truncated / corrupt stream
        raise DataError(f"{path} is a truncated or corrupt gzip file ({e}); {_FIX}") from e


def idx_header(array: np.ndarray) -> bytes:
    """The IDX header of a uint8 array: magic then big-endian dims."""
    magic = 0x00000800 | array.ndim
    return np.array([magic, *array.shape], dtype=">u4").tobytes()


def parse_idx(data: bytes, kind: str, where: str | Path) -> np.ndarray:
    """Parse decompressed IDX bytes into a uint8 array.

    Args:
      data: the whole decompressed file.
      kind: ``images`` (3-D) or ``labels`` (1-D).
      where: the file named in error messages.

    Returns:
      ``[n, rows, cols]`` or ``[n]`` uint8 (a read-only view over ``data``).
    """
    expect = {"images": IMAGES_MAGIC, "labels": LABELS_MAGIC}[kind]
    ndim = expect & 0xFF
    header = 4 * (1 + ndim)
    if len(data) < header:
        raise DataError(
            f"{where}: only {len(data)} bytes, too short for an IDX {kind} header; {_FIX}"
        )
    magic, *dims = np.frombuffer(data, dtype=">u4", count=1 + ndim).tolist()
    if magic != expect:
        raise DataError(
            f"{where}: IDX magic number 0x{magic:08x} is not 0x{expect:08x} "
            f"(uint8 {kind}); is this the right file? {_FIX}"
        )
    if kind == "images" and (dims[1] == 0 or dims[2] == 0):
        raise DataError(f"{where}: image size {dims[1]}x{dims[2]} is empty; {_FIX}")
    payload = int(np.prod(dims, dtype=np.int64))
    if len(data) - header != payload:
        raise DataError(
            f"{where}: header says {'x'.join(map(str, dims))} = {payload} bytes "
            f"but the file holds {len(data) - header}; {_FIX}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def read_idx(path: str | Path, kind: str) -> np.ndarray:
    """Read an IDX ``images`` or ``labels`` file (gzip or raw) into a uint8 array.

    Example:
      >>> x = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz",
      ...              "images")  # doctest: +SKIP
      >>> x.shape
      (10000, 28, 28)
    """
    return parse_idx(read_bytes(path), kind, path)


def write_idx(path: str | Path, array: np.ndarray, compress: bool | None = None) -> Path:
    """Write a uint8 array as IDX; gzip it when ``compress`` (default: name ends .gz)."""
    path = Path(path)
    array = np.ascontiguousarray(array, dtype=np.uint8)
    data = idx_header(array) + array.tobytes()
    if compress if compress is not None else path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=1, mtime=0)
    path.write_bytes(data)
    return path
