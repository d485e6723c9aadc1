"""The width of a fixed-width population (ASHA): as wide as the hardware gives for free.

An ASHA search keeps ``W`` slots busy, refilling a stopped member's slot at once, and
answers as soon as its first member reaches full length. So ``W`` must fit the machine:
on a 2-core CPU a width-256 MLP population runs each member at about 1/256 of a lone
member's speed (the cores are already full; a wider population buys no throughput, it
only delays the first finished member), while on a GPU the time per block is flat up to
thousands of members.

The rule, measured (:func:`choose_width`), applied to the table by :func:`pick`:

- ``t(1)`` is a lone member's time per training block; ``t(w)`` that of ``w`` members
  (the same block, so ``t(w)`` is the inverse of each member's own progress rate);
- the width is the widest ``w`` with ``t(w) <= factor * t(1)`` (default ``factor`` 2:
  no member progresses at less than half a lone member's rate), **and** whose every
  doubling bought at least ``min_step_gain`` (:data:`MIN_STEP_GAIN`, 1.1x) more
  member-steps per second (a doubling that buys nothing only delays every member's
  result), **and** whose gain over a lone member ``w * t(1) / t(w)`` is at least
  ``min_gain`` (default 1);
- **widening as the budget allows**: with a time budget the caller also passes
  ``block_limit``, the block time at which the first full-length member would still
  arrive within a share of the budget (:data:`FIRST_SHARE`, an eighth, in
  :mod:`sweepjax.flows.anytime`). A width past the factor is taken while
  ``t(w) <= block_limit`` and its doublings still pay as above: on a 2-core CPU a 160-s
  softmax search runs 16 members (the factor alone gives 8; 32 would gain 1.03x), and a
  width-256 MLP, whose second member costs 1.9x the first (1.07x the member-steps),
  stays at 1 whatever the budget;
- capped by ``max_width`` (memory, or the user) and floored by ``min_width``.

Widths are searched by doubling, ``1, 2, 4, ...`` (then ``max_width`` itself if doubling
steps over it), one measurement per width; the search goes on while a doubling pays and
members keep at least 1/:data:`MEASURE_SLOWEST` of a lone member's rate (whatever the
budget: the table is remembered and serves every budget), and stops at the first width
that fails. Timing noise only ever adds time, so a width that seems to stop the search
is timed once more and the smaller of its two times is kept: one hiccup does not stop a
GPU search at width 2. At most ``log2(max_width) + 3`` blocks are timed.

A 2-core CPU a lone member fills, ``t(w) ~ w * t(1)``: width 1. A GPU flat up to 4,096
members: width ``min(max_width, 4096)``.

The measurement costs a few blocks and compiles; :func:`cached_width` and
:func:`remember_width` keep the answer in a small JSON file so a second run on the same
machine does not measure again (``$SWEEPJAX_WIDTH_CACHE``, a file or ``0``/``off``;
otherwise next to the compilation cache, and off when that is off).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from sweepjax.engine import compile_cache
from sweepjax.errors import ConfigError

ENV_FILE = "SWEEPJAX_WIDTH_CACHE"  # a JSON file, or "0" / "off" to disable
_OFF = ("0", "off", "no", "false", "")
_VERSION = 2  # 2: tables measured past the factor (budget widths), features-first probe
MIN_STEP_GAIN = 1.1  # every doubling must buy this much more throughput
MEASURE_SLOWEST = 32  # widths measured while a member keeps 1/32 of a lone one's rate
_MAX_ENTRIES = 256  # oldest dropped first: one entry per (device, model, batch, optimizer)


class WidthChoice(NamedTuple):
    """The chosen width and the measurements behind it.

    ``table``: ``[(width, seconds per block), ...]`` in the order measured, widths
    doubling from 1; ``reason``: one line a user can read, e.g. ``"width 4: 8 members
    took 2.3x a lone member's block time (limit 2x)"``.
    """

    width: int
    table: list[tuple[int, float]]
    reason: str


def _is_whole(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _check(max_width: int, factor: float, min_width: int, min_gain: float) -> None:
    if not _is_whole(max_width) or max_width < 1:
        raise ConfigError(
            f"`max_width` must be a whole number >= 1, got {max_width!r}: pass the most "
            "members that fit in memory (1 turns the measurement off)"
        )
    if not isinstance(factor, (int, float)) or not math.isfinite(factor) or factor < 1:
        raise ConfigError(
            f"`factor` must be a finite number >= 1, got {factor!r}: pass how many times "
            "a lone member's block time a member may take in the population (default 2.0)"
        )
    if not _is_whole(min_width) or not 1 <= min_width <= max_width:
        raise ConfigError(
            f"`min_width` must be a whole number from 1 to `max_width` ({max_width}), got "
            f"{min_width!r}: lower it, or raise `max_width`"
        )
    if not isinstance(min_gain, (int, float)) or not math.isfinite(min_gain) or min_gain < 0:
        raise ConfigError(
            f"`min_gain` must be a finite number >= 0, got {min_gain!r}: pass the fewest "
            "member-steps/second, in lone members, a width must deliver (default 1.0)"
        )


def _widths(max_width: int) -> list[int]:
    """``1, 2, 4, ...`` up to ``max_width``, ending on ``max_width`` itself."""
    out = [1]
    while out[-1] < max_width:
        out.append(min(2 * out[-1], max_width))
    return out


def _fmt(x: float) -> str:
    return f"{x:.1f}" if abs(x - round(x)) > 1e-9 else f"{x:.0f}"


def choose_width(
    time_block: Callable[[int], float],
    max_width: int,
    factor: float = 2.0,
    min_width: int = 1,
    *,
    min_gain: float = 1.0,
    block_limit: float | None = None,
    min_step_gain: float = MIN_STEP_GAIN,
) -> WidthChoice:
    """The widest population whose block time stays within ``factor`` of a lone member's
    (or, with ``block_limit``, within it: see the module docstring for the rule).

    ``time_block(w)``: the seconds of one training block of ``w`` members (the caller
    compiles and times the real program).

    Example, a CPU whose cores a lone member already fills (block time linear in the
    width: a wider population only delays every result), one where each doubling costs
    1.6x, and a GPU flat to 4,096 members::

        >>> choose_width(lambda w: 0.01 * w, max_width=256).width
        1
        >>> choose_width(lambda w: 0.01 * w**0.7, max_width=256).width
        2
        >>> choose_width(lambda w: 0.01 * max(1, w / 4096), max_width=1024).width
        1024

    Raises :class:`~sweepjax.errors.ConfigError` for a bad argument, or a measurement
    that is not a positive, finite number of seconds.
    """
    if not callable(time_block):
        raise ConfigError(
            f"`time_block` must be a function of the width returning seconds, got "
            f"{type(time_block).__name__}: pass one that times one block of w members"
        )
    _check(max_width, factor, min_width, min_gain)
    times: dict[int, float] = {}

    def measure(w: int) -> float:
        t = time_block(w)
        ok = isinstance(t, (int, float)) and not isinstance(t, bool)
        if not ok or not math.isfinite(t) or t <= 0:
            raise ConfigError(
                f"`time_block({w})` returned {t!r}: it must return the seconds one block of "
                f"{w} members took, a positive finite number (time with a wall clock, "
                "after block_until_ready)"
            )
        t = float(t)
        times[w] = min(times.get(w, t), t)
        return times[w]

    def goes_on(w: int, prev: int) -> bool:
        """Whether a wider population may still be taken (by the factor, or by some
        budget): the doubling still pays, and members still progress at least
        1/MEASURE_SLOWEST of a lone member's rate."""
        base, t = times[1], times[w]
        pays = _step_gain(times, w, prev) >= min_step_gain and w * base / t >= min_gain
        return pays and t <= max(factor, MEASURE_SLOWEST) * base

    measure(1)
    prev = 1
    for w in _widths(max_width)[1:]:
        measure(w)
        if not goes_on(w, prev):
            measure(w)  # timing noise only adds time: confirm before stopping
            if not goes_on(w, prev):
                break
        prev = w
    return pick(
        list(times.items()), max_width, factor, min_width, min_gain=min_gain,
        block_limit=block_limit, min_step_gain=min_step_gain,
    )  # fmt: skip


