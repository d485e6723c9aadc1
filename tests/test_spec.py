"""The sweep spec: one table of options behind the CLI, TOML, the API and the store."""

from __future__ import annotations

import argparse
import inspect

import pytest

import sweepjax
from sweepjax.cli import build_parser
from sweepjax.cli.options import CLI_OPTIONS, cli_message, read_toml, resolve
from sweepjax.config import Range
from sweepjax.errors import ConfigError
from sweepjax.spec import OPTS, SPEC_VERSION, SweepSpec, fine_trials, flag_of, migrate, options


def _subparser(name: str) -> argparse.ArgumentParser:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["coarse", "fine"])
def test_every_flag_is_an_option_of_the_table_and_every_option_has_a_flag(command):
    dests = {a.dest for a in _subparser(command)._actions if a.dest != "help"}
    table = {o.name for o in options(command) if o.flag != ""} | set(CLI_OPTIONS)
    assert dests == table
    # Python-only options stay out of the CLI; fine-only ones out of coarse.
    assert "loss" not in dests
    assert ("parent" in dests) == (command == "fine") and ("margin" in dests) == (command == "fine")


@pytest.mark.parametrize("command", ["coarse", "fine"])
def test_the_api_signature_is_the_table(command):
    params = inspect.signature(getattr(sweepjax, command)).parameters
    arrays = {"x_train", "y_train", "x_test", "y_test", "x_val", "y_val"}  # data from Python
    assert set(params) == {o.name for o in options(command)} | {"callbacks"} | arrays
    if command == "coarse":
        assert params["trials"].default == 256 and params["lr"].default == Range(1e-4, 3.0)
    # and the generated docs name every option
    doc = getattr(sweepjax, command).__doc__
    assert all(f"      {o.name}: " in doc for o in options(command))


def test_values_are_normalised_once_from_any_source():
    from_cli = SweepSpec.create("coarse", lr=["1e-3", "1"], momentum=["0.5"], hidden=["8", "64"])
    from_api = SweepSpec.create("coarse", lr=(1e-3, 1.0), momentum=0.5, hidden=Range(8, 64))
    assert from_cli.lr == from_api.lr == Range(1e-3, 1.0)
    assert from_cli.momentum == from_api.momentum == 0.5
    assert from_cli.hidden.lo == 8 and from_cli.hidden.hi == 64
    assert SweepSpec.create("coarse", lr="auto").lr == "auto"
    assert SweepSpec.create("fine", lr_decay=["off"]).lr_decay == "off"
    assert SweepSpec.create("coarse", hidden="32").hidden == 32


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"trials": 0}, "`trials` must be a positive integer"),
        ({"lr": (1.0,)}, "`lr` takes two numbers LO HI or 'auto'"),
        ({"l2": 0.0}, "`l2` takes two numbers LO HI, got '0.0'"),  # a bare number
        ({"lr_decay": (0.1, 2.0)}, "`lr_decay` upper bound must be <= 1"),
        ({"momentum": 2.0}, "`momentum` must be in [0, 0.999]"),
        ({"band": 0.9}, "`band` must be in [0, 0.5]"),
        ({"folds": 1}, "`folds` must be an integer >= 2"),
        ({"schedule": "fifo"}, "`schedule` must be one of full, halving"),
        ({"bogus": 1}, "`coarse` takes no option 'bogus'"),
    ],
)
def test_errors_name_the_python_argument_and_the_cli_shows_the_flag(given, named):
    with pytest.raises(ConfigError) as e:
        SweepSpec.create("coarse", **given)
    assert named in str(e.value)
    name = named.split("`")[1]
    if name in OPTS:
        assert flag_of(name) in cli_message(str(e.value))
        assert "`" not in cli_message(str(e.value)).split(":")[0]


def test_the_stored_form_round_trips_and_leaves_run_control_out():
    spec = SweepSpec.create(
        "fine",
        parent="c1",
        trials=64,
        lr=(1e-3, 1.0),
        lr_decay="off",
        hidden=(8, 64),
        dropout=0.1,
        grid=True,
        schedule="pbt",
        refit=False,
        store="x.db",
        resume=True,
    )
    d = spec.to_dict()
    assert d["version"] == SPEC_VERSION and d["command"] == "fine"
    assert d["lr"] == [1e-3, 1.0] and d["lr_decay"] == "off" and d["refit"] is False
    assert "store" not in d and "resume" not in d
    back = SweepSpec.from_dict(d)
    assert back == spec.replace(store=None, resume=None)


