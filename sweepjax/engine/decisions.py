"""The one contract between the host loop and every schedule (:mod:`sweepjax.schedulers`).

A schedule is a :class:`Policy`: its :class:`Plan` says at which ages members are judged
and whether freed slots are refilled; at each judged age the loop measures the arriving
members on the whole validation set and hands them over as a :class:`RungView`; the
policy answers with a :class:`Decision` (continue, stop, copy), and a refilling policy
draws the new members. The engine needs only these types, so it never imports a
scheduling rule.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np

from sweepjax.engine.hparams import HParams


class RungView(NamedTuple):
    """The members judged at one age (rows ``[A]``, in the trainer's slot order).

    A synchronous schedule (halving, Hyperband, PBT) is shown every member still
    training at one of its decision steps (all were born together, so the step is their
    age); ASHA is shown the members that reached one of its rung ages at this block,
    and ``log`` then holds every judgement so far, these ones last."""

    step: int
    rows: np.ndarray  # member rows (positions in the original population)
    val_loss: np.ndarray  # current parameters, whole validation set
    val_acc: np.ndarray
    alive: np.ndarray
    hparams: HParams
    age: int = -1  # the age judged at (-1: ``step``)
    log: RungLog | None = None


class Decision(NamedTuple):
    """What continues: slot ``j`` of the new population takes the state of view position
    ``src[j]``, becomes member row ``rows[j]`` and trains with ``hparams`` row ``j``. A
    view row not in ``rows`` stops; ``rows[j] != view.rows[src[j]]`` is a copy (PBT's
    exploit, with its perturbed values in ``hparams``). A compacting population applies
    it as one gather on the member axis; a refilling one frees the stopped members'
    slots and refills them with new members (:meth:`Policy.draw`).

    ``next_best`` (optional, ``[K, G]``): view positions of the configs the policy would
    keep next, best first, one config's ``G`` members (its replicas) per row. At a
    compacting run's last decision they ride in the survivors' program's spare rows
    (:func:`ride`): rows the program computes whether they hold a member or padding."""

    src: np.ndarray
    rows: np.ndarray
    hparams: HParams
    next_best: np.ndarray | None = None


class Plan(NamedTuple):
    """How a policy wants the population trained.

    ``ages``: the ages (steps trained, each below the run's length) judged at.
    ``block``: steps per compiled call (0: a call ends at each evaluation, chunk and
    judged age). ``refills``: the population keeps a fixed width, a stopped or diverged
    member's slot takes a new member at once and members are born at different steps
    (ASHA); otherwise every member is born at step 0 and the survivors are compacted.
    ``group``: a refilling population's members per config (replicas or folds): a
    config's members are born together in adjacent slots, judged together, and their
    slots are freed together once every one of them has ended.
    """

    ages: tuple[int, ...]
    block: int = 0
    refills: bool = False
    group: int = 1


class Policy(Protocol):
    """A schedule as an ask/tell policy: the one protocol between the host loop
    (:mod:`sweepjax.engine.loop`) and every schedule (:mod:`sweepjax.schedulers`).

    A policy may also set ``pure_decide = True`` when its ``decide`` has no side
    effects: :mod:`sweepjax.engine.prefetch` then asks it about a made-up rung, one
    block ahead, to compile the survivors' program early."""

    name: str

    def plan(self) -> Plan: ...

    def decide(self, view: RungView) -> Decision:
        """Who continues after the members of ``view`` reached a judged age."""

    def draw(self, ids: np.ndarray, log: RungLog, hparams: HParams | None) -> HParams:
        """Hyperparameters of new members ``ids`` for freed slots (``plan().refills``
        only; ``hparams``: every member's so far, by row; None before the first)."""

    def corners(self) -> HParams:
        """Members at the box's extremes, so the compiled program covers every draw
        (``plan().refills`` only)."""


class Full:
    """Every member trains the whole run: no judged age (the ``full`` schedule)."""

    name = "full"

    def plan(self) -> Plan:
        return Plan(())

    def decide(self, view: RungView) -> Decision:  # never called: no judged age
        keep = np.arange(len(view.rows))
        return Decision(keep, np.asarray(view.rows), view.hparams)


def ride(decision: Decision, view: RungView, spare: int) -> Decision:
    """``decision`` with as many of its ``next_best`` configs as ``spare`` program rows
    hold, whole configs only, added in the population's order (stable slots).

    Used at a compacting run's last decision: the survivors train to the end in at least
    the power of two of rows they fill (:func:`sweepjax.engine.active.ride_rows`: the
    program they move to, or a larger one they keep when a smaller one does not pay for
    its compile), and its spare rows are computed as padding either way. The next-best
    members train there for nothing, and the winner is chosen among more members trained
    the whole run: the softmax's default ``coarse`` finishes 16 members instead of 10,
    its ``fine`` 8 instead of 5, in the same programs. A decision that copies members
    (PBT) or names no ``next_best`` is returned as it is."""
    nb = decision.next_best
    if nb is None or spare <= 0 or not np.size(nb):
        return decision
    nb = np.asarray(nb, np.int64).reshape(len(nb), -1)
    take = nb[: spare // nb.shape[1]].reshape(-1)
    src = np.asarray(decision.src, np.int64)
    if not len(take) or not np.array_equal(np.asarray(view.rows)[src], decision.rows):
        return decision
    pos = np.sort(np.concatenate([src, take]))
    return Decision(pos, np.asarray(view.rows)[pos], view.hparams.take(pos))


def ask_ahead(policy, age: int, rows, hparams: HParams) -> Decision | None:
    """What ``policy`` would decide at ``age`` if every member ``rows`` were alive,
    ranked in row order: a made-up rung. Only a policy that says its ``decide`` has no
    side effects (``pure_decide``: the built-in halving, Hyperband, PBT) is asked, and its
    answer's size does not depend on the scores; None for any other, or if it fails
    (a guess gone wrong must not stop a run)."""
    if not getattr(policy, "pure_decide", False):
        return None
    rows = np.asarray(rows, np.int64)
    a = len(rows)
    scores = np.linspace(1.0, 0.0, a, dtype=np.float32)
    view = RungView(age, rows, np.zeros(a, np.float32), scores, np.ones(a, bool), hparams)
    try:
        return policy.decide(view)
    except Exception:  # noqa: BLE001
        return None


# The rung a diverged member is logged at: no decision is made there (every decision reads
# one rung), but the draws' model reads these entries as evidence that the region is bad.
DIVERGED_RUNG = -1


class RungLog(NamedTuple):
    """Every rung judgement so far, one entry per (member, rung), in the order made,
    and every finished member's final numbers (``rung`` = the run's length ``R``; no
    decision is made there, the draws model them).

    ``rung`` is the age (steps trained) judged at; ``val_loss`` / ``val_acc`` the
    member's current parameters on the whole validation set (``n_val`` rows).
    """

    rung: np.ndarray  # int64 [N]
    row: np.ndarray  # int64 [N] member row
    val_loss: np.ndarray  # float64 [N]
    val_acc: np.ndarray  # float64 [N]
    alive: np.ndarray  # bool [N]
    n_val: int

    @classmethod
    def empty(cls, n_val: int) -> RungLog:
        z = np.zeros(0)
        return cls(z.astype(np.int64), z.astype(np.int64), z, z, z.astype(bool), int(n_val))

    def extend(self, rung: int, rows, val_loss, val_acc, alive) -> RungLog:
        n = len(rows)
        return RungLog(
            np.concatenate([self.rung, np.full(n, rung, np.int64)]),
            np.concatenate([self.row, np.asarray(rows, np.int64)]),
            np.concatenate([self.val_loss, np.asarray(val_loss, np.float64)]),
            np.concatenate([self.val_acc, np.asarray(val_acc, np.float64)]),
            np.concatenate([self.alive, np.asarray(alive, bool)]),
            self.n_val,
        )

    def as_array(self) -> np.ndarray:
        """``[N, 5]`` float64 (rung, row, loss, acc, alive): the checkpoint's form."""
        cols = (self.rung, self.row, self.val_loss, self.val_acc, self.alive)
        return np.stack([np.asarray(c, np.float64) for c in cols], axis=1).reshape(-1, 5)

    @classmethod
    def from_array(cls, a: np.ndarray, n_val: int) -> RungLog:
        a = np.asarray(a, np.float64).reshape(-1, 5)
        return cls(
            a[:, 0].astype(np.int64),
            a[:, 1].astype(np.int64),
            a[:, 2].copy(),
            a[:, 3].copy(),
            a[:, 4].astype(bool),
            int(n_val),
        )
