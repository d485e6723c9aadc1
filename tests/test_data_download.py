"""Downloads from a fake local mirror: verification, atomicity, mirror fallback."""

from __future__ import annotations

import urllib.error
from pathlib import Path

import numpy as np
import pytest

from sweepjax.config import DataConfig
from sweepjax.data import download as dl
from sweepjax.data import load_dataset, sources
from sweepjax.data.idx import idx_header
from sweepjax.data.sources import idx_digest, load_raw
from sweepjax.errors import DataError
from tests.helpers import STEMS, fake_arrays, write_idx_dir, write_npz


def _offline(url, timeout):
    raise urllib.error.URLError(f"network disabled in tests: {url}")


class Mirror:
    """An opener serving files by basename from local directories, one per host."""

    def __init__(self, hosts: dict[str, Path]):
        self.hosts, self.calls = hosts, []

    def __call__(self, url, timeout):
        self.calls.append(url)
        for prefix, d in self.hosts.items():
            if url.startswith(prefix) and (d / url.rsplit("/", 1)[1]).is_file():
                return open(d / url.rsplit("/", 1)[1], "rb")
        raise urllib.error.HTTPError(url, 404, "Not Found", None, None)


@pytest.fixture(autouse=True)
def isolated(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SWEEPJAX_DATA", raising=False)
    monkeypatch.setattr(dl, "_default_opener", _offline)
    monkeypatch.setattr(sources, "SYSTEM_DIRS", {})
    return tmp_path / "xdg" / "sweepjax"


@pytest.fixture()
def fake_remote(tmp_path, monkeypatch):
    """Fake IDX .gz files on two 'hosts' with their sizes and hashes pinned."""
    arrays = fake_arrays(11)
    served = write_idx_dir(tmp_path / "served", arrays)
    pins = {s: idx_digest(a) for s, a in zip(STEMS, arrays, strict=True)}
    sizes = {s: len(idx_header(a)) + a.size for s, a in zip(STEMS, arrays, strict=True)}
    monkeypatch.setattr(dl, "IDX_SHA256", {"mnist": dict(pins), "fashion-mnist": dict(pins)})
    monkeypatch.setattr(dl, "IDX_SIZES", sizes)
    return arrays, served


def _cache_files(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.rglob("*")) if cache.exists() else []


def test_fashion_download_from_second_mirror_then_cached(fake_remote, isolated):
    arrays, served = fake_remote
    mirror = Mirror({dl.FASHION_IDX_MIRRORS[1]: served})  # the first mirror is "down"
    raw = load_raw("fashion-mnist", download=True, opener=mirror)
    for got, want in zip(raw[:4], arrays, strict=True):
        assert np.array_equal(got, want)
    assert raw.origin == str(isolated / "fashion-mnist")
    assert _cache_files(isolated) == ["fashion-mnist"] + sorted(f"{s}.gz" for s in STEMS)
    assert len(mirror.calls) == 8  # 4 files x (failed first mirror + second)
    load_raw("fashion-mnist", download=True, opener=mirror)
    assert len(mirror.calls) == 8  # second run reads the cache, no network


def test_hash_mismatch_raises_and_leaves_nothing(fake_remote, isolated, monkeypatch):
    _, served = fake_remote
    monkeypatch.setitem(dl.IDX_SHA256["fashion-mnist"], "train-images-idx3-ubyte", "f" * 64)
    mirror = Mirror({m: served for m in dl.FASHION_IDX_MIRRORS})
    with pytest.raises(DataError, match="train-images-idx3-ubyte.gz failed verification"):
        load_raw("fashion-mnist", download=True, opener=mirror)
    assert _cache_files(isolated) == ["fashion-mnist"]  # no file, no .part left behind


def test_truncated_download_is_not_kept(fake_remote, isolated, tmp_path):
    _, served = fake_remote
    bad = tmp_path / "bad"
    bad.mkdir()
    for p in served.iterdir():
        (bad / p.name).write_bytes(p.read_bytes()[:-20])  # cut-off transfers
    remote = dl.remote_files("fashion-mnist")[0][0]
    with pytest.raises(DataError, match="corrupt gzip"):
        dl.fetch(remote, isolated, Mirror({m: bad for m in dl.FASHION_IDX_MIRRORS}))
    assert _cache_files(isolated) == []


def test_mnist_download_prefers_keras_npz(tmp_path, isolated, monkeypatch):
    arrays = fake_arrays(12)
    npz = write_npz(tmp_path / "keras" / "mnist.npz", arrays)
    monkeypatch.setattr(dl, "KERAS_MNIST_SHA256", dl.content_digest(npz)[0])
    monkeypatch.setattr(dl, "KERAS_MNIST_SIZE", npz.stat().st_size)
    mirror = Mirror({dl.KERAS_MNIST_URL.rsplit("/", 1)[0]: npz.parent})
    raw = load_raw("mnist", download=True, opener=mirror)
    assert raw.name == "mnist" and raw.origin == str(isolated / "mnist" / "mnist.npz")
    assert np.array_equal(raw.train_images, arrays[0]) and mirror.calls == [dl.KERAS_MNIST_URL]


def test_mnist_download_falls_back_to_idx_mirror(fake_remote, isolated):
    arrays, served = fake_remote
    mirror = Mirror({dl.MNIST_IDX_MIRRORS[0]: served})  # keras URL answers 404
    ds = load_dataset(DataConfig("mnist", seed=1), opener=mirror)
    assert ds.info.name == "mnist" and ds.info.note is None
    assert ds.info.n_test == len(arrays[2]) and mirror.calls[0] == dl.KERAS_MNIST_URL


def test_network_failure_falls_back_to_sample(isolated):
    ds = load_dataset(DataConfig("mnist"), opener=Mirror({}))
    assert (ds.info.name, ds.info.requested) == ("mnist-sample", "mnist")
    assert "HTTP Error 404" in ds.info.note and "\n" not in ds.info.note


def test_fashion_network_failure_is_data_error(isolated):
    with pytest.raises(DataError, match="download failed .*HTTP Error 404"):
        load_raw("fashion-mnist", download=True, opener=Mirror({}))


def test_real_mirror_urls_and_pins():
    ((npz,),) = dl.remote_files("mnist")[:1]
    assert npz.urls == (dl.KERAS_MNIST_URL,) and len(npz.sha256) == 64
    fashion = dl.remote_files("fashion-mnist")[0]
    assert [len(f.urls) for f in fashion] == [2, 2, 2, 2]
    assert all(len(f.sha256) == 64 for f in fashion)
    assert fashion[0].size == 16 + 60000 * 28 * 28 and fashion[3].size == 8 + 10000
