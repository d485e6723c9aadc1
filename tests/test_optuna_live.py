"""``optuna_storage``: members written into an Optuna study as their fate is known, the
same trials an ``export --format optuna`` of the finished sweep writes."""

from __future__ import annotations

import numpy as np
import pytest

import sweepjax
from sweepjax.errors import ConfigError

optuna = pytest.importorskip("optuna")
pytestmark = pytest.mark.slow

KW = dict(dataset="mnist-sample", steps=54, batch_size=64, report=False)


def study_of(url: str, name: str):
    return optuna.load_study(study_name=name, storage=url)


@pytest.mark.parametrize("schedule", ["halving", "asha"])
def test_live_study_holds_every_member_with_its_fate(tmp_path, schedule):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    extra = {"trials": 12} if schedule == "halving" else {"budget": "3000 steps", "width": 4}
    res = sweepjax.coarse(
        store=tmp_path / "s.db", schedule=schedule, optuna_storage=url, rungs=2, **KW, **extra
    )
    study = study_of(url, res.sweep_id)
    trials = {t.user_attrs["member"]: t for t in study.get_trials(deepcopy=False)}
    assert sorted(trials) == sorted(m.id for m in res.members)
    want = {"ok": "COMPLETE", "stopped": "PRUNED", "diverged": "FAIL"}
    for m in res.members:
        t = trials[m.id]
        assert t.state.name == want[m.status], (m.id, m.status, t.state)
        if m.status != "diverged":
            assert t.value == pytest.approx(m.best_val_acc)
        assert t.params["lr"] == pytest.approx(m.lr) and t.params["l2"] == pytest.approx(m.l2)
        if m.status == "stopped":
            assert max(t.intermediate_values) <= m.stopped_at
    assert any(t.state.name == "PRUNED" for t in trials.values())
    assert study.user_attrs["winner"] == res.winner.id
    assert study.best_trial.value == pytest.approx(res.winner.val_acc)
    assert np.isfinite(study.user_attrs["winner_test_acc"])


def test_an_existing_study_is_refused_before_training(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.db'}"
    optuna.create_study(study_name="c1", storage=url)
    with pytest.raises(ConfigError, match="study 'c1' already exists"):
        sweepjax.coarse(store=tmp_path / "s.db", trials=4, optuna_storage=url, **KW)
    from sweepjax.store.db import Store

    with Store.open(tmp_path / "s.db") as st:  # refused before the sweep's row exists
        assert st.list_sweeps() == []
