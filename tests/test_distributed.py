"""One population over several devices / processes gives the one-device results.

Tolerance: parameters rtol 1e-5 / atol 1e-6, accuracies atol 1e-6 (a device's slice of
members is a narrower matmul, so float32 rounding may differ); statuses, divergence
steps and best steps must be equal.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, env_extra=None, timeout=240):
    env = {**os.environ, **(env_extra or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, "-m", "tests.dist_worker", *map(str, args)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _wait(proc, timeout=240):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
    out = tmp_path_factory.mktemp("d1") / "r.npz"
    _wait(_run([out, 1]))
    return np.load(out)


def _same(a, b):
    assert (a["alive"] == b["alive"]).all()
    assert not a["alive"].all()  # the population includes diverging members
    np.testing.assert_array_equal(a["diverged_at"], b["diverged_at"])
    np.testing.assert_array_equal(a["best_step"], b["best_step"])
    np.testing.assert_allclose(a["kernel"], b["kernel"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a["val_acc"], b["val_acc"], atol=1e-6)
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-5)


def test_four_host_devices_match_one_device(one_device, tmp_path):
    out = tmp_path / "r4.npz"
    _wait(_run([out, 4], {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}))
    r4 = np.load(out)
    assert int(r4["devices"]) == 4
    _same(r4, one_device)


def test_two_processes_match_one_process(one_device, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    coord = f"127.0.0.1:{port}"
    procs = [_run([tmp_path / f"p{i}.npz", 0, coord, 2, i]) for i in range(2)]
    for p in procs:
        _wait(p)
    for i in range(2):
        r = np.load(tmp_path / f"p{i}.npz")
        assert int(r["processes"]) == 2 and int(r["devices"]) == 2
        _same(r, one_device)
