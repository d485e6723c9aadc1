"""A sweep with categorical axes (``choices``): one part of the population per
combination of values, each trained as its own population with its own compiled
program (its optimizer, activation or width), one part after another through the one
host loop (:func:`sweepjax.engine.train_population`), merged into one result.

Config ``c`` trains with combination ``c % n`` (:meth:`SweepConfig.member_choice`);
members keep their global ids, so the same id has the same float values, initial
weights and minibatches whichever value it trains with, and a member of a part equals
the same member trained alone with that value.

A schedule (halving, Hyperband, PBT) runs inside each part over that part's members;
ASHA (a refilling, budgeted search) is refused in one line.

Checkpoints: the current part's, in the one format, carrying the final checkpoints of
the parts already finished (``Checkpoint.parts``), so ``resume`` inside a later part
continues it and rebuilds the finished ones exactly (no retraining).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import NamedTuple

import jax
import numpy as np

from sweepjax.data import Dataset
from sweepjax.engine import ChunkReport, PopulationResult, footprint, train_population
from sweepjax.engine.curves import Checkpoint, Curves, history_rows
from sweepjax.engine.hparams import BUILTIN_FIELDS, HParams
from sweepjax.engine.outcome import Timing
from sweepjax.engine.setup import init_states
from sweepjax.engine.slots import carry_like
from sweepjax.errors import ConfigError, StoreError
from sweepjax.flows.sweep_config import SweepConfig, scheduler_for
from sweepjax.results.choice_verdict import choice_scores
from sweepjax.spec import SweepSpec
from sweepjax.spec.choices import combo_index, label
from sweepjax.store import parts as stored_parts
from sweepjax.store.db import Store

# The verdicts a fine round keeps: the best value and those tied with it.
KEEP = ("best", "tied")


class ChoicePart(NamedTuple):
    """The members of one combination: rows of the sweep's population, their values."""

    combo: dict
    rows: np.ndarray  # rows of the whole population, in order
    hp: HParams
    ids: np.ndarray
    num_configs: int


def check_schedule(cfg: SweepConfig) -> None:
    """ASHA draws members as slots free up, over one program: refused with choices."""
    if cfg.choices and cfg.schedule.name == "asha":
        raise ConfigError(
            "`choices` trains one population per value, one after another; ASHA and "
            "`budget` refill one program: use `schedule` halving, hyperband, pbt or full"
        )


def first_optimizer(spec: SweepSpec) -> str | None:
    """The first optimizer of ``choices`` (the sweep's nominal one), refusing
    ``optimizer`` given beside it."""
    values = dict(spec.choices or ()).get("optimizer")
    if values and spec.optimizer is not None:
        raise ConfigError(
            "`optimizer` fixes one optimizer and `choices` optimizer sweeps several: drop one"
        )
    return values[0] if values else None


def kept_choices(spec: SweepSpec, merged: SweepSpec, parent) -> tuple[SweepSpec, str | None]:
    """A fine round's categorical values: given now, as given; else the parent's values
    tied with its best (:func:`~sweepjax.results.choice_verdict.choice_scores`), the
    clearly worse ones dropped; and the line that says so."""
    pc = parent.config
    if spec.choices is not None or not merged.choices or not pc.choices:
        return merged, None
    # An optimizer or width given to the round fixes it: that choice is not inherited
    # (the parent's values are still judged as the parent assigned them).
    fixed = [n for n in ("optimizer", "hidden") if getattr(spec, n) is not None]
    if fixed:
        left = tuple((n, v) for n, v in merged.choices if n not in fixed)
        merged = dataclasses.replace(merged, choices=left or None)
        if not left:
            return merged, f"fine choices: none ({', '.join(fixed)} given)"
    scores = choice_scores(parent.members, pc)
    kept_combos = [c for c, s in zip(pc.combos(), scores, strict=True) if s.verdict in KEEP]
    if not kept_combos:  # nothing to judge (every member diverged): keep them all
        return merged, None
    kept = tuple(
        (n, tuple(v for v in vals if any(c[n] == v for c in kept_combos)))
        for n, vals in merged.choices
    )
    said = "; ".join(f"{s.label} {s.verdict}" for s in scores)
    dropped = [s.label for s in scores if s.verdict not in KEEP]
    what = f"drops {', '.join(dropped)}" if dropped else "keeps every value"
    note = f"fine choices from {parent.sweep_id}: {what} ({said}; tied values are kept)"
    out = dataclasses.replace(merged, choices=kept)
    opt = dict(kept).get("optimizer")
    if opt:  # the nominal optimizer is the first kept one
        out = dataclasses.replace(out, optimizer=opt[0])
    return out, note


