"""Every schedule on four devices gives the members it gives on one, through the public
API (``sweepjax.coarse``) in a process started with four host devices.

Equal: member ids, hyperparameters (bit for bit: a draw picks among candidates that
come from the member's own random stream, so float-close scores cannot move a value),
statuses, stop, divergence and best steps, the winner, PBT's copies.
Close: validation accuracies within 1e-6 (one validation image is 1/400 = 2.5e-3, so
this says the same images are right; measured differences are <= 6e-8, float32 rounding
of the mean) and losses within rtol 1e-5 (measured <= 5e-7: a device's slice of the
members is a narrower matmul, so float32 sums round differently).

Slow: a cold-started subprocess (the host device count is fixed when JAX's backend
starts; see tests/test_distributed.py). Both device counts run in that one process, the
one-device run on a single device as in a one-device process (no mesh).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.sweep_worker import SCHEDULES

ROOT = Path(__file__).resolve().parents[1]
FLAGS = os.environ.get("XLA_FLAGS", "")  # tests/conftest.py's, kept for the worker

pytestmark = pytest.mark.slow

EQUAL = ("id", "lr", "l2", "lr_decay", "status", "stopped_at", "diverged_at", "best_step")
CLOSE_ACC = ("best_val_acc", "final_val_acc", "final_train_acc", "curve_val_acc")
CLOSE_LOSS = ("final_train_loss", "final_val_loss", "curve_val_loss", "curve_train_loss")


def _worker(tmp: Path) -> dict:
    """Every schedule of tests/sweep_worker.py on 1 and 4 devices, in one subprocess
    (one test, not a fixture shared by several: pytest-xdist would run a module fixture
    once per worker)."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "XLA_FLAGS": f"{FLAGS} --xla_force_host_platform_device_count=4",
    }
    argv = [str(tmp / "out.json"), str(tmp), ",".join(SCHEDULES), "1,4"]
    proc = subprocess.run(
        [sys.executable, "-m", "tests.sweep_worker", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = json.loads((tmp / "out.json").read_text())
    assert out["host_devices"] == 4
    return out


def _column(members: list[dict], field: str) -> np.ndarray:
    if field.startswith("curve_"):
        return np.array([[np.nan if v is None else v for v in m[field]] for m in members])
    return np.array([np.nan if m[field] is None else m[field] for m in members], np.float64)


def _same_members(one: dict, four: dict, schedule: str) -> None:
    a, b = one["members"], four["members"]
    assert [m["id"] for m in a] == [m["id"] for m in b], schedule
    for field in EQUAL:
        assert [m[field] for m in a] == [m[field] for m in b], (schedule, field)
    assert one["winner"] == four["winner"], schedule
    assert one["lineage"] == four["lineage"], schedule
    for field in CLOSE_ACC:
        np.testing.assert_allclose(
            _column(b, field), _column(a, field), atol=1e-6, err_msg=f"{schedule} {field}"
        )
    for field in CLOSE_LOSS:
        np.testing.assert_allclose(
            _column(b, field), _column(a, field), rtol=1e-5, err_msg=f"{schedule} {field}"
        )


def test_every_schedule_on_four_devices_gives_the_members_of_one(tmp_path):
    runs = _worker(tmp_path)
    for schedule in SCHEDULES:
        _same_members(runs[f"{schedule}/1"], runs[f"{schedule}/4"], schedule)
    # The equality is no accident of nothing happening: ASHA refilled slots and stopped
    # members at both rungs, Hyperband and halving stopped members, PBT copied members,
    # the full run's box reaches divergence.
    status = {s: {m["status"] for m in runs[f"{s}/1"]["members"]} for s in SCHEDULES}
    assert {"ok", "stopped"} <= status["asha"] & status["hyperband"] & status["halving"]
    assert {"ok", "diverged"} <= status["full"]
    asha = runs["asha/1"]["members"]
    assert len(asha) > SCHEDULES["asha"]["width"]
    assert {m["stopped_at"] for m in asha if m["status"] == "stopped"} >= {6, 18}
    assert runs["pbt/1"]["lineage"]
