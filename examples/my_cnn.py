"""Your own flax models, swept by name: ``--model examples.my_cnn:SmallCNN``.

Plain ``flax.linen`` modules, nothing sweepjax-specific: ``__call__(x)`` maps a batch
``[B, ...]`` of examples to logits ``[B, K]``. sweepjax hands them the dataset's example
shape: ``[B, 28, 28, 1]`` for MNIST-like images stored ``[N, 28, 28]`` (a channel axis is
added to 2-D examples), ``[B, D]`` for an npz of flat features. A ``num_classes`` field
is set to the data's class count.

Run from the repository root (the working directory is importable)::

  python -m examples.make_npz digits.npz          # the bundled MNIST sample as an npz
  python -m sweepjax coarse --model examples.my_cnn:TwoLayerMLP --dataset npz:digits.npz \\
      --trials 32 --steps 200 --optimizer adam --lr 1e-4 1e-1 --store own.db
  python -m sweepjax fine --store own.db           # inherits the model
  python -m sweepjax report f1 --store own.db

Measured on 2 shared CPU cores: TwoLayerMLP's coarse winner 0.95 validation / 0.94 test
accuracy in 35 s; ``--model examples.my_cnn:SmallCNN --trials 16`` 0.955 / 0.94 in 5 min
(timed before a CNN on the CPU trained as host-driven steps, one compiled step per member
called from Python, now level with a user's own loop of a jitted step: see
docs/performance.md). tests/test_custom.py runs the SmallCNN command on a tiny
generated npz.
"""

from __future__ import annotations

import flax.linen as nn


class SmallCNN(nn.Module):
    """conv 3x3 (``features`` filters) -> ReLU -> 2x2 average pool -> dense read-out.

    Input ``[B, H, W, C]``; output logits ``[B, num_classes]``.
    """

    num_classes: int = 10
    features: int = 8

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(self.features, kernel_size=(3, 3))(x))
        x = nn.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        return nn.Dense(self.num_classes)(x.reshape((x.shape[0], -1)))


class TwoLayerMLP(nn.Module):
    """Two hidden ReLU layers on the flattened example; any input shape ``[B, ...]``."""

    num_classes: int = 10
    hidden: int = 64

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        x = nn.relu(nn.Dense(self.hidden)(x))
        x = nn.relu(nn.Dense(self.hidden)(x))
        return nn.Dense(self.num_classes)(x)
