"""The compiled-program cache: one owner, bounded, counted (no JAX compile needed)."""

from __future__ import annotations

import pytest

from sweepjax.engine.program_cache import ProgramCache


def test_a_hit_returns_the_same_executable_and_costs_nothing():
    t = iter([0.0, 2.5])
    cache = ProgramCache(capacity=4, clock=lambda: next(t))
    built = []
    exe, s = cache.get("chunk", ("shape", 8), lambda: built.append(1) or object())
    again, s2 = cache.get("chunk", ("shape", 8), lambda: built.append(1) or object())
    assert again is exe and (s, s2) == (2.5, 0.0) and built == [1]
    assert cache.stats().compiled == {"chunk": 1} and cache.stats().seconds == 2.5


def test_past_capacity_the_least_recently_used_program_is_dropped():
    cache = ProgramCache(capacity=2, clock=lambda: 0.0)
    a, _ = cache.get("chunk", 1, object)
    cache.get("eval", 2, object)
    cache.get("chunk", 1, object)  # 1 is now the most recent
    cache.get("chunk", 3, object)  # evicts 2
    assert len(cache) == 2 and cache.stats().evicted == 1
    assert cache.get("chunk", 1, object)[0] is a  # still held
    cache.get("eval", 2, object)  # compiled again
    assert cache.counts() == {"chunk": 2, "eval": 2}


def test_clear_drops_programs_but_keeps_the_counts():
    cache = ProgramCache(capacity=3, clock=lambda: 0.0)
    cache.get("chunk", 1, object)
    cache.clear()
    assert len(cache) == 0 and cache.counts() == {"chunk": 1}
    with pytest.raises(ValueError, match="capacity"):
        ProgramCache(capacity=0)
