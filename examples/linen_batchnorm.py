"""A linen model with BatchNorm and Dropout, written as the Flax examples write it (a
``train`` flag; ``batch_stats`` updated with ``mutable=``; ``rngs={"dropout": key}``),
swept as a population, then the same model trained alone with a plain optax loop.

Run from the repository root::

  python -m examples.linen_batchnorm                    # the bundled MNIST sample
  python -m sweepjax coarse --model examples.linen_batchnorm:BNMLP --dataset mnist-sample \\
      --optimizer adam --lr 1e-4 1e-2 --trials 8 --steps 400 --no-report

Each member keeps its own BatchNorm statistics (evaluated with ``train=False``, the
running averages) and its own dropout stream. The measured results are in
docs/custom-models.md.
"""

from __future__ import annotations

import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples.compare import sweep_then_alone


class BNMLP(nn.Module):
    """flatten -> dense -> BatchNorm -> ReLU -> dropout -> dense logits."""

    num_classes: int = 10
    hidden: int = 128
    rate: float = 0.2

    @nn.compact
    def __call__(self, x, train: bool = False):
        x = x.reshape((x.shape[0], -1))
        x = nn.Dense(self.hidden)(x)
        x = nn.BatchNorm(use_running_average=not train, momentum=0.9)(x)
        x = nn.Dropout(self.rate, deterministic=not train)(nn.relu(x))
        return nn.Dense(self.num_classes)(x)


def train_alone(ds, lr: float, l2: float, steps: int, batch: int, seed: int = 0) -> float:
    """The same model trained alone as users write it (a Python loop over a jitted
    Adam step, the Flax examples' pattern, with sweepjax's L2 term on the kernels); its
    test accuracy at the last step."""
    model = BNMLP()
    key = jax.random.key(seed)
    variables = model.init(key, jnp.zeros((1, ds.x_train.shape[1])), train=False)
    params, stats = variables["params"], variables["batch_stats"]
    tx = optax.adam(lr)
    opt = tx.init(params)

    @jax.jit
    def step(params, stats, opt, x, y, k):
        def loss_fn(p):
            logits, upd = model.apply(
                {"params": p, "batch_stats": stats},
                x,
                train=True,
                mutable=["batch_stats"],
                rngs={"dropout": k},
            )
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            kernels = [w for path, w in jax.tree_util.tree_leaves_with_path(p)
                       if path[-1].key == "kernel"]  # fmt: skip
            return ce + l2 * sum(jnp.sum(w**2) for w in kernels) / 2, upd

        (_, upd), g = jax.value_and_grad(loss_fn, has_aux=True)(params)
        u, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, u), upd["batch_stats"], opt

    rng = np.random.default_rng(seed)
    for t in range(steps):
        idx = rng.integers(0, ds.x_train.shape[0], batch)
        k = jax.random.fold_in(key, t)
        params, stats, opt = step(params, stats, opt, ds.x_train[idx], ds.y_train[idx], k)
    logits = model.apply({"params": params, "batch_stats": stats}, ds.x_test, train=False)
    return float(np.mean(np.argmax(logits, 1) == ds.y_test))


def main(trials: int = 8, steps: int = 400, batch: int = 128, store: str = "linen_bn.db"):
    return sweep_then_alone(BNMLP(), train_alone, "plain optax loop", trials, steps, batch, store)


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
