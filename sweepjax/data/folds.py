"""K-fold cross-validation as a member axis (``--folds K``, scikit-learn's GridSearchCV).

The training and validation splits are pooled (the test set is never touched) and every
pooled row is dealt to one of ``K`` folds. Replica ``r`` of a config holds out fold
``r``: the population still shares one minibatch per step, drawn from the pooled rows,
and each member weights the rows of its own held-out fold 0 (its loss is the mean over
the rows it may see), so the forward pass stays one matmul; each member is then scored
on its held-out fold only (a per-member mask over the pooled evaluation rows). A
config's score is the mean over its K folds.

Why pool: that is cross-validation's point (every row is trained on K-1 times and
scored once), and it is what GridSearchCV does with the data it is given; the
validation split would otherwise sit unused. Costs: a member sees ``(K-1)/K`` of each
minibatch (an effective batch that much smaller), and every member evaluates all pooled
evaluation rows, masked (``K`` times the evaluation work a member needs).
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sweepjax.data.dataset import Dataset


class Folds(NamedTuple):
    """K-fold cross-validation over the training rows (``--folds K``).

    ``train[N]`` / ``val[Nv]``: the fold of each training / evaluation row (in a pooled
    cross-validation both are the same rows); ``k`` the number of folds. A member holds
    out the fold given with it: it never trains on those rows and is scored on them."""

    train: np.ndarray
    val: np.ndarray
    k: int


def assign(n: int, k: int, seed: int) -> np.ndarray:
    """The fold ``[n]`` (int32 in ``[0, k)``) of each of ``n`` rows: a seeded permutation
    dealt round-robin, so the folds partition the rows and their sizes differ by at most 1.

    Example::

      np.bincount(assign(10, 3, 0))  # array([4, 3, 3])
    """
    if not 2 <= k <= n:
        raise ValueError(f"{k} folds need 2 <= k <= {n} rows")
    fold = np.empty(n, np.int32)
    fold[np.random.default_rng([seed, k]).permutation(n)] = np.arange(n) % k
    return fold


def pool(dataset: Dataset, k: int, seed: int) -> tuple[Dataset, Folds]:
    """The dataset to cross-validate on: train + validation rows pooled as both the
    training and the evaluation rows (test unchanged), and their folds."""
    x = np.concatenate([dataset.x_train, dataset.x_val])
    y = np.concatenate([dataset.y_train, dataset.y_val])
    fold = assign(x.shape[0], k, seed)
    return dataset._replace(x_train=x, y_train=y, x_val=x, y_val=y), Folds(fold, fold, k)
