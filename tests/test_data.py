"""Data layer: readers, validation, look-up order, fallback, split and preprocessing."""

from __future__ import annotations

import gzip
import hashlib
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from sweepjax.config import DataConfig
from sweepjax.data import SOURCES, load_dataset, raw_sha256, sources
from sweepjax.data import download as dl
from sweepjax.data.idx import read_idx, write_idx
from sweepjax.data.npz import read_npz
from sweepjax.data.preprocess import split_indices
from sweepjax.data.sample import SAMPLE_PATH, SAMPLE_SHA256, load_sample
from sweepjax.data.sources import idx_digest, load_raw
from sweepjax.errors import DataError
from tests.helpers import STEMS, fake_arrays, write_idx_dir, write_npz


def _offline(url, timeout):
    raise urllib.error.URLError(f"network disabled in tests: {url}")


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    """No network, an empty home and cache, no system dirs, no pinned hashes."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("SWEEPJAX_DATA", raising=False)
    monkeypatch.setattr(dl, "_default_opener", _offline)
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {})
    monkeypatch.setattr(dl, "IDX_SHA256", {"mnist": {}, "fashion-mnist": {}})
    return home


# ---------------------------------------------------------------- IDX reader


@pytest.mark.parametrize("gz", [True, False])
def test_idx_round_trip_exact(tmp_path, gz):
    xtr, ytr, _, _ = fake_arrays()
    suffix = ".gz" if gz else ""
    assert np.array_equal(read_idx(write_idx(tmp_path / f"i{suffix}", xtr), "images"), xtr)
    assert np.array_equal(read_idx(write_idx(tmp_path / f"l{suffix}", ytr), "labels"), ytr)


def test_idx_gzip_detected_by_content_not_name(tmp_path):
    x = fake_arrays()[0]
    p = write_idx(tmp_path / "train-images-idx3-ubyte", x, compress=True)  # gz, no .gz
    assert np.array_equal(read_idx(p, "images"), x)


def test_idx_wrong_magic(tmp_path):
    p = write_idx(tmp_path / "train-labels-idx1-ubyte.gz", fake_arrays()[1])
    with pytest.raises(DataError, match="magic number 0x00000801 is not 0x00000803") as e:
        read_idx(p, "images")
    assert str(p) in str(e.value)


def test_idx_truncated_gzip(tmp_path):
    p = write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", fake_arrays()[2])
    p.write_bytes(p.read_bytes()[:-30])
    with pytest.raises(DataError, match="truncated or corrupt gzip.*re-download") as e:
        read_idx(p, "images")
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("cut", [1, 50])
def test_idx_payload_length_must_match_header(tmp_path, cut):
    x = fake_arrays()[0]
    p = tmp_path / "x.idx"
    write_idx(p, x)
    p.write_bytes(p.read_bytes()[:-cut])
    with pytest.raises(DataError, match=f"= {x.size} bytes but the file holds {x.size - cut}"):
        read_idx(p, "images")


def test_idx_too_short_for_header(tmp_path):
    p = tmp_path / "x.idx"
    p.write_bytes(b"\x00\x00\x08")
    with pytest.raises(DataError, match="too short"):
        read_idx(p, "labels")


# ---------------------------------------------------------------- npz reader


def test_npz_round_trip_with_test_split(tmp_path):
    arrays = fake_arrays()
    raw = read_npz(write_npz(tmp_path / "d.npz", arrays))
    for got, want in zip(raw[:4], arrays, strict=True):
        assert np.array_equal(got, want)
    assert raw.note is None and raw.name == f"npz:{tmp_path / 'd.npz'}"


def test_npz_without_test_carves_fixed_ten_percent(tmp_path):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(200, 3)).astype(np.float32)  # feature vectors, not images
    y = np.arange(200) % 4
    p = tmp_path / "feat.npz"
    np.savez(p, x_train=x, y_train=y)
    a, b = read_npz(p), read_npz(p)
    assert (len(a.train_images), len(a.test_images)) == (180, 20)
    assert "10%" in a.note and "test set" in a.note and "\n" not in a.note
    assert np.array_equal(a.test_images, b.test_images)  # deterministic
    rows = {r.tobytes() for r in a.train_images}
    assert not any(r.tobytes() in rows for r in a.test_images)  # disjoint
    assert len(rows) + len(a.test_images) == 200  # nothing lost


def _corrupt_cases():
    xtr, ytr, xte, yte = fake_arrays()
    nan = xtr.astype(np.float32)
    nan[3, 1, 1] = np.nan
    return {
        "missing keys": ({"x_train": xtr}, "missing arrays \\['y_train'\\]"),
        "mismatched lengths": (
            {"x_train": xtr, "y_train": ytr[:-1], "x_test": xte, "y_test": yte},
            "x_train has 60 rows but y_train has 59",
        ),
        # (non-integral floats are a regression's targets: tests/test_metric.py)
        "non-integer labels": (
            {"x_train": xtr, "y_train": ytr + 0.5j, "x_test": xte, "y_test": yte},
            "must be integer class ids or strings, got dtype complex128",
        ),
        "single class": (
            {"x_train": xtr, "y_train": ytr * 0 + 3, "x_test": xte, "y_test": yte * 0 + 3},
            "y_train holds a single class \\(3\\); a classifier needs at least two",
        ),
        "test label unseen": (
            {"x_train": xtr, "y_train": ytr % 5, "x_test": xte, "y_test": yte},
            "y_test has label\\(s\\) \\[5, 6, 7, 8, 9\\] that y_train lacks",
        ),
        "non-finite": (
            {"x_train": nan, "y_train": ytr, "x_test": xte, "y_test": yte},
            "1 NaN/inf values",
        ),
        "shape mismatch": (
            {"x_train": xtr, "y_train": ytr, "x_test": xte[:, :2], "y_test": yte},
            "share one shape",
        ),
        "half test pair": ({"x_train": xtr, "y_train": ytr, "x_test": xte}, "only one of"),
    }


@pytest.mark.parametrize("case", list(_corrupt_cases()))
def test_npz_corrupt_raises_naming_file(tmp_path, case):
    arrays, msg = _corrupt_cases()[case]
    p = tmp_path / "bad.npz"
    np.savez(p, **arrays)
    with pytest.raises(DataError, match=msg) as e:
        read_npz(p)
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04truncated"])
def test_npz_not_a_zip(tmp_path, content):
    p = tmp_path / "mnist.npz"
    p.write_bytes(content)
    with pytest.raises(DataError, match="not a readable .npz") as e:
        read_npz(p)
    assert str(p) in str(e.value)


def test_npz_label_out_of_range_for_mnist(tmp_path):
    xtr, ytr, xte, yte = fake_arrays()
    d = tmp_path / "dd"
    write_npz(d / "mnist.npz", (xtr, ytr + 1, xte, yte))  # labels 1..10
    with pytest.raises(DataError, match="outside \\[0, 9\\]"):
        load_raw("mnist", data_dir=d, download=False)


@pytest.mark.parametrize(
    ("labels", "classes", "mapping"),
    [
        ([1, 2, 3], (1, 2, 3), "1->0, 2->1, 3->2"),
        ([-1, 1], (-1, 1), "-1->0, 1->1"),
        (["b", "a", "c"], ("a", "b", "c"), "'a'->0, 'b'->1, 'c'->2"),
        ([b"no", b"yes"], ("no", "yes"), "'no'->0, 'yes'->1"),
        ([0, 1, 3], (0, 1, 3), "0->0, 1->1, 3->2"),
    ],
)
def test_npz_labels_not_class_ids_are_remapped_with_a_note(tmp_path, labels, classes, mapping):
    """Labels {1, 2, 3} are 3 classes, not 4 (sanity would check ln 4); strings too. The
    mapping is said in one line and recorded in the dataset info."""
    x = np.random.default_rng(0).normal(size=(90, 5))
    y = np.array(labels)[np.arange(90) % len(labels)]
    p = tmp_path / "tab.npz"
    np.savez(p, x_train=x, y_train=y, x_test=x[:9], y_test=y[:9])
    raw = read_npz(p)
    assert raw.classes == classes and raw.note.count("\n") == 0
    assert f"labels {list(classes)} are not class ids 0..{len(classes) - 1}" in raw.note
    assert mapping in raw.note
    want = np.searchsorted(np.array(classes), y.astype(str) if y.dtype.kind == "S" else y)
    assert np.array_equal(raw.train_labels, want) and np.array_equal(raw.test_labels, want[:9])
    ds = load_dataset(DataConfig(dataset=f"npz:{p}", val_fraction=0.2))
    assert ds.num_classes == len(classes) and ds.info.classes == classes
    assert ds.info.as_dict()["classes"] == list(classes)
    assert set(np.unique(ds.y_train)) == set(range(len(classes)))


def test_npz_class_ids_already_0_to_k_are_kept_without_a_note(tmp_path):
    p = write_npz(tmp_path / "d.npz", fake_arrays())
    raw = read_npz(p)
    assert raw.classes is None and raw.note is None
    assert raw.train_labels.dtype == np.uint8  # as stored: the content hash is unchanged


def test_npz_remap_note_and_carved_test_note_are_one_line_each(tmp_path):
    x = np.random.default_rng(0).normal(size=(100, 4))
    p = tmp_path / "wine.npz"
    np.savez(p, x_train=x, y_train=np.arange(100) % 3 + 1)
    lines = read_npz(p).note.split("\n")
    assert len(lines) == 2 and all(line.startswith("sweepjax: ") for line in lines)
    assert "10%" in lines[0] and "labels [1, 2, 3]" in lines[1]


def test_np_save_file_is_refused_naming_savez(tmp_path):
    p = tmp_path / "x.npy"
    np.save(p, np.zeros((10, 3)))
    with pytest.raises(DataError) as e:
        load_raw(f"npz:{p}")
    msg = str(e.value)
    assert "holds one array (np.save)" in msg and "np.savez(path, x_train=..., y_train=" in msg
    assert str(p) in msg and "\n" not in msg


@pytest.mark.parametrize("content", [b"not a zip at all", b"PK\x03\x04truncated"])
def test_users_own_unreadable_npz_is_not_told_to_re_download(tmp_path, content):
    p = tmp_path / "mine.npz"
    p.write_bytes(content)
    with pytest.raises(DataError) as own:
        load_raw(f"npz:{p}")
    assert "re-download" not in str(own.value) and "np.savez" in str(own.value)
    with pytest.raises(DataError) as cached:  # a downloaded keras file may be fetched again
        read_npz(p, name="mnist", max_label=9, require_test=True)
    assert "delete it and re-download" in str(cached.value)


def test_length_mismatch_names_feature_rows_for_tabular_data(tmp_path):
    x = np.zeros((30, 4))
    for name, kw in {
        "carved": dict(x_train=x, y_train=np.arange(29) % 2),
        "given": dict(x_train=x, y_train=np.arange(30) % 2, x_test=x, y_test=np.arange(3) % 2),
    }.items():
        np.savez(tmp_path / f"{name}.npz", **kw)
        with pytest.raises(DataError, match="feature rows and labels must pair up") as e:
            read_npz(tmp_path / f"{name}.npz")
        assert "images" not in str(e.value)
    xtr, ytr, xte, yte = fake_arrays()
    np.savez(tmp_path / "img.npz", x_train=xtr, y_train=ytr[:-1])
    with pytest.raises(DataError, match="images and labels must pair up"):
        read_npz(tmp_path / "img.npz")


# ---------------------------------------------------------------- look-up order


def test_lookup_order_data_dir_then_env_then_cache(tmp_path, monkeypatch):
    dirs = {k: tmp_path / k for k in ("arg", "env", "xdg")}
    for seed, d in enumerate(dirs.values()):
        write_idx_dir(d / "sweepjax" if d.name == "xdg" else d, fake_arrays(seed))
    monkeypatch.setenv("SWEEPJAX_DATA", str(dirs["env"]))
    monkeypatch.setenv("XDG_CACHE_HOME", str(dirs["xdg"]))
    assert load_raw("mnist", data_dir=dirs["arg"], download=False).origin == str(dirs["arg"])
    got = load_raw("mnist", download=False)
    assert got.origin == str(dirs["env"])
    assert np.array_equal(got.train_images, fake_arrays(1)[0])
    monkeypatch.delenv("SWEEPJAX_DATA")
    assert load_raw("mnist", download=False).origin == str(dirs["xdg"] / "sweepjax")


def test_cache_defaults_to_home_and_subdir_beats_root(isolated):
    cache = isolated / ".cache" / "sweepjax"
    write_idx_dir(cache, fake_arrays(0))
    write_idx_dir(cache / "fashion-mnist", fake_arrays(1))
    assert load_raw("fashion-mnist", download=False).origin == str(cache / "fashion-mnist")
    assert load_raw("mnist", download=False).origin == str(cache)


@pytest.mark.parametrize("gz,dotted", [(True, False), (False, False), (False, True), (True, True)])
def test_idx_layouts_accepted(tmp_path, gz, dotted):
    arrays = fake_arrays(3)
    raw = load_raw("mnist", write_idx_dir(tmp_path / "d", arrays, gz, dotted), False)
    for got, want in zip(raw[:4], arrays, strict=True):
        assert np.array_equal(got, want)


def test_keras_npz_layout_and_keras_dir(isolated):
    arrays = fake_arrays(4)
    write_npz(isolated / ".keras" / "datasets" / "mnist.npz", arrays)
    raw = load_raw("mnist", download=False)
    assert raw.origin.endswith(".keras/datasets/mnist.npz") and raw.name == "mnist"
    assert np.array_equal(raw.test_labels, arrays[3])


def test_system_dir_is_searched_last(tmp_path, monkeypatch):
    d = write_idx_dir(tmp_path / "sys", fake_arrays(5))
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {"fashion-mnist": (str(d),)})
    assert load_raw("fashion-mnist", download=False).origin == str(d)


def test_local_copy_checked_against_published_hash(tmp_path, monkeypatch):
    arrays = fake_arrays(6)
    d = write_idx_dir(tmp_path / "d", arrays)
    pins = {s: idx_digest(a) for s, a in zip(STEMS, arrays, strict=True)}
    monkeypatch.setattr(dl, "IDX_SHA256", {"fashion-mnist": pins})
    assert load_raw("fashion-mnist", d, False).origin == str(d)
    # idx_digest is the sha256 of the decompressed file, whatever the container
    raw_file = gzip.decompress((d / "t10k-labels-idx1-ubyte.gz").read_bytes())
    assert hashlib.sha256(raw_file).hexdigest() == pins["t10k-labels-idx1-ubyte"]
    monkeypatch.setitem(pins, "t10k-labels-idx1-ubyte", "0" * 64)
    with pytest.raises(DataError, match="t10k-labels-idx1-ubyte is not the published"):
        load_raw("fashion-mnist", d, False)


# ---------------------------------------------------------------- fallback, errors


def test_offline_mnist_falls_back_to_sample_with_one_line_note(tmp_path):
    ds = load_dataset(DataConfig(dataset="mnist", data_dir=str(tmp_path / "nope")))
    note = ds.info.note
    assert ds.info.name == "mnist-sample" and ds.info.requested == "mnist"
    assert "\n" not in note and "mnist-sample" in note and "download failed" in note
    assert "network disabled in tests" in note and str(tmp_path / "nope") in note
    assert ds.info.n_train + ds.info.n_val == 4000 and ds.info.n_test == 1000


def test_download_disabled_fallback_says_so():
    raw = load_raw("mnist", download=False)
    assert raw.name == "mnist-sample" and "download disabled" in raw.note


def test_fashion_missing_lists_every_searched_path(tmp_path, monkeypatch, isolated):
    monkeypatch.setenv("SWEEPJAX_DATA", str(tmp_path / "env"))
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {"fashion-mnist": ("/nonexistent/fm",)})
    with pytest.raises(DataError) as e:
        load_raw("fashion-mnist", data_dir=tmp_path / "arg", download=False)
    msg = str(e.value)
    for p in (
        tmp_path / "arg",
        tmp_path / "env",
        isolated / ".cache/sweepjax/fashion-mnist",
        Path("/nonexistent/fm"),
    ):
        assert str(p) in msg
    assert "apt-get install dataset-fashion-mnist" in msg and "\n" not in msg


def test_unknown_name_and_missing_npz():
    with pytest.raises(DataError, match="choose one of mnist, fashion-mnist, mnist-sample"):
        load_raw("cifar10")
    with pytest.raises(DataError, match="npz:/no/such.npz: no such file"):
        load_raw("npz:/no/such.npz")
    assert SOURCES == ("mnist", "fashion-mnist", "mnist-sample", "npz:PATH")


def test_unknown_dataset_lists_npz_path_once():
    from sweepjax.errors import ConfigError
    from sweepjax.flows.sweep_config import check_dataset_name

    with pytest.raises(ConfigError) as e:
        check_dataset_name("cifar10")
    assert str(e.value).count("npz:PATH") == 1


# ---------------------------------------------------------------- split, preprocessing


@pytest.fixture()
def npz_cfg(tmp_path):
    rng = np.random.default_rng(7)
    x = rng.integers(0, 256, (500, 6, 6), dtype=np.uint8)
    x[:, 0, 0] = 17  # a constant feature
    p = tmp_path / "d.npz"
    np.savez(p, x_train=x, y_train=np.arange(500) % 7, x_test=x[:30], y_test=np.arange(30) % 7)
    return DataConfig(dataset=f"npz:{p}", val_fraction=0.2, seed=3), x


def test_split_sizes_disjoint_deterministic():
    tr, va = split_indices(1000, 0.1, seed=0)
    assert (len(tr), len(va)) == (900, 100)
    assert np.intersect1d(tr, va).size == 0 and np.union1d(tr, va).size == 1000
    assert np.array_equal(va, split_indices(1000, 0.1, seed=0)[1])
    assert not np.array_equal(va, split_indices(1000, 0.1, seed=1)[1])


def test_preprocess_train_mean_zero_std_one(npz_cfg):
    cfg, x = npz_cfg
    ds = load_dataset(cfg)
    assert (ds.info.n_train, ds.info.n_val, ds.info.n_test) == (400, 100, 30)
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int32
    assert ds.x_train.shape == (400, 36) and ds.info.input_shape == (6, 6)
    assert np.abs(ds.x_train.mean(axis=0)).max() < 1e-5
    assert abs(float(ds.x_train.astype(np.float64).std()) - 1.0) < 1e-5
    assert ds.num_classes == 7  # max label + 1 for npz sources


def test_preprocess_same_transform_everywhere_and_no_leak(npz_cfg):
    cfg, x = npz_cfg
    ds = load_dataset(cfg)
    flat = x.reshape(500, -1).astype(np.float64)
    rows = {r.tobytes(): i for i, r in enumerate(x.reshape(500, -1))}
    back = lambda z: np.round(z.astype(np.float64) * ds.scale + ds.mean).astype(np.uint8)  # noqa: E731
    tr_idx = [rows[r.tobytes()] for r in back(ds.x_train)]
    va_idx = [rows[r.tobytes()] for r in back(ds.x_val)]
    assert not set(tr_idx) & set(va_idx)  # no training example in validation
    assert np.array_equal(ds.y_val, (np.array(va_idx) % 7))
    # mean comes from the training split only
    np.testing.assert_allclose(ds.mean, flat[tr_idx].mean(0), rtol=0, atol=1e-4)
    assert np.array_equal(back(ds.x_test), x[:30].reshape(30, -1))
    assert np.array_equal(ds.raw_train_images, x[np.array(tr_idx)[:36]])
    assert np.all(ds.x_train[:, 0] == 0.0)  # constant feature centred to exactly 0


def test_split_depends_on_seed_test_does_not(npz_cfg):
    cfg, _ = npz_cfg
    a, b, c = (load_dataset(DataConfig(cfg.dataset, seed=s, val_fraction=0.2)) for s in (3, 3, 4))
    assert np.array_equal(a.x_val, b.x_val) and not np.array_equal(a.x_val, c.x_val)
    assert a.info.sha256 == c.info.sha256  # the hash is of the raw data, before the split


@pytest.mark.parametrize("scaling", ["global", "feature"])
def test_zero_variance_scale_guard(tmp_path, scaling):
    p = tmp_path / "flat.npz"
    np.savez(p, x_train=np.full((20, 3), 5.0), y_train=np.arange(20) % 2)
    ds = load_dataset(DataConfig(f"npz:{p}", scaling=scaling))
    assert np.all(np.asarray(ds.scale) == 1.0) and np.all(ds.x_train == 0.0)
    assert ds.info.scaling == scaling


def test_raw_sha256_is_over_arrays_in_order(tmp_path):
    arrays = fake_arrays(8)
    raw = load_raw("mnist", write_idx_dir(tmp_path / "d", arrays), False)
    assert raw_sha256(raw) == hashlib.sha256(b"".join(a.tobytes() for a in arrays)).hexdigest()


# ---------------------------------------------------------------- bundled sample


def test_bundled_sample_contents_and_stratified_test():
    with np.load(SAMPLE_PATH) as f:
        images, labels = f["images"], f["labels"]
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(np.bincount(labels), np.full(10, 500))
    h = hashlib.sha256(images.tobytes())
    h.update(labels.tobytes())
    assert h.hexdigest() == SAMPLE_SHA256
    raw = load_sample()
    assert np.array_equal(np.bincount(raw.test_labels), np.full(10, 100))
    assert np.array_equal(np.bincount(raw.train_labels), np.full(10, 400))
    # the test set is fixed: the same whatever the user's split seed
    a = load_dataset(DataConfig("mnist-sample", seed=0))
    b = load_dataset(DataConfig("mnist-sample", seed=9))
    raw_test = [np.round(d.x_test * d.scale + d.mean) for d in (a, b)]
    assert np.array_equal(raw_test[0], raw_test[1])
    assert not np.array_equal(a.y_val, b.y_val)  # while the validation split does change
    assert np.array_equal(a.y_test, b.y_test) and a.info.sha256 == b.info.sha256
    assert (a.info.origin, a.info.note, a.num_classes) == ("bundled", None, 10)
    assert a.raw_train_images.shape == (36, 28, 28)


# ---------------------------------------------------------------- Debian Fashion-MNIST

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_debian_fashion_mnist_full(monkeypatch):
    monkeypatch.undo()  # the real published hashes and system dirs
    ds = load_dataset(DataConfig("fashion-mnist", download=False, val_fraction=0.1))
    assert (ds.info.n_train + ds.info.n_val, ds.info.n_test) == (60000, 10000)
    assert ds.num_classes == 10 and ds.info.origin == str(DEBIAN_FASHION)
    assert np.array_equal(np.bincount(ds.y_test), np.full(10, 1000))
    for stem, want in dl.IDX_SHA256["fashion-mnist"].items():
        got, size = dl.content_digest(DEBIAN_FASHION / f"{stem}.gz")
        assert (got, size) == (want, dl.IDX_SIZES[stem])


def test_a_second_load_of_the_same_data_is_the_first_one_and_never_stale(tmp_path):
    """`fine` after `coarse`, `auto`'s stages and notebooks load the same data again: the
    built dataset is reused (read-only, so no caller can change it for the next), and a
    file rewritten in between is loaded afresh (the key holds the raw arrays' sha256)."""
    path = write_npz(tmp_path / "d.npz", fake_arrays(seed=1))
    cfg = DataConfig(dataset=f"npz:{path}", val_fraction=0.2, seed=0)
    a = load_dataset(cfg)
    b = load_dataset(cfg)
    assert b is a
    assert not a.x_train.flags.writeable and not a.y_val.flags.writeable
    with pytest.raises(ValueError, match="read-only"):
        a.x_train[0, 0] = 1.0
    assert load_dataset(DataConfig(dataset=f"npz:{path}", val_fraction=0.2, seed=1)) is not a
    write_npz(path, fake_arrays(seed=2))
    c = load_dataset(cfg)
    assert c is not a and c.info.sha256 != a.info.sha256
    assert not np.array_equal(c.x_train, a.x_train)
