"""A sweep in Optuna's storage (``export --format optuna``) and its configs as
scikit-learn's ``cv_results_`` (``export --format cv-results``), checked against the store:
trial counts, states, values, params, distributions and intermediate values; Optuna's
importances run on the study; halving's stopped members are PRUNED; a study that exists or
a missing optuna is one line, exit 2, nothing written.

Three tiny sweeps on the bundled sample (8 members, 30 steps) in one store, made once.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import sweepjax
from sweepjax.cli import main
from sweepjax.errors import ConfigError
from sweepjax.store.db import Store
from sweepjax.store.optuna_export import OPTUNA_MISSING, export_study, trial_specs

optuna = pytest.importorskip("optuna")

ROOT = Path(__file__).resolve().parents[1]
TINY = dict(dataset="mnist-sample", steps=30, batch_size=64, report=False)


@pytest.fixture(scope="module")
def sweeps(tmp_path_factory):
    """``full`` (every member to the end), ``halving`` (stopped members) and
    ``replicas`` (4 configs x 2 replicas, a user axis), stored in one store, read back
    with curves."""
    store = str(tmp_path_factory.mktemp("optuna") / "s.db")
    ids = {
        "full": sweepjax.coarse(trials=8, schedule="full", store=store, **TINY).sweep_id,
        "halving": sweepjax.coarse(trials=8, schedule="halving", store=store, **TINY).sweep_id,
        "replicas": sweepjax.coarse(  # with a user axis (nothing reads it): its CSV column
            trials=4,
            replicas=2,
            schedule="full",
            store=store,
            hparams={"w": (0.1, 1, "log")},
            **TINY,
        ).sweep_id,
    }
    with Store.open(store) as st:
        return store, {k: st.load_sweep(v, curves=True) for k, v in ids.items()}


def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'optuna.db'}"


def load(storage: str, name: str):
    return optuna.load_study(study_name=name, storage=storage)


def test_study_matches_the_store(sweeps, tmp_path):
    _, res = sweeps
    r = res["full"]
    done = export_study(r, url(tmp_path))
    assert done.study_name == r.sweep_id and done.trials == len(r.members) == 8
    study = load(url(tmp_path), r.sweep_id)
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert study.user_attrs["sweep_id"] == r.sweep_id
    assert study.user_attrs["kind"] == "coarse"
    assert study.user_attrs["dataset"] == "mnist-sample"
    assert study.user_attrs["winner"] == r.winner.id
    trials = study.get_trials(deepcopy=False)
    assert len(trials) == len(r.members)
    # Trial 0 is the winner (Optuna's best on ties), the others in member order.
    ids = [m.id for m in r.members]
    assert [t.user_attrs["member"] for t in trials] == [
        r.winner.id,
        *(i for i in ids if i != r.winner.id),
    ]
    trials = sorted(trials, key=lambda t: ids.index(t.user_attrs["member"]))
    want_state = {"ok": "COMPLETE", "stopped": "PRUNED", "diverged": "FAIL"}
    for i, (t, m) in enumerate(zip(trials, r.members, strict=True)):
        assert t.user_attrs["member"] == m.id
        assert t.state.name == want_state[m.status]
        if m.status == "ok":
            assert t.value == pytest.approx(m.best_val_acc, abs=1e-7)
        assert t.params == pytest.approx({"lr": m.lr, "l2": m.l2}, rel=1e-12)
        for name, (lo, hi) in r.space.items():
            assert t.distributions[name] == optuna.distributions.FloatDistribution(lo, hi, log=True)
        row = r.curves.val_acc[i]
        fin = np.isfinite(row)
        assert sorted(t.intermediate_values) == [int(s) for s in r.curves.step[fin]]
        np.testing.assert_allclose(
            [t.intermediate_values[int(s)] for s in r.curves.step[fin]], row[fin], rtol=1e-6
        )
        # the axes not searched ride along as user attributes
        assert t.user_attrs["lr_decay"] == 1.0 and "lr" not in t.user_attrs
    best = trials[[m.id for m in r.members].index(r.winner.id)]
    assert best.user_attrs["winner"] is True
    assert best.user_attrs["test_acc"] == pytest.approx(r.winner.test_acc)
    assert study.best_trial.user_attrs["member"] == r.winner.id


def test_optunas_best_trial_is_the_winner_on_tied_accuracies(sweeps, tmp_path):
    """Every finished member ties at the winner's accuracy; the winner is the one of lowest
    validation loss, the last in member order. Optuna's best trial is the winner: it is
    written first (before, Optuna's best was the first tied trial, member 0)."""
    _, res = sweeps
    r = res["full"]
    last = r.members[-1]
    members = [
        dataclasses.replace(
            m, status="ok", best_val_acc=0.9075, final_val_loss=0.5 if m is last else 0.6
        )
        for m in r.members
    ]
    winner = dataclasses.replace(r.winner, id=last.id, val_acc=0.9075)
    tied = dataclasses.replace(r, members=members, winner=winner)
    export_study(tied, url(tmp_path), "tied")
    study = load(url(tmp_path), "tied")
    assert study.best_trial.user_attrs["member"] == last.id
    assert study.best_trial.user_attrs["winner"] is True and study.best_trial.number == 0


def test_importances_run_on_the_study_and_name_the_searched_axes(sweeps, tmp_path):
    _, res = sweeps
    export_study(res["full"], url(tmp_path))
    imp = optuna.importance.get_param_importances(load(url(tmp_path), res["full"].sweep_id))
    assert set(imp) == set(res["full"].space) == {"lr", "l2"}
    assert sum(imp.values()) == pytest.approx(1.0)


def test_halving_stopped_members_are_pruned_at_their_stop(sweeps, tmp_path):
    _, res = sweeps
    r = res["halving"]
    stopped = [m for m in r.members if m.status == "stopped"]
    assert stopped, "halving stopped no member: the test sweep is too short"
    export_study(r, url(tmp_path), study_name="halved")
    trials = load(url(tmp_path), "halved").get_trials(deepcopy=False)
    by_member = {t.user_attrs["member"]: t for t in trials}
    for m in stopped:
        t = by_member[m.id]
        assert t.state == optuna.trial.TrialState.PRUNED
        assert t.user_attrs["stopped_at"] == m.stopped_at
        assert max(t.intermediate_values) <= m.stopped_at
        assert t.value == pytest.approx(m.best_val_acc)
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == sum(m.status == "ok" for m in r.members) >= 1


def test_diverged_nan_and_integer_axes(sweeps, tmp_path):
    """Diverged -> FAIL (no value: Optuna refuses one); a finished member without a finite
    accuracy -> FAIL, never a NaN COMPLETE; a whole-number axis -> IntDistribution; a value
    past the box (PBT explores past it) widens the distribution to hold it."""
    _, res = sweeps
    r = res["full"]
    ms = list(r.members)
    ms[0] = dataclasses.replace(ms[0], status="diverged", diverged_at=12)
    ms[1] = dataclasses.replace(ms[1], best_val_acc=float("nan"))
    ms = [dataclasses.replace(m, hidden=8 + 7 * i) for i, m in enumerate(ms)]
    ms[2] = dataclasses.replace(ms[2], lr=10.0)  # past the box's 3.0
    r = dataclasses.replace(r, members=ms, space={**r.space, "hidden": [8, 64]})
    specs = trial_specs(r)
    assert (specs[0].state, specs[0].value) == ("FAIL", None)
    assert specs[0].user_attrs["best_val_acc"] == pytest.approx(r.members[0].best_val_acc)
    assert (specs[1].state, specs[1].value) == ("FAIL", None)
    export_study(r, url(tmp_path))
    trials = load(url(tmp_path), r.sweep_id).get_trials(deepcopy=False)
    by_member = {t.user_attrs["member"]: t for t in trials}  # the winner's trial is first
    trials = [by_member[m.id] for m in r.members]
    assert [t.state.name for t in trials[:2]] == ["FAIL", "FAIL"]
    assert trials[0].user_attrs["diverged_at"] == 12
    assert trials[3].params["hidden"] == 8 + 7 * 3
    assert trials[3].distributions["hidden"] == optuna.distributions.IntDistribution(
        8, 64, log=True
    )
    assert trials[2].distributions["lr"].high == 10.0 and trials[2].params["lr"] == 10.0
    assert all(math.isfinite(t.value) for t in trials if t.state.name == "COMPLETE")


def test_replicas_carry_config_and_replica(sweeps, tmp_path):
    _, res = sweeps
    r = res["replicas"]
    export_study(r, url(tmp_path))
    study = load(url(tmp_path), r.sweep_id)
    # the winner's trial comes first, the others in member order: compare by member
    got = {t.user_attrs["member"]: (t.user_attrs["config"], t.user_attrs["replica"])
           for t in study.trials}  # fmt: skip
    assert got == {m.id: (m.config, m.replica) for m in r.members}
    assert len(study.trials) == len(r.members)
    assert study.user_attrs["winner_config"] == r.winner.config


def test_cli_refuses_an_existing_study_and_writes_nothing(sweeps, tmp_path, capsys):
    store, res = sweeps
    sid, storage = res["full"].sweep_id, url(tmp_path)
    argv = ["export", sid, "--store", store, "--format", "optuna", "--storage", storage]
    assert main(argv) == 0
    err = capsys.readouterr().err
    assert "8 trials" in err and f"optuna-dashboard {storage}" in err
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "already exists" in err and "--study" in err
    assert len(load(storage, sid).trials) == 8  # not doubled
    assert main([*argv, "--study", "again"]) == 0
    assert sorted(optuna.get_all_study_names(storage)) == sorted([sid, "again"])
    capsys.readouterr()
    assert main(argv[:-2]) == 2  # no --storage
    assert "--storage" in capsys.readouterr().err
    assert main(["export", sid, "--store", store, "--study", "x"]) == 2  # json with --study
    assert "--format optuna" in capsys.readouterr().err


def test_missing_optuna_is_one_line_exit_2(sweeps, tmp_path, monkeypatch, capsys):
    store, res = sweeps
    monkeypatch.setitem(sys.modules, "optuna", None)  # what an absent package raises
    with pytest.raises(ConfigError, match="pip install 'sweepjax\\[optuna\\]'"):
        export_study(res["full"], url(tmp_path))
    argv = ["export", res["full"].sweep_id, "--store", store, "--format", "optuna"]
    assert main([*argv, "--storage", url(tmp_path)]) == 2
    assert capsys.readouterr().err == f"sweepjax: error: {OPTUNA_MISSING}\n"
    assert not (tmp_path / "optuna.db").exists()


def test_cv_results_csv_matches_the_stored_configs(sweeps, capsys):
    store, res = sweeps
    r = res["replicas"]
    assert len(r.configs) == 4
    capsys.readouterr()
    assert main(["export", r.sweep_id, "--store", store, "--format", "cv-results"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == len(r.configs)
    by_id = {m.id: m for m in r.members}
    for row, c in zip(rows, r.configs, strict=True):
        assert int(row["config"]) == c.id and row["status"] == c.status
        assert float(row["param_lr"]) == pytest.approx(c.lr, rel=1e-12)
        assert float(row["param_w"]) == pytest.approx(by_id[c.members[0]].hparams["w"])
        assert by_id[c.members[1]].hparams["w"] == by_id[c.members[0]].hparams["w"]
        assert float(row["mean_test_score"]) == pytest.approx(c.mean_val_acc)
        assert float(row["std_test_score"]) == pytest.approx(c.std_val_acc)
        assert int(row["rank_test_score"]) == c.rank_val_acc
        splits = [float(row[f"split{k}_test_score"]) for k in range(2)]
        assert splits == pytest.approx([by_id[i].best_val_acc for i in c.members])
        assert np.mean(splits) == pytest.approx(c.mean_val_acc)
    assert sorted(int(row["rank_test_score"]) for row in rows) == [1, 2, 3, 4]
    # a plain sweep has no configs: one line, exit 2
    assert main(["export", res["full"].sweep_id, "--store", store, "--format", "cv-results"]) == 2
    assert "--replicas" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_end_to_end_in_a_fresh_process_without_optuna(tmp_path):
    """The commands as a person types them: a replicated sweep, its study, its
    cv_results_; then the same export in an interpreter where optuna cannot be imported."""
    store, storage = str(tmp_path / "s.db"), url(tmp_path)

    def sj(*argv, block_optuna=False):
        block = "sys.modules['optuna'] = None; " if block_optuna else ""
        code = f"import sys; {block}from sweepjax.cli import main; sys.exit(main({list(argv)!r}))"
        return subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=600
        )

    p = sj(
        "coarse", "--dataset", "mnist-sample", "--trials", "4", "--replicas", "2",
        "--steps", "30", "--batch-size", "64", "--no-report", "--store", store,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    p = sj("export", "c1", "--store", store, "--format", "optuna", "--storage", storage)
    assert p.returncode == 0, p.stderr
    assert p.stdout == "" and "8 trials" in p.stderr
    assert len(load(storage, "c1").trials) == 8
    p = sj("export", "c1", "--store", store, "--format", "cv-results")
    assert p.returncode == 0 and len(p.stdout.strip().splitlines()) == 1 + 4
    p = sj(
        "export", "c1", "--store", store, "--format", "optuna", "--storage", storage,
        "--study", "other", block_optuna=True,
    )  # fmt: skip
    assert p.returncode == 2
    assert p.stderr.strip() == f"sweepjax: error: {OPTUNA_MISSING}"
    assert optuna.get_all_study_names(storage) == ["c1"]


# --------------------------------------------------------------------------- timeline
def test_cli_export_stamps_each_trial_with_its_members_own_start_and_end(sweeps, tmp_path):
    """optuna-dashboard's Timeline was flat: every trial carried the export time. Now a
    member stopped at a rung ends before one stopped later, which ends before those that
    trained to the end; every member of a halving run starts at step 0; all of it lies
    between the sweep's creation and its end, before the export."""
    import datetime

    store, res = sweeps
    r = res["halving"]
    before_export = datetime.datetime.now()
    argv = ["export", r.sweep_id, "--store", store, "--format", "optuna", "--storage"]
    assert main([*argv, url(tmp_path), "--study", "timeline"]) == 0
    trials = load(url(tmp_path), "timeline").get_trials(deepcopy=False)
    with Store.open(store) as st:
        row = st.sweep_row(r.sweep_id)
    created = datetime.datetime.fromtimestamp(row.created)
    finished = datetime.datetime.fromtimestamp(row.finished)
    assert len({t.datetime_start for t in trials}) == 1  # all born at step 0
    end_step = {
        t.number: t.user_attrs["stopped_at"] or t.user_attrs["diverged_at"] or 30 for t in trials
    }
    by_end = sorted(trials, key=lambda t: end_step[t.number])
    ends = [t.datetime_complete for t in by_end]
    assert ends == sorted(ends) and len(set(ends)) >= 2  # in the order the members stopped
    for a, b in zip(by_end, by_end[1:], strict=False):
        if end_step[a.number] < end_step[b.number]:
            assert a.datetime_complete < b.datetime_complete
    for t in trials:
        assert created <= t.datetime_start <= t.datetime_complete <= finished < before_export


def test_member_steps_follow_births_stops_and_divergence():
    """ASHA's refills are born at the global step of their first hyperparameter row; each
    member trains its own steps, to its stop or its divergence."""
    from sweepjax.store.optuna_export import member_steps
    from tests.test_report import synthetic

    r = synthetic(diverged=(10,))  # 12 members, steps 200, member 10 diverged at 40
    r.members[3] = dataclasses.replace(r.members[3], status="stopped", stopped_at=25)
    r.history = [{"step": 0, "member": m.id} for m in r.members[:6]]
    r.history += [{"step": 60, "member": m.id} for m in r.members[6:]]  # refills
    r.history += [{"step": 150, "member": 7}]  # a later change is no birth
    spans = member_steps(r)
    assert spans[0] == (0, 200) and spans[3] == (0, 25)
    assert spans[7] == (60, 260) and spans[10] == (60, 100)


def test_step_clock_interpolates_live_rows_and_keeps_the_resumed_run():
    from sweepjax.store.optuna_export import step_clock

    rows = [(10, 100.0), (20, 101.0), (30, 102.0), (20, 200.0), (40, 202.0)]  # resumed at 20
    steps, walls = step_clock(rows, created=50.0, end_step=40, train_s=4.0)
    np.testing.assert_array_equal(steps, [0, 10, 20, 40])
    np.testing.assert_allclose(walls, [99.0, 100.0, 200.0, 202.0])  # step 0 at the pace 0.1
    assert np.interp(30, steps, walls) == pytest.approx(201.0)
    # no live rows (an older store): the training time spread from the creation
    steps, walls = step_clock([], created=50.0, end_step=40, train_s=4.0)
    assert np.interp(20, steps, walls) == pytest.approx(52.0)
    # step 0 never before the sweep existed
    assert step_clock([(10, 51.0), (20, 61.0)], 50.0, 20, 1.0)[1][0] == 50.0
