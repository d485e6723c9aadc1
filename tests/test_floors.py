"""The declared dependency floors are the ones CI installs: ``.ci/floors.txt`` pins
exactly pyproject.toml's lower bounds (CI runs the default tier at those versions)."""

from __future__ import annotations

import re
from pathlib import Path

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]


def _floors_txt() -> dict[str, str]:
    pins = {}
    for line in (ROOT / ".ci" / "floors.txt").read_text().splitlines():
        if m := re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9.]+)", line.strip()):
            pins[m[1].lower()] = m[2]
    return pins


def test_floors_txt_pins_exactly_pyprojects_lower_bounds():
    with (ROOT / "pyproject.toml").open("rb") as f:
        deps = tomllib.load(f)["project"]["dependencies"]
    bounds = {}
    for dep in deps:
        if ";" in dep:
            continue  # a backport for older Pythons only (tomli), not installed at the floors
        # NAME>=FLOOR, optionally skipping releases known bad (",!=VERSION").
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)(,!=[0-9.]+)*", dep.replace(" ", ""))
        assert m, f"{dep!r}: every dependency names its floor as NAME>=VERSION"
        bounds[m[1].lower()] = m[2]
    assert _floors_txt() == bounds


def test_the_ci_script_installs_the_floors_and_runs_the_default_tier_there():
    run = (ROOT / ".ci" / "run").read_text()
    assert "-c .ci/floors.txt" in run
    floors = run.index("-c .ci/floors.txt")
    readme = run.index('eval "$cmd"')
    assert floors < readme, "the README's test command must print the last default summary"
