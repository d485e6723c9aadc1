"""A Flax NNX CNN with BatchNorm and Dropout on Fashion-MNIST, written as the NNX MNIST
tutorial writes it, swept as a population (each member built with
``rngs=nnx.Rngs(its key)``), then the winner's values trained alone with NNX's own loop
(``nnx.Optimizer`` in a Python loop of an ``nnx.jit`` step, ``model.train()`` /
``model.eval()``).

Run from the repository root (Debian's ``dataset-fashion-mnist`` package, or
``--download`` once, provides the data)::

  python -m examples.nnx_cnn                 # 8 members x 300 steps, then the winner alone
  python -m examples.nnx_cnn 16 600          # more members, more steps
  python -m sweepjax coarse --model examples.nnx_cnn:NNXCNN --dataset fashion-mnist \\
      --optimizer adam --lr 1e-4 1e-2 --trials 8 --steps 300 --no-report

The measured results are in docs/custom-models.md ("An NNX CNN on Fashion-MNIST").
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from examples.compare import sweep_then_alone

DATASET = "fashion-mnist"


class NNXCNN(nnx.Module):
    """conv 3x3 (16) -> BatchNorm -> ReLU -> 2x2 avg pool -> Dropout -> Linear logits.

    Input ``[B, 28, 28, 1]`` (sweepjax adds the channel axis to ``[N, 28, 28]`` images);
    output logits ``[B, num_classes]``.
    """

    def __init__(self, num_classes: int = 10, features: int = 16, *, rngs: nnx.Rngs):
        self.conv = nnx.Conv(1, features, kernel_size=(3, 3), rngs=rngs)
        self.bn = nnx.BatchNorm(features, momentum=0.9, rngs=rngs)
        self.drop = nnx.Dropout(0.25, rngs=rngs)
        self.out = nnx.Linear(14 * 14 * features, num_classes, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.bn(self.conv(x)))
        x = nnx.avg_pool(x, window_shape=(2, 2), strides=(2, 2))
        return self.out(self.drop(x.reshape((x.shape[0], -1))))


def train_alone(ds, lr: float, l2: float, steps: int, batch: int, seed: int = 0) -> float:
    """NNX's own training loop (the NNX MNIST tutorial's pattern, with sweepjax's L2
    term on the kernels); the test accuracy after the last step."""
    model = NNXCNN(rngs=nnx.Rngs(seed))
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, x, y):
        def loss_fn(m):
            ce = optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
            sq = jnp.sum(m.conv.kernel[...] ** 2) + jnp.sum(m.out.kernel[...] ** 2)
            return ce + l2 * sq / 2

        opt.update(model, nnx.grad(loss_fn)(model))

    shape = (-1, *ds.info.input_shape, 1)  # [N, 784] -> [N, 28, 28, 1], as sweepjax gives it
    x_train = jnp.asarray(ds.x_train).reshape(shape)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        idx = rng.integers(0, x_train.shape[0], batch)
        step(model, opt, x_train[idx], jnp.asarray(ds.y_train[idx]))
    model.eval()
    predict = nnx.jit(lambda m, x: jnp.argmax(m(x), axis=1))
    x_test = jnp.asarray(ds.x_test).reshape(shape)
    pred = np.concatenate(
        [predict(model, x_test[i : i + 1000]) for i in range(0, len(x_test), 1000)]
    )
    return float(np.mean(pred == ds.y_test))


def main(trials: int = 8, steps: int = 300, batch: int = 128, store: str = "nnx_cnn.db"):
    return sweep_then_alone(
        NNXCNN, train_alone, "NNX's own loop", trials, steps, batch, store, dataset=DATASET
    )


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
