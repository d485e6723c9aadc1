"""The docs stay true: generated pages match their sources, links resolve, the README
stays short and its test command is the one CI runs."""

from __future__ import annotations

import argparse
import importlib.util
import re
from pathlib import Path

import pytest

from sweepjax.cli import build_parser
from sweepjax.cli.reference import _cell, _help, cli_markdown

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md")), ROOT / "benchmarks" / "README.md"]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _make_readme():
    path = ROOT / "benchmarks" / "make_readme.py"
    spec = importlib.util.spec_from_file_location("make_readme", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _prose(text: str) -> str:
    """The text with fenced code blocks and code spans blanked out (no links live there)."""
    text = re.sub(r"^```.*?^```", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "x", text)


def _anchors(path: Path) -> set[str]:
    """GitHub's heading ids: lowercased, punctuation dropped, spaces to hyphens."""
    seen: dict[str, int] = {}
    for line in re.sub(r"^```.*?^```", "", path.read_text(), flags=re.M | re.S).splitlines():
        if m := re.match(r"#{1,6} +(.*?)\s*$", line):
            slug = re.sub(r"[^\w\- ]", "", m.group(1).lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            seen.setdefault(f"{slug}-{n}" if n else slug, 1)
    return set(seen)


def _subcommands() -> list[str]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return list(sub.choices)


def test_cli_md_is_generated_from_the_parser():
    expected = cli_markdown()
    assert (ROOT / "docs" / "cli.md").read_text() == expected, (
        "docs/cli.md is stale: run python -m sweepjax.cli.reference > docs/cli.md"
    )
    assert expected == cli_markdown()  # deterministic


def test_cli_md_has_every_subcommand_and_flag():
    text = (ROOT / "docs" / "cli.md").read_text()
    names = _subcommands()
    assert {"coarse", "fine", "auto", "sanity", "show", "report"} <= set(names)
    for name in names:
        assert f"\n## {name}\n" in text, name
    for flag in ("--schedule", "--eta", "--replicas", "--folds", "--sampler", "--resume"):
        assert f"`{flag}" in text, flag


def test_reference_expands_defaults_and_escapes_pipes():
    p = argparse.ArgumentParser(prog="x")
    action = p.add_argument("--eta", type=int, default=3, help="keep 1/%(default)s (%(prog)s)")
    assert _help(action, "x") == "keep 1/3 (x)"
    assert _cell("a | b\n  c") == "a \\| b c"


def test_benchmarks_readme_is_generated_from_results():
    mod = _make_readme()
    built = mod.build()
    assert (ROOT / "benchmarks" / "README.md").read_text() == built, (
        "benchmarks/README.md is stale: run python benchmarks/make_readme.py"
    )
    results = sorted((ROOT / "benchmarks" / "results").glob("*.md"))
    assert results
    for md in results:
        if md.stem.endswith("-quick"):
            continue
        assert f"(results/{md.name})" in built, md.name
        body = [ln.rstrip() for ln in md.read_text().splitlines()[1:] if ln.startswith("|")]
        assert body and all(ln in built for ln in body), md.name  # every table row, verbatim
        if md.with_suffix(".png").exists():
            assert f"(results/{md.stem}.png)" in built


def test_make_readme_check_flags_a_stale_file(tmp_path, monkeypatch):
    mod = _make_readme()
    monkeypatch.setattr(mod, "README", tmp_path / "README.md")
    (tmp_path / "README.md").write_text("old\n")
    assert mod.main(["--check"]) == 1
    assert mod.main([]) == 0
    assert mod.main(["--check"]) == 0
    assert (tmp_path / "README.md").read_text() == mod.build()


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    for target in LINK.findall(_prose(page.read_text())):
        if re.match(r"[a-z]+:", target):
            continue  # http:, https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        assert dest.exists(), f"{page.name}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{page.name}: no heading #{anchor} in {dest.name}"


def test_readme_is_short_and_runs_the_tests_ci_runs():
    text = README.read_text()
    assert len(text.splitlines()) <= 170
    line = next(ln for ln in text.splitlines() if "python -m pytest" in ln)
    command = line[line.index("python -m pytest") :].rstrip().rstrip("`").rstrip()
    assert command == "python -m pytest -q"
    assert "pip install -e . && python -m sweepjax coarse" in text


def test_every_page_is_linked_from_the_readme_and_the_index():
    readme, index = README.read_text(), (ROOT / "docs" / "README.md").read_text()
    assert "(benchmarks/README.md)" in readme
    pages = [p.name for p in sorted((ROOT / "docs").glob("*.md")) if p.name != "README.md"]
    assert "cli.md" in pages
    for name in pages:
        assert f"(docs/{name})" in readme, name
        assert f"({name})" in index, name


def test_readme_numbers_come_from_the_results():
    rows = [ln for ln in README.read_text().splitlines() if ln.startswith("|")]
    assert len(rows) >= 5
    source = (ROOT / "benchmarks" / "results" / "time-to-quality-cpu.md").read_text()
    assert all(row in source.splitlines() for row in rows)
