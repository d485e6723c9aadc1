"""The whole memory a sweep needs, estimated before anything compiles, against what the
machine has: a population that does not fit is refused in one line, saying how many
members do, before a sweep row is written (issue 29: 4,096 Adam MLP-256 members were
killed by the kernel at 24 GB resident, with no message).

Where the bytes go (``M`` members, ``G`` of them per compiled program, ``S`` the bytes
of one member's state: params, best params, optimizer slots, health):

- ``state``: ``M x S``, every member's state, exact (the shapes of the initial state,
  ``jax.eval_shape``: nothing runs). It lives on the device when one program holds
  every member, else on the host, trained group by group.
- ``checkpoint``: a checkpoint while it is written: the host copy of the state and its
  msgpack bytes (the state again, plus the curves).
- ``program``: one group's chunk program beyond the shared data: its state, gradients,
  updates and optimizer temporaries, activations and evaluation buffers
  (:func:`sweepjax.engine.setup.program_bytes`, an upper bound of XLA's own memory
  analysis), and with host groups three host copies of a group (taken, staged, back).
- ``data``: the dataset's arrays on the host and their copies on the device.
- ``runtime``: Python, JAX, XLA and compiling (:data:`RUNTIME_BYTES`).

On a CPU the device is the host's memory, so everything counts against the host's
available memory (``MemAvailable``); on an accelerator the device holds the program,
the data and (in one program) the state, measured against ``memory_stats()``.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

import jax
import numpy as np

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.engine import program, setup
from sweepjax.engine.curves import ScheduleState
from sweepjax.engine.hparams import HParams
from sweepjax.errors import ConfigError, size_text

# The memory the sweep may use, instead of what the machine reports: bytes, or with a
# unit ("2.5GB", "800MB", "1GiB"). Tests fake a small machine with it; set it higher than
# the machine reports to skip the check at your own risk.
MEMORY_ENV = "SWEEPJAX_MEMORY_LIMIT"
# Python with JAX imported, XLA's runtime and a compile in flight: the peak resident size
# of a whole 4-member softmax `coarse` on the bundled sample (/usr/bin/time -v) is 0.39
# GB on the 2-core CPU; counted generously, so small sweeps stay bounded too.
RUNTIME_BYTES = 2**30
CURVE_SERIES = 5  # float32 values per member and evaluation in a checkpoint's curves
# A checkpoint's msgpack keys and headers (measured: ~1 kB for an MLP's state)
CHECKPOINT_OVERHEAD = 2048
UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class Footprint(NamedTuple):
    """Bytes a sweep of ``members`` needs, by where they go (see the module docstring).
    ``on_device``: one program holds every member (``members <= group``)."""

    members: int
    group: int
    state: int
    checkpoint: int
    program: int
    data_host: int
    data_device: int
    runtime: int

    @property
    def on_device(self) -> bool:
        return self.members <= self.group

    @property
    def total(self) -> int:
        """Everything, as on a CPU where the device is the host's memory."""
        return (
            self.state
            + self.checkpoint
            + self.program
            + self.data_host
            + self.data_device
            + self.runtime
        )

    @property
    def device(self) -> int:
        """What an accelerator holds: the program, the data, and the state when one
        program holds every member."""
        return self.program + self.data_device + (self.state if self.on_device else 0)

    @property
    def host(self) -> int:
        """What the host holds beside an accelerator: the state (the initial state, then
        the groups' or a checkpoint's copy), a checkpoint being written, the data."""
        return self.state + self.checkpoint + self.data_host + self.runtime

    def parts(self) -> str:
        return (
            f"state {size_text(self.state)}, checkpoint copies {size_text(self.checkpoint)}, "
            f"training program {size_text(self.program)}, data "
            f"{size_text(self.data_host + self.data_device)}"
        )


class Memory(NamedTuple):
    """What the machine has free: ``host`` bytes; ``device`` bytes of an accelerator
    (None: the device is the host's memory, a CPU); ``source`` says where ``host`` came
    from (for the message)."""

    host: int
    device: int | None
    source: str


def state_bytes_per_member(ds: Dataset, model_cfg: ModelConfig, config: TrainConfig) -> int:
    """Exact bytes of one member's state (params, best params, optimizer slots, health),
    from the shapes of its initial state (``jax.eval_shape``: nothing is computed)."""
    hp = HParams.create(lr=np.ones(1, np.float32), l2=0.0)
    st = setup.static(ds, model_cfg, config, hparams=hp)
    shapes = program.init_shapes(ds.num_features, st, hp)
    return sum(int(np.prod(a.shape)) * np.dtype(a.dtype).itemsize for a in jax.tree.leaves(shapes))


def estimate(ds: Dataset, model_cfg: ModelConfig, config: TrainConfig, members: int) -> Footprint:
    """The :class:`Footprint` of training ``members`` members on ``ds`` (nothing runs).

    Example::

      fp = estimate(ds, ModelConfig("mlp"), TrainConfig(optimizer="adam"), 4096)
      fp.total  # bytes, e.g. ~45e9 for Fashion-MNIST
    """
    per = state_bytes_per_member(ds, model_cfg, config)
    return _estimate(ds, model_cfg, config, members, per)


