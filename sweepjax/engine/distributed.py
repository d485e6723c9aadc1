"""Spreading the member axis over every device and host, with JAX's own runtime.

Members are independent and the data is replicated, so the population program runs
under ``shard_map`` with the member axis split over a 1-D device mesh: each device
trains its slice of members on its own copy of the data, with no communication
inside a chunk. Between chunks the states are gathered to every host (for progress,
checkpoints and the final results), so every process ends with the same results.

Several hosts: every process runs the same command; :func:`initialize` wires them
together through ``jax.distributed`` (explicit coordinator address, or whatever
``jax.distributed.initialize()`` detects on Slurm / TPU pods).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from sweepjax.errors import ConfigError

AXIS = "members"

# Host-driven steps (a convolutional model on a CPU) use one core per program and the CPU
# backend runs one device's programs one after another; with several CPU devices the
# members train over "lanes", one per device, concurrently (sweepjax.engine.lanes).
# The command line asks JAX for them (request_lanes); this is the one record of it.
LANES_ENV = "SWEEPJAX_LANES"  # "1", "0" or "off": one lane; a number N: at most N lanes
MAX_LANES = 8
_ADDED = 0  # CPU devices request_lanes asked JAX for (0: none); owned by this module


class Placement(NamedTuple):
    """Where the population runs. ``mesh`` is None for a single device."""

    mesh: Mesh | None
    num_devices: int
    process_index: int
    process_count: int

    @property
    def key(self) -> tuple:
        """Hashable identity for compile caches."""
        if self.mesh is None:
            return ()
        return tuple(d.id for d in self.mesh.devices.flat)

    def member_sharding(self) -> NamedSharding:
        return NamedSharding(self.mesh, P(AXIS))

    def replicated(self) -> NamedSharding:
        return NamedSharding(self.mesh, P())


def initialize(
    coordinator: str | None = None, num_processes: int | None = None, process_id: int | None = None
) -> None:
    """Join a multi-process run (call before any other JAX work).

    With no arguments, ``jax.distributed.initialize()`` auto-detects Slurm / TPU / MPI
    environments. On CPU hosts the cross-process collectives go through gloo.
    """
    _drop_lanes()  # a multi-process run contributes its devices as they are
    if jax.config.jax_cpu_collectives_implementation in (None, "", "none"):
        # Harmless on GPU/TPU; needed for CPU-only processes to exchange results.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs = {}
    if coordinator is not None:
        kwargs = dict(
            coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
        )
    try:
        jax.distributed.initialize(**kwargs)
    except (RuntimeError, ValueError) as e:  # bad address, wrong ids, unreachable peer
        raise ConfigError(
            f"could not join the multi-process run ({e}); check --coordinator HOST:PORT, "
            "--num-processes and --process-id (0..N-1) on every process"
        ) from e


def placement(devices: int | None = None) -> Placement:
    """A 1-D mesh over ``devices`` devices (default: every device of every process;
    one device when the CPU devices are the ones :func:`request_lanes` added)."""
    all_devices = jax.devices()
    n = (1 if _ADDED else len(all_devices)) if devices is None else devices
    if n < 1 or n > len(all_devices):
        raise ConfigError(
            f"`devices` {n} is not available: this run sees {len(all_devices)} device(s) "
            f"({all_devices[0].platform}); pass a number from 1 to {len(all_devices)}"
        )
    if jax.process_count() > 1 and n != len(all_devices):
        raise ConfigError(
            "`devices` must be left unset in a multi-process run; every "
            "process contributes all of its local devices"
        )
    mesh = Mesh(np.array(all_devices[:n]), (AXIS,)) if n > 1 else None
    return Placement(mesh, n, jax.process_index(), jax.process_count())


SINGLE = Placement(None, 1, 0, 1)


def lanes_cap() -> int:
    """The most lanes ``$SWEEPJAX_LANES`` allows: ``1``/``0``/``off``: one (lanes off);
    a number N: N; unset: :data:`MAX_LANES`."""
    env = os.environ.get(LANES_ENV, "").strip().lower()
    if env in ("", "on", "yes", "true"):
        return MAX_LANES
    if env in ("0", "off", "no", "false"):
        return 1
    try:
        return max(1, int(env))
    except ValueError:
        raise ConfigError(f"{LANES_ENV}={env!r}: use 1 or off (one lane) or a number") from None


def request_lanes(n: int | None = None) -> int:
    """Ask JAX for ``n`` CPU devices (default ``min(os.cpu_count(), 8)``) for lanes, before
    its backend starts; returns the count asked for (0: none). Nothing is asked when the
    user configured the CPU devices (``--xla_force_host_platform_device_count`` in
    ``XLA_FLAGS``, ``jax_num_cpu_devices``), when an accelerator may be present, when
    ``$SWEEPJAX_LANES`` turns lanes off, or once JAX's backend has started. The devices
    added change nothing else: :func:`placement`'s default stays one device."""
    global _ADDED
    n = min(os.cpu_count() or 1, MAX_LANES) if n is None else n
    n = min(n, lanes_cap())
    if n < 2 or "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return 0
    if jax.config.jax_num_cpu_devices != -1 or not _cpu_only():
        return 0
    try:
        jax.config.update("jax_num_cpu_devices", n)
    except RuntimeError:  # the backend has started: its devices are what they are
        return 0
    _ADDED = n
    return n


