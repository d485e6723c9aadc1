"""ASHA and budgets through the CLI, the store and ``auto`` (the slow tier: end to end on
the bundled sample). Member-step budgets keep every claim deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sweepjax.cli import main
from sweepjax.flows.sweep import Callbacks, SweepInterrupted
from sweepjax.store.db import Store
from tests.test_cli import _bad

pytestmark = pytest.mark.slow

BASE = ["--dataset", "mnist-sample", "--steps", "54", "--batch-size", "64", "--no-report"]
ASHA = [*BASE, "--budget", "4000 steps", "--width", "8", "--rungs", "2"]


def run_json(capsys, *argv) -> dict:
    capsys.readouterr()
    assert main(list(argv) + ["--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_budgeted_coarse_json_progress_and_store(tmp_path, capsys):
    store = str(tmp_path / "a.db")
    doc = run_json(capsys, "coarse", *ASHA, "--store", store)
    members = doc["members"]
    status = [m["status"] for m in members]
    # 4000 member-steps at width 8 in blocks of 6 steps: 84 blocks, ~11 full lengths.
    assert len(members) > 16 and status.count("ok") >= 2
    assert doc["schedule"] == "asha" and 0 < doc["in_flight"] <= 8
    prog = doc["progress"]
    assert prog and [p["best_val_acc"] for p in prog] == sorted(p["best_val_acc"] for p in prog)
    ok = [m for m in members if m["status"] == "ok"]
    assert doc["winner"]["val_acc"] == max(m["best_val_acc"] for m in ok)
    # The last best-so-far point is the first member to reach the winner's accuracy: the
    # winner itself, or one it ties (400 validation images: ties happen; the winner rule
    # breaks them by validation loss, a best-so-far point only moves on a gain).
    assert prog[-1]["best_val_acc"] == doc["winner"]["val_acc"]
    first = min(m["id"] for m in ok if m["best_val_acc"] == doc["winner"]["val_acc"])
    assert prog[-1]["member"] == first
    # Stopped members stopped at a rung (6 or 18 steps) or at the budget, in flight.
    stops = {m["stopped_at"] for m in members if m["status"] == "stopped"}
    assert {6, 18} <= stops
    with Store.open(store) as st:
        back = st.load_sweep(doc["sweep_id"])
    assert back.progress == prog and back.in_flight == doc["in_flight"]
    # The text output names the anytime numbers.
    capsys.readouterr()
    assert main(["show", doc["sweep_id"], "--store", store]) == 0
    out = capsys.readouterr().out
    assert f"{doc['in_flight']} of them still in flight" in out and "anytime:" in out


def test_interrupted_budgeted_run_resumes_to_the_same_result(tmp_path, capsys):
    import sweepjax

    kw = dict(
        dataset="mnist-sample",
        steps=54,
        batch_size=64,
        report=False,
        budget="4000 steps",
        width=8,
        rungs=2,
    )
    whole = sweepjax.coarse(store=tmp_path / "w.db", **kw)
    calls = []

    def stop():
        calls.append(1)
        return len(calls) == 30  # Ctrl-C after 30 blocks

    with pytest.raises(SweepInterrupted):
        sweepjax.coarse(store=tmp_path / "p.db", callbacks=Callbacks(stop=stop), **kw)
    rest = sweepjax.coarse(store=tmp_path / "p.db", resume=True, **kw)
    assert [m.status for m in rest.members] == [m.status for m in whole.members]
    np.testing.assert_array_equal(
        [m.best_val_acc for m in rest.members], [m.best_val_acc for m in whole.members]
    )  # NaN (a diverged member) equal to NaN
    assert rest.winner.id == whole.winner.id and rest.winner.test_acc == whole.winner.test_acc
    key = ("member_steps", "best_val_acc", "member")
    assert [[p[k] for k in key] for p in rest.progress] == [
        [p[k] for k in key] for p in whole.progress
    ]


def test_auto_with_a_budget_runs_one_asha_search_then_refits(tmp_path):
    import sweepjax

    out = sweepjax.auto(
        dataset="mnist-sample",
        steps=30,  # members of a fine round's length: 8 x 30 = 240 steps
        batch_size=64,
        budget="20k",
        report=False,
        store=tmp_path / "auto.db",
    )
    names = [s.name for s in out.stages]
    assert names == ["sanity", "lr_range", "asha", "refit"]
    f = out.final
    assert f.config.schedule.name == "asha" and f.config.train.steps == 240
    assert "lr_decay" in f.space and f.progress
    assert np.isfinite(f.winner.refit_test_acc) and f.winner.refit_test_acc > 0.8


def test_auto_budget_spent_before_the_search_still_answers(tmp_path, capsys):
    """A time budget the checks and the finder already used up (a test process is older
    than 3 s): the search stops at once, and auto still ends with an answer: exit 0, one
    warning line, the best member so far as the winner (unfinished, stored so), refit."""
    store = tmp_path / "a.db"
    argv = ["auto", "--dataset", "mnist-sample", "--steps", "20", "--batch-size", "64"]
    capsys.readouterr()
    assert main([*argv, "--budget", "3s", "--no-report", "--store", str(store)]) == 0
    out, err = capsys.readouterr()
    warn = [ln for ln in err.splitlines() if ln.startswith("warning:")]
    assert len(warn) == 1
    assert "no member of sweep c1 reached its 160 steps within the budget (2.4s)" in warn[0]
    assert "the winner is the best member so far, unfinished at step" in warn[0]
    assert not any(ln.startswith("Traceback") for ln in err.splitlines())
    with Store.open(store) as st:
        w = st.load_sweep("c1").winner
    assert w is not None and not w.finished and 0 < w.steps < 160
    assert w.test_acc is None and np.isfinite(w.refit_test_acc)


def test_budget_errors_are_one_line(tmp_path, capsys):
    ms = ["--dataset", "mnist-sample"]
    _bad(tmp_path, capsys, ["coarse", *ms, "--budget", "soon"], "cannot read budget 'soon'")
    _bad(tmp_path, capsys, ["coarse", *ms, "--budget", "60s", "--schedule", "halving"],
         "--budget is asha's")  # fmt: skip
    _bad(tmp_path, capsys, ["coarse", *ms, "--width", "0"], "--width must be")


def test_budget_too_small_for_any_member_to_finish(tmp_path, capsys):
    store = tmp_path / "t.db"
    capsys.readouterr()
    code = main(["coarse", *BASE, "--budget", "100 steps", "--width", "4", "--store", str(store)])
    err = capsys.readouterr().err
    assert code == 0 and "no member of sweep c1 reached its 54 steps" in err
    assert "the winner is the best member so far, unfinished at step" in err
    with Store.open(store) as st:
        res = st.load_sweep("c1")
    w = res.winner  # the best member that did not diverge, by the ranking
    best = max((m for m in res.members if m.status != "diverged"), key=lambda m: m.best_val_acc)
    assert w is not None and not w.finished and w.val_acc == best.best_val_acc
