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


def test_a_program_started_in_the_background_is_waited_for_not_compiled_again():
    import threading

    cache = ProgramCache(capacity=4, clock=lambda: 0.0)
    release, built = threading.Event(), []

    def slow():
        release.wait(5)
        built.append(1)
        return "exe"

    assert cache.start("chunk", 8, slow)
    assert cache.holds("chunk", 8) and not cache.start("chunk", 8, slow)  # once
    release.set()
    exe, _ = cache.get("chunk", 8, lambda: built.append(2) or "again")
    assert exe == "exe" and built == [1] and cache.counts() == {"chunk": 1}
    assert cache.get("chunk", 8, object)[0] == "exe"  # held now


def test_a_failed_background_compile_is_compiled_again_where_it_is_needed():
    cache = ProgramCache(capacity=4, clock=lambda: 0.0)

    def broken():
        raise RuntimeError("out of memory while compiling")

    assert cache.start("chunk", 8, broken)
    assert cache.get("chunk", 8, lambda: "exe")[0] == "exe"
    cache.start("eval", 1, broken)
    with pytest.raises(RuntimeError, match="out of memory"):
        cache.get("eval", 1, broken)  # the error surfaces in the caller's thread
