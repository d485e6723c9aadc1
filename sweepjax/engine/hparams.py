"""Swept hyperparameters: one row per member, held as arrays so they can be traced.

Changing any value here never recompiles the training program; only the number of
members (the leading axis) is part of the program's shape.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

# The momentum coefficient when it is not swept (optax's SGD-momentum and Adam b1 default).
DEFAULT_MOMENTUM = 0.9
# The per-member axes beyond (lr, l2) and their values when not swept.
FIXED_DEFAULTS = {
    "lr_decay": 1.0,
    "hidden": np.inf,
    "dropout": 0.0,
    "init_scale": 1.0,
    "momentum": DEFAULT_MOMENTUM,
}


class HParams(NamedTuple):
    """Per-member hyperparameters, each of shape ``[num_members]`` float32.

    Attributes:
      lr: base learning rate.
      l2: L2 strength lambda; the loss adds ``l2 * sum(w**2) / 2`` over weight matrices.
      lr_decay: the learning-rate multiplier reached at the end of the run (cosine from 1;
        1.0 = constant rate).
      hidden: the member's own hidden width (MLP): units ``j >= hidden`` of the compiled
        (widest) network are masked. ``inf`` = the network's full width.
      dropout: inverted-dropout rate of the hidden units at training steps (0 = none).
      init_scale: multiplier of the initial weight matrices (1 = the model's default
        initialisation: He for hidden layers, N(0, 1e-3) for the read-out).
      momentum: the optimizer's momentum coefficient (``momentum``: the trace decay;
        ``adam``: ``b1``; unused by ``sgd``).
      user: the user's own hyperparameters (``hparams``), ``{name: [num_members]}``
        (a pytree leaf each, so the program maps and traces them like ``lr``; empty when
        none is declared, which leaves the compiled program as it was).

    Example::

      hp = HParams.create(lr=[1e-2, 1e-1], l2=[1e-4, 1e-3])
      hp.num_members  # 2
    """

    lr: np.ndarray
    l2: np.ndarray
    lr_decay: np.ndarray
    hidden: np.ndarray
    dropout: np.ndarray
    init_scale: np.ndarray
    momentum: np.ndarray
    user: dict = {}  # noqa: RUF012 (never mutated: every method builds a new dict)

    @classmethod
    def create(
        cls,
        lr,
        l2,
        lr_decay=None,
        hidden=None,
        dropout=None,
        init_scale=None,
        momentum=None,
        user=None,
    ) -> HParams:
        lr = np.atleast_1d(np.asarray(lr, dtype=np.float32))

        def col(v, default):
            v = default if v is None else v
            return np.broadcast_to(np.asarray(v, dtype=np.float32), lr.shape).copy()

        given = dict(lr_decay=lr_decay, hidden=hidden, dropout=dropout)
        given.update(init_scale=init_scale, momentum=momentum)
        return cls(
            lr=lr,
            l2=col(l2, 0.0),
            **{k: col(given[k], d) for k, d in FIXED_DEFAULTS.items()},
            user={k: col(v, np.nan) for k, v in sorted((user or {}).items())},
        )

    @classmethod
    def of(cls, records) -> HParams:
        """One row per record with attributes named as the fields (a
        :class:`~sweepjax.results.records.MemberRecord`); a missing or None value (a softmax
        member's width, sgd's momentum) takes its default. The member again, every axis
        included (refit)."""

        def col(name, default):
            vals = [getattr(r, name, None) for r in records]
            return [default if v is None else v for v in vals]

        names = sorted({n for r in records for n in (getattr(r, "hparams", None) or {})})
        return cls.create(
            lr=col("lr", np.nan),
            l2=col("l2", 0.0),
            **{name: col(name, d) for name, d in FIXED_DEFAULTS.items()},
            user={n: [r.hparams.get(n, np.nan) for r in records] for n in names},
        )

    @property
    def num_members(self) -> int:
        return int(np.shape(self.lr)[0])

    def take(self, idx) -> HParams:
        """Rows ``idx`` of every field (a sub-population)."""
        return self.map(lambda f: np.asarray(f)[idx])

    def column(self, name: str) -> np.ndarray:
        """The ``[M]`` values of axis ``name``: a built-in field or one of :attr:`user`."""
        return self.user[name] if name in self.user else getattr(self, name)

    def map(self, fn) -> HParams:
        """``fn`` applied to every ``[M]`` column, the user's included."""
        builtin = (fn(f) for f in self[: len(BUILTIN_FIELDS)])
        return HParams(*builtin, user={k: fn(v) for k, v in self.user.items()})

    def as_columns(self) -> dict[str, np.ndarray]:
        """The built-in columns by name (the user's are :attr:`user`)."""
        return {name: np.asarray(getattr(self, name)) for name in BUILTIN_FIELDS}


# The fields holding one built-in axis each (every field but ``user``).
BUILTIN_FIELDS = HParams._fields[:-1]
