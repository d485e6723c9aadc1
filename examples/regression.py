"""A regression swept by mean squared error: scikit-learn's bundled diabetes set.

Run ``python -m examples.regression`` from the repository root (needs scikit-learn:
``pip install -e '.[bench]'``). ``metric="mse"`` reads the targets as real numbers (the
diabetes targets are whole-number floats, which would otherwise be read as class
labels), gives the model one output, trains it on standardised targets and scores,
ranks and stops members by their validation MSE in the targets' own units, lowest
first. The built-in softmax with one output is linear regression with an L2 penalty
(ridge regression trained by SGD); the MLP adds a hidden layer.

Compared on the same split with scikit-learn's LinearRegression and RidgeCV (its alpha
chosen by leave-one-out cross-validation on the training rows). Measured on a shared
2-core CPU (load average 6.9: other jobs running), ``python -m examples.regression``,
2026-12-06, 55 s for the whole script (docs/metrics.md)::

    model                                   val mse    test mse   wall s
    sklearn LinearRegression                      -      3424.3      0.0
    sklearn RidgeCV                               -      3408.8      0.0
    sweepjax softmax (linear) coarse+fine    4024.5      3332.6     27.6
    sweepjax mlp coarse                      3490.2      3482.1     23.2

The linear winner's test MSE is its refit's (retrained on train + validation). The
validation split is 35 rows, so a validation MSE carries an SE of ~750 (the tables
say so): the 89 test rows separate these models as loosely; the claim is parity with
the closed-form fits, in the targets' own units.
"""

from __future__ import annotations

import sys
import time

import numpy as np
from sklearn.datasets import load_diabetes
from sklearn.linear_model import LinearRegression, RidgeCV
from sklearn.model_selection import train_test_split

import sweepjax


def split():
    """One fixed split; sweepjax carves its validation rows from the training ones."""
    x, y = load_diabetes(return_X_y=True)
    return train_test_split(x, y, test_size=0.2, random_state=0)


def sklearn_rows(x_tr, x_te, y_tr, y_te) -> list[tuple[str, float, float, float]]:
    rows = []
    for name, model in (
        ("sklearn LinearRegression", LinearRegression()),
        ("sklearn RidgeCV", RidgeCV(alphas=np.geomspace(1e-4, 1e2, 61))),
    ):
        t0 = time.perf_counter()
        model.fit(x_tr, y_tr)
        mse = float(np.mean((model.predict(x_te) - y_te) ** 2))
        rows.append((name, float("nan"), mse, time.perf_counter() - t0))
    return rows


def main(store: str = "regression.db", trials: int = 64, steps: int = 300):
    x_tr, x_te, y_tr, y_te = split()
    arrays = dict(x_train=x_tr, y_train=y_tr, x_test=x_te, y_test=y_te)
    common = dict(store=store, report=False, metric="mse", trials=trials, **arrays)
    rows = sklearn_rows(x_tr, x_te, y_tr, y_te)
    # %% The linear model: coarse, then a fine round (refit on train + validation).
    t0 = time.perf_counter()
    c = sweepjax.coarse(model="softmax", steps=steps, **common)
    f = sweepjax.fine(parent=c.sweep_id, **common)
    w = f.winner
    test = w.refit_test_acc if w.refit_test_acc is not None else w.test_acc
    rows.append(
        ("sweepjax softmax (linear) coarse+fine", w.val_acc, test, time.perf_counter() - t0)
    )
    # %% The MLP, one coarse round.
    t0 = time.perf_counter()
    m = sweepjax.coarse(model="mlp", steps=steps, **common)
    rows.append(
        ("sweepjax mlp coarse", m.winner.val_acc, m.winner.test_acc, time.perf_counter() - t0)
    )
    print(f"{'model':<38}{'val mse':>9}{'test mse':>12}{'wall s':>9}")
    for name, val, test, secs in rows:
        v = "-" if not np.isfinite(val) else f"{val:.1f}"
        print(f"{name:<38}{v:>9}{test:>12.1f}{secs:>9.1f}")
    return rows


if __name__ == "__main__":
    main(store=sys.argv[1] if len(sys.argv) > 1 else "regression.db")
