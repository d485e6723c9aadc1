"""The benchmark scripts' core functions at toy size (the benchmarks themselves are not
tests; these check that they run and that what they compare is the same work)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from sweepjax import HParams, ModelConfig
from sweepjax.train import train_population
from tests.helpers import toy_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_engine  # noqa: E402
import bench_gpu  # noqa: E402
import bench_peers  # noqa: E402


def quiet(*_a, **_k):
    pass


def test_engine_bench_rates_are_members_times_steps_over_time():
    ds = toy_dataset(n_train=600, n_val=50, n_test=50, d=20, k=4)
    res = bench_engine.bench(
        ds,
        ms=(1, 4),
        reps=1,
        target_s=0.01,
        n_seq=2,
        min_steps=10,
        progress=quiet,
        eval_members=4,
        eval_steps=20,
    )
    for r in res["rows"]:
        assert r["model_steps_per_s"] == pytest.approx(
            r["members"] * r["steps"] / r["train_s_median"]
        )
        assert r["num_groups"] == 1
    assert res["rows"][0]["speedup_vs_engine_m1"] == pytest.approx(1.0)
    assert res["sequential"]["members"] == 2
    ev = res["evaluation_share"]
    assert ev["evaluations_default"] == 20
    assert ev["share"] == pytest.approx(
        1 - ev["train_s_end_only_median"] / ev["train_s_default_median"]
    )
    res = {
        "machine": {
            "backend": "cpu",
            "cpu": "x",
            "cpu_cores_usable": 2,
            "jax": "j",
            "jaxlib": "j",
            "date": "d",
        },
        **res,
    }
    res["verdict"] = bench_engine.verdict(res)
    md = bench_engine.markdown(res, "cmd")
    assert "Reproduce: `cmd`" in md and "Evaluation's share" in md


def test_reproduce_line_is_the_command_that_ran(monkeypatch):
    import common

    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_peers.py", "--quick", "--skip", "torch"])
    assert common.command_line("x") == "python benchmarks/bench_peers.py --quick --skip torch"
    script = str(Path(common.__file__).with_name("bench_engine.py"))
    assert common.command_line(script, ["--quick"]) == "python benchmarks/bench_engine.py --quick"


def test_sequential_jax_trainer_reproduces_sweepjax_members():
    """The peers' one-member trainer draws sweepjax's initial weights and minibatches, so
    it must end where sweepjax's copy of each member ends."""
    ds = toy_dataset(n_train=600, n_val=200, n_test=50, d=20, k=4)
    hp = HParams.create(lr=[0.05, 0.3, 0.01], l2=[1e-4, 1e-3, 1e-2])
    res = train_population(ds, hp, ModelConfig(), bench_peers.head_config(30))
    out = bench_peers.run_sequential_jax(ds, hp, [0, 1, 2], 30)
    np.testing.assert_allclose(out["val_acc"], res.final_val_acc, atol=1e-6)
    np.testing.assert_allclose(
        out["params"][1]["out"]["kernel"], res.params["out"]["kernel"][1], rtol=1e-4, atol=1e-6
    )


def test_refine_box_is_the_widened_hull_of_the_top_members_inside_the_box():
    from sweepjax.config import Range

    space = {"lr": Range(1e-4, 1.0), "l2": Range(1e-6, 1.0)}
    hp = HParams.create(lr=[1e-3, 1e-2, 0.9, 1e-4], l2=[1e-5, 1e-4, 1e-3, 0.5])
    box = bench_peers.refine_box(hp, np.array([0.8, 0.9, np.nan, 0.1]), 2, space)
    assert box["lr"].as_list() == pytest.approx([5e-4, 2e-2])
    assert box["l2"].as_list() == pytest.approx([5e-6, 2e-4])
    box = bench_peers.refine_box(hp, np.array([0.1, 0.2, 0.9, 0.8]), 2, space)
    assert box["lr"].hi == 1.0 and box["l2"].hi == 1.0  # clipped to the searched box


def test_gpu_check_quick_writes_valid_json(tmp_path):
    res = bench_gpu.run(tmp_path, quick=True, deadline_s=120)
    data = json.loads((tmp_path / "gpu-check-quick.json").read_text())
    assert data["status"] == "finished"
    rows = [r for r in data["rows"] if "model_steps_per_s" in r]
    assert [r["members"] for r in rows] == [1, 8, 32]
    assert all(r["steps"] > 0 and r["speedup_vs_sequential"] > 0 for r in rows)
    assert res["machine"]["backend"] == data["machine"]["backend"]
