"""The package's shape: layers that import only downward, no cycles (deferred imports
included), no private name crossing a module border, no module past ~400 lines, no function past
100 lines.

Read from the source with ``ast`` (nothing is imported), so a violation names the file
and line to fix.
"""

from __future__ import annotations

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "sweepjax"
# Bottom to top: a module may import its own layer and the layers before it.
LAYERS = [
    ("errors",),
    ("config", "axis", "budget", "metric", "spec", "sweep_config"),
    ("data",),
    ("models",),
    ("engine",),
    ("analysis",),
    ("results",),
    ("search",),
    ("schedulers",),
    ("store",),
    ("report",),
    ("flows",),
    ("cli", "__init__", "__main__"),
]
MAX_LINES = 420
MAX_FUNCTION_LINES = 100


def _modules(root: pathlib.Path = ROOT) -> dict[str, pathlib.Path]:
    mods = {}
    for p in root.rglob("*.py"):
        parts = ["sweepjax", *p.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = p
    return mods


def _resolve(name: str, mods) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: pathlib.Path, mods):
    """``(line, target module, imported name or None)`` for every sweepjax import,
    deferred (inside a function) or not. ``from pkg import submodule`` counts as an
    import of the submodule, not of the package."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sweepjax"):
            for a in node.names:
                sub = f"{node.module}.{a.name}"
                if sub in mods:
                    out.append((node.lineno, sub, None))
                else:
                    out.append((node.lineno, _resolve(node.module, mods), a.name))
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("sweepjax"):
                    out.append((node.lineno, _resolve(a.name, mods), None))
    return out


def _layer(module: str) -> int:
    top = module.split(".")[1] if "." in module else "__init__"
    for i, names in enumerate(LAYERS):
        if top in names:
            return i
    raise AssertionError(f"{module}: top-level name {top!r} is in no layer of LAYERS")


def _graph(mods):
    return {
        m: {t for _, t, _ in _imports(p, mods) if t and t != m and not m.startswith(t + ".")}
        for m, p in mods.items()
    }


def _cycle(graph) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m):
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                return [*stack[stack.index(t) :], t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycle():
    assert _cycle(_graph(_modules())) is None, " -> ".join(_cycle(_graph(_modules())))


def test_imports_point_down_the_layers():
    mods = _modules()
    bad = []
    for m, p in mods.items():
        for line, t, _ in _imports(p, mods):
            if t and t != "sweepjax" and _layer(t) > _layer(m):
                bad.append(f"{p.relative_to(ROOT.parent)}:{line} {m} imports {t} (a higher layer)")
    assert not bad, "\n".join(bad)


def test_no_private_name_crosses_a_module_border():
    mods = _modules()
    bad = []
    for m, p in mods.items():
        for line, t, name in _imports(p, mods):
            if name and name.startswith("_") and not name.startswith("__") and t != m:
                bad.append(f"{p.relative_to(ROOT.parent)}:{line} imports {t}.{name}")
        # module._private attribute access on an imported sweepjax module
        aliases = {}
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("sweepjax"):
                for a in node.names:
                    if f"{node.module}.{a.name}" in mods:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(ast.parse(p.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                bad.append(
                    f"{p.relative_to(ROOT.parent)}:{node.lineno} uses "
                    f"{aliases[node.value.id]}.{node.attr}"
                )
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.name))
def test_module_size(path):
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.relative_to(ROOT.parent)} has {n} lines; split it along its seam"


def _long_functions(path: pathlib.Path, root: pathlib.Path = ROOT):
    """``(relative path, name, line, length)`` of every function or method in ``path``
    longer than :data:`MAX_FUNCTION_LINES` (nested ones too; its decorators count)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            n = node.end_lineno - first + 1
            if n > MAX_FUNCTION_LINES:
                out.append((path.relative_to(root).as_posix(), node.name, node.lineno, n))
    return out


def test_no_function_is_longer_than_100_lines():
    found = [f for p in sorted(ROOT.rglob("*.py")) for f in _long_functions(p)]
    bad = [
        f"sweepjax/{rel}:{line} {name} has {n} lines (> {MAX_FUNCTION_LINES}); split it along "
        "its seams"
        for rel, name, line, n in found
    ]
    assert not bad, "\n".join(bad)


def test_the_checks_catch_a_cycle_an_upward_import_and_a_private_name(tmp_path):
    """The checks above are not vacuous: a planted cycle, an upward import and a private
    import in a throwaway tree are all found."""
    pkg = tmp_path / "sweepjax"
    (pkg / "engine").mkdir(parents=True)
    (pkg / "flows").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "engine" / "__init__.py").write_text("")
    (pkg / "flows" / "__init__.py").write_text("")
    (pkg / "engine" / "a.py").write_text(
        "def f():\n    from sweepjax.flows.b import g\n    from sweepjax.flows.b import _h\n"
    )
    (pkg / "flows" / "b.py").write_text("from sweepjax.engine import a\n")
    mods = _modules(pkg)
    graph = _graph(mods)
    assert _cycle(graph) == ["sweepjax.engine.a", "sweepjax.flows.b", "sweepjax.engine.a"]
    assert _layer("sweepjax.flows.b") > _layer("sweepjax.engine.a")
    names = [n for _, _, n in _imports(pkg / "engine" / "a.py", mods)]
    assert "_h" in names


def test_the_length_rule_counts_a_function_from_its_decorator_to_its_last_line(tmp_path):
    """A 101-line function (decorator included) is caught with its file, line and length;
    a 100-line one and the 1-line module code around it are not."""
    body = "".join(f"    x{i} = {i}\n" for i in range(98))
    src = f"import functools\n\n\n@functools.cache\ndef long():\n{body}    return 0\n\n\n"
    src += f"def short():\n{body}    return 0\n"
    (tmp_path / "m.py").write_text(src)
    assert _long_functions(tmp_path / "m.py", tmp_path) == [("m.py", "long", 5, 101)]
