"""Strict numerics for every test (as equinox's conftest): implicit rank promotion
raises, so a silently broadcast shape bug fails loudly (tests/test_strictness.py checks
that this, float32 and warnings-as-errors are in force)."""

import os

# Tests compile many small programs and run each for milliseconds: XLA's CPU backend
# without LLVM's optimisation passes compiles them about twice as fast. Set before JAX
# starts its backend; subprocesses the tests start inherit it. Numerical claims compare
# programs compiled alike, or a reference within a stated tolerance.
_FAST_COMPILE = "--xla_backend_optimization_level=0"
if _FAST_COMPILE not in os.environ.get("XLA_FLAGS", ""):
    os.environ["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()

import jax  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")

# The CLI keeps compiled programs in a persistent cache; tests must not write to the
# user's home, and must measure what they claim without a warm cache.
os.environ.setdefault("SWEEPJAX_COMPILE_CACHE", "0")
# Likewise the prepared-data cache (tests that test it point it at a temporary directory).
os.environ.setdefault("SWEEPJAX_DATA_CACHE", "0")

# The workers of one run (pytest-xdist) share a compilation cache in a temporary
# directory, so a program one worker compiled is loaded, not compiled again, by the
# other: the run's own cache, empty when it starts and removed when it ends (never the
# user's). In-process compile counts (sweepjax.engine.PROGRAMS) are unaffected.
import shutil  # noqa: E402
import tempfile  # noqa: E402

_RUN_CACHE = "SWEEPJAX_TEST_XLA_CACHE"
_OWNED: list[str] = []


def pytest_configure(config):
    if hasattr(config, "workerinput"):  # a worker: use the run's cache
        # One XLA thread per worker: the workers already fill the cores, and two
        # workers' thread pools fighting over them cost more than they give. Set before
        # any test starts JAX's backend.
        os.environ["XLA_FLAGS"] += " --xla_cpu_multi_thread_eigen=false"
        if os.environ.get(_RUN_CACHE):
            jax.config.update("jax_compilation_cache_dir", os.environ[_RUN_CACHE])
            jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    elif config.pluginmanager.hasplugin("xdist") and config.getoption("numprocesses", None):
        _OWNED.append(tempfile.mkdtemp(prefix="sweepjax-test-xla-"))
        os.environ[_RUN_CACHE] = _OWNED[0]


def pytest_unconfigure(config):
    for d in _OWNED:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def blobs_npz(tmp_path_factory):
    """The 8x8 blobs as an npz, one per test module (tests/helpers.blobs_npz_file)."""
    from tests.helpers import blobs_npz_file

    return blobs_npz_file(tmp_path_factory.mktemp("blobs"))