def _cpu_only() -> bool:
    """Whether this process can only run on the CPU (no GPU/TPU plugin installed, or
    ``JAX_PLATFORMS=cpu``), judged without starting JAX's backend."""
    import importlib.metadata
    import importlib.util

    platforms = os.environ.get("JAX_PLATFORMS", jax.config.jax_platforms or "")
    if platforms:
        return platforms.strip().lower() == "cpu"
    if any(importlib.util.find_spec(m) for m in ("jax_plugins", "libtpu", "jax_cuda12_plugin")):
        return False
    return not importlib.metadata.entry_points(group="jax_plugins")


def _drop_lanes() -> None:
    global _ADDED
    if _ADDED:
        jax.config.update("jax_num_cpu_devices", -1)
        _ADDED = 0


def lane_devices() -> tuple:
    """The CPU devices host-driven steps spread members over, device 0 first: those
    :func:`request_lanes` added, capped by ``$SWEEPJAX_LANES``; ``()`` when fewer than two
    (lanes off). Devices the user configured are never used as lanes: a mesh is theirs."""
    n = min(_ADDED, lanes_cap())
    if n < 2 or jax.process_count() > 1 or jax.default_backend() != "cpu":
        return ()
    return tuple(jax.local_devices()[:n])


def put_members(tree: Any, where: Placement) -> Any:
    """Host pytree with a leading member axis -> device arrays split over the mesh."""
    if where.mesh is None:
        return jax.device_put(tree, jax.local_devices()[0])
    sharding = where.member_sharding()
    return jax.tree.map(lambda a: _global(np.asarray(a), sharding), tree)


def put_replicated(tree: Any, where: Placement) -> Any:
    """Host pytree -> a full copy on every device (the shared data)."""
    if where.mesh is None:
        return jax.device_put(tree, jax.local_devices()[0])
    sharding = where.replicated()
    return jax.tree.map(lambda a: _global(np.asarray(a), sharding), tree)


def to_host(tree: Any, where: Placement) -> Any:
    """Device arrays -> host numpy on every process (gathering remote shards)."""
    if where.process_count > 1:
        from jax.experimental import multihost_utils

        return jax.tree.map(
            lambda a: np.asarray(multihost_utils.process_allgather(a, tiled=True)), tree
        )
    return jax.device_get(tree)


def _global(host: np.ndarray, sharding: NamedSharding) -> jax.Array:
    # Every process holds the full host array (same seed, same data), so each can
    # supply whichever slices its own devices need.
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def agreed(flag: bool) -> bool:
    """Process 0's ``flag`` on every process (``flag`` itself in a single process). A
    choice that leads to a collective, such as a checkpoint's copy of the state to the
    host, must be the same on every process, and a choice by the clock is not: each
    process's clock differs, and a copy one process skips leaves the other waiting."""
    if jax.process_count() == 1:
        return flag
    from jax.experimental import multihost_utils

    return bool(multihost_utils.broadcast_one_to_all(np.int32(flag)))


def barrier(name: str) -> None:
    """Wait until every process reaches this point (no-op in a single process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)


def env_process_info() -> dict[str, str]:
    """Variables that describe a launcher's process layout, for error messages."""
    keys = ("SLURM_PROCID", "SLURM_NTASKS", "TPU_WORKER_ID", "OMPI_COMM_WORLD_RANK")
    return {k: os.environ[k] for k in keys if k in os.environ}
