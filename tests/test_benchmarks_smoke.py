"""The benchmark scripts' core functions at toy size (the benchmarks themselves are not
tests; these check that they run and that what they compare is the same work)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from sweepjax import HParams, ModelConfig
from sweepjax.engine import train_population
from tests.helpers import toy_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_engine  # noqa: E402
import bench_gpu  # noqa: E402
import bench_mlp_configs  # noqa: E402
import bench_peers  # noqa: E402
import bench_time_to_quality as ttq  # noqa: E402


def quiet(*_a, **_k):
    pass


@pytest.mark.slow
def test_engine_bench_rates_agree_with_a_clock_and_a_step_count_of_its_own(monkeypatch):
    """Checked against what the test sees at the trainer's door, not the bench's own
    arithmetic: the members and steps each call actually trained, and the wall time
    around the timed call (a superset of the trained time, so the reported rate can
    only be higher than members x steps over that wall time)."""
    import time

    calls = []

    def spy(ds, hp, model, cfg, *a, **k):
        t0 = time.perf_counter()
        res = train_population(ds, hp, model, cfg, *a, **k)
        calls.append((len(np.asarray(hp.lr)), cfg.steps, time.perf_counter() - t0))
        return res

    monkeypatch.setattr(bench_engine, "train_population", spy)
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
    # Per repetition (warm-up, then the timed one): M=1, M=4, then two evaluation runs.
    assert len(calls) == 2 * 4
    timed = {m: (steps, wall) for m, steps, wall in calls[4:6]}
    for r in res["rows"]:
        steps, wall = timed[r["members"]]
        assert r["steps"] == steps >= 10
        assert r["model_steps_per_s"] * wall >= r["members"] * steps
        assert r["num_groups"] == 1
    assert res["rows"][0]["speedup_vs_engine_m1"] == pytest.approx(1.0)
    assert res["sequential"]["members"] == 2
    ev = res["evaluation_share"]
    assert ev["evaluations_default"] == 20
    (m_d, _, wall_d), (m_e, _, wall_e) = calls[6:8]
    assert m_d == m_e == 4
    assert (
        0 < ev["train_s_default_median"] <= wall_d and 0 < ev["train_s_end_only_median"] <= wall_e
    )
    assert ev["share"] < 1
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


@pytest.mark.slow
def test_engine_bench_cnn_case_times_the_same_members_as_the_loop():
    """The CNN case at toy size (8x8 blobs): the population and the loop each train
    their members the stated steps; the layout is the engine's rule (looped) except in
    the forced-layout rows, and the rule is back in force afterwards."""
    from sweepjax.engine import setup
    from tests.helpers import blob_dataset

    rule = setup.member_batch
    res = bench_engine.bench_cnn(
        blob_dataset(), members=3, steps=3, reps=1, n_seq=3, layouts=(1, "host"), layout_steps=2,
        progress=quiet,
    )  # fmt: skip
    assert setup.member_batch is rule
    assert res["settings"]["rule_member_batch"] == 1
    assert res["settings"]["rule_host_steps"] == (jax.default_backend() == "cpu")
    assert setup.host_steps(1) == res["settings"]["rule_host_steps"]  # the rule is back
    assert [r["members"] for r in res["rows"]] == [1, 3]
    assert all(r["num_groups"] == 1 and r["ms_per_member_step"] > 0 for r in res["rows"])
    assert res["user_loop"]["members"] == 3 and len(res["user_loop"]["train_s_all"]) == 1
    assert [r["layout"] for r in res["layouts"]] == [1, "host"]
    assert res["scan_loop"]["members"] == 3 and res["user_loop"]["ms_per_member_step"] > 0
    res = {"machine": {"backend": "cpu", "cpu": "x", "cpu_cores_usable": 2, "jax": "j",
                       "jaxlib": "j", "date": "d"}, **res}  # fmt: skip
    md = bench_engine.markdown_cnn(res, "cmd")
    assert "Reproduce: `cmd`" in md and "Layouts of the population" in md


def test_reproduce_line_is_the_command_that_ran(monkeypatch):
    import common

    monkeypatch.setattr(sys, "argv", ["benchmarks/bench_peers.py", "--quick", "--skip", "torch"])
    assert common.command_line("x") == "python benchmarks/bench_peers.py --quick --skip torch"
    script = str(Path(common.__file__).with_name("bench_engine.py"))
    assert common.command_line(script, ["--quick"]) == "python benchmarks/bench_engine.py --quick"


@pytest.mark.slow
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


@pytest.mark.slow
def test_gpu_check_quick_writes_valid_json(tmp_path):
    res = bench_gpu.run(tmp_path, quick=True, deadline_s=120)
    data = json.loads((tmp_path / "gpu-check-quick.json").read_text())
    assert data["status"] == "finished"
    rows = [r for r in data["rows"] if "model_steps_per_s" in r]
    assert [r["members"] for r in rows] == [1, 8, 32]
    assert all(r["steps"] > 0 and r["speedup_vs_sequential"] > 0 for r in rows)
    assert res["machine"]["backend"] == data["machine"]["backend"]


@pytest.mark.slow
def test_ttq_trainer_is_sweepjax_objective_and_cosine_sgd():
    """The Optuna peers' trainer: sweepjax's parameter layout, initial scale and objective
    (mean cross-entropy + lambda * sum(kernel**2) / 2); its first step uses the full
    rate (cos(0) = 1); lr = 0 leaves the weights alone."""
    import jax
    import jax.numpy as jnp

    from sweepjax.models.builtin import build_model, l2_penalty

    ds = toy_dataset(n_train=300, n_val=50, n_test=50, d=20, k=4)
    for kind in ("softmax", "mlp"):
        tr = ttq.make_trainer(ds, kind, 8, run_steps=10, chunk_steps=1, seed=0)
        state = tr.init(3)
        p = state[0]
        assert p["out"]["kernel"].shape == (4, 8 if kind == "mlp" else 20)
        model = build_model(ModelConfig(kind=kind, hidden=8), 4)
        x, y = jnp.asarray(ds.x_train[:64]), jnp.asarray(ds.y_train[:64])
        logits = model.apply({"params": p}, x)
        ce = -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(64), y])
        np.testing.assert_allclose(tr.objective(p, x, y, 0.3), ce + 0.3 * l2_penalty(p), rtol=1e-5)
        same, ok = tr.chunk(state, jnp.int32(0), 3, 0.0, 1e-3, 0.5)
        assert bool(ok)
        jax.tree.map(np.testing.assert_array_equal, same[0], p)
    p = ttq.make_trainer(ds, "softmax", 8, 10, 1, 0).init(0)[0]
    assert float(jnp.std(p["out"]["kernel"])) == pytest.approx(1e-3, rel=0.2)
    # One step at t0 = 0 moves by exactly lr * gradient of the step's own minibatch: the
    # rate at t = 0 is lr whatever the decay; at t = run_steps it is lr * decay.
    tr = ttq.make_trainer(ds, "softmax", 8, run_steps=10, chunk_steps=1, seed=0)
    s0 = tr.init(0)
    p0 = s0[0]
    a, _ = tr.chunk(s0, jnp.int32(0), 0, 0.5, 1e-3, 0.01)
    b, _ = tr.chunk(s0, jnp.int32(0), 0, 0.25, 1e-3, 0.9)
    np.testing.assert_allclose(
        a[0]["out"]["kernel"] - p0["out"]["kernel"],
        2 * (b[0]["out"]["kernel"] - p0["out"]["kernel"]),
        rtol=1e-4,
        atol=1e-9,
    )
    # With momentum 0.9 (optax.trace, sweepjax's momentum optimizer): two steps of the
    # peer equal two steps of optax.sgd(lr, momentum=0.9) on the same minibatches.
    import optax

    tr = ttq.make_trainer(ds, "mlp", 8, run_steps=10, chunk_steps=2, seed=0, momentum=0.9)
    s0 = tr.init(1)
    got, _ = tr.chunk(s0, jnp.int32(0), 1, 0.1, 1e-3, 1.0)
    tx = optax.sgd(0.1, momentum=0.9)
    p, opt = s0[0], tx.init(s0[0])
    key = jax.random.fold_in(jax.random.split(jax.random.key(0))[1], 1)
    for t in range(2):
        idx = jax.random.randint(jax.random.fold_in(key, t), (ttq.BATCH,), 0, 300)
        x, y = jnp.asarray(ds.x_train)[idx], jnp.asarray(ds.y_train)[idx]
        upd, opt = tx.update(jax.grad(tr.objective)(p, x, y, 1e-3), opt, p)
        p = optax.apply_updates(p, upd)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), got[0], p)


@pytest.mark.slow
def test_ttq_quick_run_writes_sane_timelines(tmp_path):
    """Quick mode end to end on a small subset (the default sweepjax flow, Optuna
    TPE+Hyperband for a few seconds), each worker in its own process."""
    pytest.importorskip("optuna")  # a benchmark peer (the bench extra; CI installs it)

    argv = ["--quick", "--model", "softmax", "--flows", "default"]
    argv += ["--peers", "optuna tpe+hyperband", "--budget-s", "4", "--out", str(tmp_path)]
    ttq.main(argv)
    data = json.loads((tmp_path / "time-to-quality-cpu-quick.json").read_text())
    assert data["settings"]["dataset"] == "mnist-sample"
    m = data["models"]["softmax"]
    rows = {r["approach"]: r for r in m["rows"]}
    assert set(rows) == {"sweepjax default", "optuna tpe+hyperband"}
    for r in rows.values():
        ev = r["events"]
        assert ev, r["approach"]
        ts, vals = [e["t"] for e in ev], [e["val"] for e in ev]
        assert ts[0] > 0 and ts == sorted(ts) and ts[-1] <= r["wall_s"] <= r["subprocess_wall_s"]
        assert all(
            b > a for a, b in zip(vals, vals[1:], strict=False)
        )  # recorded only on improvement
        assert all(0.1 < v <= 1 for v in vals)
        # sweepjax's final is its stage winners' best; progress may have shown a member
        # that later diverged, so the timeline can only be higher.
        assert 0.1 < r["final_test"] <= 1 and r["final_val"] <= max(vals)
        # Every reached target is reached at an event's time.
        for t in r["time_to_target"].values():
            assert t is None or t in ts
    assert [s["stage"] for s in rows["sweepjax default"]["stages"]] == ["coarse", "fine"]
    assert rows["sweepjax default"]["stages"][0]["members"] == ttq.QUICK_COARSE["trials"]
    tpe = rows["optuna tpe+hyperband"]
    assert tpe["final_val"] == tpe["events"][-1]["val"]
    assert all(e["test"] is not None for e in tpe["events"])
    assert tpe["trials"] == tpe["counts"]["complete"] + tpe["counts"]["pruned"]
    rat = m["ratio_tpe_hb_vs_sweepjax_default"]
    assert rat["target_val"] == tpe["final_val"] and rat["optuna_tpe_hb_s"] > 0
    md = (tmp_path / "time-to-quality-cpu-quick.md").read_text()
    assert md.startswith("# Time to quality") and "| sweepjax default |" in md
    assert (tmp_path / "time-to-quality-cpu-quick.png").stat().st_size > 0


def test_ttq_remembers_the_width_table_before_any_timed_anytime_flow(monkeypatch):
    # The first anytime flow must not pay the width probe alone: an untimed 5-s ASHA
    # worker runs first, and its row is not among the results.
    calls = []

    def fake(name, model, args, progress=print):
        calls.append((name, args.budget_s))
        return {"approach": name, "events": [], "wall_s": 1.0}

    monkeypatch.setattr(ttq, "run_worker", fake)
    monkeypatch.setattr(ttq, "summarize", lambda rows, targets: {})
    args = ttq.parse(["--model", "softmax", "--flows", "default,auto", "--peers", "none"])
    out = ttq.bench(args)
    assert calls == [("sweepjax asha", 5.0), ("sweepjax default", 120.0), ("sweepjax auto", 120.0)]
    assert [r["approach"] for r in out["softmax"]["rows"]] == ["sweepjax default", "sweepjax auto"]
    calls.clear()
    ttq.bench(ttq.parse(["--model", "softmax", "--flows", "default", "--peers", "none"]))
    assert calls == [("sweepjax default", 120.0)]


def test_ttq_variant_without_the_argument_is_skipped_with_the_reason(monkeypatch):

    monkeypatch.setitem(ttq.FLOWS, "sweepjax bogus", ({"no_such_argument": 1}, {}))
    args = ttq.parse(["--worker", "sweepjax bogus", "--model", "softmax", "--quick"])
    out = ttq.worker_sweepjax(args)
    assert "no_such_argument" in out["skipped"] and "events" not in out


@pytest.mark.slow
def test_mlp_configs_quick_rows_are_the_trainers_numbers(tmp_path):
    """Each row's test accuracy is the one of the member's best checkpoint; a member's
    best validation accuracy is above chance (10 classes) on the bundled sample."""
    res = bench_mlp_configs.main(["--quick", "--out", str(tmp_path)])
    assert [(s["optimizer"], s["hidden"], s["steps"]) for s in res["settings"]] == [
        ("sgd", 12, 50),
        ("momentum", 32, 50),
    ]
    for s in res["settings"]:
        assert len(s["members"]) == 4
        best = max(m["best_val_acc"] for m in s["members"])
        assert 0.5 < best <= 1.0
    md = (tmp_path / "mlp-configs-cpu-quick.md").read_text()
    assert md.count("| momentum | 32 |") == 4


def test_ttq_peer_trains_the_model_of_sweepjax_default_flow():
    from sweepjax.spec import DEFAULT_STEPS, MODEL_DEFAULTS

    mlp = MODEL_DEFAULTS["mlp"]
    assert ttq.PEER_MODEL["mlp"] == {
        "hidden": mlp.hidden,
        "optimizer": mlp.optimizer,
        "run_steps": mlp.fine_steps_factor * DEFAULT_STEPS,
    }
    assert ttq.PEER_MODEL["softmax"]["run_steps"] == (
        MODEL_DEFAULTS["softmax"].fine_steps_factor * DEFAULT_STEPS
    )


def test_summarize_seeds_reports_each_seed_and_the_differences(tmp_path):
    import summarize_seeds as ss

    asha, auto = "sweepjax asha", "sweepjax auto"
    assert {asha, auto} <= set(ss.OURS)

    def doc(seed, ours, peer, with_auto=False, complete=None):
        rows = [
            {"approach": asha, "best_at": {"20": ours[0], "40": ours[1]}, "final_test": 0.84},
            {"approach": ss.PEER, "best_at": {"20": peer[0], "40": peer[1]}, "final_test": 0.83},
        ]
        if complete is not None:  # Optuna's completed trials (study.best_value)
            rows[1]["events_complete"] = complete
        if with_auto:  # a later flow, run on one seed only
            rows.append(
                {
                    "approach": auto,
                    "best_at": {"20": None, "40": 0.86},
                    "final_test": 0.85,
                    "final_refit_test": 0.852,
                }
            )
        return {
            "settings": {"seed": seed},
            "machine": {"cpu": "test cpu"},
            "models": {"softmax": {"rows": rows}},
        }

    (tmp_path / "seeds" / "seed1").mkdir(parents=True)
    (tmp_path / f"{ss.STEM}.json").write_text(json.dumps(doc(0, [0.85, 0.856], [None, 0.857])))
    (tmp_path / "seeds" / "seed1" / f"{ss.STEM}.json").write_text(
        json.dumps(
            doc(1, [0.84, 0.852], [0.83, 0.850], with_auto=True, complete=[{"t": 30, "val": 0.87}])
        )
    )
    docs = ss.runs(tmp_path)
    assert sorted(docs) == [0, 1]
    summary = ss.summarize(docs)["softmax"]
    d = summary[asha]["diffs"]
    # at 20 s only seed 1 has both (+0.01); seed 0 had only sweepjax's model
    assert d["20"]["n"] == 1 and d["20"]["median"] == pytest.approx(0.01)
    assert d["20"]["only_ours"] == 1
    # at 40 s: -0.001 and +0.002
    assert d["40"]["median"] == pytest.approx(0.0005)
    assert d["40"]["min"] == pytest.approx(-0.001) and d["40"]["max"] == pytest.approx(0.002)
    # Within one SE of the peer (0.0046 near 0.85) on both seeds at both times (seed 0
    # at 20 s: the peer had nothing); against the completed trials (seed 1 only):
    # nothing yet at 20 s, then 0.852 is 4 SE below 0.87 at 40 s.
    assert ss.se(0.85) == pytest.approx(0.00461, abs=1e-5)
    assert [d[t]["within_one_se"] for t in ("20", "40")] == [2, 2]
    assert [d[t]["within_one_se_of_complete"] for t in ("20", "40")] == [1, 0]
    assert d["40"]["seeds_complete"] == 1
    # auto ran on seed 1 only: compared there alone, nothing yet at 20 s
    a = summary[auto]
    assert list(a["seeds"]) == [1] and a["diffs"]["20"]["n"] == 0
    assert a["diffs"]["40"]["median"] == pytest.approx(0.86 - 0.850)
    md = ss.markdown(ss.summarize(docs), docs)
    assert "| 0 | 0.8500 / - | 0.8560 / 0.8570 | 0.8400 / 0.8300 |" in md
    assert "+0.0005 [-0.0010, +0.0020]" in md and "(+1 seed(s) where only sweepjax had one)" in md
    assert "| 1 | - / 0.8300 | 0.8600 / 0.8500 | 0.8500 (refit 0.8520) / 0.8300 |" in md
    assert "| within one SE of the peer (or the peer had none) | 2 of 2 | 2 of 2 |" in md
    assert "(completed trials only) | 1 of 1 | 0 of 1 |" in md


@pytest.mark.slow
def test_verdicts_bench_quick_run_reports_what_the_flow_judged(tmp_path):
    """The bench's "after" is the flow's own verdict and its gap is computed from it; the
    "before" refit reads the same members; the fine rows count the members that diverged."""
    import bench_verdicts

    res = bench_verdicts.main(["--quick", "--out", str(tmp_path)])
    (c,) = res["coarse"]
    a = c["after"]
    assert a["gap_se"] == pytest.approx((a["optimum_value"] - c["winner_val"]) / c["winner_se"])
    assert set(c["before"]) >= {"optimum_value", "gap_se", "box_lr", "flags"}
    (f,) = res["fine"]
    for label in ("before", "after"):
        assert 0 <= f[label]["diverged"] <= f[label]["members"] == 32
    md = (tmp_path / "verdicts-cpu-quick.md").read_text()
    assert "softmax halving seed 3" in md
    assert "Reproduce: `python benchmarks/bench_verdicts.py --quick`" in md


def test_default_vs_optuna_reads_who_got_there_first_from_the_events():
    import bench_default_vs_optuna as dvo

    def row(name, final, wall, events):
        return {"approach": name, "final_val": final, "wall_s": wall, "events": events}

    ev = [{"t": 10.0, "val": 0.80}, {"t": 30.0, "val": 0.86}, {"t": 50.0, "val": 0.87}]
    doc = {"models": {"softmax": {"rows": [row("sweepjax default", 0.855, 20.0, []),
                                           row(dvo.PEER, 0.87, 60.0, ev)]}}}  # fmt: skip
    r = dvo.seed_row(doc)
    se = (0.855 * 0.145 / 6000) ** 0.5
    assert r["optuna_at_default_end"] == 0.80 and r["optuna_reach_default_s"] == 30.0
    assert r["not_later"] and not r["within_one_se"]  # 0.015 apart is 3.3 SE
    assert r["default_minus_optuna_final_se"] == pytest.approx(-0.015 / se)
    assert r["default_winner_known_s"] is None  # a record with no stages
    doc["models"]["softmax"]["rows"][0]["wall_s"] = 40.0  # Optuna was there first
    assert not dvo.seed_row(doc)["not_later"]
    # ... unless the flow is counted done when its winner is known, before a 12-s refit
    doc["models"]["softmax"]["rows"][0]["stages"] = [{"refit_s": 0.0}, {"refit_s": 12.0}]
    r = dvo.seed_row(doc)
    assert r["default_winner_known_s"] == 28.0 and r["not_later_winner_known"]
    # --warm reads the warm-cache flow's row.
    doc["models"]["softmax"]["rows"][0]["approach"] = "sweepjax warm-cache"
    assert dvo.seed_row(doc, "warm-cache")["default_end_s"] == 40.0


def test_import_bench_times_a_fresh_process_and_names_the_ml_dtypes_it_loaded():
    import importlib.metadata

    import bench_imports

    secs, version = bench_imports.once("json", None)
    assert 0 < secs < 5 and version == importlib.metadata.version("ml_dtypes")


@pytest.mark.slow
def test_fine_trials_bench_pairs_the_rounds_of_one_parent(tmp_path):
    """Both rounds refine the same parent; the smaller one's members are the first of the
    larger's (so the same winner, whenever it is among them); the summary's paired numbers
    are the rows' own."""
    import bench_fine_trials as bft

    res = bft.main(["--quick", "--dataset", "mnist-sample", "--seeds", "0", "1"]
                   + ["--trials", "32", "16", "--out", str(tmp_path)])  # fmt: skip
    assert [r["seed"] for r in res["rows"]] == [0, 1]
    s, rows = res["summary"]["16"], [r["runs"] for r in res["rows"]]
    for r in rows:  # the same member is the same hyperparameters in both rounds
        assert r[16]["winner"] < 16 and r[32]["winner"] < 32
        if r[16]["winner"] == r[32]["winner"]:
            assert (r[16]["lr"], r[16]["l2"]) == (r[32]["lr"], r[32]["l2"])
    assert s["same_winner"] == sum(r[16]["winner"] == r[32]["winner"] for r in rows)
    d = [(r[16]["val_acc"] - r[32]["val_acc"]) / r[32]["val_se"] for r in rows]
    assert s["val_diff_se_mean"] == pytest.approx(sum(d) / 2)
    md = (tmp_path / "fine-trials-softmax-cpu.md").read_text()
    assert "Reproduce: `python benchmarks/bench_fine_trials.py --quick" in md
