"""Schedulers: host decisions between chunks that spend the budget on promising members.

They speak the trainer's contract (:mod:`sweepjax.engine.decisions`) and never touch jit.
The rules (halving, Hyperband, PBT, grouped replicas) are in :mod:`.rules`.
"""

from sweepjax.config import SCHEDULES
from sweepjax.engine.decisions import Decision, Plan, Policy, RungView
from sweepjax.schedulers.rules import (
    DEFAULT_ETA,
    PBT,
    PBT_FACTORS,
    PBT_FRACTION,
    Full,
    Grouped,
    Halving,
    Hyperband,
    make,
    rank,
)

__all__ = [
    "DEFAULT_ETA",
    "PBT",
    "PBT_FACTORS",
    "PBT_FRACTION",
    "SCHEDULES",
    "Decision",
    "Full",
    "Grouped",
    "Halving",
    "Hyperband",
    "Plan",
    "Policy",
    "RungView",
    "make",
    "rank",
]
