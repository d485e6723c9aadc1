"""The user's own hyperparameters (``hparams``): declared once (flags, TOML, Python),
traced per member into the user's loss, sampled after the built-in axes, stored, read
back, refined by ``fine``, exported to Optuna and explored by PBT.

Data: the trainer tests' toy problem (20 features, 4 classes) and the blobs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sweepjax import engine, schedulers, search
from sweepjax.cli import main
from sweepjax.cli.options import read_toml
from sweepjax.config import DataConfig, ModelConfig, Range, SearchSpace
from sweepjax.engine import program
from sweepjax.engine.curves import ScheduleState
from sweepjax.engine.decisions import RungView
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError
from sweepjax.models.custom import register
from sweepjax.spec import SweepSpec
from sweepjax.sweep_config import SweepConfig
from tests.custom_models import TinyMLP
from tests.helpers import toy_dataset, toy_train_config

LS = Range(0.0, 0.2, log=False)


def smoothed(logits, labels, hp):
    """Cross-entropy against labels smoothed by ``hp["label_smoothing"]`` (optax's rule)."""
    k = logits.shape[-1]
    eps = hp["label_smoothing"]
    target = jax.nn.one_hot(labels, k) * (1.0 - eps) + eps / k
    return -jnp.sum(target * jax.nn.log_softmax(logits), axis=-1)


NET = register(TinyMLP(), loss=smoothed)


# --------------------------------------------------------------------------- declaring
def test_declared_from_flags_python_and_toml_alike(tmp_path):
    flags = SweepSpec.create("coarse", hparams=["label_smoothing=0:0.2:linear", "w=0.5"])
    py = SweepSpec.create("coarse", hparams={"label_smoothing": (0.0, 0.2, "linear"), "w": 0.5})
    assert flags.hparams == py.hparams == (("label_smoothing", LS), ("w", 0.5))
    assert SweepSpec.from_dict(py.to_dict()) == py  # the stored form reads back
    assert py.to_dict()["hparams"] == {"label_smoothing": [0.0, 0.2, "linear"], "w": 0.5}
    space = SearchSpace(user={"b": Range(1e-3, 1.0), "a": LS})
    assert list(space.axes()) == ["lr", "l2", "a", "b"]  # after the built-ins, by name
    assert space.scales() == {"a": "linear", "b": "log"}
    cfg = SweepConfig("coarse", DataConfig(), ModelConfig(), toy_train_config(), space, trials=4)
    assert SweepConfig.from_dict(cfg.as_dict()).space == space  # scales kept
    toml = tmp_path / "s.toml"
    toml.write_text('[hparams]\nlabel_smoothing = [0.0, 0.2, "linear"]\nw = 0.5\n')
    assert SweepSpec.create("coarse", **read_toml(str(toml), "coarse")) == py


@pytest.mark.parametrize(
    "value, message",
    [
        (["lr=0:1:linear"], "'lr' is a built-in axis"),
        (["ls=0:0.2"], "LO:HI:SCALE with SCALE log or linear"),
        (["ls=0:0.2:log"], "log-scale range needs positive bounds"),
        (["ls=0.3:0.2:linear"], "lower bound 0.3 must be below"),
        (["ls"], "NAME=VALUE"),
        (["1x=0.1"], "Python identifier"),
        (["ls=abc"], "finite number"),
    ],
)
def test_bad_declarations_are_one_line(value, message):
    with pytest.raises(ConfigError, match=message):
        SweepSpec.create("coarse", hparams=value)


def test_cli_refuses_a_clash_in_one_line(capsys, tmp_path):
    code = main(["coarse", "--hparam", "momentum=0:1:linear", "--store", str(tmp_path / "s.db")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "built-in axis" in err[0]
    assert not (tmp_path / "s.db").exists()


def test_sampling_keeps_existing_draws_and_appends_user_axes():
    plain, _ = search.sample(SearchSpace(), 16, 3)
    own, _ = search.sample(SearchSpace(user={"ls": LS}), 16, 3)
    # the built-in columns of an [n, A] draw are its first A: lr's and l2's stay the same
    rng = np.random.default_rng(3).random((16, 3))
    np.testing.assert_allclose(own.user["ls"], np.float32(0.2 * rng[:, 2]), rtol=1e-6)
    assert set(own.user) == {"ls"} and plain.user == {}
    np.testing.assert_allclose(own.lr, np.float32(SearchSpace().lr.from_unit(rng[:, 0])))
    fixed, _ = search.sample(SearchSpace(), 4, 0, fixed={"w": 0.5})
    np.testing.assert_array_equal(fixed.user["w"], np.full(4, 0.5, np.float32))


# --------------------------------------------------------------------------- the loss
def test_loss_gets_the_members_values_against_numpy():
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(5, 4)).astype(np.float32), np.array([0, 3, 1, 1, 2])
    row = jax.tree.map(
        lambda a: a[0], HParams.create(lr=[0.1], l2=0, user={"label_smoothing": 0.1})
    )
    got = np.asarray(engine.member.training_loss(NET, jnp.asarray(logits.T), jnp.asarray(y), row))
    logp = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    target = np.eye(4)[y] * 0.9 + 0.1 / 4
    np.testing.assert_allclose(got, -(target * logp).sum(1), rtol=1e-5)
    # evaluation scores every member on one scale: plain cross-entropy
    ce = np.asarray(NET.loss_t(jnp.asarray(logits.T), jnp.asarray(y)))
    np.testing.assert_allclose(ce, -logp[np.arange(5), y], rtol=1e-5)


@pytest.mark.slow
def test_member_in_population_equals_member_alone_and_new_values_do_not_recompile():
    """Tolerance rtol 1e-4 / atol 1e-5, as tests/test_custom.py."""
    ds, cfg = toy_dataset(), toy_train_config()
    # Registered again here: other tests in this worker may have cleared the registry.
    model = ModelConfig(kind="custom", spec=register(TinyMLP(), loss=smoothed).spec)
    hp = HParams.create(
        lr=np.full(4, 0.1), l2=1e-4, user={"label_smoothing": [0.0, 0.05, 0.1, 0.2]}
    )
    pop = engine.train_population(ds, hp, model, cfg, member_ids=np.arange(4) + 10)
    alone = engine.train_population(ds, hp.take([3]), model, cfg, member_ids=[13])
    for a, b in zip(jax.tree.leaves(alone.params), jax.tree.leaves(pop.params), strict=True):
        np.testing.assert_allclose(a[0], b[3], rtol=1e-4, atol=1e-5)
    # same lr and seed: only the smoothing differs, and it changes the training loss
    assert len(set(np.round(pop.curves.train_loss[:, -1], 5))) == 4
    np.testing.assert_allclose(alone.curves.train_loss[0], pop.curves.train_loss[3], rtol=1e-4)
    before = program.compile_counts()
    hp2 = hp._replace(user={"label_smoothing": np.full(4, 0.15, np.float32)})
    engine.train_population(ds, hp2, model, cfg)
    assert program.compile_counts() == before


# --------------------------------------------------------------------------- the rest
def test_checkpoint_columns_round_trip():
    hp = HParams.create(lr=[0.1, 0.2], l2=0, user={"ls": [0.05, 0.1]})
    back = ScheduleState.from_arrays(ScheduleState.start(hp).as_arrays()).hparams
    np.testing.assert_array_equal(back.user["ls"], hp.user["ls"])
    np.testing.assert_array_equal(back.lr, hp.lr)


def test_pbt_explores_the_user_axis_inside_its_box():
    space = SearchSpace(user={"ls": LS})
    hp = HParams.create(lr=np.full(10, 0.1), l2=1e-3, user={"ls": np.linspace(0, 0.2, 10)})
    acc = np.linspace(0.1, 0.9, 10)
    view = RungView(30, np.arange(10), 1 - acc, acc, np.ones(10, bool), hp)
    d = schedulers.PBT(interval=30, total=90, space=space, seed=0).decide(view)
    copied = np.flatnonzero(d.src != np.arange(10))
    assert len(copied) == 2
    donor = hp.user["ls"][d.src[copied]]
    got = d.hparams.user["ls"][copied]
    moved = np.isclose(got, np.clip(donor * 0.8, 0, 0.2)) | np.isclose(
        got, np.clip(donor * 1.2, 0, 0.2)
    )
    assert moved.all() and (got >= 0).all() and (got <= 0.2).all()


def test_pbt_history_records_the_user_axis_and_old_checkpoints_read():
    """A copy whose smoothing PBT perturbed is a history row with the new value, like
    lr's; a checkpoint written before (5 columns) reads with NaN in the user's column."""
    from sweepjax.engine.compact import apply
    from sweepjax.engine.decisions import Decision

    hp = HParams.create(lr=[0.1, 0.2, 0.3], l2=0, user={"ls": [0.0, 0.1, 0.2]})
    sched = ScheduleState.start(hp)
    assert sched.history.shape == (3, 6) and list(sched.history[:, 5]) == pytest.approx(
        [0, 0.1, 0.2]
    )
    new = hp.map(np.array)
    new.user["ls"][0] = 0.24  # row 0 copies row 2, its smoothing x 1.2 (lr kept)
    new.lr[0] = 0.3
    after = apply(sched, Decision(np.array([2, 1, 2]), np.arange(3), new), 30)
    np.testing.assert_allclose(after.history[3], [30, 0, 0.3, 0, 1.0, 0.24], rtol=1e-6)
    assert len(after.history) == 4  # rows 1 and 2 unchanged: no row
    back = ScheduleState.from_arrays(after.as_arrays())
    np.testing.assert_array_equal(back.history, after.history)
    old = {**after.as_arrays(), "history": after.history[:, :5]}
    read = ScheduleState.from_arrays(old).history
    assert read.shape == (4, 6) and np.isnan(read[:, 5]).all()


def test_refine_and_the_verdicts_treat_the_user_axis_like_lr():
    """Ten members whose accuracy peaks at label smoothing 0.1: the top-3 span rule
    narrows the axis around them, the edge rule reads it, the verdicts model it."""
    import dataclasses

    from sweepjax.results.appraise import judge_members
    from tests.test_search import synthetic

    space = SearchSpace(lr=Range(1e-4, 1.0), l2=Range(1e-6, 1e-2), user={"ls": LS})
    ls = np.linspace(0.0, 0.2, 10)
    acc = 0.9 - 20 * (ls - 0.1) ** 2
    res = synthetic(space, np.full(10, 0.01), np.full(10, 1e-4), acc)
    res.members[:] = [
        dataclasses.replace(m, hparams={"ls": float(v)})
        for m, v in zip(res.members, ls, strict=True)
    ]
    assert res.members[3].ls == pytest.approx(ls[3])  # reads as an attribute
    new, why = search.refine(res, top_k=3)
    r = dict(new.user)["ls"]
    assert 0.0 < r.lo < 0.09 and 0.11 < r.hi < 0.2 and not r.log and "ls: top-3" in why
    assert (
        search.boundary_flags({"lr": [0.01], "l2": [1e-4], "ls": [0.199]}, space)[-1].param == "ls"
    )
    a = judge_members(res.members, space, 10_000)
    assert a.axes == ("lr", "l2", "ls")
    # a winner at the low edge extends the box below it, but never below 0
    low = [
        dataclasses.replace(m, best_val_acc=float(0.9 - v))
        for m, v in zip(res.members, ls, strict=True)
    ]
    res.members[:] = low
    new, why = search.refine(res, top_k=3)
    assert dict(new.user)["ls"].lo == 0.0 and "floored at 0" in why


# --------------------------------------------------------------------------- end to end
@pytest.mark.slow
def test_coarse_resume_fine_store_and_optuna_with_adamw(blobs_npz, tmp_path):
    """Label smoothing searched and adamw's weight decay searched by name, from Python:
    an interrupted sweep resumes to exactly the uninterrupted one; the store reads every
    member's values back; fine narrows both user axes around the winners and inherits
    the optimizer; Optuna gets FloatDistributions with their log flags."""
    from sweepjax import coarse, fine
    from sweepjax.flows.sweep import Callbacks, SweepInterrupted
    from sweepjax.store.db import Store
    from sweepjax.store.optuna_export import param_axes

    kw = dict(
        dataset=f"npz:{blobs_npz}",
        model=NET,
        optimizer="optax.adamw",
        lr=(1e-3, 1e-1),
        trials=16,
        steps=60,
        batch_size=32,
        schedule="full",
        report=False,
        hparams={"label_smoothing": (0.0, 0.2, "linear"), "weight_decay": (1e-4, 1e-1, "log")},
    )
    calls = []
    store = str(tmp_path / "r.db")
    with pytest.raises(SweepInterrupted):
        coarse(
            store=store, callbacks=Callbacks(stop=lambda: calls.append(1) or len(calls) >= 3), **kw
        )
    resumed = coarse(store=store, resume=True, **kw)
    fresh = coarse(store=str(tmp_path / "f.db"), **kw)
    assert resumed.members == fresh.members  # every value and score, exactly
    assert {tuple(sorted(m.hparams)) for m in fresh.members} == {
        ("label_smoothing", "weight_decay")
    }
    back = Store.open(store).load_sweep(resumed.sweep_id)
    assert back.members == resumed.members and back.config.space == resumed.config.space
    axes = param_axes(back)
    assert axes["label_smoothing"].log is False and axes["weight_decay"].log is True
    f = fine(parent=resumed.sweep_id, store=store, trials=8, steps=60, schedule="full", refit=False)
    assert f.config.train.optimizer == "optax.adamw"
    parent = dict(resumed.config.space.user)
    for name, r in f.config.space.user:  # narrowed, or flat (every member ~1.0) and said so
        narrower = r.hi - r.lo < parent[name].hi - parent[name].lo
        assert narrower or f"{name}: [{r.lo:.3g}, {r.hi:.3g}] (100% of" in f.refinement
    assert all(set(m.hparams) == {"label_smoothing", "weight_decay"} for m in f.members)


@pytest.mark.slow
@pytest.mark.parametrize("schedule", ["asha", "pbt"])
def test_refilling_and_copying_schedules_carry_the_user_axis(schedule, blobs_npz, tmp_path):
    """ASHA refills slots with fresh draws of the axis (and writes them live to Optuna);
    PBT copies and perturbs it: every member ends with a value inside the box."""
    import optuna

    from sweepjax import coarse

    url = f"sqlite:///{tmp_path / 'o.db'}" if schedule == "asha" else None
    r = coarse(
        dataset=f"npz:{blobs_npz}", model=NET, trials=27, steps=90, batch_size=32,
        schedule=schedule, report=False, store=str(tmp_path / "s.db"),
        hparams={"label_smoothing": (0.0, 0.2, "linear")}, optuna_storage=url,
    )  # fmt: skip
    vals = np.array([m.hparams["label_smoothing"] for m in r.members])
    assert len(vals) == 27 and (vals >= 0).all() and (vals <= 0.2).all()
    if schedule == "pbt":
        assert r.lineage  # copies happened, with their perturbed values
        _pbt_schedule_has_the_user_axis(r, tmp_path / "s.db")
        return
    study = optuna.load_study(study_name=r.sweep_id, storage=url)
    dist = study.trials[0].distributions["label_smoothing"]
    assert (dist.low, dist.high, dist.log) == (0.0, 0.2, False)


def _pbt_schedule_has_the_user_axis(r, store):
    """A perturbed smoothing is in the member's schedule like lr: stored, read back, in
    the JSON document and in the report's PBT panel (a third axis)."""
    import json

    from sweepjax.report.schedule_fig import hparam_schedules
    from sweepjax.store.db import Store

    copied = {c["member"] for c in r.lineage}
    for m in r.members:
        sched = r.hparam_schedule(m.id)
        assert all("label_smoothing" in h for h in sched)
        if m.id in copied:  # its last change is the value it ended with
            last = max(sched, key=lambda h: h["step"])
            assert last["label_smoothing"] == pytest.approx(m.hparams["label_smoothing"], rel=1e-6)
            assert last["lr"] == pytest.approx(m.lr, rel=1e-6)
    assert Store.open(store).load_sweep(r.sweep_id).history == r.history
    doc = json.loads(json.dumps(r.to_json()))
    assert doc["history"] == r.history and "label_smoothing" in doc["history"][-1]
    assert len(hparam_schedules(r).axes) == 3


def test_live_snapshot_names_the_drawn_members_values():
    from sweepjax.engine.curves import Curves
    from sweepjax.store import live_snapshot

    hp = HParams.create(lr=np.full(6, 0.1), l2=1e-3, user={"ls": np.linspace(0, 0.2, 6)})
    curves = Curves.empty(6).append(
        np.array([10]), [np.ones((6, 1), np.float32) * np.linspace(0.1, 0.6, 6)[:, None]] * 5
    )
    snap = live_snapshot.of_running(curves, ScheduleState.start(hp), np.arange(6), step=10)
    best = snap.curves[0]
    assert best.member == 5 and best.hparams == {"ls": pytest.approx(0.2)}
    back = live_snapshot.Snapshot.from_json(snap.to_json())
    assert back.curves[0].hparams == best.hparams
    old = snap.to_json()
    for c in old["curves"]:
        del c["hparams"]  # a snapshot written before the user's axes existed
    assert live_snapshot.Snapshot.from_json(old).curves[0].hparams == {}


@pytest.mark.slow
def test_nnx_and_equinox_models_get_hparams_at_training_steps():
    """A model that scales its logits by ``hparams["temp"]``: at 0 the training loss is
    exactly ln K (zero logits) and nothing learns; at 1 it trains. Evaluation calls it
    without them (``hparams=None``)."""
    import equinox as eqx
    from flax import nnx

    from sweepjax.models.custom import model_config

    class Net(nnx.Module):
        def __init__(self, num_classes=4, *, rngs):
            self.lin = nnx.Linear(20, num_classes, rngs=rngs)

        def __call__(self, x, hparams=None):
            return self.lin(x) * (1.0 if hparams is None else hparams["temp"])

    class Eqx(eqx.Module):
        lin: eqx.nn.Linear

        def __init__(self, num_classes=4, *, key):
            self.lin = eqx.nn.Linear(20, num_classes, key=key)

        def __call__(self, x, hparams=None):
            return self.lin(x) * (1.0 if hparams is None else hparams["temp"])

    ds, cfg = toy_dataset(), toy_train_config()
    hp = HParams.create(lr=np.full(2, 0.1), l2=0.0, user={"temp": [0.0, 1.0]})
    for source in (Net, Eqx):
        r = engine.train_population(ds, hp, model_config(source), cfg)
        assert r.final_train_loss[0] == pytest.approx(np.log(4), rel=1e-6)
        assert r.final_train_loss[1] < 1.0 and r.best_val_acc[1] > 0.6


@pytest.mark.slow
def test_fine_keeps_the_parents_declarations_when_given_another(blobs_npz, tmp_path):
    """A fixed smoothing from coarse survives a fine round that declares a new axis; the
    next round refines that axis and keeps both."""
    from sweepjax import coarse, fine

    kw = dict(trials=4, steps=20, batch_size=32, schedule="full", report=False)
    store = str(tmp_path / "s.db")
    c = coarse(
        dataset=f"npz:{blobs_npz}", model=NET, store=store, hparams={"label_smoothing": 0.1}, **kw
    )
    f1 = fine(parent=c.sweep_id, store=store, refit=False, hparams=["w=1e-3:1e-1:log"], **kw)
    f2 = fine(parent=f1.sweep_id, store=store, refit=False, **kw)
    for r in (c, f1, f2):
        assert all(m.hparams["label_smoothing"] == pytest.approx(0.1) for m in r.members)
    assert dict(f1.config.space.user)["w"] == Range(1e-3, 1e-1)
    assert "w" in dict(f2.config.space.user) and f2.spec.hparams[0] == ("label_smoothing", 0.1)