def pick(
    table: list[tuple[int, float]],
    max_width: int,
    factor: float = 2.0,
    min_width: int = 1,
    *,
    min_gain: float = 1.0,
    block_limit: float | None = None,
    min_step_gain: float = MIN_STEP_GAIN,
) -> WidthChoice:
    """The rule applied to a measured ``table`` (``[(width, seconds per block), ...]``
    doubling from 1, e.g. a remembered one): a new budget needs no new measurement.

    Example, a CPU where 8 members cost 1.4x a lone member's block and 16 members 2.2x::

        >>> t = [(1, 1.0), (2, 1.0), (4, 1.1), (8, 1.4), (16, 2.2), (32, 4.2)]
        >>> pick(t, 64).width, pick(t, 64, block_limit=3.0).width
        (8, 16)
    """
    _check(max_width, factor, min_width, min_gain)
    times = {w: t for w, t in table if w <= max_width}
    if 1 not in times:
        raise ConfigError("a width table must start with width 1 (a lone member's time)")
    base = times[1]

    def breaks(w: int, prev: int) -> str | None:
        """Why width ``w`` breaks the rule, or None."""
        t = times[w]
        slow, gain = t / base, w * base / t
        step = _step_gain(times, w, prev)
        if gain < min_gain:
            return (
                f"{w} members gave {gain:.2f}x a lone member's member-steps/s "
                f"(floor {_fmt(min_gain)}x)"
            )
        if step < min_step_gain:  # wider only delays every member's result
            return (
                f"{w} members gave {step:.2f}x the member-steps/s of {prev} "
                f"(a doubling must gain {min_step_gain:g}x)"
            )
        if slow <= factor:
            return None
        why = f"{w} members took {slow:.1f}x a lone member's block time (limit {_fmt(factor)}x"
        if block_limit is None:
            return why + ")"
        if t > block_limit:
            return why + f"; {_fmt_s(t)} per block is past the budget's {_fmt_s(block_limit)})"
        return None

    chosen, prev, why = 1, 1, None
    if max_width == 1:
        why = "the cap `max_width` is 1"
    for w in sorted(times)[1:]:
        why = breaks(w, prev)
        if why is not None:
            break
        chosen = prev = w
    if why is None:
        slow = times[chosen] / base
        wider = "the cap `max_width`" if chosen == max_width else "the widest measured"
        reason = (
            f"width {chosen}: {wider} ({chosen} members took {slow:.1f}x a lone member's "
            f"block time, limit {_fmt(factor)}x)"
        )
    else:
        reason = f"width {chosen}: {why}"
    if times[chosen] / base > factor:
        reason = reason.replace(f"width {chosen}:", f"width {chosen} (widened for the budget):", 1)
    if chosen < min_width:
        reason = f"width {min_width}: the floor `min_width` (the rule alone gave {reason})"
        chosen = min_width
    return WidthChoice(chosen, list(times.items()), reason)


