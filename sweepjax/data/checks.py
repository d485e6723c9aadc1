"""One-line remarks about the data a sweep is about to use, for the caller to show.

Pure functions of the data's statistics and split sizes: the library never prints.
"""

from __future__ import annotations

import math

import numpy as np

# Feature scales this many times apart ("orders of magnitude") under one shared scale:
# a learning rate that suits the widest feature barely moves the narrowest.
SPREAD = 100.0
# Validation splits smaller than this are called small: one row moves an accuracy by
# more than 0.5%, and the SE of an accuracy near 0.5 is above 0.035.
SMALL_VAL = 200


def spread_note(std: np.ndarray) -> str | None:
    """A line when the non-constant features' stds ``[D]`` span at least ``SPREAD``
    (and one shared scale is used), naming the extremes, else None.

    Example:
      >>> spread_note(np.array([0.5, 300.0]))[:47]
      'sweepjax: feature scales differ 600x (std 0.5 '
    """
    live = np.flatnonzero(np.isfinite(std) & (std > 0))
    if len(live) < 2:
        return None
    lo, hi = live[np.argmin(std[live])], live[np.argmax(std[live])]
    ratio = float(std[hi] / std[lo])
    if ratio < SPREAD:
        return None
    return (
        f"sweepjax: feature scales differ {ratio:,.0f}x (std {std[lo]:.3g} of feature {lo} "
        f"to {std[hi]:.3g} of feature {hi}) and `scaling` is global (one shared scale); "
        "the small features barely move the model: use `scaling` feature to standardise "
        "each feature"
    )


def small_validation(n_val: int, n_pool: int, real: bool = False) -> str | None:
    """A line when the validation split is small (under ``SMALL_VAL`` rows): the SE of a
    validation accuracy it implies (at most ``sqrt(0.25 / n_val)``, at accuracy 0.5) and
    the cross-validation that uses all ``n_pool`` train + validation rows; else None.

    Example:
      >>> small_validation(13, 143)[:48]
      'note: the validation split has only 13 rows: a '
    """
    if n_val >= SMALL_VAL:
        return None
    k = 5 if n_pool >= 10 else 2
    if real:  # a regression's targets: no accuracy to quote
        return (
            f"note: the validation split has only {n_val} rows: a validation error's SE is "
            f"about {math.sqrt(2.0 / n_val):.2f} of its value, so closer members are not told "
            f"apart; `folds` {k} scores every config on all {n_pool} train + validation rows"
        )
    return (
        f"note: the validation split has only {n_val} rows: a validation accuracy moves "
        f"{1 / n_val:.3f} per row and its SE is up to {math.sqrt(0.25 / n_val):.3f}, so "
        f"closer members are not told apart; `folds` {k} scores every config on all "
        f"{n_pool} train + validation rows"
    )
