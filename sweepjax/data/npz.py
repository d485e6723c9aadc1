"""Reader of keras-style ``mnist.npz`` files and of user ``npz:PATH`` datasets.

Both hold ``x_train`` and ``y_train``; keras files also hold ``x_test`` / ``y_test``.
A user file may omit the test pair: we then hold out a seeded 10% of the training set as
the test set and say so in the note, because a sweep's winners must be reported on data
no member was selected on.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from sweepjax.data.raw import RawData, pairing, validate_raw
from sweepjax.errors import DataError

# Fixed, independent of the user's seed: changing the validation seed must not change
# which examples are in the test set, or test numbers of two sweeps would not compare.
TEST_SPLIT_SEED = 20_240_601
TEST_FRACTION = 0.1


def carve_test(
    n: int, fraction: float = TEST_FRACTION, seed: int = TEST_SPLIT_SEED
) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train_idx, test_idx) with ``round(n * fraction)`` (at least 1) test rows."""
    n_test = max(1, int(round(n * fraction)))
    perm = np.random.Generator(np.random.PCG64(seed)).permutation(n)
    return np.sort(perm[n_test:]), np.sort(perm[:n_test])


def hold_out_test(x: np.ndarray, y: np.ndarray, where: str, what: str) -> tuple[dict, str]:
    """The arrays ``x_train, y_train, x_test, y_test`` with a fixed 10% of ``x`` / ``y``
    held out as the test set (:func:`carve_test`), and the note that says so; ``what``
    names the source in the note, ``where`` in errors."""
    if len(x) != len(y):
        raise DataError(
            f"{where}: x_train has {len(x)} rows but y_train has {len(y)}; "
            f"{pairing(x)} and labels must pair up one to one"
        )
    if len(x) < 2:
        raise DataError(f"{where}: need at least 2 training examples, got {len(x)}")
    tr, te = carve_test(len(x))
    arrays = {"x_train": x[tr], "y_train": y[tr], "x_test": x[te], "y_test": y[te]}
    note = (
        f"sweepjax: {what} has no x_test/y_test; holding out a fixed 10% of "
        f"training ({len(te)} examples, seed {TEST_SPLIT_SEED}) as the test set."
    )
    return arrays, note


def read_npz(
    path: str | Path,
    name: str | None = None,
    max_label: int | None = None,
    require_test: bool = False,
    targets: str = "auto",
) -> RawData:
    """Read and validate an npz dataset.

    Args:
      path: the ``.npz`` file.
      name: the source name recorded (default ``npz:PATH``).
      max_label: largest allowed label (9 for MNIST), None for any up to MAX_CLASSES-1.
      require_test: whether ``x_test`` / ``y_test`` must be present (keras files).
      targets: ``auto`` | ``classes`` | ``real`` (:func:`~sweepjax.data.raw.wants_real`).

    Returns:
      RawData; ``note`` says when the test set was carved from training.
    """
    path = Path(path)
    own = name is None or name.startswith("npz:")  # the user's file, not one we downloaded
    name = name or f"npz:{path}"
    if not path.is_file():
        raise DataError(f"{path}: no such file; check the path after npz:")
    save_as = "np.savez(path, x_train=..., y_train=..., x_test=..., y_test=...)"
    try:
        # We own the file handle: np.load leaks its own when the zip is truncated.
        with open(path, "rb") as fh:
            loaded = np.load(fh, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):  # one array, from np.save
                raise DataError(
                    f"{path} holds one array (np.save), not the named arrays sweepjax "
                    f"reads; save features and labels together with {save_as} "
                    "(x_test, y_test optional) and pass npz:FILE.npz"
                )
            with loaded as f:
                keys = set(f.files)
                missing = {"x_train", "y_train"} - keys
                if require_test:
                    missing |= {"x_test", "y_test"} - keys
                if missing:
                    raise DataError(
                        f"{path}: missing arrays {sorted(missing)} (found "
                        f"{sorted(keys)}); save it with {save_as}"
                    )
                if ("x_test" in keys) != ("y_test" in keys):
                    raise DataError(
                        f"{path}: has only one of x_test / y_test; save both or neither"
                    )
                arrays = {k: f[k] for k in ("x_train", "y_train", "x_test", "y_test") if k in keys}
    except DataError:
        raise
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError) as e:
        # np.load raises all of these for non-npz, truncated or pickled content.
        fix = (
            "re-create it with np.savez(path, x_train=..., y_train=...)"
            if own
            else "re-create it with np.savez, or delete it and re-download"
        )
        raise DataError(
            f"{path} is not a readable .npz file ({type(e).__name__}: {e}); {fix}"
        ) from e

    note = None
    if "x_test" not in arrays:
        arrays, note = hold_out_test(arrays["x_train"], arrays["y_train"], str(path), path.name)
    raw = RawData(
        arrays["x_train"],
        arrays["y_train"],
        arrays["x_test"],
        arrays["y_test"],
        name=name,
        origin=str(path),
        note=note,
    )
    return validate_raw(raw, str(path), max_label=max_label, targets=targets)
