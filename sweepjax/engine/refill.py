"""``train_refilling``: a fixed-width population that refills itself (ASHA's trainer).

Each of the ``W`` slots holds one member with its own age (steps trained since it was
born) and its own learning-rate schedule over the run's ``R`` steps. Every block of
``b`` steps (the policy's first rung divides every rung and ``R``) is one call of ONE
compiled program of width ``W``; between blocks the one host loop
(:mod:`sweepjax.engine.loop`, steps in :mod:`sweepjax.engine.refilling`) judges the
members that reached a rung, finishes those that reached ``R`` and refills the freed
slots. The run stops when the budget is spent (checked after each block, so it ends
within one block of it), when ``max_members`` members have been created and every one
of them has ended, or when ``on_chunk`` asks.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from sweepjax.budget import Budget
from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.data.folds import Folds
from sweepjax.engine import active, loop, program, slots
from sweepjax.engine.curves import Checkpoint, Curves, ScheduleState
from sweepjax.engine.decisions import Policy, RungLog
from sweepjax.engine.distributed import SINGLE, Placement, put_members
from sweepjax.engine.keys import root_bits
from sweepjax.engine.outcome import ChunkReport, PopulationResult
from sweepjax.engine.setup import static

PROGRESS_FIELDS = ("elapsed_s", "member_steps", "best_val_acc", "member")


def train_refilling(
    dataset: Dataset,
    model_cfg: ModelConfig,
    config: TrainConfig,
    scheduler: Policy,
    *,
    width: int,
    budget: Budget | None = None,
    max_members: int | None = None,
    on_chunk: Callable[[ChunkReport], bool | None] | None = None,
    resume: Checkpoint | None = None,
    placement: Placement | None = None,
    folds: Folds | None = None,
) -> PopulationResult:
    """Train a ``width``-slot population that refills itself until ``budget`` is spent
    (or ``max_members`` members have run). ``config.steps`` is the full length ``R``.

    Returns a :class:`PopulationResult` over every member that ran (rows in creation
    order, member id = row): ``status`` ``ok`` for members that reached ``R``,
    ``stopped`` for those the policy stopped at a rung or the budget caught in flight
    (``stopped_at``: their age), ``diverged``. ``curves`` are indexed by age.
    ``params``/``best_params`` hold the best :data:`~sweepjax.engine.slots.KEEP`
    finished members (``finished`` order). ``progress`` holds the best-so-far points,
    ``in_flight`` how many members the budget stopped. With a policy whose plan groups
    ``g`` members per config (replicas, or ``folds``: :func:`sweepjax.data.folds.pool`'d
    data), slot ``j`` always holds replica ``j % g`` (holding out fold ``j % g``) and
    member row ``i`` is replica ``i % g`` of config ``i // g``.
    """
    if budget is None and max_members is None:
        raise ValueError("give a `budget` or `max_members`: a refilling run never ends")
    where = SINGLE if placement is None else placement
    w = int(width)
    if w < 1 or w % where.num_devices:
        raise ValueError(f"width {w} must be a positive multiple of {where.num_devices} devices")
    plan = scheduler.plan()
    total, b = int(config.steps), int(plan.block)
    if not plan.refills or total % b or any(r % b for r in plan.ages):
        raise ValueError(f"block {b} must divide the run ({total}) and every rung {plan.ages}")
    if w % plan.group or (folds is not None and plan.group != folds.k):
        raise ValueError(f"width {w} must hold whole configs of {plan.group} (one per fold)")
    n_val = int(dataset.x_val.shape[0])
    if resume is not None:
        pop, clock = _resumed(resume, n_val)
    else:
        pop, clock = _first(scheduler, config, n_val, w, b, max_members)
    hp_static = slots.concat(pop.sched.hparams, scheduler.corners())
    init_bits, key_bits = root_bits(config.seed)
    setup = slots.Run(
        dataset=dataset,
        policy=scheduler,
        plan=plan,
        total=total,
        ends=(),
        data=program.device_data(dataset, config, where, folds),
        static=static(dataset, model_cfg, config, folds is not None, hp_static),
        where=where,
        key_bits=key_bits,
        init_bits=init_bits,
        fold_of=(np.arange(w) % folds.k if folds else np.full(w, -1)).astype(np.int32),
        member_ids=None,
        sizes=(1, w),
        budget=budget,
        max_members=max_members,
    )
    if resume is None:
        # Zeros of the right shapes, then every occupied slot initialised by the refill
        # program: the run's first members cost no program of their own.
        states0 = slots.blank(dataset.num_features, setup.static, w)
        pop = pop._replace(kept=slots.no_kept(states0.params))
    else:
        states0 = resume.states.slots
    act = active.Active(put_members(states0, where), w, w, True)
    del states0
    if resume is None:
        act, c = slots.refill(setup, act, pop.slot_row >= 0, pop.slot_row, pop.slot_hp)
        clock = clock.add(compile_s=c)
    return loop.run(setup, pop._replace(act=act), clock, on_chunk)


def _first(policy: Policy, config: TrainConfig, n_val: int, w: int, b: int, max_members):
    """The population before its first block: the first members drawn (slots beyond
    ``max_members`` start empty: a copy of member 0, results dropped)."""
    first = min(w, max_members) if max_members is not None else w
    log = RungLog.empty(n_val)
    sched = ScheduleState.start(policy.draw(np.arange(first), log, None))
    e = int(config.steps) // b
    curves = Curves(
        np.arange(1, e + 1, dtype=np.int64) * b,
        *(np.full((first, e), np.nan, np.float32) for _ in range(5)),
    )
    slot_row = np.concatenate([np.arange(first), np.full(w - first, -1)]).astype(np.int64)
    hp = sched.hparams.take(np.maximum(slot_row, 0))
    pop = slots.Population(0, None, slot_row, np.zeros(w, np.int64), hp, sched, curves, log, None)
    return pop, slots.Clock()


def _resumed(resume: Checkpoint, n_val: int):
    """The population and clock a refilling checkpoint holds."""
    c: slots.Carry = resume.states
    sched = resume.schedule
    curves = Curves(*(np.array(a) for a in resume.curves))  # written in place
    slot_row = np.array(c.slot_row, np.int64)
    kept = slots.Kept(np.array(c.kept_row, np.int64), c.kept_best, c.kept_final)
    hp = sched.hparams.take(np.maximum(slot_row, 0))
    log = RungLog.from_array(c.log, n_val)
    pop = slots.Population(resume.step, None, slot_row, np.array(c.born, np.int64), hp, sched,
                          curves, log, kept)  # fmt: skip
    clock = slots.Clock(
        member_steps=int(c.clock[0]),
        prior_s=float(c.clock[1]),
        progress=tuple(tuple(p) for p in np.asarray(c.progress).reshape(-1, 4)),
        finished=slots.finished_count(sched),
    )
    return pop, clock
