"""Fixed costs: the refit's time is reported (``timing.refit_s``); prepared data comes
from a cache that equals a fresh preparation and misses when anything changes."""

from __future__ import annotations

import dataclasses
import shutil
import types

import numpy as np
import pytest

import sweepjax.data as data
import sweepjax.data.cache as dcache
import sweepjax.flows.refit as refit_mod
from sweepjax.config import DataConfig
from sweepjax.data import Dataset
from sweepjax.data.sample import SAMPLE_PATH
from sweepjax.results.records import TimingRecord, Winner


class _Store:
    """Records what refit_winner stores."""

    def __init__(self):
        self.timing, self.refit = None, None

    def set_refit(self, sid, steps, acc):
        self.refit = (sid, steps, acc)

    def set_timing(self, sid, timing):
        self.timing = (sid, timing)


def test_refit_time_is_reported_and_stored_apart_from_the_sweeps_training(monkeypatch):
    """refit_s is the clock's advance across refit_member (2.5 s of a fake clock), stored
    with the rest of the timing record; the sweep's own train_s is left as it was."""
    clock = iter([10.0, 12.5])
    monkeypatch.setattr(refit_mod.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(refit_mod, "refit_member", lambda *a: refit_mod.Refit(40, 0.91, None))
    member = types.SimpleNamespace(id=3)
    result = types.SimpleNamespace(
        sweep_id="f1",
        winner=Winner(3, 0.1, 1e-4, 0.9, 0.88),
        members=[member],
        timing=TimingRecord(1.0, 4.0, 100.0),
    )
    cfg = types.SimpleNamespace(model=None, train=None)
    cfg.member_config = lambda i: cfg  # no categorical axes: every member trains as cfg
    st = _Store()
    cb = types.SimpleNamespace(say=lambda m: None)
    out = refit_mod.refit_winner(result, cfg, None, st, cb)
    assert out.timing.refit_s == 2.5 and out.timing.train_s == 4.0
    assert st.timing == ("f1", {**TimingRecord(1.0, 4.0, 100.0).as_dict(), "refit_s": 2.5})
    assert st.refit == ("f1", 40, 0.91) and out.winner.refit_steps == 40


def _same(a: Dataset, b: Dataset) -> None:
    """Bit for bit: every array's dtype, shape and bytes; the scale's type; the info."""
    for name in Dataset._fields:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and x.shape == y.shape, name
            assert np.ascontiguousarray(x).tobytes() == np.ascontiguousarray(y).tobytes(), name
        else:
            assert type(x) is type(y) and x == y, name


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "prepared"
    monkeypatch.setenv(dcache.ENV_DIR, str(root))
    monkeypatch.setattr(data, "_LAST", None)  # no in-process memo between the loads
    return root


@pytest.mark.parametrize("scaling", ["global", "feature"])
def test_the_cached_dataset_is_the_freshly_prepared_one_bit_for_bit(cache, scaling):
    """A first load writes one entry; a second maps it (read-only memory maps) and equals
    a dataset prepared from the raw arrays, bit for bit, info included."""
    cfg = DataConfig(dataset="mnist-sample", seed=3, scaling=scaling)
    first = data.load_dataset(cfg)
    assert len(list(cache.iterdir())) == 1
    data._LAST = None
    again = data.load_dataset(cfg)
    assert isinstance(again.x_train.base, np.memmap) and not again.x_train.flags.writeable
    fresh = data.dataset_from_raw(data.load_raw("mnist-sample"), cfg)
    _same(first, fresh)
    _same(again, fresh)


def test_the_scaling_auto_chose_is_served_from_auto_s_entry(cache):
    """``coarse`` asks for ``auto``, its ``fine`` for the scaling ``auto`` chose: one
    entry serves both, the same arrays bit for bit; another scaling is prepared anew."""
    auto = data.load_dataset(DataConfig(dataset="mnist-sample", seed=3))
    assert auto.info.scaling == "global" and len(list(cache.iterdir())) == 1
    data._LAST = None
    chosen = data.load_dataset(DataConfig(dataset="mnist-sample", seed=3, scaling="global"))
    assert isinstance(chosen.x_train.base, np.memmap) and len(list(cache.iterdir())) == 1
    _same(chosen, auto)
    data._LAST = None
    other = data.load_dataset(DataConfig(dataset="mnist-sample", seed=3, scaling="feature"))
    assert other.info.scaling == "feature" and len(list(cache.iterdir())) == 2
    assert not np.array_equal(other.x_train, auto.x_train)


def test_a_changed_setting_or_file_misses(cache, tmp_path):
    """Each of seed, val_fraction, scaling and the source file's bytes changes the key; a
    changed npz is prepared anew from its new contents, never served stale."""
    base = DataConfig(dataset="mnist-sample", seed=0, scaling="global")
    files = [SAMPLE_PATH]
    keys = {dcache.prepared_key(base, files)}
    for change in ({"seed": 1}, {"val_fraction": 0.2}, {"scaling": "feature"}):
        keys.add(dcache.prepared_key(dataclasses.replace(base, **change), files))
    assert len(keys) == 4
    rng = np.random.default_rng(0)
    path = tmp_path / "d.npz"
    x = rng.normal(size=(50, 3)).astype(np.float32)
    np.savez(path, x_train=x, y_train=np.arange(50) % 2)
    cfg = DataConfig(dataset=f"npz:{path}", seed=0)
    a = data.load_dataset(cfg)
    np.savez(path, x_train=x + 1, y_train=np.arange(50) % 2)
    data._LAST = None
    b = data.load_dataset(cfg)
    assert a.info.sha256 != b.info.sha256 and len(list(cache.iterdir())) == 2
    # The +1 shifts the training mean by exactly what the new file added.
    np.testing.assert_allclose(b.mean - a.mean, 1.0, rtol=1e-6)


@pytest.mark.parametrize("damage", ["truncate", "header", "labels", "manifest", "partial"])
def test_a_damaged_entry_is_detected_and_rebuilt(cache, damage):
    """A truncated array, a garbled header, changed labels, a missing manifest or a
    leftover temporary directory: the next load prepares the data again, equal to the
    fresh one, and leaves a whole entry."""
    cfg = DataConfig(dataset="mnist-sample", seed=0)
    fresh = data.load_dataset(cfg)
    (entry,) = list(cache.iterdir())
    if damage == "truncate":
        p = entry / "x_train.npy"
        p.write_bytes(p.read_bytes()[:-100])
    elif damage == "header":
        p = entry / "x_val.npy"
        p.write_bytes(b"garbage!" + p.read_bytes()[8:])
    elif damage == "labels":
        p = entry / "y_train.npy"
        raw = bytearray(p.read_bytes())
        raw[-1] ^= 1
        p.write_bytes(bytes(raw))
    elif damage == "manifest":
        (entry / "manifest.json").unlink()
    else:  # a writer killed before its rename: only a temporary directory
        shutil.rmtree(entry)
        (cache / ".abc-partial").mkdir()
    data._LAST = None
    assert dcache.read_prepared(entry.name) is None  # detected (and removed)
    again = data.load_dataset(cfg)
    _same(again, fresh)
    assert dcache.read_prepared(entry.name) is not None
