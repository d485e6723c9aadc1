"""The compiled programs of this process: an owned, bounded cache with counts, in
memory (:mod:`sweepjax.engine.compile_cache` is JAX's cache on disk, across processes).

Each (program kind, static settings, placement, argument shapes) compiles once; new
hyperparameter VALUES never compile again (they are traced). The cache is bounded (least
recently used programs are dropped past ``capacity``) so a notebook that tries many
shapes does not keep every executable alive, and its counts are a public debug API:

  import sweepjax
  sweepjax.engine.PROGRAMS.stats()  # CacheStats(compiled={'chunk': 2, 'eval': 1}, ...)
"""

from __future__ import annotations

import collections
import contextlib
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

DEFAULT_CAPACITY = 64


class CacheStats(NamedTuple):
    """``compiled``: programs compiled per kind since the process started (or
    :meth:`ProgramCache.reset_counts`); ``held``: executables held now; ``evicted``:
    dropped past ``capacity``; ``seconds``: compile time spent."""

    compiled: dict[str, int]
    held: int
    capacity: int
    evicted: int
    seconds: float


class ProgramCache:
    """Ahead-of-time compiled executables by key, least recently used dropped first."""

    def __init__(
        self, capacity: int = DEFAULT_CAPACITY, clock: Callable[[], float] = time.perf_counter
    ):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self._clock = clock
        self._held: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()
        self._compiled: collections.Counter[str] = collections.Counter()
        self._evicted = 0
        self._seconds = 0.0
        self._pending: dict[Hashable, tuple[threading.Thread, list]] = {}

    def get(self, kind: str, key: Hashable, compile_: Callable[[], Any]) -> tuple[Any, float]:
        """The executable for ``(kind, key)``, compiled by ``compile_()`` on a miss;
        returns it and the seconds spent compiling (0 on a hit). A program compiling in
        the background (:meth:`start`) is waited for: the seconds are the wait."""
        full = (kind, key)
        if full in self._held:
            self._held.move_to_end(full)
            return self._held[full], 0.0
        t0 = self._clock()
        exe = self._join(full)
        if exe is None:  # not started, or its background compile failed: compile here
            exe = compile_()
        spent = self._clock() - t0
        self._held[full] = exe
        self._compiled[kind] += 1
        self._seconds += spent
        while len(self._held) > self.capacity:
            self._held.popitem(last=False)
            self._evicted += 1
        return exe, spent

    def start(self, kind: str, key: Hashable, compile_: Callable[[], Any]) -> bool:
        """Compile ``(kind, key)`` on a background thread (XLA compiles without holding
        Python's lock) so that a later :meth:`get` finds it ready; False when it is held
        or started already. Tracing runs on that thread too."""
        full = (kind, key)
        if full in self._held or full in self._pending:
            return False
        box: list = []

        def work():
            # A failure leaves the box empty: get() compiles again and raises there.
            with contextlib.suppress(Exception):
                box.append(compile_())

        thread = threading.Thread(target=work, name=f"sweepjax-compile-{kind}", daemon=True)
        self._pending[full] = (thread, box)
        thread.start()
        return True

    def _join(self, full) -> Any | None:
        thread, box = self._pending.pop(full, (None, []))
        if thread is not None:
            thread.join()
        return box[0] if box else None

    def holds(self, kind: str, key: Hashable) -> bool:
        """Whether ``(kind, key)`` is held or compiling in the background (a :meth:`get`
        would not start a compile)."""
        return (kind, key) in self._held or (kind, key) in self._pending

    def counts(self) -> dict[str, int]:
        """Programs compiled per kind (``"chunk"``, ``"eval"``, ...)."""
        return dict(self._compiled)

    def stats(self) -> CacheStats:
        return CacheStats(
            self.counts(), len(self._held), self.capacity, self._evicted, self._seconds
        )

    def clear(self) -> None:
        """Drop every held executable (the next call of each shape compiles again)."""
        for full in list(self._pending):
            self._join(full)
        self._held.clear()

    def __len__(self) -> int:
        return len(self._held)


# The process's programs: one owner, used by :mod:`sweepjax.engine.program`.
PROGRAMS = ProgramCache()
