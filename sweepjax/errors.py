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


def size_text(n: float) -> str:
    """Bytes as a person reads them: ``512 B``, ``300 kB``, ``1.2 MB``, ``3.4 GB``."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.2g} {unit}" if n < 10 * scale else f"{n / scale:.0f} {unit}"
    return f"{int(n)} B"


class DiskFullError(StoreError):
    """The disk holding the store filled up during a write (exit code 2). The write was
    rolled back whole; ``then`` says what the user does next (the CLI's one line)."""

    def __init__(self, path: Any, what: str, need: int, free: int | None, then: str | None = None):
        self.path, self.what, self.need, self.free = path, what, need, free
        self.then = then or "free space or pass another `store`, then run the command again"
        room = "" if free is None else f", {size_text(free)} free"
        super().__init__(
            f"the disk is full: writing {what} to store {path} failed (about "
            f"{size_text(need)} needed{room}); {self.then}"
        )

    def with_hint(self, then: str) -> DiskFullError:
        """The same failure with another next step (e.g. how to resume the sweep)."""
        return DiskFullError(self.path, self.what, self.need, self.free, then)
