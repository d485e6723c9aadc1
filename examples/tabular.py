"""Your arrays straight from Python: scikit-learn's bundled tabular sets, no file on disk.

Run ``python -m examples.tabular`` from the repository root (needs scikit-learn:
``pip install -e '.[bench]'``), or paste the cells into a notebook. Each feature is
standardised (the default for ``[N, D]`` data), the sweep is stored, and
``sweepjax.load`` reopens it. ``benchmarks/bench_tabular.py`` compares the same sweeps
with scikit-learn's LogisticRegression (``benchmarks/results/tabular-cpu.md``).
"""

from __future__ import annotations

import sys

from sklearn import datasets
from sklearn.model_selection import train_test_split

import sweepjax


def main(names=("wine", "breast_cancer", "digits"), store="tabular.db", **options):
    for name in names:
        # %% One fixed split; sweepjax carves its validation split from x_train.
        x, y = getattr(datasets, f"load_{name}")(return_X_y=True)
        x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
        # %% Arrays in: a small validation split is said in one line, with its SE.
        res = sweepjax.coarse(
            x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te, store=store,
            report=False, **options,
        )  # fmt: skip
        # %% Reopened later, in another process too: the same typed result.
        back = sweepjax.load(store, res.sweep_id)
        print(
            f"{name}: {back.dataset['n_train']} train / {back.dataset['n_val']} val rows, "
            f"scaling {back.dataset['scaling']}; winner lr {back.winner.lr:.3g}, "
            f"val {back.winner.val_acc:.3f}, test {back.winner.test_acc:.3f}"
        )


if __name__ == "__main__":
    main(store=sys.argv[1] if len(sys.argv) > 1 else "tabular.db")
