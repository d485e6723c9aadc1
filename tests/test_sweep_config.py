"""The typed sweep config at the config layer: stored configs (as the previous version
wrote them) load typed, with defaults filled in one place; the budget is read once and
stays a Budget; no module above the config layer walks config dicts."""

from __future__ import annotations

import ast
import copy
import dataclasses
import inspect
import json

import pytest

from sweepjax.budget import Budget
from sweepjax.config import (
    DEFAULT_BAND,
    DEFAULT_MARGIN,
    DEFAULT_TOP_K,
    ModelConfig,
    Range,
    ScheduleConfig,
    SearchSpace,
    TrainConfig,
)
from sweepjax.errors import ConfigError
from sweepjax.spec import DEFAULT_SAMPLER, MODEL_DEFAULTS, SweepSpec
from sweepjax.store.db import Store
from sweepjax.sweep_config import SweepConfig
from tests.helpers import sweep_config
from tests.test_layout import ROOT, _layer, _modules

# What the previous version (commit 8f41919) stored for `coarse --dataset mnist-sample
# --model mlp --hidden 32 --optimizer adam --trials 16 --steps 90 --dropout 0 0.5
# --budget "4000 steps" --width 4`: its SweepConfig.as_dict(), printed by that code.
MAIN_STORED = json.loads(
    '{"band": 0.2, "data": {"data_dir": null, "dataset": "mnist-sample", "download": true, '
    '"seed": 0, "val_fraction": 0.1}, "grid": false, "kind": "coarse", "margin": 0.1, '
    '"model": {"hidden": 32, "kind": "mlp"}, "parent": null, "sampler": "uniform", '
    '"schedule": {"budget": "4k", "eta": 3, "interval": null, "name": "asha", "rungs": 2, '
    '"width": 4}, "space": {"dropout": [0.0, 0.5], "l2": [1e-06, 1.0], "lr": [0.0001, 3.0]}, '
    '"spec": {"batch_size": 256, "budget": "4000 steps", "command": "coarse", "dataset": '
    '"mnist-sample", "dropout": [0.0, 0.5], "grid": false, "hidden": 32, "l2": [1e-06, 1.0], '
    '"lr": [0.0001, 3.0], "model": "mlp", "optimizer": "adam", "schedule": "asha", "seed": 0, '
    '"steps": 90, "trials": 16, "version": 1, "width": 4}, "top_k": 5, "train": '
    '{"batch_size": 256, "chunk_steps": 90, "eval_batch_size": 1000, "eval_every": null, '
    '"explode_factor": 3.0, "memory_budget_mb": 2048, "momentum": 0.9, "optimizer": "adam", '
    '"seed": 0, "steps": 90, "val_subset": 512}, "trials": 16}'
)


def test_a_config_stored_by_the_previous_version_loads_typed():
    cfg = SweepConfig.from_dict(MAIN_STORED)
    assert cfg.model == ModelConfig("mlp", hidden=32)
    assert cfg.train.optimizer == "adam" and cfg.train.steps == 90 and cfg.train.chunk_steps == 90
    # the settings it left out at their defaults read as those defaults
    assert (cfg.train.dropout, cfg.train.init_scale) == (0.0, 1.0)
    assert cfg.space == SearchSpace(dropout=Range(0.0, 0.5, log=False))
    assert cfg.schedule == ScheduleConfig(
        "asha", eta=3, rungs=2, budget=Budget(member_steps=4000), width=4
    )
    assert cfg.spec.budget == Budget(member_steps=4000) and cfg.spec.width == 4
    assert (cfg.replicas, cfg.folds, cfg.group) == (1, 0, 1)
    # Stored again it is the same document, the spec's budget in its one spelling.
    want = copy.deepcopy(MAIN_STORED)
    want["spec"]["budget"] = "4k"
    # and the scaling it used, which that version did not record: one std for every input
    want["data"]["scaling"] = want["spec"]["scaling"] = "global"
    # and asha's brackets, which that version did not have: one (plain asha)
    want["schedule"]["brackets"] = 1
    # and the minibatch draw, which that version did not record: threefry
    want["train"]["minibatch"] = "threefry"
    assert cfg.as_dict() == want
    assert SweepConfig.from_dict(cfg.as_dict()) == cfg


