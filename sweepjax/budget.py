"""When an anytime search stops: a :class:`Budget` of wall time or member-steps, and the
process clock it is measured on (the whole process: imports and data loading count)."""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass

from sweepjax.errors import ConfigError


def _process_start() -> float:
    """``time.time()`` when this process started (Linux: from /proc; elsewhere, when
    sweepjax was first imported), so a budget counts the imports and data loading too."""
    try:
        with open("/proc/self/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            uptime = float(f.read().split()[0])
        return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return time.time()


PROCESS_START = _process_start()


def process_elapsed() -> float:
    """Wall seconds since this process started."""
    return time.time() - PROCESS_START


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0}
_COUNTS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9}


@dataclass(frozen=True)
class Budget:
    """When an anytime search stops: after ``seconds`` of the whole process's wall time,
    or after ``member_steps`` steps summed over members (deterministic: a resumed run
    stops exactly where an uninterrupted one does). Parse ``"60s"``, ``"2m"``,
    ``"5M"`` (member-steps) with :meth:`parse`."""

    seconds: float | None = None
    member_steps: int | None = None

    def __post_init__(self):
        if (self.seconds is None) == (self.member_steps is None):
            raise ConfigError("a budget is either seconds or member-steps, e.g. 60s or 5M")
        if self.seconds is not None and not self.seconds > 0:
            raise ConfigError(f"a time budget must be positive, got {self.seconds:g} s")
        if self.member_steps is not None and self.member_steps < 1:
            raise ConfigError(f"a member-step budget must be >= 1, got {self.member_steps}")

    @classmethod
    def parse(cls, text: str | int | float | Budget) -> Budget:
        """``"60s"``, ``"2m"``, ``"1h"`` (wall time); ``"5M"``, ``"500k"``, ``"1200 steps"``
        (member-steps); a Python number is seconds."""
        if isinstance(text, Budget):
            return text
        if isinstance(text, int | float) and not isinstance(text, bool):
            return cls(seconds=float(text))
        t = str(text).strip()
        # A sign is read, so -3s reaches "must be positive" (and 0 reads like 0s); a
        # positive number without its unit is ambiguous (seconds or member-steps).
        m = re.fullmatch(r"([-+]?\d+(?:\.\d+)?)\s*([smh]?)", t)
        if m and (m.group(2) or float(m.group(1)) <= 0):
            return cls(seconds=float(m.group(1)) * _UNITS[m.group(2) or "s"])
        if m:
            raise ConfigError(
                f"budget {text!r} needs a unit: {t}s (wall time) or {t} steps (member-steps)"
            )
        m = re.fullmatch(r"([-+]?\d+(?:\.\d+)?)\s*(?:([kMG])|([kMG]?)\s*steps)", t)
        if m:
            unit = m.group(2) or m.group(3) or ""
            return cls(member_steps=int(round(float(m.group(1)) * _COUNTS[unit])))
        raise ConfigError(
            f"cannot read budget {text!r}: give wall time (60s, 2m, 1h) or member-steps "
            "(500k, 5M, 1200 steps)"
        )

    def __str__(self) -> str:
        if self.seconds is not None:
            return f"{self.seconds:g}s"
        n = self.member_steps
        for unit in ("G", "M", "k"):
            if n % _COUNTS[unit] == 0:
                return f"{n // _COUNTS[unit]}{unit}"
        return f"{n} steps"

    def spent(self, elapsed_s: float, member_steps: int) -> bool:
        if self.seconds is not None:
            return elapsed_s >= self.seconds
        return member_steps >= self.member_steps
