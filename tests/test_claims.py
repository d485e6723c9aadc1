"""When another fine round cannot separate the winners (issue 27): the rule, and the words
that replace the "refine" hint. No training."""

from __future__ import annotations

import types

from sweepjax.cli.render import _summary_lines  # noqa: F401  (the module the hint lives in)
from sweepjax.results.claims import settled
from sweepjax.results.verdict_records import VerdictRecord


def _verdict(flat=("lr", "l2"), status="inside", conf=0.9) -> VerdictRecord:
    return VerdictRecord(
        importance={"lr": 0.002, "l2": 0.001},
        importance_se={"lr": 0.002, "l2": 0.001},
        flat=list(flat),
        flat_ranges={"lr": [1e-3, 1.0], "l2": [1e-6, 1.0]},
        optimum={"lr": 0.05, "l2": 1e-4},
        optimum_value=0.91,
        optimum_inside=status == "inside",
        optimum_confidence=conf,
        tol=0.0045,
        optimum_sd=0.003,
        optimum_status=status,
    )


def _result(verdict, tied: int, finished: int = 256, configs=()):
    members = [types.SimpleNamespace(status="ok") for _ in range(finished)]
    members += [types.SimpleNamespace(status="diverged") for _ in range(8)]
    return types.SimpleNamespace(
        verdict=verdict, tied=list(range(tied)), members=members, configs=list(configs),
        space={"lr": [1e-3, 1.0], "l2": [1e-6, 1.0]},
    )  # fmt: skip


def test_settled_needs_an_inside_optimum_every_axis_flat_and_most_members_tied():
    assert settled(_result(_verdict(), tied=248))
    assert not settled(_result(_verdict(), tied=100))  # most finished members are not tied
    assert not settled(_result(_verdict(flat=("l2",)), tied=248))  # lr still matters
    assert not settled(_result(_verdict(status="not established", conf=0.3), tied=248))
    assert not settled(_result(_verdict(status="past an edge"), tied=248))
    assert not settled(_result(None, tied=248))
    # With replicas or folds the configs are counted, not the members.
    configs = [types.SimpleNamespace(status="ok") for _ in range(64)]
    assert settled(_result(_verdict(), tied=40, configs=configs))
    assert not settled(_result(_verdict(), tied=20, configs=configs))
