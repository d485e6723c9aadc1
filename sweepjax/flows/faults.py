"""What a sweep checks before it writes, and how it ends on a fault: room on the disk
for its checkpoints (:func:`check_room`), a free Optuna study name, and the one line a
full disk ends it with, the sweep kept interrupted for ``resume`` (:func:`kept`)."""

from __future__ import annotations

import sqlite3
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from sweepjax.data import Dataset
from sweepjax.errors import ConfigError, DiskFullError, StoreError, SweepjaxError, size_text
from sweepjax.flows.sweep_config import SweepConfig
from sweepjax.store import space
from sweepjax.store.db import Store

# A checkpoint holds per member its parameters, its best parameters and the optimizer's
# slots (measured: 2.00x the parameters' bytes for sgd, 4.00x for adam).
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}
# While one checkpoint replaces another the disk holds both (the new one in the WAL,
# the old one's pages in the database) and their pages' overhead: measured 2.2x one
# checkpoint at the peak of a 64-member sweep on a tmpfs.
CHECKPOINT_DISK_FACTOR = 2.25


def checkpoint_bytes(cfg: SweepConfig, ds: Dataset, num_members: int) -> tuple[int, str]:
    """``(bytes, how)``: about what one checkpoint of ``num_members`` members takes,
    ``members x params x copies x 4 bytes`` plus the curves (5 float32 series per member
    and evaluation), and that product in words."""
    from sweepjax.engine.setup import num_params

    p = num_params(cfg.model, ds.num_features, ds.num_classes, ds.info.input_shape)
    copies = 2 + OPTIMIZER_SLOTS.get(cfg.train.optimizer, 2)
    evals = cfg.train.steps // cfg.train.resolved_eval_every + 1
    n = num_members * (p * copies * 4 + evals * 5 * 4)
    return n, f"{num_members} members x {p:,} params x {copies} copies x 4 bytes"


def check_room(store: Store, cfg: SweepConfig, ds: Dataset, num_members: int, sid=None) -> None:
    """Refuse a sweep whose checkpoints would not fit the disk holding the store, before
    anything is written (a resumed sweep counts its stored checkpoint as room)."""

    room = space.free_bytes(store.path)
    if room is None:
        return
    one, how = checkpoint_bytes(cfg, ds, num_members)
    need = int(CHECKPOINT_DISK_FACTOR * one)
    page = store.conn.execute("PRAGMA page_size").fetchone()[0]
    room += store.conn.execute("PRAGMA freelist_count").fetchone()[0] * page
    if sid is not None:
        row = store.conn.execute(
            "SELECT LENGTH(blob) FROM checkpoints WHERE sweep=?", (sid,)
        ).fetchone()
        room += row[0] if row else 0
    if need > room:
        raise StoreError(
            f"this sweep's checkpoints need about {size_text(need)} on the disk holding "
            f"store {store.shown_path} ({how}, {CHECKPOINT_DISK_FACTOR:g}x that while one "
            f"replaces the other), {size_text(room)} free; free space, pass another "
            "`store`, or train fewer `trials`"
        )


def check_new_study(url: str, study: str) -> None:
    """Refuse before the sweep's row exists when its Optuna study would be a duplicate."""
    from sweepjax.store.optuna_export import import_optuna

    optuna = import_optuna()
    if study in optuna.study.get_all_study_names(storage=url):
        raise ConfigError(
            f"study {study!r} already exists in {url}; remove it or pass another "
            "`optuna_storage` (or a new `name`)"
        )


def mark_interrupted(store: Store, sid: str) -> None:
    """Mark ``sid`` interrupted if the store can still be written. On a full disk even
    this small write may fail: the row then says ``running`` with this process's pid,
    which ``resume`` (and ``list`` once the process is gone) take as interrupted.

    Called while an error is in flight: an unexpected one (a bug, a device out of
    memory; not our one-line errors, not Ctrl-C) gets a note, so its traceback ends by
    saying that the sweep is kept and how to continue it, instead of leaving an
    ``interrupted`` row nothing explained."""
    with suppress(StoreError, sqlite3.Error):
        store.mark_interrupted(sid)
    e = sys.exc_info()[1]
    if isinstance(e, Exception) and not isinstance(e, SweepjaxError):
        with suppress(StoreError, sqlite3.Error):
            row = store.sweep_row(sid)
            e.add_note(
                f"sweepjax: sweep {sid} is kept, interrupted at step {row.steps_done}/"
                f"{row.total_steps} (its last checkpoint); once the cause is fixed, the same "
                "command with `resume` continues it"
            )


@contextmanager
def kept_on_full_disk(store: Store, created: list[str]) -> Iterator[None]:
    """A full disk inside: once the sweep ``created[0]`` exists, its error says how to
    continue it (:func:`kept`)."""
    try:
        yield
    except DiskFullError as e:
        if not created:
            raise
        raise kept(store, created[0], e) from None


def kept(store: Store, sid: str, e: DiskFullError) -> DiskFullError:
    """``e`` with the next step for sweep ``sid``: marked interrupted (if the disk allows)
    at its last stored checkpoint, ``resume`` continues it once space is freed."""
    row = store.sweep_row(sid)  # reads still work on a full disk
    if row.status == "finished":
        return e.with_hint(f"sweep {sid}'s results are stored; free space before the next command")
    mark_interrupted(store, sid)
    return e.with_hint(
        f"sweep {sid} is kept, interrupted at step {row.steps_done}/{row.total_steps} "
        "(its last checkpoint): free space, then rerun the same command with `resume`"
    )
