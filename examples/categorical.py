"""A categorical axis: the optimizer and the MLP's activation, each value its own compiled
program, inside one sweep; then ``fine`` keeps the values tied with the best.

Run ``python -m examples.categorical`` from the repository root (the bundled MNIST
sample, no download), or on the command line::

  python -m sweepjax coarse --dataset mnist-sample --model mlp --hidden 64 \\
      --choice optimizer=sgd,adam --choice activation=relu,gelu --trials 64 --steps 300
  python -m sweepjax fine --steps 1200

Members are spread evenly over the four combinations (config ``c`` trains with
combination ``c % 4``), each combination's members train as one population in one
program, and the results merge into one ranked table with a ``choice`` column. The
verdict compares each value's best member with its SE (the tied-set rule):
"optimizer+activation: best: adam+gelu (...); tied: ...; worse: ...".

Measured results (machine, time, numbers): docs/workflow.md#categorical-axes.
"""

from __future__ import annotations

import sys
import time

import sweepjax

CHOICES = {"optimizer": ["sgd", "adam"], "activation": ["relu", "gelu"]}


def main(store: str = "categorical.db", trials: int = 64, steps: int = 300, fine_steps=1200):
    t0 = time.perf_counter()
    # %% Coarse: 64 members, 16 per combination, four programs one after another.
    c = sweepjax.coarse(
        dataset="mnist-sample", model="mlp", hidden=64, choices=CHOICES, trials=trials,
        steps=steps, store=store, report=False,
    )  # fmt: skip
    t1 = time.perf_counter()
    print(f"coarse {c.sweep_id} ({t1 - t0:.0f} s): {c.choices_json()['verdict']}")
    w = next(m for m in c.members if m.id == c.winner.id)
    print(f"  winner {w.id} {w.choice}: val {c.winner.val_acc:.4f}, test {c.winner.test_acc:.4f}")
    # %% Fine: the values tied with the best are kept, the clearly worse dropped.
    f = sweepjax.fine(store=store, steps=fine_steps, report=False)
    t2 = time.perf_counter()
    print(f"fine {f.sweep_id} ({t2 - t1:.0f} s) keeps {dict(f.config.choices)}")
    print(f"  {f.choices_json()['verdict']}")
    w = next(m for m in f.members if m.id == f.winner.id)
    print(
        f"  winner {w.id} {w.choice}: val {f.winner.val_acc:.4f}, test {f.winner.test_acc:.4f}, "
        f"refit test {f.winner.refit_test_acc:.4f}"
    )
    return c, f


if __name__ == "__main__":
    main(store=sys.argv[1] if len(sys.argv) > 1 else "categorical.db")
