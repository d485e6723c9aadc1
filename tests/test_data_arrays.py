"""Data as users have it: per-feature standardisation, arrays straight from Python, the
one-line remarks about the data, and reopening a stored sweep (``sweepjax.load``)."""

from __future__ import annotations

import math

import numpy as np
import pytest

import sweepjax
from sweepjax.config import DataConfig
from sweepjax.data import Dataset, from_arrays, load_dataset
from sweepjax.data.checks import SMALL_VAL, small_validation, spread_note
from sweepjax.errors import ConfigError, DataError, StoreError
from sweepjax.flows.runner import Callbacks

# Feature stds 0.01 .. 1000: five orders of magnitude, as wine's ratios next to proline.
SCALES = np.logspace(-2, 3, 6)


def tabular(n=240, seed=0):
    """``[n, 6]`` features on very different scales, 3 classes from a linear teacher on
    the standardised features (so standardising is what makes them learnable)."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, len(SCALES)))
    y = np.argmax(z @ rng.normal(size=(len(SCALES), 3)), axis=1)
    return 50.0 + z * SCALES, y


# ---------------------------------------------------------------- standardisation


def test_per_feature_standardisation_matches_numpy_by_hand():
    """Each feature minus its training mean over its training std (ddof 0, as
    StandardScaler), the same statistics applied to validation and test."""
    x, y = tabular()
    tr, va, te = slice(0, 160), slice(160, 200), slice(200, 240)
    ds = from_arrays(x[tr], y[tr], x[te], y[te], x_val=x[va], y_val=y[va])
    assert ds.info.scaling == "feature"
    mu, sd = x[tr].mean(0), x[tr].std(0)  # float64, by hand
    for got, rows in ((ds.x_train, tr), (ds.x_val, va), (ds.x_test, te)):
        np.testing.assert_allclose(got, (x[rows] - mu) / sd, rtol=0, atol=2e-5)
    np.testing.assert_allclose(ds.scale, sd, rtol=1e-6)
    np.testing.assert_array_equal(ds.y_val, y[va])  # a given validation split is kept


def test_global_scaling_is_one_std_over_all_centred_values():
    x, y = tabular()
    ds = from_arrays(x[:200], y[:200], x[200:], y[200:], x_val=x[:20], y_val=y[:20],
                     scaling="global")  # fmt: skip
    centred = x[:200] - x[:200].mean(0)
    scale = math.sqrt((centred**2).mean())
    assert ds.info.scaling == "global" and ds.scale == pytest.approx(scale, rel=1e-9)
    np.testing.assert_allclose(ds.x_test, (x[200:] - x[:200].mean(0)) / scale, atol=1e-5)


def test_auto_standardises_tabular_rows_and_not_images(tmp_path):
    x, y = tabular()
    images = np.random.default_rng(1).integers(0, 256, (240, 4, 4)).astype(np.uint8)
    assert from_arrays(x, y).info.scaling == "feature"
    img = from_arrays(images, y)
    assert img.info.scaling == "global" and np.ndim(img.scale) == 0
    assert from_arrays(images, y, scaling="feature").info.scaling == "feature"
    # and the same rule for a file
    np.savez(tmp_path / "t.npz", x_train=x, y_train=y)
    assert load_dataset(DataConfig(f"npz:{tmp_path / 't.npz'}")).info.scaling == "feature"


def test_far_apart_scales_are_noted_only_when_one_scale_is_shared():
    x, y = tabular()
    tr, va, te = slice(0, 200), slice(200, 220), slice(220, 240)
    shared = from_arrays(x[tr], y[tr], x[te], y[te], x[va], y[va], scaling="global")
    note = [n for n in shared.info.note.splitlines() if "feature scales" in n]
    ratio = x[tr, 5].std() / x[tr, 0].std()  # about 1e5: stds of 0.01 and 1000
    assert len(note) == 1 and f"differ {ratio:,.0f}x" in note[0]
    assert "std of feature 0" not in note[0] and "of feature 0 to" in note[0]
    assert "`scaling` feature" in note[0]
    assert "feature scales" not in (from_arrays(x, y).info.note or "")
    assert spread_note(np.array([1.0, 99.0, 0.0])) is None  # under 100x; constant ignored
    assert spread_note(np.array([1.0, 100.0])) is not None


# ---------------------------------------------------------------- arrays in


def test_arrays_give_the_npz_dataset_bit_for_bit(tmp_path):
    """No test set given: the same fixed 10% is held out as for an npz file, the same
    seeded validation split carved, the same scaling: identical arrays and hash."""
    x, y = tabular()
    p = tmp_path / "d.npz"
    np.savez(p, x_train=x, y_train=y)
    a = from_arrays(x, y, seed=3)
    b = load_dataset(DataConfig(f"npz:{p}", seed=3))
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "mean", "scale"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert a.info.sha256 == b.info.sha256 and a.info.name == "arrays"
    assert Dataset.from_arrays(x, y, seed=3).x_val.tobytes() == b.x_val.tobytes()


SMALL = dict(trials=4, steps=10, batch_size=32, schedule="full", report=False)


def split_npz(tmp_path):
    x, y = tabular()
    p = tmp_path / "d.npz"
    np.savez(p, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    return dict(x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:]), p


def test_coarse_from_arrays_is_stored_reopened_and_noted(tmp_path):
    """A sweep of arrays from Python: the stored dataset records the name ``arrays`` and
    the scaling used, the tiny validation split is said once with its SE, ``load``
    reopens the same typed result, and a fine round asks for the arrays again."""
    arrays, _ = split_npz(tmp_path)
    notes: list[str] = []
    store = tmp_path / "a.db"
    a = sweepjax.coarse(**arrays, store=str(store), callbacks=Callbacks(note=notes.append), **SMALL)
    assert a.dataset["name"] == "arrays" and a.dataset["scaling"] == "feature"
    # 20 validation rows: the tiny-split line, with the SE it implies, once
    small_line = [n for n in notes if "validation split has only 20 rows" in n]
    assert len(small_line) == 1 and f"up to {math.sqrt(0.25 / 20):.3f}" in small_line[0]
    back = sweepjax.load(store)
    assert back.sweep_id == a.sweep_id and back.winner.id == a.winner.id
    assert back.winner.test_acc == a.winner.test_acc
    assert [m.best_val_acc for m in back.members] == [m.best_val_acc for m in a.members]
    assert back.dataset["scaling"] == "feature" and back.config.data.scaling == "feature"
    assert back.config.spec.scaling == "feature"  # what a fine round inherits
    assert sweepjax.load(store, a.sweep_id, curves=False).winner.id == a.winner.id
    # a ready Dataset (what train_population takes) is the same sweep
    c = sweepjax.coarse(dataset=Dataset.from_arrays(**arrays), store=str(store), **SMALL)
    assert [m.final_val_loss for m in c.members] == [m.final_val_loss for m in a.members]
    with pytest.raises(ConfigError, match="was scaled `scaling` feature, not global"):
        sweepjax.coarse(dataset=Dataset.from_arrays(**arrays), scaling="global", **SMALL)
    # a fine round needs the arrays again: the store keeps results, not data
    with pytest.raises(DataError, match="pass them again") as e:
        sweepjax.fine(store=str(store), report=False)
    assert "\n" not in str(e.value)


@pytest.mark.slow
def test_coarse_from_arrays_equals_coarse_from_the_npz(tmp_path):
    """The same sweep bit for bit from arrays and from the same arrays in an npz file:
    every member's scores, the winner and its test score, the data's hash."""
    arrays, p = split_npz(tmp_path)
    a = sweepjax.coarse(**arrays, store=str(tmp_path / "a.db"), **SMALL)
    b = sweepjax.coarse(dataset=f"npz:{p}", store=str(tmp_path / "b.db"), **SMALL)
    assert [m.best_val_acc for m in a.members] == [m.best_val_acc for m in b.members]
    assert [m.final_val_loss for m in a.members] == [m.final_val_loss for m in b.members]
    assert a.winner.id == b.winner.id and a.winner.test_acc == b.winner.test_acc
    assert a.dataset["sha256"] == b.dataset["sha256"]


def test_bad_arrays_are_one_line_without_their_contents():
    x, y = tabular()
    x[:, 0] = 123456.789  # a value that must not appear in any message
    cases = [
        (ConfigError, dict(dataset=(x, y))),
        (ConfigError, dict(dataset=x)),
        (DataError, dict(x_train=x, y_train=y[:-1])),
        (DataError, dict(x_train=x)),
        (DataError, dict(x_train=[[1.0, 2.0], [3.0]] * 50, y_train=y[:100])),
        (DataError, dict(x_train=x[:, 0], y_train=y)),
        (DataError, dict(x_train=x, y_train=y, x_test=x[:5], y_test=y[:4])),
        (ConfigError, dict(x_train=x, y_train=y, dataset="mnist-sample")),
    ]
    for kind, kw in cases:
        with pytest.raises(kind) as e:
            sweepjax.coarse(store="unused.db", **kw)
        msg = str(e.value)
        assert "\n" not in msg and "123456" not in msg and len(msg) < 400, msg
    with pytest.raises(ConfigError, match="got a tuple of 2; pass arrays as x_train=X"):
        sweepjax.coarse(dataset=(x, y))


# ---------------------------------------------------------------- remarks, load


def test_small_validation_line_says_the_se_it_implies_and_suggests_folds():
    line = small_validation(13, 143)
    assert line.count("\n") == 0 and "only 13 rows" in line
    assert f"{1 / 13:.3f} per row" in line and f"up to {math.sqrt(0.25 / 13):.3f}" in line
    assert "`folds` 5" in line and "all 143 train + validation rows" in line
    assert small_validation(SMALL_VAL - 1, 2000) is not None
    assert small_validation(SMALL_VAL, 2000) is None  # the bundled sample's 400: silent


def test_load_refuses_in_one_line(tmp_path):
    with pytest.raises(StoreError, match="no sweepjax store at"):
        sweepjax.load(tmp_path / "none.db")
    from sweepjax.store import Store

    Store.open(tmp_path / "empty.db", create=True).close()
    with pytest.raises(StoreError, match="no finished sweep in"):
        sweepjax.load(tmp_path / "empty.db")
    with pytest.raises(StoreError):
        sweepjax.load(tmp_path / "empty.db", "c7")
