"""A Flax NNX model with BatchNorm and Dropout, written as the NNX docs write it, swept
as a population (each member built with ``rngs=nnx.Rngs(its key)``), then the same model
trained alone with NNX's own loop (``nnx.Optimizer``, ``model.train()`` / ``.eval()``).

Run from the repository root::

  python -m examples.nnx_batchnorm                      # the bundled MNIST sample
  python -m sweepjax coarse --model examples.nnx_batchnorm:NNXMLP --dataset mnist-sample \\
      --optimizer adam --lr 1e-4 1e-2 --trials 8 --steps 400 --no-report

The measured results are in docs/custom-models.md.
"""

from __future__ import annotations

import sys

import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from examples.compare import sweep_then_alone


class NNXMLP(nnx.Module):
    """flatten -> Linear -> BatchNorm -> ReLU -> Dropout -> Linear logits."""

    def __init__(self, num_classes: int = 10, hidden: int = 128, *, rngs: nnx.Rngs):
        self.l1 = nnx.Linear(784, hidden, rngs=rngs)
        self.bn = nnx.BatchNorm(hidden, momentum=0.9, rngs=rngs)
        self.drop = nnx.Dropout(0.2, rngs=rngs)
        self.l2 = nnx.Linear(hidden, num_classes, rngs=rngs)

    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        return self.l2(self.drop(nnx.relu(self.bn(self.l1(x)))))


def train_alone(ds, lr: float, l2: float, steps: int, batch: int, seed: int = 0) -> float:
    """NNX's own training loop (the NNX docs' pattern, with sweepjax's L2 term on the
    kernels); the test accuracy at the last step."""
    model = NNXMLP(rngs=nnx.Rngs(seed))
    opt = nnx.Optimizer(model, optax.adam(lr), wrt=nnx.Param)

    @nnx.jit
    def step(model, opt, x, y):
        def loss_fn(m):
            ce = optax.softmax_cross_entropy_with_integer_labels(m(x), y).mean()
            return ce + l2 * (jnp.sum(m.l1.kernel[...] ** 2) + jnp.sum(m.l2.kernel[...] ** 2)) / 2

        grads = nnx.grad(loss_fn)(model)
        opt.update(model, grads)

    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(steps):
        idx = rng.integers(0, ds.x_train.shape[0], batch)
        step(model, opt, ds.x_train[idx], ds.y_train[idx])
    model.eval()
    logits = nnx.jit(lambda m, x: m(x))(model, jnp.asarray(ds.x_test))
    return float(np.mean(np.argmax(logits, 1) == ds.y_test))


def main(trials: int = 8, steps: int = 400, batch: int = 128, store: str = "nnx_bn.db"):
    return sweep_then_alone(NNXMLP, train_alone, "NNX's own loop", trials, steps, batch, store)


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
