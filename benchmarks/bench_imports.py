"""Seconds a fresh process spends importing what a sweep needs, module by module.

    python benchmarks/bench_imports.py                          # 5 processes per module
    python benchmarks/bench_imports.py --other-path /tmp/mld070 # the same with that folder
                                                                # first on the path, alternated

Each measurement is its own ``python -c`` process timing ``import MODULE`` from its first
line (the interpreter's start-up is not in it; what the module imports counts: jax's
time includes numpy's and ml_dtypes'). ``--other-path`` puts a folder first on
``PYTHONPATH`` in every other round: another version of a dependency installed there
with ``pip install --no-deps --target DIR PACKAGE==VERSION`` is then measured against
the installed one, alternated (how ml_dtypes 0.7.0 was found to cost 1.3 s per
process, and 0.6.0 10 ms).

Writes ``results/imports-<backend>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]

import common  # noqa: E402

MODULES = ("numpy", "ml_dtypes", "jax", "optax", "flax.linen", "sweepjax.flows.sweep")
CODE = (
    "import time, importlib.metadata as md; t = time.perf_counter(); import {m}; "
    "dt = time.perf_counter() - t; print(dt, md.version('ml_dtypes'))"
)


def once(module: str, path: str | None) -> tuple[float, str]:
    """``(seconds, ml_dtypes version)`` of ``import module`` in a fresh process."""
    env = dict(os.environ)
    if path:
        env["PYTHONPATH"] = os.pathsep.join([path, env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    out = subprocess.run(
        [sys.executable, "-c", CODE.format(m=module)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), out[1]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--modules", nargs="+", default=list(MODULES))
    ap.add_argument("--other-path", default="", help="a folder put first on the path")
    ap.add_argument("--tag", default="", help="suffix of the result files")
    a = ap.parse_args(argv)
    m = common.machine()
    paths = [None, a.other_path] if a.other_path else [None]
    runs: dict[str, dict[str, list[float]]] = {}
    versions: dict[str, str] = {}
    for r in range(a.reps):
        for path in paths if r % 2 == 0 else paths[::-1]:  # alternated
            label = "installed" if path is None else "other"
            for mod in a.modules:
                secs, ver = once(mod, path)
                runs.setdefault(label, {}).setdefault(mod, []).append(secs)
                versions[label] = ver
    out = {"machine": m, "command": common.command_line(__file__, argv), "runs": runs}
    out["ml_dtypes"] = versions
    out["load_avg_at_end"] = list(os.getloadavg())
    name = f"imports-{m['backend']}{'-' + a.tag if a.tag else ''}"
    common.write_json(common.RESULTS / f"{name}.json", out)
    rows = [
        [f"{label} (ml_dtypes {versions[label]})", mod, common.median(v), min(v), max(v)]
        for label, mods in runs.items()
        for mod, v in mods.items()
    ]
    md = [
        "# Import time of a fresh process\n",
        f"Machine: {common.machine_line(m)}; "
        f"load average at end {out['load_avg_at_end'][0]:.2f}.\n",
        f"Reproduce: `{out['command']}`\n",
        "Seconds of `import MODULE` in a fresh `python -c` process (what it imports "
        f"counts: jax's includes ml_dtypes'), {a.reps} processes each, alternated between "
        "the paths.\n",
        common.md_table(["path", "module", "median s", "min s", "max s"], rows),
        "",
    ]
    (common.RESULTS / f"{name}.md").write_text("\n".join(md))
    print("\n".join(md))
    return out


if __name__ == "__main__":
    main()