def _step_gain(times: dict[int, float], w: int, prev: int) -> float:
    """How many times the member-steps/s of ``prev`` members ``w`` members deliver."""
    return (w * times[prev]) / (prev * times[w])


def _fmt_s(t: float) -> str:
    return f"{t * 1e3:.0f} ms" if t < 1 else f"{t:.2f} s"


def width_key(device_kind: str, model: str, batch_size: int, optimizer: str) -> str:
    """The memo key: what the block time depends on.

    ``device_kind``: e.g. ``jax.devices()[0].device_kind``, plus ``os.cpu_count()`` on a
    CPU (a shared home directory may serve machines of different sizes); ``model``: the
    network's signature (kind, widths, parameter count). Add ``factor`` / ``max_width`` to
    ``optimizer`` or ``model`` if a caller varies them: the memo keeps the choice, not the
    rule.
    """
    return f"{device_kind}|{model}|batch={batch_size}|{optimizer}"


def default_path() -> Path | None:
    """``$SWEEPJAX_WIDTH_CACHE``, or ``$XDG_CACHE_HOME/sweepjax/width.json`` (default
    ``~/.cache/sweepjax/width.json``); None (no memo) when ``$SWEEPJAX_WIDTH_CACHE`` says
    ``0`` or ``off``, or when it is unset and the compilation cache is off
    (``SWEEPJAX_COMPILE_CACHE=0``: one switch keeps a run from writing to the home)."""
    env = os.environ.get(ENV_FILE)
    if env is not None:
        return None if env.strip().lower() in _OFF else Path(env).expanduser()
    if compile_cache.default_dir() is None:
        return None
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sweepjax" / "width.json"


def _load(path: Path) -> dict[str, dict]:
    """The memo's entries; empty for a missing, unreadable or corrupt file."""
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("version") != _VERSION:
        return {}
    entries = data.get("entries")
    return entries if isinstance(entries, dict) else {}


def _parse(entry: object) -> WidthChoice | None:
    if not isinstance(entry, dict):
        return None
    width, rows, reason = entry.get("width"), entry.get("table"), entry.get("reason")
    if not _is_whole(width) or width < 1 or not isinstance(reason, str):
        return None
    if not isinstance(rows, list):
        return None
    table = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and _is_whole(row[0])):
            return None
        if not isinstance(row[1], (int, float)) or isinstance(row[1], bool):
            return None
        table.append((row[0], float(row[1])))
    return WidthChoice(width, table, reason)


def cached_width(key: str, path: Path | None = None) -> WidthChoice | None:
    """The remembered choice for ``key``, or None (not measured here yet, memo off, or
    a corrupt file: then the caller measures again and :func:`remember_width` rewrites
    it). ``path``: the JSON file, default :func:`default_path`."""
    path = Path(path).expanduser() if path is not None else default_path()
    if path is None:
        return None
    return _parse(_load(path).get(key))


def remember_width(key: str, choice: WidthChoice, path: Path | None = None) -> Path | None:
    """Keep ``choice`` under ``key`` for :func:`cached_width`; returns the file written,
    or None when the memo is off or the file cannot be written (a run never fails for
    its memo). The file is replaced atomically: a reader sees the old memo or the new."""
    path = Path(path).expanduser() if path is not None else default_path()
    if path is None:
        return None
    entries = _load(path)
    entries.pop(key, None)  # re-inserted last: the newest survives the trim
    entries[key] = {
        "width": int(choice.width),
        "table": [[int(w), float(t)] for w, t in choice.table],
        "reason": str(choice.reason),
    }
    while len(entries) > _MAX_ENTRIES:
        entries.pop(next(iter(entries)))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps({"version": _VERSION, "entries": entries}, indent=1))
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        return None
    return path
