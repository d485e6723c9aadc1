"""The text ``coarse`` / ``fine`` / ``show`` print: next-step hints that can be copied as
they are."""

from __future__ import annotations

import shlex

import pytest

from sweepjax.cli.render import render_result, store_args
from tests.test_report import synthetic


@pytest.fixture()
def in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SWEEPJAX_STORE", raising=False)
    return tmp_path


def _hints(text: str) -> list[str]:
    """Every command the text tells the user to run."""
    out = []
    for line in text.splitlines():
        for part in line.replace("`", ";").replace("(", ";").replace(")", ";").split(";"):
            part = part.strip().removeprefix("refine:").strip()
            if part.startswith("sweepjax "):
                out.append(part)
    return out


def test_hints_carry_a_store_that_is_not_the_default(in_tmp):
    """After `--store /tmp/x/s.db` the hint `sweepjax show c1` silently showed
    ./sweepjax.db's c1."""
    store = str(in_tmp / "my dir" / "s.db")
    text = render_result(synthetic(), store)
    hints = _hints(text)
    assert len(hints) >= 3  # show, fine --from (stored line), fine --from (edge flag)
    for h in hints:
        argv = shlex.split(h)
        assert argv[argv.index("--store") + 1] == store, h


def test_hints_for_the_default_store_stay_short(in_tmp, monkeypatch):
    for store in ("sweepjax.db", str(in_tmp / "sweepjax.db")):
        assert store_args(store) == ""
        assert all("--store" not in h for h in _hints(render_result(synthetic(), store)))
    monkeypatch.setenv("SWEEPJAX_STORE", str(in_tmp / "env.db"))
    assert store_args(str(in_tmp / "env.db")) == ""  # a bare command opens it too
    assert store_args("sweepjax.db") == " --store sweepjax.db"


def _small_npz(tmp_path):
    import numpy as np

    rng = np.random.default_rng(0)
    p = tmp_path / "small.npz"
    np.savez(p, x_train=rng.normal(size=(150, 6)), y_train=np.arange(150) % 3)
    return p


def test_the_plan_cuts_the_batch_to_the_training_rows(tmp_path):
    """`batch 256` on a 121-row training split while the engine drew 121: the plan now
    holds the batch used (so the header, the stored config and spec name it), said in a
    note."""
    from sweepjax.flows.plan import plan_coarse
    from sweepjax.flows.sweep import Callbacks
    from sweepjax.spec import SweepSpec

    notes: list[str] = []
    spec = SweepSpec.create("coarse", dataset=f"npz:{_small_npz(tmp_path)}", trials=4, steps=10)
    plan = plan_coarse(spec, Callbacks(note=notes.append))
    n = plan.data.info.n_train
    assert n < 256 and plan.config.train.batch_size == n and plan.config.spec.batch_size == n
    assert f"`batch_size` 256 exceeds the {n} training rows; using batch {n}" in notes[-1]
    spec = SweepSpec.create("coarse", dataset=f"npz:{_small_npz(tmp_path)}", batch_size=64)
    assert plan_coarse(spec, Callbacks(note=notes.append)).config.train.batch_size == 64


@pytest.mark.slow
def test_the_batch_shown_and_stored_is_the_batch_used(tmp_path):
    """The same through a sweep: the line as training starts, the stored config, the
    results' header."""
    import sweepjax
    from sweepjax.flows.sweep import Callbacks
    from sweepjax.store.db import Store

    notes: list[str] = []
    store = str(tmp_path / "s.db")
    res = sweepjax.coarse(
        dataset=f"npz:{_small_npz(tmp_path)}", trials=4, steps=10, report=False, store=store,
        callbacks=Callbacks(note=notes.append),
    )  # fmt: skip
    n = res.dataset["n_train"]
    assert any(f"(batch {n}, sgd" in x for x in notes)  # the line as training starts
    with Store.open(store) as st:
        stored = st.load_sweep(res.sweep_id, curves=False)
    assert stored.config.train.batch_size == n and stored.spec.batch_size == n
    assert f"steps, batch {n}, " in render_result(stored, store).splitlines()[0]
