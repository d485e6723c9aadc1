"""A search interval (:class:`Range`) and how one searched axis is drawn and bounded
(:class:`Axis`: a row of :data:`sweepjax.config.AXES`, or the rule of a user's own
hyperparameter, :func:`sweepjax.config.axis_of`). Both are re-exported by
:mod:`sweepjax.config`, where they are documented for users."""

from __future__ import annotations

import math
from dataclasses import dataclass

from sweepjax.errors import ConfigError


@dataclass(frozen=True)
class Range:
    """A search interval in real units; ``log=True`` searches it log-uniformly."""

    lo: float
    hi: float
    log: bool = True

    def __post_init__(self):
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            raise ConfigError(f"range bounds must be finite numbers, got [{self.lo}, {self.hi}]")
        if self.lo >= self.hi:
            raise ConfigError(
                f"range lower bound {self.lo:g} must be below upper bound {self.hi:g}; "
                "swap them or widen the range"
            )
        if self.log and self.lo <= 0:
            raise ConfigError(
                f"log-scale range needs positive bounds, got [{self.lo:g}, {self.hi:g}]; "
                "use e.g. 1e-6 instead of 0"
            )

    def to_unit(self, x):
        """Map values in the range to [0, 1] (in log space when ``log``)."""
        import numpy as np

        x = np.asarray(x, dtype=np.float64)
        if self.log:
            return (np.log(x) - math.log(self.lo)) / (math.log(self.hi) - math.log(self.lo))
        return (x - self.lo) / (self.hi - self.lo)

    def from_unit(self, u):
        """Inverse of :meth:`to_unit`."""
        import numpy as np

        u = np.asarray(u, dtype=np.float64)
        if self.log:
            return np.exp(math.log(self.lo) + u * (math.log(self.hi) - math.log(self.lo)))
        return self.lo + u * (self.hi - self.lo)

    def as_list(self) -> list[float]:
        return [float(self.lo), float(self.hi)]


@dataclass(frozen=True)
class Axis:
    """How one searched axis is drawn and bounded (a row of :data:`sweepjax.config.AXES`).

    Attributes:
      log: drawn uniformly in log space (else uniformly on a linear scale).
      integer: values are whole numbers (drawn on the axis's scale, then rounded).
      floor, ceiling: hard caps, inclusive: no box, sample or refinement goes past them.
      cap_note: why the ceiling exists (said when a refined box is cut at it).
    """

    log: bool = True
    integer: bool = False
    floor: float | None = None
    ceiling: float | None = None
    cap_note: str = ""

    def admits(self, v: float) -> bool:
        """``v`` is a legal value of the axis (inside the caps, positive on a log axis,
        whole on an integer axis)."""
        return (
            math.isfinite(v)
            and (not self.log or v > 0)
            and (self.floor is None or v >= self.floor)
            and (self.ceiling is None or v <= self.ceiling)
            and (not self.integer or float(v).is_integer())
        )

    def bounds_text(self) -> str:
        lo = f"[{self.floor:g}" if self.floor is not None else "(0" if self.log else "(-inf"
        hi = f"{self.ceiling:g}]" if self.ceiling is not None else "inf)"
        return f"{lo}, {hi}" + (" (whole numbers)" if self.integer else "")

    def check(self, name: str, r: Range) -> None:
        """ConfigError unless ``r`` is searched on this axis's scale inside its caps."""
        if r.log != self.log:
            scale = "log" if self.log else "linear"
            raise ConfigError(
                f"{name} is searched on a {scale} scale; give Range({r.lo:g}, {r.hi:g}, "
                f"log={self.log})"
            )
        for v in (r.lo, r.hi):
            if not self.admits(v):
                raise ConfigError(
                    f"{name} bounds must lie in {self.bounds_text()}, got [{r.lo:g}, {r.hi:g}]"
                )

    def clamp(self, lo: float, hi: float) -> tuple[float, float, list[str]]:
        """A refined box ``[lo, hi]`` cut at the caps (whole bounds on an integer axis,
        rounded outward, at least one unit wide), and a note per change made.

        Example::

          AXES["dropout"].clamp(-0.1, 0.99)  # (0.0, 0.95, ['floored at 0', 'capped at 0.95'])
        """
        notes = []
        if self.ceiling is not None and hi > self.ceiling:
            hi = self.ceiling
            notes.append(
                f"capped at {self.ceiling:g}" + (f" ({self.cap_note})" if self.cap_note else "")
            )
        if self.floor is not None and lo < self.floor:
            lo = self.floor
            notes.append(f"floored at {self.floor:g}")
        if self.integer:
            lo, hi = float(math.floor(lo + 1e-9)), float(math.ceil(hi - 1e-9))
            if self.floor is not None:
                lo = max(lo, self.floor)
            hi = max(hi, lo + 1.0)
        return lo, hi, notes

    def range(self, lo: float, hi: float) -> Range:
        """A :class:`Range` on this axis's scale."""
        return Range(float(lo), float(hi), self.log)
