"""Errors a person can act on.

Every error carries a one-line message that names the problem and the fix, and the
exit code the command line uses for it. The CLI prints ``str(err)`` and exits with
``err.exit_code``; no traceback is shown for these.
"""

from __future__ import annotations

from typing import Any


class SweepjaxError(Exception):
    """Base class: a failure the user can fix. Exit code 1 (runtime failure)."""

    exit_code = 1


class ConfigError(SweepjaxError):
    """A bad flag, range or config file (exit code 2)."""

    exit_code = 2


class DataError(SweepjaxError):
    """Missing, corrupt or inconsistent data (exit code 2)."""

    exit_code = 2


class StoreError(SweepjaxError):
    """A missing sweep, a file that is not a store, a newer schema (exit code 2)."""

    exit_code = 2


class AllDivergedError(SweepjaxError):
    """Every member of a sweep diverged (exit code 3). ``result``: the stored
    :class:`~sweepjax.results.records.SweepResult` (every member's numbers up to its
    divergence), so a caller can still show the table."""

    exit_code = 3

    def __init__(self, message: str, result: Any = None):
        super().__init__(message)
        self.result = result


class NothingFinishedError(AllDivergedError):
    """An anytime (ASHA) run's budget ran out before any member reached the full length.
    No flow raises it any more: such a run answers with its best member so far, marked
    unfinished (``SweepResult.winner.finished`` False), and a warning line. Kept so that
    code catching it still imports."""

    exit_code = 2
