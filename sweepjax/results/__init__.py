"""A sweep's result as typed records (:mod:`.records`) and their appraisal: verdicts
and winners drawn from the members (:mod:`.appraise`)."""

from sweepjax.results.records import (
    EXTRA_AXES,
    BoundaryFlag,
    ConfigRecord,
    MemberRecord,
    SweepResult,
    TimingRecord,
    VerdictRecord,
    Winner,
)

__all__ = [
    "EXTRA_AXES",
    "BoundaryFlag",
    "ConfigRecord",
    "MemberRecord",
    "SweepResult",
    "TimingRecord",
    "VerdictRecord",
    "Winner",
]
