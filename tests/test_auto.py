"""``sweepjax auto`` end to end on the bundled sample, and its stop at a failed check."""

from __future__ import annotations

import json

import pytest

import sweepjax.analysis.sanity
from sweepjax.cli import main
from sweepjax.flows.auto import fine_rounds_done
from sweepjax.store.db import Store


@pytest.mark.parametrize(
    "inside, gain, se, done",
    [
        (True, 0.002, 0.004, True),  # inside, gain within the winner's noise: stop
        (True, 0.004, 0.004, True),  # exactly one SE still counts as noise
        (True, -0.01, 0.004, True),  # the round got worse: no reason to go on
        (True, 0.0041, 0.004, False),  # gained more than one SE: another round may pay
        (False, 0.0, 0.004, False),  # the optimum may be past an edge: go on
        (False, -0.05, 0.004, False),
        (True, float("nan"), 0.004, False),  # gain not measured: go on
        (True, 0.0, None, True),  # no SE: only no gain at all stops
        (True, 0.001, None, False),
    ],
)
def test_auto_stops_fine_rounds_when_inside_and_the_gain_is_within_one_se(inside, gain, se, done):
    assert fine_rounds_done(inside, gain, se) is done


@pytest.mark.slow
def test_auto_runs_the_stages_in_order(tmp_path, capsys):
    """sanity -> lr_range -> coarse -> 1..3 fine rounds -> refit, one JSON document; the
    coarse box is the finder's; each fine round refines the previous sweep; the final
    winner is the best fine round's, with its SE, tied set and refit on train + val."""
    store = str(tmp_path / "a.db")
    argv = ["auto", "--dataset", "mnist-sample", "--trials", "32", "--steps", "60"]
    assert main([*argv, "--store", store, "--no-report", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    doc = json.loads(out)
    names = [s["stage"] for s in doc["stages"]]
    assert names[:3] == ["sanity", "lr_range", "coarse"] and names[-1] == "refit"
    fines = names[3:-1]
    assert 1 <= len(fines) <= 3 and set(fines) == {"fine"}
    # One line per stage on stderr, in the same order.
    assert [ln.split("]")[0][1:] for ln in err.splitlines() if ln.startswith("[")] == names
    stages = doc["stages"]
    assert all(c["passed"] for c in stages[0]["checks"])
    assert stages[2]["space"]["lr"] == pytest.approx(stages[1]["lr"])
    ids = [s["sweep_id"] for s in stages[2:-1]]
    assert ids == ["c1"] + [f"f{i}" for i in range(1, len(fines) + 1)]
    with Store.open(store) as st:
        assert [st.sweep_row(i).parent for i in ids] == [None, *ids[:-1]]
        for i in ids[1:]:  # fine rounds do not compound their steps: 8 x 60 each
            assert st.sweep_row(i).config.train.steps == 480
    best = max(stages[3:-1], key=lambda s: s["winner"]["val_acc"])
    w = doc["winner"]
    assert doc["sweep_id"] == best["sweep_id"] and w["id"] == best["winner"]["id"]
    assert w["val_acc"] > 0.85 and 0 < w["val_acc_se"] < 0.02
    assert doc["tied"][0] == w["id"]
    assert w["refit_test_acc"] > 0.85 and w["refit_steps"] == stages[-1]["steps"]
    assert doc["report"] is None
    # Rounds, not an anytime search: no progress points; the refit's time is reported.
    assert doc["progress"] == [] and doc["in_flight"] == 0 and doc["timing"]["refit_s"] > 0


@pytest.mark.slow
def test_auto_stops_at_a_failed_sanity_check(tmp_path, capsys, monkeypatch):
    """A failed check: exit 1, the check named on one line, no sweep run."""
    real = sweepjax.analysis.sanity.run_sanity

    def failing(*a, **k):
        rep = real(*a, **k)
        bad = rep.checks[2]._replace(passed=False, detail="loss 2.1 after 100 steps")
        return rep._replace(checks=[*rep.checks[:2], bad, *rep.checks[3:]])

    monkeypatch.setattr(sweepjax.analysis.sanity, "run_sanity", failing)
    store = tmp_path / "a.db"
    argv = ["auto", "--dataset", "mnist-sample", "--trials", "8", "--steps", "20"]
    assert main([*argv, "--store", str(store), "--no-report"]) == 1
    err = capsys.readouterr().err
    assert "sanity check failed" in err and "loss 2.1 after 100 steps" in err
    assert not store.exists() or Store.open(store).list_sweeps() == []


@pytest.mark.slow
def test_auto_trains_the_finder_population_once(tmp_path, monkeypatch):
    """Sanity's learning-rate population is the finder: auto's box is ``lr_box`` of it,
    at the coarse run's batch and at most 300 steps (training it a second time cost the
    width-256 MLP 40 s on a CPU). With a budget the finder tries half as many rates."""
    import sweepjax

    real = sweepjax.analysis.sanity._lr_population
    calls, ranges = [], []

    def counting(dataset, model_cfg, config, lrs, l2, steps, **kw):
        calls.append((len(lrs), steps, config.batch_size, config.optimizer))
        out = real(dataset, model_cfg, config, lrs, l2, steps, **kw)
        ranges.append(out)
        return out

    monkeypatch.setattr(sweepjax.analysis.sanity, "_lr_population", counting)
    common = dict(dataset="mnist-sample", steps=20, batch_size=64, report=False, refit=False)
    out = sweepjax.auto(**common, trials=8, max_rounds=1, store=tmp_path / "a.db")
    assert calls == [(32, 20, 64, "sgd")]
    box = sweepjax.analysis.sanity.lr_box(ranges[0])
    lr_stage = next(s for s in out.stages if s.name == "lr_range")
    assert lr_stage.data["lr"] == pytest.approx(list(box))
    assert out.stages[2].data["space"]["lr"] == pytest.approx(list(box))

    calls.clear()
    out = sweepjax.auto(**common, budget="5k", store=tmp_path / "b.db")
    assert calls == [(16, 20, 64, "sgd")]
    # the coarser finder's box reaches half a step past its outermost good rates
    box = sweepjax.analysis.sanity.lr_box(ranges[1], margin=0.5)
    assert box[0] < ranges[1].lo and box[1] > ranges[1].hi
    assert out.final.space["lr"] == pytest.approx(list(box))
    # auto --budget's document carries the search's progress, as coarse --budget's does:
    # best-so-far points, rising in time and accuracy, the stored sweep's own.
    doc = out.to_json()
    prog = doc["progress"]
    assert prog and prog == out.final.progress and doc["in_flight"] == out.final.in_flight
    for key in ("elapsed_s", "member_steps", "best_val_acc"):
        assert [p[key] for p in prog] == sorted(p[key] for p in prog)
    with Store.open(tmp_path / "b.db") as st:
        assert st.load_sweep(doc["sweep_id"]).progress == prog
        stored = st.sweep_row(doc["sweep_id"]).config.schedule.start
    # ASHA's first member trains at the finder's fastest-training rate (inside the box),
    # the other axes at the box's centre; stored with the sweep, so a resume draws it too.
    best = ranges[1].best
    assert box[0] < best < box[1] and out.stages[1].data["best"] == best
    first = next(m for m in out.final.members if m.id == 0)
    l2 = out.final.space["l2"]
    assert first.lr == pytest.approx(best, rel=1e-5)
    assert first.l2 == pytest.approx((l2[0] * l2[1]) ** 0.5, rel=1e-5)
    assert stored == (("lr", best),)