def test_a_sweep_stored_before_specs_migrates_to_its_options():
    old = {
        "kind": "coarse",
        "data": {"dataset": "mnist-sample", "data_dir": None, "seed": 3},
        "model": {"kind": "mlp", "hidden": 128},
        "train": {"optimizer": "momentum", "steps": 300, "batch_size": 64, "momentum": 0.8},
        "space": {"lr": [1e-3, 1.0], "l2": [1e-6, 1e-2], "dropout": [0.0, 0.5]},
        "trials": 32,
        "grid": False,
    }
    spec = SweepSpec.from_dict(old)
    assert (spec.dataset, spec.model, spec.hidden, spec.seed) == ("mnist-sample", "mlp", 128, 3)
    assert (spec.trials, spec.steps, spec.batch_size, spec.momentum) == (32, 300, 64, 0.8)
    assert spec.lr == Range(1e-3, 1.0) and spec.dropout.hi == 0.5
    with pytest.raises(ConfigError, match="newer than this sweepjax"):
        migrate({"version": SPEC_VERSION + 1})


def test_fine_inherits_only_what_the_table_says():
    parent = SweepSpec.create(
        "coarse",
        dataset="mnist-sample",
        trials=32,
        steps=60,
        lr=(1e-3, 1.0),
        momentum=0.7,
        band=0.3,
        schedule="pbt",
    )
    child = SweepSpec.create("fine", trials=16).inherit(parent)
    assert child.trials == 16 and child.dataset == "mnist-sample" and child.momentum == 0.7
    # the round's own: box, steps, band, schedule are not the parent's
    assert child.lr is None and child.steps is None and child.band is None
    assert child.schedule is None
    # nor its members: a fine round draws half its parent's (plan_fine), at least 64
    assert SweepSpec.create("fine").inherit(parent).trials is None
    assert [fine_trials(n) for n in (256, 1000, 129, 128, 100, 64, 16)] == [
        128, 500, 64, 64, 64, 64, 16
    ]  # fmt: skip


def test_toml_keys_are_the_option_names_and_old_flag_spellings(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text(
        'trials = 16\nlr = [1e-3, 1.0]\npbt-interval = 5\nfrom = "c1"\ntop = 3\n'
        "no_report = true\nrefit = false\n"
    )
    got = read_toml(str(f), "fine")
    assert got == {
        "trials": 16,
        "lr": [1e-3, 1.0],
        "pbt_interval": 5,
        "parent": "c1",
        "top_k": 3,
        "report": False,
        "refit": False,
    }
    f.write_text("trails = 16\n")
    with pytest.raises(ConfigError, match="unknown key 'trails'"):
        read_toml(str(f), "coarse")


def test_flags_win_over_the_toml_file(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text("trials = 16\nsteps = 50\nformat = 'json'\n")
    args = _subparser("coarse").parse_args(["--config", str(f), "--trials", "8"])
    spec, cli = resolve(args, "coarse")
    assert (spec.trials, spec.steps, cli["format"]) == (8, 50, "json")


@pytest.mark.parametrize("command", ["coarse", "fine"])
def test_the_docstring_describes_switches_by_what_true_does(command):
    """help(sweepjax.coarse) said `report: do not write the HTML report` and `refit: do not
    retrain the winner` for keyword arguments that default to True, `resume: ... (see
    below)` with nothing below, and nothing of `callbacks`; `--help` keeps its flags' words."""
    doc = getattr(sweepjax, command).__doc__
    lines = {
        ln.split(":", 1)[0].strip(): ln.split(":", 1)[1] for ln in doc.splitlines() if ":" in ln
    }
    options_doc = doc.split("Options (")[1]
    assert "do not" not in options_doc and "see below" not in options_doc
    assert lines["report"].strip().startswith("write the self-contained HTML report")
    assert "False skips it" in lines["report"] and lines["report"].endswith("(default True)")
    assert "interrupted sweep from its last checkpoint" in lines["resume"]
    assert lines["resume"].endswith("(default False)")
    assert "stop() is polled after every chunk" in lines["callbacks"]
    if command == "fine":
        assert lines["refit"].strip().startswith("retrain the winner on train + validation")
        assert lines["refit"].endswith("(default True)")
    helps = {a.dest: a.help for a in _actions(command)}
    assert helps["report"] == "do not write the HTML report"  # --no-report
    assert helps["resume"] == "continue an interrupted sweep (see below)"  # the epilog


def _actions(command):
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[command]._actions