def _estimate(ds, model_cfg, config, members: int, per: int) -> Footprint:
    d, k, shape = ds.num_features, ds.num_classes, ds.info.input_shape
    group = setup.group_size(max(members, 1), model_cfg, config, d, k, shape)
    g = min(members, group)
    prog = setup.program_bytes(g, model_cfg, config, d, k, shape)
    if members <= group:  # the program's state arguments are the population's (``state``)
        prog = max(prog - members * per, 0)
    else:  # host groups: a group's rows taken, the next one staged, the last one back
        prog += 3 * g * per
    evals = config.steps // config.resolved_eval_every + 1
    curves = members * evals * CURVE_SERIES * 4
    sched = ScheduleState.start(HParams.create(lr=np.ones(1, np.float32), l2=0.0))
    book = members * sum(int(np.asarray(a).nbytes) for a in sched.as_arrays().values())
    host = sum(int(np.asarray(a).nbytes) for a in (ds.x_train, ds.x_val, ds.x_test))
    n_val = ds.x_val.shape[0]
    quick = min(config.val_subset, n_val)
    device = 4 * d * (ds.x_train.shape[0] + n_val + quick)  # float32 training and eval rows
    return Footprint(
        members=members,
        group=group,
        state=members * per,
        # the host copy and its msgpack bytes (with the curves and the schedule's books)
        checkpoint=members * per + (members * per + curves + book + CHECKPOINT_OVERHEAD),
        program=prog,
        data_host=host,
        data_device=device,
        runtime=RUNTIME_BYTES,
    )


def parse_bytes(text: str) -> int:
    """``"2.5GB"`` -> 2,500,000,000; ``"1GiB"``, ``"800MB"``, ``"123"`` (bytes)."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:e[0-9]+)?)\s*([a-z]*)\s*", text.lower())
    if m is None or m.group(2) not in UNITS:
        raise ConfigError(
            f"{MEMORY_ENV}={text!r} is not a size; write bytes or e.g. 2.5GB, 800MB, 1GiB"
        )
    return int(float(m.group(1)) * UNITS[m.group(2)])


def mem_available(meminfo: str = "/proc/meminfo") -> int | None:
    """The host's available memory (``MemAvailable``), or None where it is not known."""
    try:
        with open(meminfo) as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def available(environ=None) -> Memory | None:
    """What the machine has free (None: unknown, nothing is checked). ``MEMORY_ENV``
    replaces both the host's and the device's figure."""
    environ = os.environ if environ is None else environ
    if environ.get(MEMORY_ENV):
        limit = parse_bytes(environ[MEMORY_ENV])
        device = None if jax.default_backend() == "cpu" else limit
        return Memory(limit, device, MEMORY_ENV)
    host = mem_available()
    stats = jax.local_devices()[0].memory_stats() if jax.default_backend() != "cpu" else None
    device = None
    if stats and "bytes_limit" in stats:
        device = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    if host is None:
        return None
    return Memory(host, device, "MemAvailable")


def fits(fp: Footprint, mem: Memory) -> bool:
    if mem.device is None:
        return fp.total <= mem.host
    return fp.host <= mem.host and fp.device <= mem.device


def most_that_fit(ds, model_cfg, config, mem: Memory, upper: int) -> int:
    """The most members (at most ``upper``) whose footprint fits ``mem`` (0: not one).
    The footprint grows with the members, so a bisection finds it."""
    per = state_bytes_per_member(ds, model_cfg, config)
    lo, hi = 0, upper
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(_estimate(ds, model_cfg, config, mid, per), mem):
            lo = mid
        else:
            hi = mid - 1
    return lo


def model_name(model_cfg: ModelConfig) -> str:
    if model_cfg.kind == "mlp":
        return f"MLP-{model_cfg.hidden}"
    return model_cfg.spec or model_cfg.kind if model_cfg.kind == "custom" else model_cfg.kind


def check(
    ds: Dataset, model_cfg: ModelConfig, config: TrainConfig, members: int, mem=None
) -> Footprint:
    """Refuse, in one line, ``members`` members whose footprint does not fit the machine
    (``mem``: default :func:`available`); returns the footprint otherwise.

    The line says what they need, what is free, how many fit and what else would: e.g.
    "4,096 adam MLP-256 members need ~45 GB (...); this machine has 22 GB free; up to
    1,900 fit: train fewer `trials`, or `optimizer` sgd (up to 2,800 fit)".
    """
    fp = estimate(ds, model_cfg, config, members)
    mem = available() if mem is None else mem
    if mem is None or fits(fp, mem):
        return fp
    n = most_that_fit(ds, model_cfg, config, mem, members)
    on_dev = mem.device is not None and fp.device > mem.device
    need = fp.device if on_dev else (fp.total if mem.device is None else fp.host)
    free = mem.device if on_dev else mem.host
    where = "the device has" if on_dev else "this machine has"
    src = f" ({MEMORY_ENV})" if mem.source == MEMORY_ENV else ""
    hint = "train fewer members (`trials`)"
    if config.optimizer != "sgd":
        sgd = most_that_fit(ds, model_cfg, config.replace(optimizer="sgd"), mem, members)
        if sgd > n:
            hint += f", or `optimizer` sgd (up to {sgd:,} fit)"
    raise ConfigError(
        f"{members:,} {config.optimizer} {model_name(model_cfg)} members need "
        f"~{size_text(need)} ({fp.parts()}); {where} {size_text(free)} free{src}; "
        f"up to {n:,} fit: {hint}"
    )
