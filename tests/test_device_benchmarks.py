"""The memory benchmark's and the device check's own parts that a result depends on: the
``/usr/bin/time -v`` reading (a refusal's line, not time's own), and the device check's
Python loop training the same model as the population (same parameter count)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from sweepjax.engine import setup
from tests.helpers import toy_dataset

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_memory  # noqa: E402
import gpu_check  # noqa: E402


@pytest.mark.skipif(shutil.which("/usr/bin/time") is None, reason="no /usr/bin/time")
def test_time_v_reads_the_commands_last_line_and_peak():
    """A command that holds 200 MB and exits 2: its own last line (time's "Command
    exited with non-zero status 2" is not it), and a peak of at least the 200 MB."""
    code = "import sys; a = bytearray(200 * 2**20); print('one line', file=sys.stderr); sys.exit(2)"
    run = bench_memory.time_v([sys.executable, "-c", code])
    assert run["rc"] == 2 and run["last_line"] == "one line"
    assert run["peak_rss"] >= 200 * 2**20 and run["wall_s"] >= 0


@pytest.mark.parametrize("name", ["softmax", "mlp", "cnn"])
def test_the_loop_baseline_trains_the_populations_model(name):
    """The flax module the Python loop trains has exactly the parameters of one member of
    the population it is compared with."""
    shape = (28, 28)
    ds = toy_dataset(n_train=40, n_val=10, n_test=10, d=784, k=10)
    ds = ds._replace(info=ds.info._replace(input_shape=shape))
    model = gpu_check.user_model(name, ds.num_classes)
    x = np.zeros((1, 28, 28, 1) if name == "cnn" else (1, 784), np.float32)
    params = jax.eval_shape(model.init, jax.random.key(0), x)
    n = sum(int(np.prod(a.shape)) for a in jax.tree.leaves(params))
    assert n == setup.num_params(gpu_check.MODELS[name], 784, 10, shape)
