"""Sweep your own model from Python, notebook style.

Run ``python -m examples.own_model digits.npz`` from the repository root (make the npz
with ``python -m examples.make_npz digits.npz``), or paste the cells into a notebook.
tests/test_custom.py runs :func:`main` on a tiny generated npz.
"""

from __future__ import annotations

import sys

import flax.linen as nn
import jax
import optax

import sweepjax


# %% A model defined right here: any flax module mapping [B, ...] to logits [B, K].
class Net(nn.Module):
    num_classes: int = 10

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(self.num_classes)(nn.relu(nn.Dense(32)(x)))


# %% An optional loss: per-example, logits [B, K] and integer labels [B] -> [B].
def smoothed_cross_entropy(logits, labels):
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), 0.1)
    return optax.softmax_cross_entropy(logits, targets)


def main(data="digits.npz", store="own.db", trials=16, steps=100, classes=10):
    # %% Coarse: lr, l2 (and lr_decay, init_scale, momentum) are swept exactly as for
    # the built-in models; the whole population is one compiled program.
    coarse = sweepjax.coarse(
        dataset=f"npz:{data}",
        model=Net(num_classes=classes),
        loss=smoothed_cross_entropy,
        optimizer="adam",
        lr=(1e-4, 1e-1),
        trials=trials,
        steps=steps,
        store=store,
        report=False,
    )
    # %% Fine: inherits the model and its loss (in this process; in a new one, pass
    # model= and loss= again: the model was defined in __main__).
    fine = sweepjax.fine(parent=coarse.sweep_id, store=store, steps=2 * steps, report=False)
    return coarse, fine


if __name__ == "__main__":
    c, f = main(*sys.argv[1:2])
    for r in (c, f):
        w = r.winner
        print(f"{r.sweep_id}: lr {w.lr:.3g} val {w.val_acc:.3f} test {w.test_acc:.3f}")
