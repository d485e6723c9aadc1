"""The bundled 5,000-digit MNIST sample (see MNIST_SAMPLE.md for attribution).

It ships inside the package so that ``sweepjax`` works on a machine with no network and
no dataset, and so that end-to-end tests are fast. It has no test split of its own; we
hold out 100 images per class with a fixed seed, so the test set is the same for every
user seed and every run, and every class is equally represented in it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from sweepjax.data.raw import RawData, validate_raw
from sweepjax.errors import DataError

SAMPLE_PATH = Path(__file__).with_name("mnist_sample.npz")
# sha256 over images.tobytes() then labels.tobytes(); the npz's own bytes are not
# reproducible (zip timestamps), its arrays are.
SAMPLE_SHA256 = "809ec085d551285cf9efad12c42a6aead98c62f96eb9936cc5b778870773e50d"
TEST_PER_CLASS = 100
SAMPLE_TEST_SEED = 5_000


def stratified_test_split(
    labels: np.ndarray, per_class: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, test_idx): ``per_class`` seeded test indices from each class."""
    rng = np.random.Generator(np.random.PCG64(seed))
    test = []
    for c in np.unique(labels):  # a loop over classes (10), not examples
        idx = np.flatnonzero(labels == c)
        if len(idx) <= per_class:
            raise DataError(f"class {c} has only {len(idx)} examples; need > {per_class}")
        test.append(rng.choice(idx, size=per_class, replace=False))
    test_idx = np.sort(np.concatenate(test))
    mask = np.ones(len(labels), dtype=bool)
    mask[test_idx] = False
    return np.flatnonzero(mask), test_idx


def load_sample(note: str | None = None, path: Path = SAMPLE_PATH) -> RawData:
    """The bundled sample: 4,000 training and 1,000 test digits (100 per class).

    Example:
      >>> raw = load_sample()
      >>> raw.train_images.shape, raw.test_images.shape
      ((4000, 28, 28), (1000, 28, 28))
    """
    try:
        with np.load(path, allow_pickle=False) as f:
            images, labels = f["images"], f["labels"]
    except (OSError, ValueError, KeyError) as e:
        raise DataError(f"bundled sample {path} is unreadable ({e}); reinstall sweepjax") from e
    h = hashlib.sha256(images.tobytes())
    h.update(labels.tobytes())
    if h.hexdigest() != SAMPLE_SHA256:
        raise DataError(f"bundled sample {path} does not match its checksum; reinstall sweepjax")
    tr, te = stratified_test_split(labels, TEST_PER_CLASS, SAMPLE_TEST_SEED)
    raw = RawData(
        images[tr],
        labels[tr],
        images[te],
        labels[te],
        name="mnist-sample",
        origin="bundled",
        note=note,
    )
    return validate_raw(raw, str(path), max_label=9)
