"""The population trainer.

- :mod:`sweepjax.engine.member`: one member's state, objective, lr schedule, step, eval;
- :mod:`sweepjax.engine.program`: the member axis (``over_members``), the compiled chunk
  and evaluation programs, the device data;
- :mod:`sweepjax.engine.setup`: static settings, root keys, initial state, memory sizing;
  :mod:`sweepjax.engine.group_width` the width a shrinking population trains at on a CPU;
- :mod:`sweepjax.engine.active`: the active members' state between chunks (placement,
  groups, the gather a decision applies, the whole-validation-set evaluation);
- :mod:`sweepjax.engine.program_cache`: the process's compiled programs, held in memory
  (bounded, with counts: ``PROGRAMS.stats()``); :mod:`sweepjax.engine.compile_cache` is
  JAX's cache on disk, across processes, and :mod:`sweepjax.engine.saved_programs` the
  programs kept whole beside it (a warm process neither traces nor lowers);
  :mod:`sweepjax.engine.aot` builds every program through both, the small ones around
  the population's included; :mod:`sweepjax.engine.keys` the root keys' bits, on the host;
- :mod:`sweepjax.engine.loop`: the one host loop between chunks for every schedule, over
  a typed population of slots (:mod:`sweepjax.engine.slots`), asking a policy
  (:mod:`sweepjax.engine.decisions`) who continues; its steps for a compacting
  population in :mod:`sweepjax.engine.compact`, for a refilling one (ASHA) in
  :mod:`sweepjax.engine.refilling`;
- :mod:`sweepjax.engine.population`: ``train_population``, every member born at step 0
  (full, halving, Hyperband, PBT: :mod:`sweepjax.schedulers.rules`);
- :mod:`sweepjax.engine.refill`: ``train_refilling``, a fixed-width population whose
  stopped members' slots are refilled at once (ASHA, :mod:`sweepjax.schedulers.asha`);
- :mod:`sweepjax.engine.outcome`: what the trainers return and report;
- :mod:`sweepjax.engine.footprint`: a sweep's whole memory, estimated before anything
  compiles, against what the machine has (the one-line refusal).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

# The names below load on first use (PEP 562): the store and `sweepjax watch` read
# engine.curves and engine.outcome (numpy only) without importing jax (~2 s).
_HOME = {
    "curves": ("Checkpoint", "Curves", "ScheduleState"),
    "member": ("EvalMetrics", "MemberState", "lr_multiplier", "minibatch_indices"),
    "outcome": ("AnytimeStatus", "ChunkReport", "PopulationResult", "Timing"),
    "population": ("accuracy", "member_params", "train_population"),
    "program": ("compile_counts",),
    "program_cache": ("PROGRAMS", "CacheStats", "ProgramCache"),
    "refill": ("train_refilling",),
    "setup": ("group_size", "init_states", "member_bytes", "num_params", "root_keys"),
}
_MODULE_OF = {name: mod for mod, names in _HOME.items() for name in names}

if TYPE_CHECKING:
    from sweepjax.engine.curves import Checkpoint, Curves, ScheduleState
    from sweepjax.engine.member import EvalMetrics, MemberState, lr_multiplier, minibatch_indices
    from sweepjax.engine.outcome import AnytimeStatus, ChunkReport, PopulationResult, Timing
    from sweepjax.engine.population import accuracy, member_params, train_population
    from sweepjax.engine.program import compile_counts
    from sweepjax.engine.program_cache import PROGRAMS, CacheStats, ProgramCache
    from sweepjax.engine.refill import train_refilling
    from sweepjax.engine.setup import group_size, init_states, member_bytes, num_params, root_keys


def __getattr__(name: str):
    mod = _MODULE_OF.get(name)
    if mod is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{mod}"), name)
    globals()[name] = value
    return value


__all__ = [
    "AnytimeStatus",
    "PROGRAMS",
    "CacheStats",
    "ProgramCache",
    "compile_counts",
    "Checkpoint",
    "ChunkReport",
    "Curves",
    "EvalMetrics",
    "MemberState",
    "PopulationResult",
    "ScheduleState",
    "Timing",
    "accuracy",
    "group_size",
    "init_states",
    "lr_multiplier",
    "member_bytes",
    "member_params",
    "minibatch_indices",
    "num_params",
    "root_keys",
    "train_population",
    "train_refilling",
]
