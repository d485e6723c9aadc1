"""The command line end to end on the bundled mnist-sample: coarse -> fine, resume after
Ctrl-C and kill -9, inspection commands, and every bad input (exit 2, one line).

Every in-process sweep uses the same population shape (12 members, 60 steps, batch 64)
so the compiled chunk program is reused across tests.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import sweepjax
from sweepjax.cli import main
from sweepjax.flows.sweep import Callbacks, SweepInterrupted
from sweepjax.store.db import Store

# Slow tier (end to end through the CLI and the store); CI runs it with `-m slow`.
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
BASE = [
    "--dataset",
    "mnist-sample",
    "--trials",
    "12",
    "--steps",
    "60",
    "--batch-size",
    "64",
    "--no-report",
]


def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(list(argv) + ["--format", "json"]) == 0
    out = capsys.readouterr().out

    def no_nan(x):
        raise AssertionError(f"non-JSON constant {x} in output")

    return json.loads(out, parse_constant=no_nan)


def best_ok(doc: dict) -> dict:
    """The winner's rule: best accuracy among finished members, then lower val loss."""
    ok = [m for m in doc["members"] if m["status"] == "ok"]
    return max(ok, key=lambda m: (m["best_val_acc"], -m["final_val_loss"], -m["id"]))


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """One coarse sweep and one fine sweep in a store, run through main()."""
    d = tmp_path_factory.mktemp("cli")
    store = str(d / "s.db")
    from contextlib import redirect_stdout  # capsys is function-scoped: capture by hand
    from io import StringIO

    docs = {}
    for name, argv in (
        ("coarse", ["coarse", *BASE, "--store", store, "--format", "json"]),
        # same eval/chunk sizes as the coarse run: one compiled program
        (
            "fine",
            [
                "fine",
                "--store",
                store,
                "--format",
                "json",
                "--no-report",
                "--eval-every",
                "3",
                "--chunk-steps",
                "6",
            ],
        ),
    ):
        buf = StringIO()
        with redirect_stdout(buf):
            assert main(argv) == 0
        docs[name] = json.loads(buf.getvalue())
    return store, docs


def test_coarse_json_document(swept):
    store, docs = swept
    doc = docs["coarse"]
    assert set(doc) >= {
        "sweep_id",
        "kind",
        "parent",
        "dataset",
        "space",
        "members",
        "winner",
        "boundary",
        "tied",
        "importance",
        "flat",
        "optimum_inside",
        "optimum_confidence",
        "timing",
        "report",
    }
    assert (doc["sweep_id"], doc["kind"], doc["parent"]) == ("c1", "coarse", None)
    assert doc["dataset"]["name"] == "mnist-sample"
    assert (doc["dataset"]["n_train"], doc["dataset"]["n_val"]) == (3600, 400)
    assert len(doc["dataset"]["sha256"]) == 64
    assert doc["space"] == {"lr": [1e-4, 3.0], "l2": [1e-6, 1.0]}
    assert [m["id"] for m in doc["members"]] == list(range(12))
    for m in doc["members"]:
        assert set(m) >= {
            "id",
            "lr",
            "l2",
            "status",
            "diverged_at",
            "best_val_acc",
            "best_step",
            "final_train_loss",
            "final_val_loss",
        }
        assert 1e-4 <= m["lr"] <= 3.0 and 1e-6 <= m["l2"] <= 1.0
        assert (m["status"] == "diverged") == (m["diverged_at"] is not None)
        assert (m["status"] == "stopped") == (m["stopped_at"] is not None)
    # The default coarse schedule (halving) stops most members at its rungs.
    assert doc["schedule"] == "halving" and doc["lineage"] == []
    assert sum(m["status"] == "stopped" for m in doc["members"]) >= 12 - 12 // 3
    w = doc["winner"]
    assert w["id"] == best_ok(doc)["id"]
    assert w["val_acc"] == best_ok(doc)["best_val_acc"]
    assert w["val_acc"] > 0.8 and w["test_acc"] > 0.8  # chance is 0.1
    # Every score with its binomial SE on the 400 validation examples (p shrunk by half an
    # example); the tied set: finished members only, the winner first, each within
    # Gupta's z (k finished members) of the winner's accuracy.
    from sweepjax.analysis.verdict import selection_z

    for m in doc["members"]:
        p = (m["best_val_acc"] * 400 + 0.5) / 401
        assert m["val_acc_se"] == pytest.approx(np.sqrt(p * (1 - p) / 400), rel=1e-9)
    assert w["val_acc_se"] == best_ok(doc)["val_acc_se"]
    by_id = {m["id"]: m for m in doc["members"]}
    ok = [m for m in doc["members"] if m["status"] == "ok"]
    z = selection_z(len(ok))
    want = [
        m["id"]
        for m in ok
        if w["val_acc"] - m["best_val_acc"] <= z * np.hypot(w["val_acc_se"], m["val_acc_se"])
    ]
    assert doc["tied"][0] == w["id"] and sorted(doc["tied"]) == sorted(want)
    assert all(by_id[i]["status"] == "ok" for i in doc["tied"])
    assert set(doc["importance"]) == {"lr", "l2"} and set(doc["flat"]) <= {"lr", "l2"}
    assert isinstance(doc["optimum_inside"], bool) and 0 <= doc["optimum_confidence"] <= 1
    assert set(doc["timing"]) == {
        "compile_s",
        "train_s",
        "model_steps_per_s",
        "eval_s",
        "transfer_s",
        "checkpoint_s",
        "checkpoints",
        "refit_s",
    }
    assert doc["timing"]["refit_s"] == 0.0  # a coarse sweep has no refit
    assert doc["report"] is None  # --no-report


