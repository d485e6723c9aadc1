"""Whole compiled programs kept on disk (engine/saved_programs.py): a warm process loads
the population programs instead of tracing, lowering and compiling them; what trains is
the same bit for bit; a user's code, a corrupt file or a full disk never loads a wrong
program or fails a run."""

from __future__ import annotations

import errno
import functools
import subprocess
import sys
import tempfile

import jax
import numpy as np
import pytest

from sweepjax import engine
from sweepjax.config import ModelConfig
from sweepjax.engine import program, saved_programs
from sweepjax.engine.hparams import HParams
from sweepjax.engine.member import Static
from sweepjax.metric import ACCURACY
from sweepjax.models.network import BuiltIn
from sweepjax.schedulers import rules
from tests.helpers import toy_dataset, toy_train_config


@pytest.fixture
def store(tmp_path):
    """Saved programs on in ``tmp_path`` (and off again after the test)."""
    saved_programs.enable(tmp_path)
    saved_programs.COUNTS.clear()
    yield tmp_path
    saved_programs.enable(None)


def _static(**kw) -> Static:
    net = BuiltIn("mlp", 32, 3, **kw)
    return Static(net, "sgd", 16, 3.0, metric=ACCURACY)


def _my_loss(logits, labels):
    return -logits[np.arange(len(labels)), labels]


def test_settings_are_written_out_field_by_field_and_a_users_code_is_refused():
    a, b = saved_programs.form(_static()), saved_programs.form(_static())
    assert a == b and "mlp" in a and "fn:sweepjax.metric." in a
    assert saved_programs.form(_static(dropout=True)) != a
    assert saved_programs.form(0.1) != saved_programs.form(0.1 + 1e-17 * 10)
    # A user's loss is code this module cannot hash: such a program is never saved.
    with pytest.raises(saved_programs.Unkeyable):
        saved_programs.form(_static(loss_fn=_my_loss))
    with pytest.raises(saved_programs.Unkeyable):
        saved_programs.form(object())
    # jax's functions are keyed by name (jax's version is in the key).
    assert saved_programs.form(functools.partial(jax.nn.relu)).startswith("partial(fn:jax")


def test_the_fingerprint_is_the_same_in_another_process():
    # (This process's JAX configuration is the tests' own, so only the two children
    # compare with each other.)
    code = (
        "import numpy as np, jax.numpy as jnp;"
        "from sweepjax.engine import saved_programs as s;"
        "from tests.test_saved_programs import _static;"
        "print(s.fingerprint('chunk', (_static(), ()), (jnp.zeros((4, 3)), np.int32(2)), None))"
    )
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and len(runs[0]) == 64
    # ... and it changes with the shapes, the settings and the compiler options.
    args = (jax.numpy.zeros((4, 3)), np.int32(2))
    base = saved_programs.fingerprint("chunk", (_static(), ()), args, None)
    other = (jax.numpy.zeros((8, 3)), np.int32(2))
    assert saved_programs.fingerprint("chunk", (_static(), ()), other, None) != base
    assert saved_programs.fingerprint("eval", (_static(), ()), args, None) != base
    assert saved_programs.fingerprint("chunk", (_static(), ()), args, {"o": 0}) != base
    # A setting that changes the traced program, set for a block of a notebook's code.
    with jax.default_matmul_precision("highest"):
        assert saved_programs.fingerprint("chunk", (_static(), ()), args, None) != base
    assert saved_programs.fingerprint("chunk", (_static(), ()), args, None) == base


def _train():
    ds = toy_dataset(n_train=300, n_val=90, n_test=90, d=10, k=3, seed=2)
    cfg = toy_train_config().replace(steps=30, eval_every=10, chunk_steps=30)
    hp = HParams.create(lr=np.geomspace(1e-2, 1.0, 8), l2=1e-4)
    program.clear_cache()  # this process's held programs: the next compile looks on disk
    return engine.train_population(
        ds, hp, ModelConfig("softmax"), cfg, scheduler=rules.Halving(rungs=1, eta=2, total=30)
    )


def _same(a, b):
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params), strict=True):
        np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.best_val_acc, b.best_val_acc)
    np.testing.assert_array_equal(a.stopped_at, b.stopped_at)


def test_a_loaded_program_trains_exactly_as_a_compiled_one(store):
    saved_programs.enable(None)
    plain = _train()
    saved_programs.enable(store)
    first = _train()
    saved = sorted(store.glob("*.exe"))
    # The training program and the evaluation program were saved ...
    assert len(saved) >= 2 and saved_programs.COUNTS["saved"] == len(saved)
    assert saved_programs.COUNTS["loaded"] == 0
    again = _train()
    # ... and the second run loaded every one of them, compiling nothing.
    assert saved_programs.COUNTS["loaded"] == len(saved)
    assert saved_programs.COUNTS["saved"] == len(saved) == len(list(store.glob("*.exe")))
    _same(first, plain)
    _same(again, plain)


_HELD_BY_JAX = """
import sys, jax, numpy as np
jax.config.update("jax_compilation_cache_dir", sys.argv[1])
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
from sweepjax.engine import program, saved_programs
from tests.test_saved_programs import _train, _same
plain = _train()            # compiled, and written to JAX's persistent cache
jax.clear_caches()
_train()                    # read back from it: JAX now holds deserialized executables
saved_programs.enable(sys.argv[2])
_train()                    # to be saved: compiled afresh, not JAX's deserialized copy
again = _train()            # loaded from the saved files: each must run
_same(again, plain)
assert saved_programs.COUNTS["loaded"] == saved_programs.COUNTS["saved"] > 0
print("ok")
"""