def test_keys_an_older_version_did_not_store_take_their_defaults_in_from_dict():
    old = {k: MAIN_STORED[k] for k in ("kind", "data", "model", "train", "space", "trials")}
    old["train"] = {**old["train"], "optimizer": "sgd"}
    old["train"].pop("momentum")
    cfg = SweepConfig.from_dict(old)
    assert (cfg.grid, cfg.parent, cfg.top_k) == (False, None, DEFAULT_TOP_K)
    assert (cfg.margin, cfg.band, cfg.sampler) == (DEFAULT_MARGIN, DEFAULT_BAND, DEFAULT_SAMPLER)
    assert cfg.schedule == ScheduleConfig() and cfg.schedule.budget is None
    assert (cfg.replicas, cfg.folds, cfg.spec) == (1, 0, None)
    assert cfg.train.momentum == TrainConfig.momentum
    # Without a stored spec the options are read from the config itself.
    opts = cfg.options()
    assert (opts.model, opts.hidden, opts.steps, opts.trials) == ("mlp", 32, 90, 16)
    assert opts.dropout == Range(0.0, 0.5, log=False)


def _store_main_row(st: Store, config: dict) -> str:
    """A running sweep whose config column holds ``config`` as the previous version wrote
    it (the new code only writes typed configs)."""
    sid = st.create_sweep("coarse", sweep_config(), {"sha256": "ab"}, {}, 4, 90)
    with st.transaction("a stored config") as c:
        c.execute(
            "UPDATE sweeps SET config=? WHERE id=?", (json.dumps(config, sort_keys=True), sid)
        )
    return sid


def test_the_store_reads_the_previous_versions_config_typed_and_resumes_it(tmp_path):
    """The row reads typed, and `resume` with the same flags finds it: the budget the
    old spec spelled "4000 steps" compares equal to today's (stored as 4k)."""
    from sweepjax.flows.resume import find_resumable

    with Store.open(tmp_path / "s.db", create=True) as st:
        sid = _store_main_row(st, MAIN_STORED)
        row = st.sweep_row(sid)
        assert isinstance(row.config, SweepConfig)
        assert row.config == SweepConfig.from_dict(MAIN_STORED)
        new = SweepConfig.from_dict(MAIN_STORED)
        assert find_resumable(st, new.as_dict(), "coarse", None, "ab") == sid
        other = dataclasses.replace(new, trials=32, spec=new.spec.replace(trials=32))
        with pytest.raises(ConfigError, match=r"`trials`: 16 -> 32"):
            find_resumable(st, other.as_dict(), "coarse", sid, "ab")


# --------------------------------------------------------------------------- budget
def test_a_budget_is_parsed_once_and_round_trips(monkeypatch):
    """The spec reads the text once; the schedule, the width rule, the stored form and
    `auto`'s options take the Budget as it is. Its stored spelling parses back equal."""
    from sweepjax.flows import anytime
    from sweepjax.flows.auto import AutoOptions, search_budget
    from sweepjax.flows.sweep_config import schedule_config

    calls = []
    parse = Budget.parse.__func__

    def counting(cls, text):
        calls.append(text)
        return parse(cls, text)

    monkeypatch.setattr(Budget, "parse", classmethod(counting))
    spec = SweepSpec.create("coarse", budget="90s")
    assert calls == ["90s"] and spec.budget == Budget(seconds=90.0)
    sched = schedule_config("coarse", None, None, None, None, 2400, spec.budget)
    assert sched.name == "asha" and sched.budget is spec.budget
    cfg = sweep_config(train=TrainConfig(steps=2400), schedule=sched)
    assert anytime.block_limit(cfg, 40) == pytest.approx(90.0 / 8 * 40 / 2400)
    opts = AutoOptions(budget=spec.budget)
    assert opts.budget is spec.budget
    assert search_budget(opts.budget) == Budget(seconds=72.0)  # a fifth left after it
    assert calls == ["90s"]  # nothing above read it again
    stored = cfg.as_dict()
    assert stored["schedule"]["budget"] == "90s"
    assert SweepConfig.from_dict(stored).schedule.budget == spec.budget
    for text, budget in (("4000 steps", Budget(member_steps=4000)), ("2m", Budget(120.0))):
        assert Budget.parse(text) == budget and Budget.parse(str(budget)) == budget
        assert SweepSpec.from_dict(SweepSpec.create(budget=text).to_dict()).budget == budget
    assert search_budget(Budget(member_steps=5000)) == Budget(member_steps=5000)