def split(cfg: SweepConfig, hp: HParams, ids: np.ndarray) -> list[ChoicePart]:
    """The population's rows by combination (replicas of a config stay together)."""
    ids = np.asarray(ids, np.int64)
    which = np.array([combo_index(i // cfg.group, cfg.choices) for i in ids], np.int64)
    out = []
    for k, combo in enumerate(cfg.combos()):
        rows = np.flatnonzero(which == k)
        out.append(ChoicePart(combo, rows, hp.take(rows), ids[rows], len(rows) // cfg.group))
    return out


def check_footprint(cfg: SweepConfig, ds: Dataset, hp: HParams, ids) -> None:
    """The memory check before any row (:func:`sweepjax.engine.footprint.check`): of the
    whole population, or with choices of each part with its own optimizer and network
    (the parts train one after another)."""
    if not cfg.choices:
        footprint.check(ds, cfg.model, cfg.train, hp.num_members)
        return
    for part in split(cfg, hp, ids):
        if len(part.rows):
            pcfg = cfg.with_combo(part.combo)
            footprint.check(ds, pcfg.model, pcfg.train, len(part.rows))


def plan_text(cfg: SweepConfig, hp: HParams, ids) -> str:
    """``, parts sgd (8 members), adam (8 members) one after another`` for the plan line."""
    parts = split(cfg, hp, ids)
    each = ", ".join(f"{label(p.combo)} ({len(p.rows)} members)" for p in parts)
    return f", {len(parts)} programs one after another: {each}"


def _like(ds: Dataset, pcfg: SweepConfig, part: ChoicePart):
    """What a part's checkpoint is read against (one member's state: rows may differ)."""
    return carry_like(init_states(ds, part.hp.take([0]), pcfg.model, pcfg.train, part.ids[:1]))


def load_checkpoint(
    store: Store, sid: str, cfg: SweepConfig, ds: Dataset, hp: HParams, ids
) -> Checkpoint | None:
    """The stored checkpoint of a choice sweep: the current part's (which part: one more
    than the finished ones it carries), read against that part's state."""
    parts = [p for p in split(cfg, hp, ids) if len(p.rows)]

    def like(k: int):
        part = parts[min(k, len(parts) - 1)]
        return _like(ds, cfg.with_combo(part.combo), part)

    return stored_parts.read_checkpoint(store, sid, like)


def train(
    cfg: SweepConfig,
    ds: Dataset,
    hp: HParams,
    ids: np.ndarray,
    *,
    on_chunk: Callable[[ChunkReport], bool | None] | None,
    resume: Checkpoint | None,
    where,
    folds=None,
) -> PopulationResult:
    """Train the parts one after another; the merged result (rows in ``ids`` order), or
    an interrupted part's result whose checkpoint carries the finished parts."""
    parts = [p for p in split(cfg, hp, ids) if len(p.rows)]
    done = list(resume.parts) if resume is not None else []
    current = len(done)  # the part the resume checkpoint is of (the next after those)
    results, offset = [], 0.0
    for k, part in enumerate(parts):
        pcfg = cfg.with_combo(part.combo)
        ckpt = None
        if k < current:  # finished before the interruption: rebuilt from its end
            ckpt = stored_parts.part_checkpoint(done[k], _like(ds, pcfg, part))
        elif k == current and resume is not None:
            ckpt = resume._replace(parts=())
        if ckpt is not None and ckpt.schedule.hparams.num_members != len(part.rows):
            raise StoreError(
                "the stored checkpoint does not match this configuration; run without `resume`"
            )
        final: list = []

        def hook(rep: ChunkReport, final=final, offset=offset, part=part) -> bool | None:
            # The part's end (or the last member gone) is kept to rebuild it on resume.
            if rep.step >= rep.total_steps or rep.active == 0:
                final[:] = [rep.checkpoint()]
            if on_chunk is None:
                return None
            with_parts = tuple(done)
            # The part's rows under the sweep's member ids (and its categorical values):
            # the live views (watch, Optuna) show them as the merged sweep will.
            return on_chunk(
                rep._replace(
                    elapsed_s=offset + rep.elapsed_s,
                    checkpoint=lambda rep=rep: rep.checkpoint()._replace(parts=with_parts),
                    member_ids=part.ids,
                    choice=part.combo,
                )
            )

        res = train_population(
            ds, part.hp, pcfg.model, pcfg.train, member_ids=part.ids,
            scheduler=scheduler_for(pcfg, part.num_configs), on_chunk=hook, resume=ckpt,
            placement=where, folds=folds,
        )  # fmt: skip
        if not res.completed:
            return res._replace(checkpoint=res.checkpoint._replace(parts=tuple(done)))
        if k >= current:  # its end: the last report's, or a checkpoint stored there
            end = final[0] if final else ckpt
            if end is None:
                raise RuntimeError("a choice part ended without its final report")
            done.append(stored_parts.blob(end))
        offset += res.timing.train_s + res.timing.compile_s
        results.append(res)
    return merge(results, [p.rows for p in parts], len(ids))


def merge(results: list[PopulationResult], rows: list[np.ndarray], m: int) -> PopulationResult:
    """The parts' results as one population's, rows back in the sweep's order. The kept
    parameters become a list (one tree per finished member: the parts' trees may differ,
    e.g. in width), which :func:`sweepjax.engine.member_params` reads."""
    order = np.concatenate(rows)  # part-major position -> sweep row
    inv = np.empty(m, np.int64)
    inv[order] = np.arange(m)

    def cat(get):
        return np.concatenate([np.asarray(get(r)) for r in results])[inv]

    # A part whose members all stopped or diverged early has fewer columns: NaN there.
    steps = np.unique(np.concatenate([np.asarray(r.curves.step, np.int64) for r in results]))

    def col(r, f):
        a = np.asarray(getattr(r.curves, f), np.float32)
        out = np.full((a.shape[0], len(steps)), np.nan, np.float32)
        out[:, np.searchsorted(steps, np.asarray(r.curves.step, np.int64))] = a
        return out

    curves = Curves(steps, *(cat(lambda r, f=f: col(r, f)) for f in Curves._fields[1:]))
    finished, params, best, lineage, history = [], [], [], [], []
    for r, rw in zip(results, rows, strict=True):
        for j, row in enumerate(np.asarray(r.finished)):
            finished.append(int(rw[row]))
            params.append(jax.tree.map(lambda a, j=j: np.asarray(a)[j], r.params))
            best.append(jax.tree.map(lambda a, j=j: np.asarray(a)[j], r.best_params))
        for a in np.asarray(r.lineage).reshape(-1, 3):
            lineage.append([a[0], rw[int(a[1])], rw[int(a[2])]])
        for a in history_rows(r.history, r.hparams):
            history.append([a[0], rw[int(a[1])], *a[2:]])
    t = [r.timing for r in results]
    train_s = sum(x.train_s for x in t)
    member_steps = sum(x.model_steps_per_s * x.train_s for x in t)
    timing = Timing(
        sum(x.compile_s for x in t), train_s, sum(x.eval_s for x in t),
        sum(x.transfer_s for x in t), member_steps / train_s if train_s > 0 else 0.0,
        sum(x.num_groups for x in t), max(x.group_size for x in t),
    )  # fmt: skip
    hp = HParams(
        *(cat(lambda r, f=f: getattr(r.hparams, f)) for f in BUILTIN_FIELDS),
        user={n: cat(lambda r, n=n: r.hparams.user[n]) for n in results[0].hparams.user},
    )
    sq = None  # the metric's mean squares (an MSE's SE), where every part measured them
    if all(r.best_val_sq is not None for r in results):
        sq = cat(lambda r: r.best_val_sq)
    return PopulationResult(
        member_ids=cat(lambda r: r.member_ids),
        hparams=hp,
        alive=cat(lambda r: r.alive),
        diverged_at=cat(lambda r: r.diverged_at),
        stopped_at=cat(lambda r: r.stopped_at),
        initial_loss=cat(lambda r: r.initial_loss),
        best_val_acc=cat(lambda r: r.best_val_acc),
        best_step=cat(lambda r: r.best_step),
        final_train_loss=cat(lambda r: r.final_train_loss),
        final_val_loss=cat(lambda r: r.final_val_loss),
        final_val_acc=cat(lambda r: r.final_val_acc),
        final_train_acc=cat(lambda r: r.final_train_acc),
        curves=curves,
        finished=np.asarray(finished, np.int64),
        params=params,
        best_params=best,
        lineage=np.asarray(lineage, np.int64).reshape(-1, 3),
        history=history_rows(np.asarray(history, np.float64), hp),
        timing=timing,
        completed=True,
        checkpoint=None,
        best_val_sq=sq,
    )
