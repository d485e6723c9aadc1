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
