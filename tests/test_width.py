"""The population width rule (sweepjax.engine.width) on fake throughput tables: no JAX,
no timing. A table maps width -> seconds per block; each test asserts the width chosen,
the widths measured and the reason's numbers."""

from __future__ import annotations

import collections
import dataclasses
import doctest
import json
import random
import re

import pytest

from sweepjax.budget import Budget
from sweepjax.engine import width as width_mod
from sweepjax.engine.width import (
    WidthChoice,
    cached_width,
    choose_width,
    default_path,
    pick,
    remember_width,
    width_key,
)
from sweepjax.errors import ConfigError


class Table:
    """A fake ``time_block``: seconds from ``fn(w)``, with every call recorded."""

    def __init__(self, fn):
        self.fn = fn
        self.calls: list[int] = []

    def __call__(self, w: int) -> float:
        self.calls.append(w)
        return self.fn(w)


def cpu(w: int) -> float:  # 2 cores already full: block time linear in the width
    return 0.01 * w


def partly(w: int) -> float:  # each doubling costs 1.62x: buys 1.23x the member-steps
    return 0.01 * w**0.7


def gpu(w: int) -> float:  # flat up to 4096 members, then linear
    return 0.004 * max(1.0, w / 4096)


def test_cpu_linear_table_stays_at_one_member():
    # t(2) = 2 t(1) is within the factor, but two members deliver no more member-steps:
    # the second would only halve the first one's speed.
    t = Table(cpu)
    c = choose_width(t, max_width=256)
    assert c.width == 1
    assert c.table == [(1, 0.01), (2, 0.02)]
    assert t.calls == [1, 2, 2]  # the stopping width is timed twice
    assert (
        c.reason
        == "width 1: 2 members gave 1.00x the member-steps/s of 1 (a doubling must gain 1.1x)"
    )


def test_a_wider_table_takes_the_largest_width_within_the_factor():
    c = choose_width(partly, max_width=256)
    assert c.width == 2  # t(2) = 1.62 t(1) <= 2 t(1); t(4) = 2.64 t(1) > 2 t(1)
    assert c.reason == "width 2: 4 members took 2.6x a lone member's block time (limit 2x)"
    # measured on while doublings pay and members keep 1/32 of a lone one's rate
    assert [w for w, _ in c.table] == [1, 2, 4, 8, 16, 32, 64, 128, 256]  # 256: 48x


@pytest.mark.parametrize(("factor", "expected"), [(1.0, 1), (2.0, 2), (3.0, 4), (4.0, 4)])
def test_factor_sets_the_width(factor, expected):
    c = choose_width(partly, max_width=256, factor=factor)
    assert c.width == expected  # the widest w with w**0.7 <= factor


def test_gpu_flat_table_reaches_the_cap():
    t = Table(gpu)
    c = choose_width(t, max_width=4096)
    assert c.width == 4096
    assert t.calls == [2**k for k in range(13)]  # 1 .. 4096, once each
    assert [w for w, _ in c.table] == [2**k for k in range(13)]
    assert c.reason == (
        "width 4096: the cap `max_width` (4096 members took 1.0x a lone member's block "
        "time, limit 2x)"
    )


def test_gpu_past_the_flat_region_stops_at_the_knee():
    c = choose_width(gpu, max_width=65536)
    assert c.width == 4096  # t(8192) = 2 t(1): within 2x, but it buys nothing
    assert c.table[-1] == (8192, pytest.approx(0.008))
    assert "8192 members gave 1.00x the member-steps/s of 4096" in c.reason


def test_cap_that_is_not_a_power_of_two_is_measured_itself():
    t = Table(gpu)
    c = choose_width(t, max_width=100)
    assert c.width == 100
    assert t.calls == [1, 2, 4, 8, 16, 32, 64, 100]


def test_max_width_one_measures_the_lone_member_only():
    t = Table(cpu)
    c = choose_width(t, max_width=1)
    assert c == WidthChoice(1, [(1, 0.01)], "width 1: the cap `max_width` is 1")
    assert t.calls == [1]


def test_min_width_floors_the_choice_and_says_so():
    c = choose_width(cpu, max_width=256, min_width=8)
    assert c.width == 8
    assert c.reason.startswith("width 8: the floor `min_width` (the rule alone gave width 1:")


