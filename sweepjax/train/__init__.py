"""The population trainer.

- :mod:`sweepjax.train.member`: one member's state, objective, lr schedule, step, eval;
- :mod:`sweepjax.train.program`: the member axis (``over_members``), the compiled chunk
  and evaluation programs, the device data;
- :mod:`sweepjax.train.population`: ``train_population``, the host loop between chunks
  that applies a scheduler's decisions (:mod:`sweepjax.schedule`).
"""

from sweepjax.curves import Checkpoint, Curves, ScheduleState
from sweepjax.train.member import EvalMetrics, MemberState, lr_multiplier, minibatch_indices
from sweepjax.train.population import (
    ChunkReport,
    PopulationResult,
    Timing,
    accuracy,
    group_size,
    init_states,
    member_bytes,
    member_params,
    num_params,
    root_keys,
    train_population,
)

__all__ = [
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
]