def test_same_seed_same_members_via_toml_config(swept, tmp_path, capsys):
    """Ids and results are stable: same seed and flags (here from a TOML file, with a
    flag overriding one key) give identical members."""
    _, docs = swept
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        'dataset = "mnist-sample"\ntrials = 12\nsteps = 60\nbatch-size = 64\n'
        "seed = 5\nreport = false\n"
    )
    doc = run_json(
        capsys, "coarse", "--config", str(cfg), "--seed", "0", "--store", str(tmp_path / "t.db")
    )
    assert doc["members"] == docs["coarse"]["members"]
    assert doc["winner"] == docs["coarse"]["winner"]


def test_fine_refines_an_interior_winner(swept):
    store, docs = swept
    c, f = docs["coarse"], docs["fine"]
    assert (f["sweep_id"], f["kind"], f["parent"]) == ("f1", "fine", "c1")
    # seed 0: the model sees no edge the score still rises toward ...
    assert c["boundary"] == [] and c["verdict"]["optimum_status"] != "past an edge"
    # (with 12 members it may be "not established" inside; no flagged edge is what counts)
    for axis in ("lr", "l2"):  # ... so the box shrinks around the optimum and the tied set
        (lo, hi), (plo, phi) = f["space"][axis], c["space"][axis]
        assert plo <= lo < hi <= phi and np.log(hi / lo) < np.log(phi / plo)
        assert lo <= c["winner"][axis] <= hi
    assert f["winner"]["id"] == best_ok(f)["id"]
    assert f["winner"]["val_acc"] > 0.85
    # The refit: the winner retrained on train + validation for its best step scaled by
    # (3600 + 400) / 3600, scored on the test set next to the early-stopped model.
    wm = next(m for m in f["members"] if m["id"] == f["winner"]["id"])
    assert f["winner"]["refit_steps"] == round(wm["best_step"] * 4000 / 3600)
    assert f["winner"]["refit_test_acc"] > 0.8
    # Its time is reported as training of its own, outside the sweep's train_s, and stored.
    assert f["timing"]["refit_s"] > 0 and c["timing"]["refit_s"] == 0.0
    with Store.open(store) as st:
        assert st.load_sweep("f1").timing.refit_s == f["timing"]["refit_s"]
        row = st.sweep_row("f1")
        assert row.config.train.steps == sweepjax.flows.sweep.FINE_STEPS_FACTOR * 60
        # fine also searches the decay (the rate's final multiplier)
        assert f["space"]["lr_decay"] == [sweepjax.flows.sweep.FINE_LR_DECAY.lo, 1.0]
        assert row.config.data.dataset == "mnist-sample"
        res = st.load_sweep("f1")
        assert res.refinement and res.refinement.startswith("model box around the optimum")
        assert res.winner_params["out"]["kernel"].shape == (10, 784)
        # An evaluation every 3 steps (--eval-every 3), plus one at each halving rung.
        total = 60 * sweepjax.flows.sweep.FINE_STEPS_FACTOR
        rungs = [total // 27 * 3**j for j in range(3)]
        want = sorted(set(range(3, total + 1, 3)) | set(rungs))
        assert res.curves.step.tolist() == want and res.curves.val_acc.shape == (12, len(want))


def test_fine_chains_and_text_output(swept, capsys):
    store, _ = swept
    capsys.readouterr()
    assert (
        main(
            [
                "fine",
                "--from",
                "f1",
                "--store",
                store,
                "--steps",
                "60",
                "--no-report",
                "--batch-size",
                "64",
            ]
        )
        == 0
    )
    out, err = capsys.readouterr()
    assert "fine sweep f2 (refines f1)" in out
    assert "rank" in out and "best val acc" in out and "lambda (l2)" in out
    assert "winner: try" in out and "test acc" in out and "stored: sweep f2" in out
    assert "fine box from f1: model box around the optimum and the tied set: lr: [" in err
    assert "refit: member" in err and "train + validation" in out
    with Store.open(store) as st:
        f2 = st.load_sweep("f2", curves=False)
    assert [p for p, _ in f2.parent_spaces] == ["c1", "f1"]


def test_list_show_export(swept, capsys):
    store, docs = swept
    capsys.readouterr()
    assert main(["list", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "c1" in out and "f1" in out and "finished" in out
    assert main(["show", "c1", "--store", store]) == 0
    out = capsys.readouterr().out
    assert "coarse sweep c1" in out and "diagnoses (top members):" in out
    doc = run_json(capsys, "show", "c1", "--store", store)
    from sweepjax.analysis.diagnose import diagnose_sweep
    from sweepjax.store.db import Store

    with Store.open(store) as st:
        want = diagnose_sweep(st.load_sweep("c1", curves=True))
    assert doc["diagnoses"] == {
        str(k): [dict(d._asdict()) for d in v] for k, v in want.items() if v
    }
    assert main(["export", "c1", "--store", store, "--format", "csv"]) == 0
    rows = capsys.readouterr().out.strip().splitlines()
    assert rows[0].startswith("id,lr,l2") and len(rows) == 13
    doc = run_json(capsys, "export", "c1", "--store", store)
    assert doc["members"] == docs["coarse"]["members"]


def test_ctrl_c_then_resume_equals_uninterrupted(swept, tmp_path, capsys):
    """Stopping at a chunk boundary (what Ctrl-C does) and resuming gives bit-identical
    results; resuming with different flags is refused."""
    _, docs = swept
    store = str(tmp_path / "r.db")
    calls = []

    def stop():
        calls.append(1)
        return len(calls) >= 3

    with pytest.raises(SweepInterrupted) as e:
        sweepjax.coarse(
            dataset="mnist-sample",
            trials=12,
            steps=60,
            batch_size=64,
            store=store,
            report=False,
            callbacks=Callbacks(stop=stop, note=print),
        )
    # Calls end at each evaluation (every 3 steps) and at each halving rung (6 and 18 for a
    # 60-step run): the third ends at step 9, between the rungs.
    assert e.value.exit_code == 130 and e.value.step == 9
    with Store.open(store) as st:
        assert st.sweep_row("c1").status == "interrupted"
    capsys.readouterr()
    assert main(["coarse", *BASE, "--store", store, "--steps", "90", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "flags differ from interrupted sweep c1 (--steps: 60 -> 90)" in err
    doc = run_json(capsys, "coarse", *BASE, "--store", store, "--resume")
    assert doc["sweep_id"] == "c1"
    assert doc["members"] == docs["coarse"]["members"]


def test_all_diverged_exit_3_results_stored(tmp_path, capsys):
    store = tmp_path / "d.db"
    argv = ["coarse", *BASE, "--lr", "1e3", "1e4", "--store", str(store)]
    capsys.readouterr()
    assert main(argv) == 3
    out, err = capsys.readouterr()
    assert "diverged: 12 of 12" in out and "every member of sweep c1 diverged" in err
    with Store.open(store) as st:
        res = st.load_sweep("c1")
    assert res.status == "finished" and res.winner is None
    assert all(m.status == "diverged" and m.diverged_at is not None for m in res.members)


# --------------------------------------------------------------------------- bad input
def _bad(tmp_path, capsys, argv, match, store=None):
    store = store or tmp_path / "bad.db"
    before = store.read_bytes() if store.exists() else None
    capsys.readouterr()
    try:
        code = main([*argv, "--store", str(store)])
    except SystemExit as e:  # argparse's own usage errors
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, (argv, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]
    assert (store.read_bytes() if store.exists() else None) == before


def test_bad_inputs(tmp_path, capsys):
    ms = ["--dataset", "mnist-sample"]
    _bad(tmp_path, capsys, ["coarse", *ms, "--lr", "1", "0.1"], "below upper bound")
    _bad(tmp_path, capsys, ["coarse", *ms, "--l2", "0", "1"], "positive bounds")
    _bad(tmp_path, capsys, ["coarse", *ms, "--trials", "0"], "--trials must be")
    _bad(tmp_path, capsys, ["coarse", *ms, "--steps", "0"], "--steps must be")
    _bad(tmp_path, capsys, ["coarse", "--dataset", "cifar"], "unknown dataset 'cifar'")
    _bad(tmp_path, capsys, ["coarse", "--dataset", f"npz:{tmp_path}/none.npz"], "no such file")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file")
    _bad(tmp_path, capsys, ["coarse", "--dataset", f"npz:{junk}"], str(junk.name))
    toml = tmp_path / "c.toml"
    toml.write_text("trails = 3\n")
    _bad(tmp_path, capsys, ["coarse", "--config", str(toml)], "unknown key 'trails'")
    _bad(tmp_path, capsys, ["coarse", "--lr", "1"], "takes two numbers LO HI")
    _bad(tmp_path, capsys, ["fine"], "no sweepjax store")
    _bad(tmp_path, capsys, ["show", "c1"], "no sweepjax store")
    _bad(
        tmp_path,
        capsys,
        ["coarse", *ms, "--resume"],
        "no interrupted coarse sweep",
        store=_empty_store(tmp_path),
    )
    _bad(tmp_path, capsys, ["fine"], "no finished coarse sweep", store=_empty_store(tmp_path))
    _bad(tmp_path, capsys, ["fine", "--from", "c7"], "no sweep 'c7'", store=_empty_store(tmp_path))
    _bad(tmp_path, capsys, ["show", "c9"], "no sweep 'c9'", store=_empty_store(tmp_path))
    notdb = tmp_path / "notdb.db"
    notdb.write_bytes(b"hello" * 50)
    _bad(tmp_path, capsys, ["coarse", *ms], "not a sweepjax store", store=notdb)
    _bad(tmp_path, capsys, ["list"], "not a sweepjax store", store=notdb)
    newer = _empty_store(tmp_path, "newer.db")
    con = sqlite3.connect(newer)
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    _bad(tmp_path, capsys, ["list"], "newer than this sweepjax", store=newer)
    _bad(tmp_path, capsys, ["coarse", *ms], "newer than this sweepjax", store=newer)
    # Checked in the plan, before the sweep's row exists: no new store, an existing one
    # byte for byte as it was (no "interrupted 0/N" sweep left behind).
    for url in ("notaurl", "sqlite:////nonexistent/dir/o.db"):
        for store in (None, _empty_store(tmp_path)):
            argv = ["coarse", *ms, "--trials", "4", "--optuna-storage", url]
            _bad(tmp_path, capsys, argv, f"cannot open the Optuna storage {url!r}", store=store)
    with Store.open(_empty_store(tmp_path)) as st:
        assert st.list_sweeps() == []
    # A negative budget reaches the budget's own message; 0 reads like 0s.
    _bad(tmp_path, capsys, ["coarse", *ms, "--budget", "-3s"], "must be positive, got -3 s")
    _bad(tmp_path, capsys, ["auto", *ms, "--budget", "-3s"], "must be positive, got -3 s")
    for zero in ("0", "0s"):
        _bad(tmp_path, capsys, ["coarse", *ms, "--budget", zero], "must be positive, got 0 s")
    _bad(tmp_path, capsys, ["coarse", *ms, "--budget", "60"], "needs a unit: 60s")


def _empty_store(tmp_path, name="empty.db") -> Path:
    p = tmp_path / name
    if not p.exists():
        Store.open(p, create=True).close()
    return p


# --------------------------------------------------------------------------- kill -9
@pytest.mark.slow
def test_kill_9_then_resume_equals_uninterrupted(tmp_path, capsys):
    """A sweep killed with SIGKILL mid-run continues with --resume to exactly the
    results of an uninterrupted run."""
    # the shape of the other tests' sweeps (one compiled program), run 5x longer
    argv = [
        "coarse",
        *BASE,
        "--steps",
        "300",
        "--eval-every",
        "3",
        "--chunk-steps",
        "6",
        "--format",
        "json",
    ]
    store = tmp_path / "k.db"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    log = (tmp_path / "stderr.txt").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sweepjax", *argv, "--store", str(store)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    step = 0
    try:
        deadline = time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            if store.exists():
                try:
                    con = sqlite3.connect(f"file:{store}?mode=ro", uri=True, timeout=1)
                    row = con.execute("SELECT step FROM checkpoints").fetchone()
                    con.close()
                except sqlite3.Error:
                    row = None
                if row and row[0] >= 30:
                    step = row[0]
                    break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
        log.close()
    assert proc.returncode == -signal.SIGKILL, (tmp_path / "stderr.txt").read_text()
    assert 30 <= step < 300
    with Store.open(store) as st:
        assert st.sweep_row("c1").status == "running"  # dead, unfinished, resumable

    resumed = run_json(capsys, *argv[:-2], "--store", str(store), "--resume")
    fresh = run_json(capsys, *argv[:-2], "--store", str(tmp_path / "fresh.db"))
    assert resumed["sweep_id"] == "c1"
    assert resumed["members"] == fresh["members"]
    assert resumed["winner"] == fresh["winner"]
    with Store.open(store) as a, Store.open(tmp_path / "fresh.db") as b:
        ca, cb = a.load_sweep("c1").curves, b.load_sweep("c1").curves
        for x, y in zip(ca, cb, strict=True):
            np.testing.assert_array_equal(x, y)


def test_report_hook_sets_the_report_path(tmp_path, capsys, monkeypatch):
    """When ``sweepjax.report`` is importable its ``write_report`` is called at the end
    with the result and its parents; its path lands in the JSON and the store."""
    import types

    calls = []

    def write_report(result, parents, out_dir, dataset_images=None, x_sample=None):
        assert dataset_images.shape == (36, 28, 28) and x_sample.shape == (400, 784)
        calls.append((result.sweep_id, [p.sweep_id for p in parents], out_dir))
        out_dir.mkdir(parents=True)
        (out_dir / "index.html").write_text("<html></html>")
        return out_dir / "index.html"

    monkeypatch.setitem(
        sys.modules, "sweepjax.report", types.SimpleNamespace(write_report=write_report)
    )
    store = tmp_path / "r.db"
    argv = [a for a in BASE if a != "--no-report"]
    doc = run_json(capsys, "coarse", *argv, "--store", str(store))
    expected = tmp_path / "r-reports" / "c1" / "index.html"
    assert doc["report"] == str(expected) and expected.exists()
    assert calls == [("c1", [], tmp_path / "r-reports" / "c1")]
    with Store.open(store) as st:
        assert st.sweep_row("c1").report == str(expected)
    run_json(capsys, "coarse", *BASE, "--store", str(store))  # --no-report: not called
    assert len(calls) == 1


def test_coarse_lr_auto_uses_the_finder_range(tmp_path, capsys, monkeypatch):
    import sweepjax.analysis.sanity

    seen = []

    def fake(ds, model_cfg, train_cfg):
        seen.append((ds.info.name, model_cfg.kind, train_cfg.steps))
        return 0.02, 0.5

    monkeypatch.setattr(sweepjax.analysis.sanity, "auto_lr_range", fake)
    doc = run_json(capsys, "coarse", *BASE, "--lr", "auto", "--store", str(tmp_path / "a.db"))
    assert seen == [("mnist-sample", "softmax", 60)]
    assert doc["space"]["lr"] == [0.02, 0.5]
    assert all(0.02 <= m["lr"] <= 0.5 for m in doc["members"])


def test_compile_cache_directory_from_the_environment(tmp_path, monkeypatch):
    from sweepjax.engine import compile_cache

    monkeypatch.setenv("SWEEPJAX_COMPILE_CACHE", "off")
    assert compile_cache.default_dir() is None and compile_cache.enable() is None
    monkeypatch.setenv("SWEEPJAX_COMPILE_CACHE", str(tmp_path / "xla"))
    assert compile_cache.default_dir() == tmp_path / "xla"
    monkeypatch.delenv("SWEEPJAX_COMPILE_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "c"))
    assert compile_cache.default_dir() == tmp_path / "c" / "sweepjax" / "xla"
    # A directory that cannot be created leaves the cache off instead of failing.
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert compile_cache.enable(blocker / "xla") is None