def test_gain_floor_rejects_a_width_that_loses_throughput():
    # Within a generous factor, but 2 members deliver only 2 * 1 / 2.5 = 0.8 lone members.
    table = {1: 1.0, 2: 2.5, 4: 3.0}
    c = choose_width(table.__getitem__, max_width=4, factor=4.0)
    assert c.width == 1
    assert c.reason == "width 1: 2 members gave 0.80x a lone member's member-steps/s (floor 1x)"
    c0 = choose_width(table.__getitem__, max_width=4, factor=4.0, min_gain=0.0)
    assert c0.width == 1  # without the floor, the doubling's 0.8x still stops it
    assert "2 members gave 0.80x the member-steps/s of 1" in c0.reason


def test_a_single_hiccup_does_not_stop_the_search():
    seen: set[int] = set()

    def hiccup(w: int) -> float:  # width 4's first block hits a 10x stall
        first = w not in seen
        seen.add(w)
        return 0.04 if (w == 4 and first) else gpu(w)

    c = choose_width(hiccup, max_width=1024)
    assert c.width == 1024
    assert dict(c.table)[4] == pytest.approx(0.004)  # the smaller of the two times kept


@pytest.mark.parametrize("seed", range(40))
def test_noisy_table_lands_next_to_the_knee(seed):
    # Flat to 256, linear after; every measurement 0-20% slow (noise only adds time).
    rng = random.Random(seed)

    def noisy(w: int) -> float:
        return max(1.0, w / 256) * (1.0 + 0.2 * rng.random())

    c = choose_width(noisy, max_width=4096)
    assert c.width in (256, 512)  # t(512) = 2 t(1) +- noise; t(1024) >= 3.3 t(1)
    base = c.table[0][1]
    assert 1.0 <= base <= 1.2
    times = dict(c.table)
    for w, t in c.table:
        if w <= c.width:
            assert t <= 2.0 * base
    # the width past the choice broke the rule: too slow, or its doubling bought < 1.1x
    w = 2 * c.width
    assert times[w] > 2.0 * base or w * times[c.width] / (c.width * times[w]) < 1.1


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"max_width": 0}, "`max_width`"),
        ({"max_width": 2.5}, "`max_width`"),
        ({"max_width": True}, "`max_width`"),
        ({"max_width": 8, "factor": 0.5}, "`factor`"),
        ({"max_width": 8, "factor": float("nan")}, "`factor`"),
        ({"max_width": 8, "min_width": 0}, "`min_width`"),
        ({"max_width": 8, "min_width": 16}, "`min_width`"),
        ({"max_width": 8, "min_gain": -1.0}, "`min_gain`"),
    ],
)
def test_invalid_arguments_name_the_argument(kwargs, name):
    t = Table(cpu)
    with pytest.raises(ConfigError) as err:
        choose_width(t, **kwargs)
    assert name in str(err.value)
    assert ": " in str(err.value)  # problem, then the fix
    assert err.value.exit_code == 2
    assert t.calls == []  # nothing measured


@pytest.mark.parametrize("bad", [0.0, -1.0, float("inf"), float("nan"), None, "1.0"])
def test_a_bad_measurement_raises(bad):
    with pytest.raises(ConfigError, match=r"`time_block\(2\)` returned"):
        choose_width(lambda w: 0.01 if w == 1 else bad, max_width=4)
    with pytest.raises(ConfigError, match="`time_block`"):
        choose_width(None, max_width=4)


def test_docstring_examples():
    result = doctest.testmod(width_mod, optionflags=doctest.ELLIPSIS)
    assert result.attempted == 5
    assert result.failed == 0


def test_memo_round_trip(tmp_path):
    path = tmp_path / "sub" / "width.json"
    key = width_key("cpu x2", "mlp 784-256-10", 128, "sgd")
    assert key == "cpu x2|mlp 784-256-10|batch=128|sgd"
    assert cached_width(key, path) is None
    choice = choose_width(cpu, max_width=256)
    assert remember_width(key, choice, path) == path
    assert cached_width(key, path) == choice
    other = choose_width(gpu, max_width=64)
    remember_width("gpu", other, path)
    assert cached_width(key, path) == choice  # both kept
    assert cached_width("gpu", path).width == 64
    data = json.loads(path.read_text())
    assert data["version"] == 2
    assert data["entries"][key]["table"] == [[1, 0.01], [2, 0.02]]
    assert [p.name for p in path.parent.iterdir()] == ["width.json"]  # no temp file left


