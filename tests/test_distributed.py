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
FLAGS = os.environ.get("XLA_FLAGS", "")  # tests/conftest.py's, kept for the workers

# Slow: every test here cold-starts JAX in fresh processes. They cannot run in-process:
# the number of host devices (jax_num_cpu_devices / XLA_FLAGS) is fixed when the backend
# starts, and giving the whole test session four devices would spread every flow test's
# members over them too (flows default to all devices); several processes need
# jax.distributed.initialize, which a process can do once.
pytestmark = pytest.mark.slow


def _run(args, env_extra=None, timeout=240):
    env = {**os.environ, **(env_extra or {}), "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.dist_worker", *map(str, args)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


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
    _wait(_run([out, 4], {"XLA_FLAGS": f"{FLAGS} --xla_force_host_platform_device_count=4"}))
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


# ASHA: slots refilled between blocks by the refill program, which runs sharded too
# (54 steps: rungs at 6 and 18; a later flag overrides the base's).
ASHA = ["--schedule", "asha", "--budget", "1500 steps", "--width", "8", "--rungs", "2"]
ASHA += ["--steps", "54"]
# The compacting schedules: Hyperband's brackets stop members at both rungs (gathers on
# the sharded member axis), PBT copies states between members across processes.
HYPERBAND = ["--schedule", "hyperband", "--rungs", "2", "--steps", "54"]
PBT = ["--schedule", "pbt", "--pbt-interval", "10"]


@pytest.mark.parametrize(
    "schedule", [[], ASHA, HYPERBAND, PBT], ids=["full", "asha", "hyperband", "pbt"]
)
def test_cli_two_processes_print_the_same_json_and_only_process_0_writes(tmp_path, schedule):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    argv = [
        "coarse",
        "--dataset",
        "mnist-sample",
        "--trials",
        "6",
        "--steps",
        "20",
        "--batch-size",
        "32",
        "--store",
        "s.db",
        "--format",
        "json",
        "--no-report",
        *schedule,
    ]
    multi = ["--coordinator", f"127.0.0.1:{port}", "--num-processes", "2"]
    run = tmp_path / "run"
    run.mkdir()
    # Output to files, not pipes: a process blocked writing a full pipe that is not read
    # yet (ASHA's JSON is ~85 kB) would stall its peer in a collective, and both hang.
    logs = [(tmp_path / f"p{i}.out", tmp_path / f"p{i}.err") for i in range(2)]
    procs = []
    for i, (out, err) in enumerate(logs):
        with out.open("w") as fo, err.open("w") as fe:
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "sweepjax", *argv, *multi, "--process-id", str(i)],
                    cwd=run,
                    env=env,
                    stdout=fo,
                    stderr=fe,
                    text=True,
                )
            )
    for p in procs:
        p.wait(timeout=240)
    outs = [(out.read_text(), err.read_text()) for out, err in logs]
    assert [p.returncode for p in procs] == [0, 0], outs
    import json

    docs = [json.loads(o) for o, _ in outs]
    for d in docs:
        d.pop("timing")
        for p in d.get("progress") or []:
            p.pop("elapsed_s")  # each process's own clock
    assert docs[0] == docs[1]
    assert sorted(p.name for p in run.iterdir()) == ["s.db"]  # no second store
    single = tmp_path / "single"
    single.mkdir()
    one = subprocess.run(
        [sys.executable, "-m", "sweepjax", *argv],
        cwd=single,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert one.returncode == 0, one.stderr
    ref = json.loads(one.stdout)
    assert [m["id"] for m in ref["members"]] == [m["id"] for m in docs[0]["members"]]
    for a, b in zip(ref["members"], docs[0]["members"], strict=True):
        assert (a["status"], a["stopped_at"], a["lr"], a["l2"]) == (
            b["status"], b["stopped_at"], b["lr"], b["l2"],
        )  # fmt: skip
        if a["best_val_acc"] is not None:  # a member that diverged at once has none
            assert abs(a["best_val_acc"] - b["best_val_acc"]) <= 1e-6
    stops = {m["stopped_at"] for m in ref["members"]}
    if schedule is ASHA:  # the run refilled slots and stopped members at its rungs
        assert len(ref["members"]) > 8 and stops >= {6, 18}
    elif schedule is HYPERBAND:
        # Its first rung stops members; those its last rung (18) cuts ride to the end
        # when the survivors' program has rows to spare (engine.decisions.ride).
        assert 6 in stops
    elif schedule is PBT:  # the same copies on two processes as on one
        assert ref["lineage"] and docs[0]["lineage"] == ref["lineage"]
