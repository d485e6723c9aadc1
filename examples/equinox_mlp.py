"""An Equinox MLP with BatchNorm (``eqx.nn.State``) and Dropout (a ``key``), written as
Equinox's docs write it (called on ONE example), swept as a population (each member built
with ``key=its own key``), then the same model trained alone with Equinox's own loop.
Needs the optional extra: ``pip install 'sweepjax[equinox]'``.

Run from the repository root::

  python -m examples.equinox_mlp                        # the bundled MNIST sample
  python -m sweepjax coarse --model examples.equinox_mlp:EqxMLP --dataset mnist-sample \\
      --optimizer adam --lr 1e-4 1e-2 --trials 8 --steps 400 --no-report

The measured results are in docs/custom-models.md.
"""

from __future__ import annotations

import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from examples.compare import sweep_then_alone


class EqxMLP(eqx.Module):
    """ravel -> Linear -> BatchNorm -> ReLU -> Dropout -> Linear logits, per example."""

    l1: eqx.nn.Linear
    bn: eqx.nn.BatchNorm
    drop: eqx.nn.Dropout
    l2: eqx.nn.Linear

    def __init__(self, num_classes: int = 10, hidden: int = 128, *, key):
        k1, k2 = jax.random.split(key)
        self.l1 = eqx.nn.Linear(784, hidden, key=k1)
        self.bn = eqx.nn.BatchNorm(hidden, axis_name="batch", momentum=0.9, mode="ema")
        self.drop = eqx.nn.Dropout(0.2)
        self.l2 = eqx.nn.Linear(hidden, num_classes, key=k2)

    def __call__(self, x, state, *, key=None):
        h, state = self.bn(self.l1(jnp.ravel(x)), state)
        return self.l2(self.drop(jax.nn.relu(h), key=key)), state


def train_alone(ds, lr: float, l2: float, steps: int, batch: int, seed: int = 0) -> float:
    """Equinox's own loop (``make_with_state``, ``filter_value_and_grad``, a vmap over
    the batch with ``axis_name="batch"``, sweepjax's L2 term on the Linear weights); the
    test accuracy at the last step."""
    key = jax.random.key(seed)
    model, state = eqx.nn.make_with_state(EqxMLP)(key=key)
    tx = optax.adam(lr)
    opt = tx.init(eqx.filter(model, eqx.is_inexact_array))

    @eqx.filter_jit
    def step(model, state, opt, x, y, k):
        def loss_fn(m):
            keys = jax.random.split(k, x.shape[0])
            logits, st = jax.vmap(
                lambda xi, ki: m(xi, state, key=ki), axis_name="batch", out_axes=(0, None)
            )(x, keys)
            ce = optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()
            return ce + l2 * (jnp.sum(m.l1.weight**2) + jnp.sum(m.l2.weight**2)) / 2, st

        (_, state), g = eqx.filter_value_and_grad(loss_fn, has_aux=True)(model)
        u, opt = tx.update(g, opt, eqx.filter(model, eqx.is_inexact_array))
        return eqx.apply_updates(model, u), state, opt

    rng = np.random.default_rng(seed)
    for t in range(steps):
        idx = rng.integers(0, ds.x_train.shape[0], batch)
        k = jax.random.fold_in(key, t)
        model, state, opt = step(model, state, opt, ds.x_train[idx], ds.y_train[idx], k)
    inference = eqx.nn.inference_mode(model)
    batched = jax.vmap(inference, axis_name="batch", in_axes=(0, None), out_axes=(0, None))
    logits, _ = eqx.filter_jit(batched)(jnp.asarray(ds.x_test), state)
    return float(np.mean(np.argmax(logits, 1) == ds.y_test))


def main(trials: int = 8, steps: int = 400, batch: int = 128, store: str = "eqx_mlp.db"):
    return sweep_then_alone(EqxMLP, train_alone, "Equinox's own loop", trials, steps, batch, store)


if __name__ == "__main__":
    main(*(int(a) if a.isdigit() else a for a in sys.argv[1:]))