@pytest.mark.parametrize(
    "text",
    [
        "{not json",
        "\x00\xff",
        "[]",
        '{"version": 99, "entries": {}}',
        '{"version": 1, "entries": []}',
        '{"version": 1, "entries": {"k": {"width": "2", "table": [], "reason": ""}}}',
        '{"version": 1, "entries": {"k": {"width": 2, "table": [[1]], "reason": ""}}}',
        '{"version": 1, "entries": {"k": {"width": 2, "table": [[1, "x"]], "reason": ""}}}',
    ],
)
def test_corrupt_memo_is_ignored_and_rewritten(tmp_path, text):
    path = tmp_path / "width.json"
    path.write_text(text)
    assert cached_width("k", path) is None
    choice = WidthChoice(2, [(1, 0.5), (2, 0.75)], "width 2: test")
    assert remember_width("k", choice, path) == path
    assert cached_width("k", path) == choice


def test_memo_is_bounded_and_keeps_the_newest(tmp_path, monkeypatch):
    monkeypatch.setattr(width_mod, "_MAX_ENTRIES", 3)
    path = tmp_path / "width.json"
    for i in range(5):
        remember_width(f"k{i}", WidthChoice(i + 1, [(1, 1.0)], "r"), path)
    remember_width("k2", WidthChoice(9, [(1, 1.0)], "r"), path)  # refreshed: newest
    assert [cached_width(f"k{i}", path) for i in (0, 1)] == [None, None]
    assert [cached_width(f"k{i}", path).width for i in (2, 3, 4)] == [9, 4, 5]
    assert list(json.loads(path.read_text())["entries"]) == ["k3", "k4", "k2"]


