"""Write a dataset in the layout ``--dataset npz:PATH`` reads.

``python -m examples.make_npz digits.npz`` saves the MNIST sample bundled with sweepjax
(4,000 training and 1,000 test digits, ``uint8 [N, 28, 28]``) as ``x_train``,
``y_train``, ``x_test``, ``y_test``. Your own data goes the same way: images ``[N, H, W]``
or ``[N, H, W, C]``, or features ``[N, D]``, any real dtype; integer labels ``[N]`` from
0. ``x_test`` / ``y_test`` may be left out (a fixed 10% of training is then held out).
"""

from __future__ import annotations

import sys

import numpy as np


def write_sample(path: str) -> str:
    from sweepjax.data import load_raw

    raw = load_raw("mnist-sample")
    np.savez(
        path,
        x_train=raw.train_images,
        y_train=raw.train_labels,
        x_test=raw.test_images,
        y_test=raw.test_labels,
    )
    return path


if __name__ == "__main__":
    print(write_sample(sys.argv[1] if len(sys.argv) > 1 else "digits.npz"))
