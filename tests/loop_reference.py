"""Small runs of every schedule on the bundled sample, reduced to the numbers a refactor of
the host loop must leave bit for bit the same (``tests/fixtures/loop_reference.npz``).

The fixture was written by the code before the one-loop refactor (issue 26), from
``/work/main`` at 8f41919::

  XLA_FLAGS=--xla_backend_optimization_level=0 PYTHONPATH=/work/main \
    python tests/loop_reference.py tests/fixtures/loop_reference.npz

(the XLA flag is the one tests/conftest.py sets: the programs must be compiled alike).

``tests/test_loop_reference.py`` runs the same configs with the current code and compares.
"""

from __future__ import annotations

import hashlib
import sys

import jax
import numpy as np

from sweepjax.budget import Budget
from sweepjax.config import DataConfig, ModelConfig, Range, SearchSpace, TrainConfig
from sweepjax.data import load_dataset
from sweepjax.data.folds import pool
from sweepjax.engine import train_population
from sweepjax.engine.hparams import HParams
from sweepjax.schedulers import rules
from sweepjax.schedulers.asha import ASHA

SOFTMAX = ModelConfig(kind="softmax")
# The fixture's minibatches were drawn with threefry, the only draw then (the hash draw,
# sweepjax.engine.minibatch, came later): CFG names it so the runs stay comparable.
CFG = TrainConfig(
    steps=54, batch_size=32, eval_every=9, chunk_steps=27, seed=1, minibatch="threefry"
)
SPACE = SearchSpace(lr=Range(1e-3, 30.0), l2=Range(1e-6, 1e-1))
# The jax/jaxlib the fixture was recorded with: bit-identity is a claim about one XLA
# (another version rounds differently: at the dependency floors, jax 0.6.1, losses move
# in the 7th digit).
MADE_WITH_JAX = "0.10.2"

CASES = ("full", "halving", "hyperband", "pbt", "halving_folds", "pbt_replicas", "asha")


def dataset():
    return load_dataset(DataConfig(dataset="mnist-sample", seed=0))


def _hp(m: int) -> HParams:
    rng = np.random.default_rng(m)
    return HParams.create(lr=np.geomspace(1e-3, 20.0, m), l2=10 ** rng.uniform(-6, -2, m))


def _grouped(m: int, group: int):
    """``m`` configs as ``group`` adjacent replicas (the runner's layout)."""
    rows = np.repeat(np.arange(m), group)
    return _hp(m).take(rows), (rows * group + np.tile(np.arange(group), m)).astype(np.int64)


def run(case: str, ds):
    """The result of ``case`` (one of :data:`CASES`)."""
    if case == "asha":
        from sweepjax.engine import train_refilling

        sched = ASHA(SPACE, CFG.steps, eta=3, rungs=2, seed=0)
        return train_refilling(
            ds, SOFTMAX, CFG, sched, width=6, budget=Budget(member_steps=6 * 6 * 15)
        )
    if case == "halving_folds":
        hp, ids = _grouped(4, 3)
        train_ds, folds = pool(ds, 3, 0)
        sched = rules.make("halving", num_members=4, total=CFG.steps, space=SPACE, seed=0,
                           rungs=1, replicas=3)  # fmt: skip
        return train_population(
            train_ds, hp, SOFTMAX, CFG, member_ids=ids, scheduler=sched, folds=folds
        )
    if case == "pbt_replicas":
        hp, ids = _grouped(4, 2)
        sched = rules.make("pbt", num_members=4, total=CFG.steps, space=SPACE, seed=0,
                           interval=18, replicas=2)  # fmt: skip
        return train_population(ds, hp, SOFTMAX, CFG, member_ids=ids, scheduler=sched)
    m = 12 if case == "hyperband" else 9
    sched = rules.make(case, num_members=m, total=CFG.steps, space=SPACE, seed=0, rungs=2,
                       interval=18)  # fmt: skip
    return train_population(ds, _hp(m), SOFTMAX, CFG, scheduler=sched)


def _digest(tree) -> str:
    h = hashlib.sha256()
    for leaf in jax.tree.leaves(tree):
        h.update(np.ascontiguousarray(np.asarray(leaf)).tobytes())
    return h.hexdigest()


def summary(res) -> dict[str, np.ndarray]:
    """The numbers compared (bit for bit; the final validation loss to the last bit)."""
    status = np.array([{"ok": 0, "stopped": 1, "diverged": 2}[s] for s in res.status])
    out = {
        "best_val_acc": res.best_val_acc,
        "final_val_loss": res.final_val_loss,
        "best_step": res.best_step,
        "status": status,
        "stopped_at": res.stopped_at,
        "lr": res.hparams.lr,
        "curve_step": res.curves.step,
        "curves": np.array(_digest(res.curves)),  # every metric of every member
        "finished": res.finished,
        "lineage": res.lineage,
        "history": res.history,
        "params": np.array(_digest(res.params)),
        "best_params": np.array(_digest(res.best_params)),
    }
    if res.progress is not None:
        out["progress"] = res.progress[:, 1:]  # the seconds differ run to run
    return out


def main(path: str) -> None:
    ds = dataset()
    out = {}
    for case in CASES:
        for k, v in summary(run(case, ds)).items():
            out[f"{case}/{k}"] = v
    np.savez_compressed(path, **out)


if __name__ == "__main__":
    main(sys.argv[1])
