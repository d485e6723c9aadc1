"""Refit: retrain the chosen hyperparameters on train + validation, score on the test set.

Once the search has chosen the member's hyperparameters (lr, l2, lr_decay, width,
dropout, init scale, momentum) and a number of steps, the validation set has done its
job; training the final model on it too uses every labelled example (scikit-learn's
``refit=True``). The run is one member of the ordinary population
program, so it is the same computation that produced the winner, only on more data.

Steps scale with the data: the winner's best checkpoint came after ``best_step`` steps
on ``n_train`` examples, i.e. ``best_step * batch / n_train`` epochs; the refit keeps the
epochs, ``round(best_step * (n_train + n_val) / n_train)`` steps, and its final
parameters are scored (there is no validation set left to pick a checkpoint with).

The test set is read exactly once, to score the final parameters; the training run gets
a copy of the data whose test arrays are NaN.

:func:`refit_member` is the run; :func:`refit_winner` is what a flow calls after a sweep:
refit its winner, store the test accuracy, say it.
"""

from __future__ import annotations

import dataclasses
import time
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data import Dataset
from sweepjax.engine import accuracy, member_params, train_population
from sweepjax.engine.hparams import HParams
from sweepjax.engine.setup import task_of
from sweepjax.results.records import MemberRecord, SweepResult

if TYPE_CHECKING:  # annotations of refit_winner only; the flows import this module
    from sweepjax.flows.runner import Callbacks
    from sweepjax.flows.sweep_config import SweepConfig
    from sweepjax.store.db import Store


class Refit(NamedTuple):
    """The refit of one member: ``steps`` trained on ``n_train + n_val`` examples, its
    final parameters' ``test_acc`` (NaN when the run diverged)."""

    steps: int
    test_acc: float
    params: object


def refit_steps(best_step: int, n_train: int, n_val: int) -> int:
    """Steps on train + validation that keep the winner's epochs:
    ``round(best_step * (n_train + n_val) / n_train)``, at least 1.

    Example::

      refit_steps(300, 3600, 400)  # 333
    """
    return max(1, int(round(best_step * (n_train + n_val) / n_train)))


def train_plus_val(ds: Dataset) -> Dataset:
    """``ds`` with train + validation as its training set and the test set blanked (NaN)
    so the run cannot read it.

    The trainer still evaluates a validation set, which the refit ignores (it keeps the
    final parameters). It is the sweep's own, of the same shape, so the sweep's compiled
    evaluation program serves it: a 64-row stand-in compiled a program of its own, 0.4 s
    of a cold refit's 4.5 (softmax, Fashion-MNIST, 2-core CPU)."""
    x = np.concatenate([np.asarray(ds.x_train), np.asarray(ds.x_val)])
    y = np.concatenate([np.asarray(ds.y_train), np.asarray(ds.y_val)])
    return ds._replace(
        x_train=x,
        y_train=y,
        x_test=np.full_like(np.asarray(ds.x_test), np.nan),
        info=ds.info._replace(n_train=len(y)),
    )


def refit_member(
    ds: Dataset,
    member: MemberRecord,
    model: ModelConfig,
    train: TrainConfig,
) -> Refit:
    """Retrain ``member``'s hyperparameters on ``ds``'s train + validation examples for
    :func:`refit_steps` of its best step, then score the final parameters on the test set.

    ``train`` is the sweep's training config (optimizer, batch, seed); its steps are
    replaced, and the run uses no scheduler.
    """
    steps = refit_steps(member.best_step, ds.info.n_train, ds.info.n_val)
    big = train_plus_val(ds)
    cfg = dataclasses.replace(train, steps=steps, chunk_steps=steps, eval_every=None)
    hp = HParams.of([member])  # every axis: its width, dropout, init scale, momentum
    res = train_population(big, hp, model, cfg, member_ids=np.array([member.id]))
    if not bool(res.alive[0]) or len(res.finished) == 0:
        return Refit(steps, float("nan"), None)
    params = member_params(res, 0, best=False)
    test = accuracy(
        params, model, ds.num_classes, ds.x_test, ds.y_test, ds.info.input_shape,
        task_of(ds, train),
    )  # fmt: skip
    return Refit(steps, float(test), params)


def refit_winner(
    result: SweepResult, cfg: SweepConfig, ds: Dataset, store: Store, cb: Callbacks
) -> SweepResult:
    """Retrain ``result``'s winner on train + validation (:func:`refit_member`), store
    and return the result with ``winner.refit_test_acc`` / ``refit_steps`` and the
    refit's wall time (compile, training, the test score) as ``timing.refit_s``."""
    w = result.winner
    if w is None:
        return result
    m = next(m for m in result.members if m.id == w.id)
    t0 = time.perf_counter()
    own = cfg.member_config(m.id)  # its optimizer, activation, width (categorical axes)
    r = refit_member(ds, m, own.model, own.train)
    # The refit is training the user asked for: counted, and kept apart from train_s so
    # the sweep's own throughput stays the sweep's (a diverged refit took its time too).
    result.timing = dataclasses.replace(result.timing, refit_s=time.perf_counter() - t0)
    store.set_timing(result.sweep_id, result.timing.as_dict())
    if not np.isfinite(r.test_acc):
        cb.say(f"note: the refit of member {m.id} on train + validation diverged; no refit")
        return result
    store.set_refit(result.sweep_id, r.steps, r.test_acc)
    early = f"{w.test_acc:.4f}" if w.test_acc is not None else "n/a: it did not finish"
    cb.say(
        f"refit: member {m.id} retrained on train + validation for {r.steps} steps: "
        f"test acc {r.test_acc:.4f} (early-stopped model: {early})"
    )
    result.winner = dataclasses.replace(w, refit_test_acc=r.test_acc, refit_steps=r.steps)
    return result