def test_a_schedule_takes_a_budget_not_its_text():
    with pytest.raises(ConfigError, match=r"give Budget.parse\('60s'\)"):
        ScheduleConfig("asha", budget="60s")
    # An option's bare number is refused, as the flag's "60" is: seconds or member-steps?
    with pytest.raises(ConfigError, match="`budget` takes a string with its unit"):
        SweepSpec.create(budget=60)


# --------------------------------------------------------------------------- auto
def test_auto_options_are_its_keyword_arguments_checked_before_anything_runs():
    import sweepjax
    from sweepjax.flows.auto import AutoOptions

    params = inspect.signature(sweepjax.auto).parameters
    fields = [f.name for f in dataclasses.fields(AutoOptions)]
    assert list(params) == ["options", *fields, "callbacks"]
    assert params["max_rounds"].default == 3 and params["budget"].default is None
    mlp = AutoOptions(model="mlp", budget="5M").resolved()
    assert (mlp.hidden, mlp.optimizer) == (256, "momentum") and mlp.budget == Budget(
        member_steps=5 * 10**6
    )
    assert AutoOptions(model="mlp", hidden=8, optimizer="sgd").resolved().hidden == 8
    factor = MODEL_DEFAULTS["softmax"].fine_steps_factor
    assert AutoOptions(steps=40).resolved().fine_steps == factor * 40 > 40
    for bad, msg in (
        (dict(model="cnn"), "auto runs the built-in models"),
        (dict(max_rounds=0), "`max-rounds` must be a positive integer"),
        (dict(budget="soon"), "cannot read budget 'soon'"),
    ):
        with pytest.raises(ConfigError, match=msg):
            sweepjax.auto(**bad)  # fails before any data is loaded


# --------------------------------------------------------------------------- layout
SECTIONS = {"train", "model", "data", "schedule", "space", "spec"}  # nested dicts
SETTINGS = {"folds", "replicas", "band", "margin", "top_k", "grid", "sampler", "trials"}


def _section_get(node: ast.AST, keys: set[str]) -> bool:
    """``<x>.get("<one of keys>", ...)``."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "get"
        and bool(node.args)
        and isinstance(node.args[0], ast.Constant)
        and node.args[0].value in keys
    )


def config_dict_reads(tree: ast.AST) -> list[int]:
    """Lines that read a sweep config as a dict with a fallback: ``<x>.config.get(...)``,
    ``<x>.config[...]``, a section with an empty one (``.get("train", {})``, ``(.get(
    "model") or {})``) or a setting with a default (``.get("folds", 0)``)."""
    out = []
    for node in ast.walk(tree):
        v = getattr(node, "value", None)
        if isinstance(node, ast.Subscript) and isinstance(v, ast.Attribute) and v.attr == "config":
            out.append(node.lineno)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            f = node.func
            on_config = f.attr == "get" and isinstance(f.value, ast.Attribute)
            on_config = on_config and f.value.attr == "config"
            fallback = node.args[1] if len(node.args) > 1 else None
            section = _section_get(node, SECTIONS) and isinstance(fallback, ast.Dict)
            setting = _section_get(node, SETTINGS) and fallback is not None
            if on_config or section or setting:
                out.append(node.lineno)
        elif isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
            first, *rest = node.values
            if _section_get(first, SECTIONS) and any(isinstance(r, ast.Dict) for r in rest):
                out.append(node.lineno)
    return sorted(out)


def test_the_check_finds_config_dict_reads():
    planted = (
        "steps = result.config.get('train', {}).get('steps', 1000)\n"
        "folds = row.config['folds']\n"
        "k = cfg.get('folds', 0)\n"
        "kind = (cfg.get('model') or {}).get('kind', 'softmax')\n"
        "ok = result.config.train.steps\n"
        "n, m = dataset.get('n_val'), options.get('model', 'softmax')\n"
    )
    assert config_dict_reads(ast.parse(planted)) == [1, 2, 3, 4]


def test_no_module_above_the_config_layer_reads_config_dicts():
    config_layer = _layer("sweepjax.sweep_config")
    bad = [
        f"{path.relative_to(ROOT.parent)}:{line}"
        for name, path in _modules().items()
        if name != "sweepjax" and _layer(name) > config_layer
        for line in config_dict_reads(ast.parse(path.read_text()))
    ]
    assert not bad, "read the typed SweepConfig instead: " + ", ".join(bad)
    # and the check covers the layers the brief names, the config layer itself excluded
    assert config_layer == _layer("sweepjax.config") < _layer("sweepjax.results.records")