def test_unwritable_memo_is_skipped(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    path = blocker / "width.json"  # its parent is a file
    assert remember_width("k", WidthChoice(1, [(1, 1.0)], "r"), path) is None
    assert cached_width("k", path) is None


def test_default_path_follows_the_cache_switches(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("SWEEPJAX_WIDTH_CACHE", raising=False)
    monkeypatch.setenv("SWEEPJAX_COMPILE_CACHE", "0")  # tests: no memo in the home
    assert default_path() is None
    choice = WidthChoice(2, [(1, 1.0), (2, 1.5)], "r")
    assert remember_width("k", choice) is None
    assert cached_width("k") is None
    monkeypatch.delenv("SWEEPJAX_COMPILE_CACHE")
    assert default_path() == tmp_path / "xdg" / "sweepjax" / "width.json"
    monkeypatch.setenv("SWEEPJAX_WIDTH_CACHE", str(tmp_path / "w.json"))
    monkeypatch.setenv("SWEEPJAX_COMPILE_CACHE", "off")  # an explicit file wins
    assert remember_width("k", choice) == tmp_path / "w.json"
    assert cached_width("k") == choice
    monkeypatch.setenv("SWEEPJAX_WIDTH_CACHE", "off")
    assert default_path() is None
    assert cached_width("k") is None


# Block times per step measured on the 2-core AMD EPYC for the Fashion-MNIST softmax
# (the features-first probe): flat to 4 members, then about linear.
SOFTMAX_CPU = {1: 0.63, 2: 0.60, 4: 0.66, 8: 0.89, 16: 1.42, 32: 2.58, 64: 5.16, 128: 10.3}


def test_budget_widens_while_a_doubling_still_pays():
    t = Table(SOFTMAX_CPU.__getitem__)
    c = choose_width(t, max_width=128)
    assert c.width == 8  # t(8) = 1.4 t(1) <= 2 t(1); t(16) = 2.3 t(1)
    # measured on past the factor while doublings pay (32: 1.10x), stopped at 64 (1.00x)
    assert t.calls == [1, 2, 4, 8, 16, 32, 64, 64]
    wide = choose_width(SOFTMAX_CPU.__getitem__, max_width=128, block_limit=100.0)
    assert wide.width == 32
    assert wide.reason == (
        "width 32 (widened for the budget): 64 members gave 1.00x the member-steps/s of 32 "
        "(a doubling must gain 1.1x)"
    )
    # a budget whose first member must arrive sooner than 16 members allow
    assert choose_width(SOFTMAX_CPU.__getitem__, max_width=128, block_limit=1.0).width == 8
    tight = pick(list(SOFTMAX_CPU.items()), 128, block_limit=2.0)
    assert tight.width == 16 and "2.58 s per block is past the budget's 2.00 s" in tight.reason


def test_budget_never_widens_a_population_that_buys_nothing():
    # a width-256 MLP on 2 cores: a second member costs what the first does
    for limit in (None, 1.0, 1e6):
        assert choose_width(cpu, max_width=256, block_limit=limit).width == 1
    assert choose_width(lambda w: 0.01 * w**1.2, max_width=256, block_limit=1e6).width == 1
    # the width-256 MLP measured here: a second member costs 1.87x (1.07x the throughput)
    mlp = {1: 2.26, 2: 4.22, 4: 8.11}
    assert choose_width(mlp.__getitem__, max_width=64, block_limit=1e6).width == 1


@pytest.mark.parametrize("limit", [None, 0.5, 0.9, 1.5, 3.0, 100.0])
def test_pick_on_a_remembered_table_equals_a_fresh_choice(limit):
    measured = choose_width(SOFTMAX_CPU.__getitem__, max_width=128)
    fresh = choose_width(SOFTMAX_CPU.__getitem__, max_width=128, block_limit=limit)
    again = pick(measured.table, 128, block_limit=limit)
    assert (again.width, again.reason) == (fresh.width, fresh.reason)
    assert again.width == {None: 8, 0.5: 8, 0.9: 8, 1.5: 16, 3.0: 32, 100.0: 32}[limit]


def test_gpu_budget_changes_nothing_within_the_factor():
    assert choose_width(gpu, max_width=4096, block_limit=1e-9).width == 4096


def test_pick_needs_a_lone_members_time():
    with pytest.raises(ConfigError, match="start with width 1"):
        pick([(2, 1.0), (4, 2.0)], 8)


@pytest.mark.parametrize(("budget", "expected"), [(None, 8), ("40s", 16), ("160s", 32)])
def test_asha_sweep_widens_for_a_long_time_budget(tmp_path, monkeypatch, budget, expected):
    """`anytime.choose` applies the rule to the remembered table with the run's budget:
    the first 2,400-step member within an eighth of it. The limit per 40-step probe
    block is budget/8 * 40/2400: 40 s gives 83 ms, past 32 members' 103 ms, so 16;
    160 s gives 333 ms: 32 members (64 would gain nothing)."""
    from sweepjax.config import DataConfig, ModelConfig, ScheduleConfig, SearchSpace, TrainConfig
    from sweepjax.engine.distributed import SINGLE
    from sweepjax.flows import anytime
    from sweepjax.flows.sweep_config import SweepConfig
    from tests.helpers import toy_dataset

    ds = toy_dataset()
    cfg = SweepConfig(
        "coarse", DataConfig(), ModelConfig(), TrainConfig(steps=2400), SearchSpace(), 4096,
        schedule=ScheduleConfig("asha", budget=None if budget is None else Budget.parse(budget)),
    )  # fmt: skip
    path = tmp_path / "width.json"
    monkeypatch.setenv("SWEEPJAX_WIDTH_CACHE", str(path))
    # per 40-step probe block: SOFTMAX_CPU's per-step milliseconds x 40 / 1000
    table = [(w, t * 40 / 1000) for w, t in SOFTMAX_CPU.items()]
    remember_width(anytime._key(cfg, ds, SINGLE), WidthChoice(8, table, "measured"), path)
    limit = anytime.block_limit(cfg, anytime.PROBE_STEPS)
    assert anytime.PROBE_STEPS == 40
    assert limit == (None if budget is None else float(budget[:-1]) / 8 * 40 / 2400)
    said = []
    assert anytime.choose(cfg, ds, SINGLE, said.append) == expected
    assert said == []  # remembered: nothing measured


def test_a_memo_without_a_lone_members_time_is_measured_again(tmp_path, monkeypatch):
    from sweepjax.config import DataConfig, ModelConfig, ScheduleConfig, SearchSpace, TrainConfig
    from sweepjax.engine.distributed import SINGLE
    from sweepjax.flows import anytime
    from sweepjax.flows.sweep_config import SweepConfig
    from tests.helpers import toy_dataset

    ds = toy_dataset()
    cfg = SweepConfig(
        "coarse", DataConfig(), ModelConfig(), TrainConfig(steps=240), SearchSpace(), 64,
        schedule=ScheduleConfig("asha"),
    )  # fmt: skip
    path = tmp_path / "width.json"
    monkeypatch.setenv("SWEEPJAX_WIDTH_CACHE", str(path))
    key = anytime._key(cfg, ds, SINGLE)
    remember_width(key, WidthChoice(4, [(2, 0.1), (4, 0.2)], "hand-edited"), path)
    monkeypatch.setattr(anytime, "_dense_probe", lambda cfg, ds: partly)
    said = []
    assert anytime.choose(cfg, ds, SINGLE, said.append) == 2
    assert said and said[0].startswith("asha: width 2")
    assert cached_width(key, path).table[0] == (1, 0.01)  # rewritten with a real table


def test_a_time_budget_sizes_the_members_length_to_what_it_has_left(tmp_path, monkeypatch):
    """Once compiled (3 s), the first member of the run's length should finish within half
    of the time left: at 2 ms a real step (1 ms probe steps, REAL_OVER_PROBE 2), 2,400
    steps train 4.8 s; with 20 s left they fit ((20 - 3) / 2 = 8.5 s), with 7 s left
    members train the largest multiple of eta**rungs = 9 steps that does: 2 s / 0.002 =
    1000 -> 999. Nothing known of the step time, or nothing left: unchanged. A resume
    keeps the stored length."""
    from sweepjax.config import DataConfig, ModelConfig, ScheduleConfig, SearchSpace, TrainConfig
    from sweepjax.engine.distributed import SINGLE
    from sweepjax.flows import anytime
    from sweepjax.flows.sweep_config import SweepConfig
    from tests.helpers import toy_dataset

    cfg = SweepConfig(
        "coarse", DataConfig(), ModelConfig(), TrainConfig(steps=2400, chunk_steps=2400),
        SearchSpace(), 4096, schedule=ScheduleConfig("asha", rungs=2, budget=Budget.parse("20s")),
    )  # fmt: skip
    assert (anytime.REAL_OVER_PROBE, anytime.COMPILE_S, anytime.FIT_SHARE) == (2.0, 3.0, 0.5)
    same, note = anytime.fit_length(cfg, 0.040, 20.0)
    assert same is cfg and note is None
    short, note = anytime.fit_length(cfg, 0.040, 7.0)
    assert short.train.steps == 999 and short.train.chunk_steps == 999
    assert "members train 999 steps" in note and "a 2400-step member would train ~5s" in note
    assert anytime.fit_length(cfg, None, 10.0)[0] is cfg
    assert anytime.fit_length(cfg, 0.040, -1.0)[0] is cfg
    assert anytime.fit_length(cfg, 10.0, 10.0)[0].train.steps == 9  # at least one unit
    # The step time comes from the remembered width table (nearest width at or above).
    ds = toy_dataset()
    path = tmp_path / "width.json"
    monkeypatch.setenv("SWEEPJAX_WIDTH_CACHE", str(path))
    assert anytime.block_seconds(cfg, ds, SINGLE, 4) is None  # nothing remembered
    table = [(1, 0.01), (2, 0.012), (4, 0.02), (8, 0.04)]
    remember_width(anytime._key(cfg, ds, SINGLE), WidthChoice(4, table, "measured"), path)
    assert anytime.block_seconds(cfg, ds, SINGLE, 4) == 0.02
    assert anytime.block_seconds(cfg, ds, SINGLE, 3) == 0.02
    assert anytime.block_seconds(cfg, ds, SINGLE, 16) == pytest.approx(0.08)
    stored = dataclasses.replace(cfg, train=cfg.train.replace(steps=999))
    assert anytime.with_length(cfg, stored).train.steps == 999
    assert anytime.with_length(cfg, cfg) is cfg


# --------------------------------------------------------------------------- the probe
# Slow: the probe compiles the real chunk program at each width (~2 s each on 2 cores).
@pytest.mark.slow
def test_the_probe_of_a_custom_model_times_the_program_the_run_trains(tmp_path, monkeypatch):
    """A user's model is probed with one block of the real chunk program at each width
    (``flows.anytime``): the times the rule reads are that program's only if the run
    then trains with the very program the probe compiled. So an ASHA sweep that measures
    its width compiles one chunk program per measured width and none of its own: the
    run at the chosen width reuses the probe's (same static settings, argument shapes
    and dtypes, placement). Asserted on compile counts, never on seconds.

    Two trials cap the width at 2, so the probe measures widths 1 and 2. (The built-in
    models' probe is a stand-in of the same matmuls, compiled in a second; its relation
    to the real program is ``flows.anytime.REAL_OVER_PROBE``.)"""
    import numpy as np

    import sweepjax
    from sweepjax.engine import program
    from tests.custom_models import TinyMLP

    memo = tmp_path / "width.json"
    monkeypatch.setenv("SWEEPJAX_WIDTH_CACHE", str(memo))  # nothing remembered: measure
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 6)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    npz = tmp_path / "d.npz"
    np.savez(npz, x_train=x[:200], y_train=y[:200], x_test=x[200:], y_test=y[200:])
    program.clear_cache()  # nothing held: the probe compiles; the counts are the process's
    before = program.compile_counts().get("chunk", 0)
    res = sweepjax.coarse(
        model=TinyMLP(num_classes=2, hidden=4), dataset=f"npz:{npz}", schedule="asha",
        trials=2, steps=18, batch_size=16, rungs=2, store=str(tmp_path / "s.db"),
        report=False,
    )  # fmt: skip
    [entry] = json.loads(memo.read_text())["entries"].values()
    measured = sorted({w for w, _ in entry["table"]})
    # Which width the rule picks is the machine's timing (a busy CPU can make 2 members
    # gain less than 1.1x over 1): the claim holds for either, the run's program is the
    # probe's at that width.
    assert measured == [1, 2] and entry["width"] in measured
    assert len(res.members) == 2 and {m.status for m in res.members} <= {"ok", "stopped"}
    assert program.compile_counts()["chunk"] - before == len(measured)


# Each dot in the loop over steps of a compiled program (its output shape and dimension
# numbers): the matmul work of one training step, read from the optimised HLO.
STEP_DOT = re.compile(
    r"= (\w+\[[\d,]*\])\S* dot\(.*?\), (.*?), metadata=\{op_name=\"jit\([^)]*\)/while/body/"
)


def _step_dots(hlo: str) -> collections.Counter:
    return collections.Counter(m.groups() for m in STEP_DOT.finditer(hlo))


@pytest.mark.parametrize(
    ("kind", "w", "batch"),
    [pytest.param("mlp", 2, 64, marks=pytest.mark.slow), ("softmax", 4, 1024)],
)
def test_the_dense_probe_runs_the_real_steps_matmuls(monkeypatch, kind, w, batch):
    """The built-in models' probe (``flows.anytime.dense_program``) is a stand-in that
    compiles in a second; its block times stand for the real program's only if each of
    its steps does the real step's matmuls. Compared on the compiled programs (the
    dots inside the loop over steps: shapes and contractions, forward and backward),
    never on seconds. The real program is the one a run trains at width ``w``
    (``_program_probe``'s block, the run's own chunk program by the test above).
    Batch 1024 on 600 training rows: the run trains on minibatches of 600 (the batch is
    capped at the training rows), and so must the probe."""
    import jax

    from sweepjax.config import DataConfig, ModelConfig, ScheduleConfig, SearchSpace, TrainConfig
    from sweepjax.engine.distributed import SINGLE
    from sweepjax.engine.program_cache import PROGRAMS
    from sweepjax.flows import anytime
    from sweepjax.flows.sweep_config import SweepConfig
    from tests.helpers import toy_dataset

    ds = toy_dataset()  # 600 training rows, 20 features, 4 classes
    cfg = SweepConfig(
        "coarse", DataConfig(), ModelConfig(kind, hidden=32),
        TrainConfig(steps=40, batch_size=batch), SearchSpace(), 8,
        schedule=ScheduleConfig("asha"),
    )  # fmt: skip
    chunks = []
    get = PROGRAMS.get

    def spy(kind_, key, compile_):
        exe, s = get(kind_, key, compile_)
        chunks.extend([exe] if kind_ == "chunk" else [])
        return exe, s

    monkeypatch.setattr(PROGRAMS, "get", spy)
    anytime._program_probe(cfg, ds, SINGLE)(w)
    real = _step_dots(chunks[-1].as_text())
    run, weights, x = anytime.dense_program(cfg, ds)
    probe = _step_dots(run.lower(weights(w), x, jax.random.key(0)).compile().as_text())
    # The members' forward and weight-gradient matmuls (and the MLP's hidden ones): B rows.
    rows = min(batch, 600)
    assert sum(f"{rows}]" in shape for shape, _ in real) >= 1
    assert len(real) == (2 if kind == "softmax" else 5)
    assert probe == real
