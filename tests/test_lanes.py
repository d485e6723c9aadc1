"""Host-driven steps over lanes (engine/lanes.py): a CNN's members split over the CPU
devices the command line asks JAX for, with results bit-identical to one lane; the
devices added change nothing else (the placement stays one device), and
``SWEEPJAX_LANES`` turns them off."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sweepjax.engine import distributed
from sweepjax.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_lanes_cap_reads_the_environment(monkeypatch):
    for value, cap in (("", distributed.MAX_LANES), ("1", 1), ("0", 1), ("off", 1), ("3", 3)):
        monkeypatch.setenv(distributed.LANES_ENV, value)
        assert distributed.lanes_cap() == cap
    monkeypatch.setenv(distributed.LANES_ENV, "many")
    with pytest.raises(ConfigError, match="SWEEPJAX_LANES"):
        distributed.lanes_cap()


def test_no_devices_asked_when_off_or_configured_by_the_user(monkeypatch):
    """Each refusal returns before JAX's config is touched: nothing changes here."""
    monkeypatch.setenv(distributed.LANES_ENV, "1")
    assert distributed.request_lanes(2) == 0
    monkeypatch.delenv(distributed.LANES_ENV)
    monkeypatch.setenv("XLA_FLAGS", "--xla_force_host_platform_device_count=2")
    assert distributed.request_lanes(2) == 0
    # This process asked for none: no lanes, whatever devices it has.
    assert distributed.lane_devices() == ()


SCRIPT = textwrap.dedent(
    """
    import os, sys
    from sweepjax.engine import distributed
    assert distributed.request_lanes(2) == 2
    import jax, numpy as np
    from sweepjax.engine import active, program, setup
    from sweepjax.engine.distributed import SINGLE, put_members
    from sweepjax.engine.hparams import HParams
    from tests.helpers import blob_dataset, toy_train_config
    from tests.test_host_steps import CNN

    assert len(jax.devices()) == 2
    where = distributed.placement()  # sweepjax's devices: the default stays one
    assert where.mesh is None and where.num_devices == 1
    assert distributed.placement(2).num_devices == 2  # asked for: the mesh
    assert len(distributed.lane_devices()) == 2
    for off in ("1", "0", "off"):
        os.environ["SWEEPJAX_LANES"] = off
        assert distributed.lane_devices() == ()

    ds = blob_dataset()
    cfg = toy_train_config().replace(optimizer="momentum")
    hp = HParams.create(lr=[0.01, 0.05, 0.2, 0.1, 0.03], l2=[1e-4, 1e-3, 1e-2, 1e-3, 0.0],
                        momentum=[0.5, 0.9, 0.8, 0.7, 0.6])
    st = setup.static(ds, CNN, cfg, hparams=hp)
    assert st.host_steps
    data = program.device_data(ds, cfg)
    key = np.asarray(jax.random.key_data(setup.root_keys(cfg.seed)[1]))
    folds, born = np.full(6, -1, np.int32), np.zeros(6, np.int32)
    hp6 = hp.take(np.array([0, 1, 2, 3, 4, 0]))
    states = setup.init_states(ds, hp6, CNN, cfg, member_ids=np.arange(6) + 7)

    def block(lanes):
        os.environ["SWEEPJAX_LANES"] = lanes
        act = active.Active(put_members(states, SINGLE), 5, 6, True)  # a padding row
        with jax.transfer_guard("disallow"):
            for start in (3, 10):  # two blocks
                act, met, _, _ = active.run_chunk(
                    act, hp6, folds, data, start, 7, 40, key, st, SINGLE, born
                )
        s = act.states
        return jax.tree.map(np.asarray, (s.params, s.best.acc, s.opt_state, s.health, met))

    one, two = block("1"), block("")
    a, b = jax.tree.leaves(one), jax.tree.leaves(two)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x[:5], y[:5])  # rtol 0: bit-identical
    assert np.all(np.isfinite(two[4].val_acc)) and np.all(two[4].update_ratio > 0)
    print("LANES-OK")
    """
)


@pytest.mark.slow  # a subprocess with two CPU devices compiles the CNN step twice, ~10 s
def test_two_lanes_equal_one_lane_bit_for_bit():
    """Params, optimizer state, best accuracy, health and every metric of two blocks
    over two lanes equal one lane's exactly (5 members, a padding row, the transfer
    guard on); the placement's default stays one device with the devices sweepjax
    added, and SWEEPJAX_LANES=1/0/off leaves no lanes."""
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", distributed.LANES_ENV)}
    env["PYTHONPATH"] = str(ROOT)
    env["JAX_PLATFORMS"] = "cpu"
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0 and "LANES-OK" in out.stdout, out.stderr[-3000:]


def test_only_the_command_lines_own_single_process_asks_for_lanes(monkeypatch, tmp_path):
    """``main()`` as the entry points call it (no argv) asks; ``main([...])`` from a
    caller's process, a multi-process run and ``watch`` (no JAX) do not."""
    import argparse

    from sweepjax import cli

    asked = []
    monkeypatch.setattr(distributed, "request_lanes", lambda *a: asked.append(1) or 0)
    store = str(tmp_path / "none.db")  # `show` on a missing store: exit 2, nothing trains
    monkeypatch.setattr(sys, "argv", ["sweepjax", "show", "c1", "--store", store])
    assert cli.main() == 2 and asked == [1]
    assert cli.main(["show", "c1", "--store", store]) == 2 and asked == [1]
    assert cli._multi_process(argparse.Namespace(coordinator="host:1234"))
    assert cli._multi_process(argparse.Namespace(distributed=True))
    assert not cli._multi_process(argparse.Namespace(coordinator=None, distributed=False))
