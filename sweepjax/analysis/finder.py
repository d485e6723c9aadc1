"""The learning-rate finder's rates trained in stages: only where a label can change.

The finder's verdict is the smallest and largest ``good`` rate of a log grid. Far
below the good range every rate barely moves the loss and far above it every rate
diverges; only the two edges need the grid's resolution. So the rates train in
populations of at most :data:`STAGE_WIDTH`: first every few grid points across the whole
grid, then every untrained point between the lowest good rate and its trained neighbour
below, and between the highest and its trained neighbour above, until those are trained
(two stages, 16 of 32 rates, in the usual case; ``auto --budget``'s 16-rate grid: every
other rate, then the 2-4 next to the good range's edges, 10-12 of 16). The bar for "good" is
half the largest loss fall among the trained rates: where the fall peaks between two
trained rates it can be a little lower than the whole grid's, and the good range then a
little wider, never narrower; where the fall grows with the rate up to divergence (plain
SGD's usual picture) the labels are the whole grid's exactly (both tested). Each rate keeps
its grid position as its member id, so it trains as it would in the whole grid's
population (the same initial weights and minibatches). The labels are
:func:`label_lrs`'s over the trained rates; an untrained rate takes its trained
neighbours' label (:func:`fill`).

On a 2-core CPU the width-256 MLP's finder is most of ``auto``'s first minute: a member
fills the cores, so time is proportional to member-steps, and half the rates is half
the time. A stage trains in a population of :func:`stage_rows` rows: the power of two at
or above its rate count, or a larger program the finder already holds when its padding
rows cost less than compiling the smaller one (measured by the stages before). The
width-256 MLP's second stage of 2-4 rates then costs those rates' steps (padded to 8 it
cost as much as the first stage, so the 16-rate grid used to train all 16 at once); the
softmax's, a fraction of a cold compile, stays in the first stage's program (warm, where
loading the small program may cost less, it moves).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import numpy as np

from sweepjax.engine import active, recompile

STAGE_WIDTH = 8  # the most rates a stage trains at once (stage_rows: its program rows)
# A non-diverged rate is "good" when its loss fell by at least this fraction of the
# best rate's fall in the same number of steps; otherwise it barely moved (below the
# best rate: too low) or thrashed without exploding (above it: too high).
LR_MIN_PROGRESS = 0.5


class Trained(NamedTuple):
    """Per grid rate ``[N]``: the first and last training loss (NaN where untrained),
    the step it diverged at (-1: did not, or untrained) and whether it trained."""

    initial_loss: np.ndarray
    final_loss: np.ndarray
    diverged_at: np.ndarray
    trained: np.ndarray


def label_lrs(lrs, initial_loss, final_loss, diverged, min_progress: float = LR_MIN_PROGRESS):
    """Label each learning rate ``too_low`` / ``good`` / ``too_high``.

    Args:
      lrs, initial_loss, final_loss, diverged: ``[N]``; ``final_loss`` may be NaN where
        ``diverged``.
      min_progress: a rate is good when its relative loss decrease is at least this
        fraction of the best rate's.

    Diverged rates are too high. A rate that made too little progress is too low when it
    lies below the best rate and too high (oscillating without exploding) above it.
    """
    lrs = np.asarray(lrs, float)
    dec = relative_fall(initial_loss, final_loss, diverged)
    if not np.isfinite(dec).any():
        return ["too_high"] * len(lrs)
    best = int(np.argmax(dec))
    labels = []
    for i, d in enumerate(dec):
        if d == -np.inf:
            labels.append("too_high")
        elif d >= min_progress * dec[best] and dec[best] > 0:
            labels.append("good")
        else:
            labels.append("too_low" if lrs[i] < lrs[best] else "too_high")
    return labels


def relative_fall(initial_loss, final_loss, diverged) -> np.ndarray:
    """Each rate's loss fall as a fraction of its initial loss; -inf where it diverged or
    was not trained (NaN)."""
    init = np.asarray(initial_loss, float)
    dec = (init - np.asarray(final_loss, float)) / init
    return np.where(np.asarray(diverged, bool) | ~np.isfinite(dec), -np.inf, dec)


def first_stage(n: int, width: int = STAGE_WIDTH) -> np.ndarray:
    """Grid positions of the first stage: ``width`` spread evenly over ``n``, both ends in."""
    return np.unique(np.round(np.linspace(0, n - 1, min(width, n))).astype(np.int64))


def _gap(done: np.ndarray, i: int, step: int) -> np.ndarray:
    """Untrained positions from ``i`` (exclusive) to its nearest trained neighbour in
    direction ``step`` (-1: below, +1: above; the grid's end when there is none)."""
    j = i + step
    out = []
    while 0 <= j < len(done) and not done[j]:
        out.append(j)
        j += step
    return np.asarray(out, np.int64)


def next_stage(done: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Untrained grid positions that could move an edge of the good rates: those
    between the lowest good rate and its nearest trained neighbour below, and between
    the highest and its nearest trained neighbour above; every untrained one when no
    trained rate is good (a narrow good range may lie between the trained ones)."""
    ev = np.flatnonzero(done)
    good = ev[labels[ev] == "good"]
    if not len(good):
        return np.flatnonzero(~done)
    return np.unique(np.r_[_gap(done, good.min(), -1), _gap(done, good.max(), 1)])


def fill(labels: np.ndarray, done: np.ndarray) -> list[str]:
    """Every grid rate's label: a trained rate's own, an untrained rate its trained
    neighbours' (the lower one's where they differ: inside the good range)."""
    ev = np.flatnonzero(done)
    out = []
    for i in range(len(done)):
        if done[i]:
            out.append(str(labels[i]))
            continue
        lower = ev[ev < i]
        out.append(str(labels[lower.max()] if len(lower) else labels[ev.min()]))
    return out


def stage_rows(n: int, held, costs: recompile.Costs, steps: int, width: int = STAGE_WIDTH) -> int:
    """Rows of the population that trains a stage of ``n`` rates: the power of two at or
    above ``n`` (at most ``width``), unless a program the finder ``held`` (their row
    counts) has room for them and its padding rows' ``steps`` cost less than compiling
    the smaller one (:func:`sweepjax.engine.recompile.pays` on the stages' ``costs``)."""
    new = active.bucket(n, width, 1)  # the sizes a shrinking population compiles
    room = sorted(r for r in held if r >= n)
    if new in held or not room:
        return new
    return new if recompile.pays(room[0], new, steps, costs, held=False) else room[0]


def staged(
    lrs: np.ndarray,
    train: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]],
    min_progress: float = LR_MIN_PROGRESS,
    width: int = STAGE_WIDTH,
) -> tuple[Trained, list[str]]:
    """Train the grid ``lrs`` in stages (module docstring). ``train(positions)`` trains
    those grid positions (at most ``width``) as one population and returns their
    ``(initial_loss, final_loss, diverged_at)``. Returns what trained and every grid
    rate's label."""
    n = len(lrs)
    init, final = np.full(n, np.nan), np.full(n, np.nan)
    div, done = np.full(n, -1, np.int64), np.zeros(n, bool)
    labels = np.array(["too_low"] * n, dtype=object)
    todo = first_stage(n, width)
    while len(todo):
        for part in np.array_split(todo, -(-len(todo) // width)):
            i0, f, d = (np.asarray(v)[: len(part)] for v in train(part))
            init[part], final[part], div[part], done[part] = i0, f, d, True
        ev = np.flatnonzero(done)
        labels[ev] = label_lrs(lrs[ev], init[ev], final[ev], div[ev] >= 0, min_progress)
        todo = next_stage(done, labels)
    return Trained(init, final, div, done), fill(labels, done)
