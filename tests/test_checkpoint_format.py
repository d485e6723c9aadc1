"""One checkpoint format for every schedule (issue 26): sweeps interrupted by the code
before it (``tests/fixtures/old_store.sqlite``, made by ``tests/old_store.py``) resume and
end exactly as an uninterrupted sweep; a checkpoint of neither form says so in one line."""

from __future__ import annotations

import functools
import shutil
from pathlib import Path

import jax
import numpy as np
import pytest

import sweepjax
import sweepjax.flows.sweep_config
import sweepjax.schedulers.asha
from sweepjax.config import TrainConfig
from sweepjax.errors import StoreError
from sweepjax.flows.sweep import SweepInterrupted
from sweepjax.store.db import Store
from tests import old_store

FIXTURE = Path(__file__).parent / "fixtures" / "old_store.sqlite"


@pytest.fixture
def there(tmp_path, monkeypatch):
    """The fixture's store and data set in the working directory (its sweeps name the
    data set as ``npz:data.npz``)."""
    old_store.write_data(tmp_path)
    shutil.copy(FIXTURE, tmp_path / "old.db")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def numbers(res) -> dict:
    """What must match between a resumed and an uninterrupted sweep."""
    ms = res.members
    return {
        "id": [m.id for m in ms],
        "status": [m.status for m in ms],
        "best_val_acc": np.array([m.best_val_acc for m in ms]),
        "final_val_loss": np.array(
            [np.nan if m.final_val_loss is None else m.final_val_loss for m in ms]
        ),  # fmt: skip
        "lr": np.array([m.lr for m in ms]),
        "winner": res.winner.id,
    }


def assert_same(a: dict, b: dict, exact: bool = True) -> None:
    """Equal; with ``exact=False`` (a checkpoint written under another XLA version, whose
    rounding differs) the floats within 1e-5 and everything else equal."""
    assert a.keys() == b.keys()
    for k in a:
        if exact and k == "final_val_loss":
            # Members that finished before the stop carry the losses the old code's
            # evaluation measured; evaluations now run in 32-row blocks of one program
            # (engine/active.py), whose sums may round differently in the last bit.
            np.testing.assert_allclose(a[k], b[k], rtol=4e-7, err_msg=k)
        elif exact or not isinstance(a[k], np.ndarray):
            np.testing.assert_array_equal(a[k], b[k], err_msg=k)
        else:
            np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=1e-6, err_msg=k)


@pytest.mark.parametrize(
    "sweep,options",
    [("c1", old_store.FOLDS), pytest.param("c2", old_store.ASHA, marks=pytest.mark.slow)],
)
def test_a_checkpoint_written_before_the_one_format_resumes_exactly(
    there, sweep, options, monkeypatch
):
    with Store.open("old.db") as store:
        assert store.sweep_row(sweep).status == "interrupted"
    resumed = sweepjax.coarse(**options, store="old.db", name=sweep, resume=True)
    assert resumed.config.train.minibatch == "threefry"  # the draw it started with
    # The uninterrupted sweep draws as the old code did (threefry), as a new sweep does not.
    threefry = functools.partial(TrainConfig, minibatch="threefry")
    monkeypatch.setattr(sweepjax.flows.sweep_config, "TrainConfig", threefry)
    # ... and puts ASHA's member 0 where the old code drew it (the resumed sweep has it
    # stored): uniformly, not at the box's centre.
    monkeypatch.setattr(sweepjax.schedulers.asha, "CENTRE_FIRST", False)
    whole = sweepjax.coarse(**options, store="new.db")
    assert resumed.sweep_id == sweep
    assert_same(numbers(resumed), numbers(whole), exact=jax.__version__ == old_store.MADE_WITH_JAX)


def test_a_checkpoint_of_neither_form_is_refused_in_one_line(there):
    with Store.open("old.db") as store:  # c1's checkpoint under c2's flags (a width-4 ASHA)
        blob = store.conn.execute("SELECT blob FROM checkpoints WHERE sweep='c1'").fetchone()
        store.conn.execute("UPDATE checkpoints SET blob=? WHERE sweep='c2'", (blob[0],))
        store.conn.commit()
    with pytest.raises(StoreError) as e:
        sweepjax.coarse(**old_store.ASHA, store="old.db", name="c2", resume=True)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)
    assert "does not match this configuration; run without `resume`" in str(e.value)


@pytest.mark.parametrize(
    "options",
    [
        pytest.param(old_store.FOLDS, marks=pytest.mark.slow),  # c1 above resumes K folds
        old_store.ASHA_FOLDS,
        pytest.param(old_store.ASHA_REPLICAS, marks=pytest.mark.slow),
    ],
    ids=["full-3-folds", "asha-3-folds", "asha-2-replicas"],
)
def test_an_interrupted_sweep_resumes_to_the_uninterrupted_result(there, options):
    with pytest.raises(SweepInterrupted):
        sweepjax.coarse(**options, store="new.db", callbacks=old_store.stop_after(4))
    resumed = sweepjax.coarse(**options, store="new.db", resume=True)
    whole = sweepjax.coarse(**options, store="whole.db")
    assert_same(numbers(resumed), numbers(whole))
    g = options.get("folds") or options.get("replicas") or 1
    if g > 1:  # the winner is a config: its members' mean, with the SE of the mean
        w = whole.winner
        c = next(c for c in whole.configs if c.id == w.config)
        assert w.config is not None and w.val_acc == c.mean_val_acc
        assert sorted(c.members) == [w.config * g + r for r in range(g)]
