"""A one-line progress display for a running sweep, updated in place on a terminal."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # an annotation only: importing the engine costs seconds (jax)
    from sweepjax.engine import ChunkReport


def _duration(s: float) -> str:
    s = max(0, int(round(s)))
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


class Progress:
    """``c1  chunk 4/10  step 120/300  ETA 12s  alive 250/256  best val 0.9125``.

    Enabled only when ``stream`` is a terminal (and the caller did not ask for quiet
    output, e.g. ``--format json``); otherwise every method does nothing.
    """

    def __init__(self, stream: TextIO = sys.stderr, enabled: bool | None = None):
        self.stream = stream
        tty = hasattr(stream, "isatty") and stream.isatty()
        self.enabled = tty if enabled is None else (enabled and tty)
        self.start = 0
        self.total = 1
        self.chunk = 1
        self.width = 0

    def begin(self, sweep_id: str, start_step: int, total_steps: int, chunk_steps: int) -> None:
        self.start, self.total, self.chunk = start_step, total_steps, max(1, chunk_steps)

    def __call__(self, sweep_id: str, rep: ChunkReport) -> None:
        if not self.enabled:
            return
        if rep.anytime is not None:
            line = self._anytime(sweep_id, rep)
        else:
            line = self._fixed(rep, sweep_id)
        pad = max(0, self.width - len(line))
        self.width = len(line)
        self.stream.write("\r" + line + " " * pad)
        self.stream.flush()

    @staticmethod
    def _anytime(sweep_id: str, rep: ChunkReport) -> str:
        """``a1  12s of 60s  412 members (8 training)  17 finished  best val 0.8532 (#211)``"""
        a = rep.anytime
        spent = f"{_duration(a.elapsed_s)}" + (f" of {a.budget}" if a.budget else "")
        best = (
            f"best val {_fmt(rep, rep.best_full_val_acc)} (#{a.best_member})"
            if a.best_member >= 0
            else "no member finished yet"
        )
        return (
            f"{sweep_id}  {spent}  {rep.num_members} members ({rep.active} training)  "
            f"{a.finished} finished  {best}"
        )

    def _fixed(self, rep: ChunkReport, sweep_id: str) -> str:
        done = rep.step - self.start
        eta = rep.elapsed_s / done * (rep.total_steps - rep.step) if done > 0 else 0.0
        # With a scheduler the remaining steps train fewer members: the ETA is an upper bound.
        bound = "<=" if rep.active < rep.num_members or rep.decided else ""
        line = (
            f"{sweep_id}  step {rep.step}/{rep.total_steps}  ETA {bound}{_duration(eta)}  "
            f"training {rep.active}/{rep.num_members} (alive {rep.alive})  "
            f"best val {_fmt(rep, rep.best_val_acc)}"
        )
        return line

    def close(self) -> None:
        if self.enabled and self.width:
            self.stream.write("\n")
            self.stream.flush()
            self.width = 0


def _fmt(rep, value) -> str:
    """A progress value as the tables print it: accuracy to 4 decimals, an MSE to 4
    significant digits."""
    metric = getattr(rep, "metric", None)
    return f"{value:.4f}" if metric is None else metric.fmt(value)
