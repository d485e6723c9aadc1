"""Which interrupted sweep ``resume`` continues, and why another one cannot be: the
flags, the data, the device count and a still-running process are checked before
anything trains; and its checkpoint, in the one format
(:class:`~sweepjax.engine.slots.Carry`) or the one a compacting sweep wrote before it
(:func:`resumed_part`, for :mod:`sweepjax.flows.runner`)."""

from __future__ import annotations

import dataclasses
import os
import socket
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

from sweepjax.data import Dataset
from sweepjax.engine.curves import Checkpoint
from sweepjax.engine.hparams import HParams
from sweepjax.engine.setup import init_states
from sweepjax.engine.slots import Carry, carry_like, carry_of, refill_like
from sweepjax.errors import ConfigError, StoreError
from sweepjax.flows import anytime, choices
from sweepjax.flows.faults import check_room
from sweepjax.flows.sweep_config import SweepConfig
from sweepjax.store.db import Store


def _config_diff(old: dict, new: dict, prefix: str = "", quote: str = "") -> list[str]:
    """``key: old -> new`` for each differing entry (nested keys dotted; ``quote`` around
    each key, e.g. a backtick for an option the CLI shows as its flag)."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _config_diff(a, b, f"{prefix}{k}.", quote)
        elif a != b:
            out.append(f"{quote}{prefix}{k}{quote}: {a} -> {b}")
    return out


def _drawless(d: dict) -> dict:
    """A stored config without its minibatch draw: a sweep resumes with the draw it
    started with (one stored before the hash draw: threefry), so the draw alone never
    makes the flags differ."""
    return {**d, "train": {k: v for k, v in d["train"].items() if k != "minibatch"}}


def _pid_alive(row) -> bool:
    if row.host != socket.gethostname() or not row.pid or row.pid == os.getpid():
        return False
    try:
        os.kill(row.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def find_resumable(store: Store, cfg: dict, kind: str, name: str | None, sha: str) -> str:
    """The unfinished sweep to continue (see the module docstring), or a ConfigError.
    ``cfg`` is the new sweep's config in its stored form (``SweepConfig.as_dict``)."""
    if name is not None:
        if not store.exists(name):
            raise ConfigError(
                f"no sweep named {name!r} to resume in {store.path}; drop `resume` to start it"
            )
        rows = [store.sweep_row(name)]
        if rows[0].status == "finished":
            raise ConfigError(
                f"sweep {name} already finished; nothing to resume "
                "(drop `resume` and pick a new `name`)"
            )
    else:
        rows = store.unfinished(kind)
        if not rows:
            raise ConfigError(
                f"no interrupted {kind} sweep in {store.path} to resume; "
                "drop `resume` to start a new one"
            )
        # Compared as this version stores them (the typed row's as_dict), so a sweep
        # stored by an older version matches the same flags now (a budget given as
        # "4000 steps" is stored as 4k).
        same = [r for r in rows if _drawless(r.config.as_dict()) == _drawless(cfg)]
        rows = same[:1] or rows[:1]
    row = rows[0]
    old = row.config.as_dict()
    diff = _config_diff(_drawless(old), _drawless(cfg))
    old_spec, new_spec = old.get("spec"), cfg.get("spec")
    if diff and old_spec and new_spec:
        # Name the options that differ (the config's other entries follow from them).
        diff = _config_diff(old_spec, new_spec, quote="`") or diff
    if diff:
        raise ConfigError(
            f"flags differ from interrupted sweep {row.id} ({'; '.join(diff[:3])}); "
            "rerun with its flags, or drop `resume` to start a new sweep"
        )
    if row.dataset.get("sha256") != sha:
        raise ConfigError(
            f"the data differs from sweep {row.id}'s (sha256 changed); "
            "restore it, or drop `resume` to start a new sweep"
        )
    if row.status == "running" and _pid_alive(row):
        raise ConfigError(
            f"sweep {row.id} is still running (pid {row.pid}); wait for it or stop it first"
        )
    return row.id


def load_checkpoint(
    store: Store, sweep_id: str, like: Carry, compacting: bool
) -> Checkpoint | None:
    """The sweep's checkpoint (None: it has none), read against ``like``
    (:func:`~sweepjax.engine.slots.carry_like`). A compacting sweep's checkpoint written
    before the one format holds the member states alone: it is read as such and carried
    on (the rows it holds are its schedule's active ones; a refilling sweep's was a
    :class:`Carry` already). A checkpoint of neither form raises the store's one-line
    error."""
    try:
        return store.load_checkpoint(sweep_id, like)
    except StoreError:
        if not compacting:
            raise
        old: Any = store.load_checkpoint(sweep_id, like.slots)
        if old is None:
            return None
        return old._replace(states=carry_of(old.states, old.schedule.active))


class Members(NamedTuple):
    """The population a sweep trains: ``hp`` / ``ids`` per member row, from
    ``num_configs`` sampled configs. ASHA draws its members as slots free up: ``hp`` and
    ``ids`` then stand for its ``width`` slots (0: a population born together)."""

    hp: HParams
    ids: np.ndarray
    num_configs: int
    width: int = 0


class Part(NamedTuple):
    """This part of a sweep: its id, the checkpoint it continues from (None: step 0),
    and the timing of its earlier parts and of this one so far."""

    sid: str
    ckpt: Checkpoint | None
    prior: dict
    run: dict


def resumed_part(
    cfg: SweepConfig,
    ds: Dataset,
    store: Store,
    say: Callable[[str], None],
    members: Members,
    name: str | None,
    where,
    created: list[str],
) -> tuple[SweepConfig, Members, Part]:
    """The interrupted sweep this one continues (its id appended to ``created``), its
    checkpoint and earlier timing; an ASHA sweep keeps the members' length and width
    it started with."""
    sid = find_resumable(store, cfg.as_dict(), cfg.kind, name, ds.info.sha256)
    created.append(sid)
    stored = store.sweep_row(sid).config
    draw = stored.train.minibatch  # the minibatches it started on
    cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, minibatch=draw))
    if members.width:  # the members' length its budget gave it when it started
        cfg = anytime.with_length(cfg, stored)
    prior = {"compile_s": 0.0, "train_s": 0.0, **store.run_timing(sid)}
    ran_on = prior.get("devices")
    if ran_on is not None and ran_on != where.num_devices:
        # Members split differently over devices round differently: refuse rather
        # than continue to results that are only float-close to an uninterrupted run.
        raise ConfigError(
            f"sweep {sid} ran on {ran_on} device(s), this run has {where.num_devices}; "
            f"resume it with `devices` {ran_on} (results match exactly only then)"
        )
    if cfg.choices:  # the current part's, carrying the parts already finished
        ckpt = choices.load_checkpoint(store, sid, cfg, ds, members.hp, members.ids)
    else:
        if members.width:
            like = refill_like(ds, cfg.model, cfg.train, members.width)
        else:
            like = carry_like(init_states(ds, members.hp, cfg.model, cfg.train, members.ids))
        ckpt = load_checkpoint(store, sid, like, compacting=not members.width)
    check_room(store, cfg, ds, members.hp.num_members, sid)
    if members.width and ckpt is not None:
        members = members._replace(width=ckpt.size)  # results match exactly only then
    store.mark_running(sid)
    at = ckpt.step if ckpt is not None else 0
    say(f"resuming {cfg.kind} sweep {sid} at step {at}/{cfg.train.steps}")
    return cfg, members, Part(sid, ckpt, prior, this_run(where))


def this_run(where) -> dict:
    """The timing record of this part so far."""
    return {"devices": where.num_devices, "partial": True}
