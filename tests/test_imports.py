"""What each entry point imports (issue 17: cut what is not training), counted in a fresh
interpreter: ``import sweepjax`` and the CLI's parser (what ``--help`` and a usage error
run) import no heavy library; training imports jax, optax and flax and nothing more of
the list. flax is needed for training: the built-in softmax and MLP are flax modules
(:mod:`sweepjax.models.builtin`), whose named-scope PRNG gives every member its initial
weights. matplotlib is imported only when a report is written (:mod:`sweepjax.report`).
"""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("flax", "jax", "matplotlib", "optax", "optuna", "scipy", "sklearn", "torch")

# Each stage prints the heavy libraries imported so far, as one JSON line.
PROBE = f"""
import json, sys
heavy = {HEAVY!r}
def loaded():
    print(json.dumps(sorted(m for m in heavy if m in sys.modules)), flush=True)

import sweepjax
loaded()
from sweepjax.cli import build_parser
build_parser()
loaded()
from sweepjax import Custom, coarse, from_flax
loaded()
import types
# Every public name resolves, and to what it names: a function stays a function even when
# its module shares its name (sweepjax.auto, in sweepjax.flows.auto).
print(json.dumps([n for n in sweepjax.__all__ if not hasattr(sweepjax, n)
                  or isinstance(getattr(sweepjax, n), types.ModuleType) != (n == "compile_cache")]))
"""


def test_import_and_help_skip_heavy_libraries_training_imports_only_its_own():
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, check=True, timeout=300
    ).stdout
    package, parser, training, missing = (json.loads(line) for line in out.splitlines())
    assert package == []
    assert parser == []
    assert training == ["flax", "jax", "optax"]
    assert missing == []  # every public name still resolves (lazily, PEP 562)