@pytest.mark.slow  # ~15 s: a process of its own
def test_a_program_jax_holds_deserialized_is_compiled_afresh_before_it_is_saved(tmp_path):
    # XLA:CPU cannot serialize again an executable it deserialized, and JAX's cache in
    # memory hands one out with no event (this failed: "Function ... not found").
    # Its own process: JAX's persistent cache is set once per process.
    args = [str(tmp_path / "jax"), str(tmp_path / "saved")]
    out = subprocess.run([sys.executable, "-c", _HELD_BY_JAX, *args], capture_output=True,
                         text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


def test_a_corrupt_file_is_compiled_again_and_a_full_disk_saves_nothing(store, monkeypatch):
    plain = _train()
    files = sorted(store.glob("*.exe"))
    files[0].write_bytes(b"not a program")
    files[1].write_bytes(files[1].read_bytes()[:100])  # cut short (a crash mid-copy)
    saved_programs.COUNTS.clear()
    _same(_train(), plain)
    assert saved_programs.COUNTS["unreadable"] == 2 and saved_programs.COUNTS["saved"] == 2
    assert all(f.stat().st_size > 1000 for f in store.glob("*.exe"))  # rewritten whole

    for f in store.iterdir():  # the programs and the compile seconds beside them
        f.unlink()

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "mkstemp", full)
    _same(_train(), plain)
    assert not list(store.iterdir())  # nothing written, not even a partial file


def test_a_fresh_compile_is_timed_and_recorded_for_the_next_process(store, monkeypatch):
    """What a compile of each kind took is kept (this process's slowest, and beside the
    files for the next process); a program loaded from a file is no compile."""
    monkeypatch.setattr(saved_programs, "COMPILE_S", {})
    program.clear_cache()
    _train()
    secs = saved_programs.COMPILE_S["chunk"]
    assert secs > 0 and saved_programs.compile_seconds("chunk") == secs
    monkeypatch.setattr(saved_programs, "COMPILE_S", {})  # another process, same machine
    assert saved_programs.compile_seconds("chunk") == pytest.approx(secs)
    assert saved_programs.compile_seconds("never-compiled") is None
    program.clear_cache()
    _train()  # every program loaded from its file: nothing compiled, nothing timed
    assert saved_programs.COMPILE_S == {}
    (store / saved_programs.SECONDS).write_text("{not json")  # a broken record: unknown
    assert saved_programs.compile_seconds("chunk") is None


def test_the_least_recently_used_files_go_past_the_limit(tmp_path):
    import os

    for i in range(6):
        f = tmp_path / f"{i}.exe"
        f.write_bytes(b"x")
        os.utime(f, (i, i))
    saved_programs._prune(tmp_path, keep=4)
    assert sorted(f.name for f in tmp_path.glob("*.exe")) == ["2.exe", "3.exe", "4.exe", "5.exe"]


@pytest.mark.slow  # ~30 s: four command-line processes on a 2-core CPU
def test_programs_kept_by_the_command_line_load_and_train_the_same(tmp_path):
    """Through ``python -m sweepjax``: a cold process saves its programs, a warm one loads
    them; with the saved programs gone but JAX's cache warm, the process compiles them
    once more to save them (XLA:CPU's copy of an executable JAX's cache loaded fails at
    its first run: this test failed that way), and the next process loads those."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    env = {
        **dict(__import__("os").environ),
        "PYTHONPATH": str(root),
        "SWEEPJAX_COMPILE_CACHE": str(tmp_path / "xla"),
    }
    argv = ["coarse", "--dataset", "mnist-sample", "--trials", "12", "--steps", "60"]
    argv += ["--batch-size", "64", "--no-report", "--format", "json"]
    kept = tmp_path / "xla" / saved_programs.FOLDER

    def run(i: int) -> dict:
        out = subprocess.run(
            [sys.executable, "-m", "sweepjax", *argv, "--store", str(tmp_path / f"{i}.db")],
            env=env,
            capture_output=True,
            text=True,
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return __import__("json").loads(out.stdout)

    def inodes() -> dict[str, int]:
        # A file saved (written whole, then renamed over) is a new inode; loading one
        # keeps it: the same inode after a run means that run loaded it, not compiled it.
        return {f.name: f.stat().st_ino for f in kept.glob("*.exe")}

    cold = run(0)
    saved = inodes()
    assert len(saved) >= 2
    warm = run(1)
    # (A warm run may use more widths than the cold one: the halving's recompile rule
    # weighs the measured compile time, so new files may appear.)
    assert saved.items() <= inodes().items()
    for f in kept.glob("*.exe"):
        f.unlink()
    again = run(2)  # JAX's cache answers: compiled once more and saved
    resaved = inodes()
    assert len(resaved) >= 2
    last = run(3)  # ... and those copies load and run
    assert resaved.items() <= inodes().items()
    # The same members and winner. Losses may differ in the last bit: a warm run, its
    # programs loading in milliseconds, can compact its survivors into a narrower program
    # where a cold one keeps them (the recompile rule weighs the measured compile time),
    # and a narrower program may sum in another order.
    for doc in (warm, again, last):
        assert doc["winner"]["id"] == cold["winner"]["id"]
        assert len(doc["members"]) == len(cold["members"])
        for a, b in zip(doc["members"], cold["members"], strict=True):
            assert a.keys() == b.keys()
            for k in a:
                if isinstance(a[k], float):
                    np.testing.assert_allclose(a[k], b[k], rtol=1e-6, err_msg=k)
                else:
                    assert a[k] == b[k], k
