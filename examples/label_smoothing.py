"""Sweep your own hyperparameter: label smoothing, and adamw's weight decay by name.

The loss takes a third argument, ``hp``: this member's own values ``{name: scalar}``,
traced (a new value never recompiles). Declare each value once, with its box and scale::

  python -m sweepjax coarse --model examples.label_smoothing:net --dataset mnist-sample \\
      --optimizer optax.adamw --lr 1e-4 1e-1 \\
      --hparam label_smoothing=0:0.3:linear --hparam weight_decay=1e-5:1:log
  python -m sweepjax fine        # refines both axes; inherits the model and optimizer

or run ``python -m examples.label_smoothing`` (the same from Python, then fine). The
measured run is in docs/hyperparameters.md (machine and time stated there).
"""

from __future__ import annotations

import sys
import time

import flax.linen as nn
import jax
import optax

import sweepjax


class MLP(nn.Module):
    """One hidden ReLU layer on the flattened example."""

    num_classes: int = 10
    hidden: int = 128

    @nn.compact
    def __call__(self, x):
        x = x.reshape((x.shape[0], -1))
        return nn.Dense(self.num_classes)(nn.relu(nn.Dense(self.hidden)(x)))


def smoothed(logits, labels, hp):
    """Cross-entropy against labels smoothed by this member's ``label_smoothing``."""
    targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), hp["label_smoothing"])
    return optax.softmax_cross_entropy(logits, targets)


# What --model examples.label_smoothing:net names: the module with its loss.
net = sweepjax.from_flax(MLP(), loss=smoothed)

HPARAMS = {"label_smoothing": (0.0, 0.3, "linear"), "weight_decay": (1e-5, 1.0, "log")}


def main(store="label_smoothing.db", trials=64, steps=300, dataset="mnist-sample"):
    t0 = time.perf_counter()
    coarse = sweepjax.coarse(
        dataset=dataset,
        model=net,
        optimizer=optax.adamw,  # its weight_decay is the hyperparameter of that name
        lr=(1e-4, 1e-1),
        hparams=HPARAMS,
        trials=trials,
        steps=steps,
        store=store,
        report=False,
    )
    t1 = time.perf_counter()
    fine = sweepjax.fine(parent=coarse.sweep_id, store=store, trials=trials, report=False)
    t2 = time.perf_counter()
    for r, secs in ((coarse, t1 - t0), (fine, t2 - t1)):
        w = next(m for m in r.members if m.id == r.winner.id)
        box = ", ".join(f"{n} [{v.lo:.3g}, {v.hi:.3g}]" for n, v in r.config.space.user)
        print(
            f"{r.sweep_id}: {len(r.members)} members, {secs:.1f} s; box {box}; winner "
            f"lr {w.lr:.3g}, "
            + ", ".join(f"{k} {v:.3g}" for k, v in w.hparams.items())
            + f": val {r.winner.val_acc:.3f}, test {r.winner.test_acc:.3f}"
        )
    return coarse, fine


if __name__ == "__main__":
    main(*sys.argv[1:2])
