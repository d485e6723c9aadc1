"""The learning-rate finder in stages: the labels of the whole grid from about half its
rates, each stage one population of the same width."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sweepjax.analysis import finder
from sweepjax.analysis.sanity import LR_FINDER_HI, LR_FINDER_LO, find_lr_range, finder_config
from sweepjax.config import DataConfig, ModelConfig, TrainConfig
from sweepjax.data import load_dataset
from sweepjax.engine import train_population
from sweepjax.engine.compact import boundaries
from sweepjax.engine.hparams import HParams

GRID = np.geomspace(LR_FINDER_LO, LR_FINDER_HI, 32)


def _curve(peak: int, width: float, diverge: int, floor: float):
    """A unimodal loss fall over the grid (largest at ``peak``), diverged from
    ``diverge`` on: ``(initial, final, diverged_at)`` per position."""
    i = np.arange(32)
    fall = floor + (0.9 - floor) * np.exp(-(((i - peak) / width) ** 2))
    init = np.full(32, 2.3)
    final = np.where(i >= diverge, np.nan, init * (1 - fall))
    return init, final, np.where(i >= diverge, 3, -1)


def _staged(curve):
    init, final, div = curve
    calls = []

    def train(pos):
        calls.append(np.asarray(pos).copy())
        return init[pos], final[pos], div[pos]

    trained, labels = finder.staged(GRID, train)
    return trained, labels, calls


def _good(labels):
    idx = [i for i, x in enumerate(labels) if x == "good"]
    return (min(idx), max(idx)) if idx else None


@settings(max_examples=60, deadline=None)
@given(st.integers(4, 27), st.floats(1.0, 8.0), st.integers(0, 6), st.floats(0.0, 0.3))
def test_staged_good_range_holds_the_whole_grids_for_a_unimodal_fall(peak, width, after, floor):
    curve = _curve(peak, width, min(31, peak + 1 + after), floor)
    trained, labels, calls = _staged(curve)
    init, final, div = curve
    whole = finder.label_lrs(GRID, init, final, div >= 0)
    (lo, hi), (wlo, whi) = _good(labels), _good(whole)
    assert lo <= wlo and hi >= whi  # never narrower
    if trained.trained[peak]:  # the bar is the whole grid's: the same labels
        assert labels == whole
    # Every call is one population of at most the stage width, each rate trained once;
    # the trained rates' numbers are theirs.
    assert all(1 <= len(c) <= finder.STAGE_WIDTH for c in calls)
    assert sum(len(c) for c in calls) == trained.trained.sum()
    np.testing.assert_array_equal(trained.final_loss[trained.trained], final[trained.trained])


@settings(max_examples=40, deadline=None)
@given(st.integers(6, 31), st.floats(0.0, 0.3), st.floats(0.5, 3.0))
def test_a_fall_growing_up_to_divergence_gives_the_whole_grids_labels(diverge, floor, power):
    i = np.arange(32)
    fall = floor + (0.9 - floor) * (i / 31) ** power
    init, div = np.full(32, 2.3), np.where(i >= diverge, 2, -1)
    final = np.where(div >= 0, np.nan, init * (1 - fall))
    _, labels, calls = _staged((init, final, div))
    assert labels == finder.label_lrs(GRID, init, final, div >= 0)
    assert len(calls) <= 3


def test_the_usual_finder_trains_half_the_grid_in_two_stages():
    # Good from about 1e-3 to 1 (the MNIST softmax's picture), diverged above 3.
    trained, labels, calls = _staged(_curve(peak=20, width=5.0, diverge=24, floor=0.01))
    assert len(calls) == 2 and len(calls[0]) == 8 and len(calls[1]) <= 8
    assert trained.trained.sum() == 8 + len(calls[1]) <= 16
    assert labels[0] == "too_low" and labels[-1] == "too_high" and "good" in labels


def test_a_sixteen_rate_grid_trains_ten_rates_with_the_whole_grids_labels():
    # auto --budget's 16 rates: every other one, then the untrained ones next to the good
    # range's edges (between its outermost good rates and their trained neighbours).
    init, final, div = _curve(peak=10, width=3.0, diverge=13, floor=0.01)
    init, final, div = init[::2], final[::2], div[::2]
    calls = []

    def train(pos):
        calls.append(len(pos))
        return init[pos], final[pos], div[pos]

    trained, labels = finder.staged(GRID[::2], train)
    whole = finder.label_lrs(GRID[::2], init, final, div >= 0)
    assert calls[0] == 8 and 2 <= calls[1] <= 4 and len(calls) == 2
    assert trained.trained.sum() == sum(calls) and labels == whole


@pytest.mark.parametrize(
    "n, held, per_step, compile_s, rows",
    [
        (8, set(), np.nan, np.nan, 8),  # nothing held: the power of two at or above n
        (2, {8}, 2.7e-3, 2.7, 2),  # the MLP, cold: 6 x 300 padding rows are 4.9 s > 2.7 s
        (2, {8}, 1e-4, 1.9, 8),  # the softmax, cold: 0.18 s of padding < a 1.9-s compile
        (2, {8}, 1e-4, 0.05, 2),  # warm: loading the small program is cheaper still
        (3, {8, 4}, 1e-4, 1.9, 4),  # a held program of the right size is free
        (5, {4}, 1e-4, 1.9, 8),  # no held program has room
        (20, set(), np.nan, np.nan, 8),  # never wider than a stage
    ],
)
def test_a_stage_trains_in_the_smallest_program_unless_padding_a_held_one_is_cheaper(
    n, held, per_step, compile_s, rows
):
    from sweepjax.engine.recompile import Costs

    assert finder.stage_rows(n, held, Costs(per_step, compile_s), 300) == rows


def test_nothing_good_in_the_first_stage_trains_every_rate():
    # Every first-stage rate made the loss worse; two rates between them are good.
    init = np.full(32, 2.3)
    final = np.where(np.isin(np.arange(32), [11, 12]), 0.5, 2.31)
    div = np.where(np.arange(32) >= 26, 2, -1)
    trained, labels, _ = _staged((init, np.where(div >= 0, np.nan, final), div))
    assert trained.trained.all() and [i for i, x in enumerate(labels) if x == "good"] == [11, 12]


@pytest.mark.slow  # ~10 s: two finder runs of the softmax on the sample
def test_the_staged_finder_trains_each_rate_as_the_whole_grid_does():
    ds = load_dataset(DataConfig(dataset="mnist-sample"))
    cfg = TrainConfig()
    staged = find_lr_range(ds, ModelConfig(), cfg, steps=60)
    whole = find_lr_range(ds, ModelConfig(), cfg, steps=60, width=32)
    assert staged.trained.sum() < 32 and staged.labels == whole.labels
    assert (staged.lo, staged.hi) == (whole.lo, whole.hi)
    t = staged.trained
    np.testing.assert_allclose(staged.final_loss[t], whole.final_loss[t], rtol=1e-5)


@pytest.mark.parametrize("steps", [1, 2, 20, 130, 300, 301])
def test_the_finders_last_block_is_an_ordinary_runs_last_block(steps):
    # A rate's final loss is its last block's mean: that block must not change length.
    cfg = TrainConfig(steps=steps)
    ordinary = boundaries(steps, cfg.resolved_eval_every, cfg.resolved_chunk_steps, ())
    f = finder_config(TrainConfig(), steps)
    ends = boundaries(steps, f.resolved_eval_every, f.resolved_chunk_steps, ())
    assert f.steps == steps and ends[-1] == steps and len(ends) <= 2
    assert ends[-2:] == ordinary[-2:] if len(ordinary) > 1 else ends == ordinary


def test_the_finders_two_blocks_train_each_rate_as_twenty_blocks_do():
    ds = load_dataset(DataConfig(dataset="mnist-sample"))
    cfg = TrainConfig()
    pos = finder.first_stage(32)
    hp = HParams.create(lr=GRID[pos], l2=1e-6)
    two = train_population(ds, hp, ModelConfig(), finder_config(cfg, 60), member_ids=pos)
    twenty = cfg.replace(steps=60, eval_every=None, chunk_steps=60)
    ref = train_population(ds, hp, ModelConfig(), twenty, member_ids=pos)
    assert len(two.curves.step) == 2 and len(ref.curves.step) == 20
    np.testing.assert_array_equal(two.diverged_at >= 0, ref.diverged_at >= 0)
    assert (ref.diverged_at >= 0).any() and (ref.diverged_at < 0).sum() >= 3
    np.testing.assert_array_equal(two.initial_loss, ref.initial_loss)
    np.testing.assert_allclose(two.final_train_loss, ref.final_train_loss, rtol=1e-5)


def test_the_best_rate_is_the_largest_relative_fall_among_trained_live_rates():
    """``LrRange.best`` (where auto's ASHA starts): the peak of the fall, never a rate
    that diverged or was not trained (NaN), and None when every trained rate diverged."""
    from sweepjax.analysis.sanity import LrRange

    init, final, div = _curve(peak=12, width=3.0, diverge=20, floor=0.1)
    final = final.copy()
    final[21] = 0.0  # a diverged rate's finite loss must not win
    div = div.copy()
    div[21] = 5
    final[13] = np.nan  # untrained: no loss at all

    def rng(i, f, d):
        return LrRange(None, None, GRID, ["good"] * 32, i, f, d, 300, (GRID[0], GRID[-1]))

    assert rng(init, final, div).best == GRID[12]
    init[12] = 1.0  # the same absolute fall from a lower start is a larger relative one
    final[12] = 1.0 * (1 - 0.95)
    assert rng(init, final, div).best == GRID[12]
    final[11] = init[11] * 0.01  # 99% beats 95%
    assert rng(init, final, div).best == GRID[11]
    assert rng(init, final, np.full(32, 3)).best is None
