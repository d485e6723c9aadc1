"""``train_population``: every member of a population trained at once, born together.

It sets up the one host loop (:mod:`sweepjax.engine.loop`) for a compacting population:
at a policy's judged steps the active members are evaluated on the whole validation
set, ranked, and the survivors (or PBT's copies) are gathered on the member axis into a
smaller population, so a stopped member costs nothing afterwards. Population sizes after
a decision are bucketed to powers of two, so only a few shapes ever compile.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.data.folds import Folds
from sweepjax.engine import active, aot, group_width, loop, prefetch, program
from sweepjax.engine.compact import boundaries
from sweepjax.engine.curves import Checkpoint, Curves, ScheduleState
from sweepjax.engine.decisions import Full, Policy, RungLog
from sweepjax.engine.distributed import SINGLE, Placement
from sweepjax.engine.hparams import HParams
from sweepjax.engine.keys import root_bits
from sweepjax.engine.member import Task, loss_and_values
from sweepjax.engine.outcome import ChunkReport, PopulationResult
from sweepjax.engine.setup import group_size, init_states, static
from sweepjax.engine.slots import Clock, Population, Run
from sweepjax.metric import ACCURACY
from sweepjax.models import build_network


def train_population(
    dataset: Dataset,
    hparams: HParams,
    model_cfg: ModelConfig,
    config: TrainConfig,
    *,
    member_ids=None,
    scheduler: Policy | None = None,
    on_chunk: Callable[[ChunkReport], bool | None] | None = None,
    resume: Checkpoint | None = None,
    placement: Placement | None = None,
    folds: Folds | None = None,
) -> PopulationResult:
    """Train every member of ``hparams`` at once.

    Args:
      dataset: preprocessed splits (see :func:`sweepjax.data.load_dataset`).
      hparams: ``[M]`` per-member values; new values never recompile.
      model_cfg, config: static settings shared by all members.
      member_ids: stable ids ``[M]`` used to derive each member's initial weights
        (default ``arange(M)``).
      scheduler: the policy that decides between chunks which members continue
        (:mod:`sweepjax.schedulers.rules`); None trains every member the whole run.
        A refilling policy (ASHA) trains with :func:`sweepjax.engine.refill.train_refilling`.
      on_chunk: called after every chunk with a :class:`ChunkReport`. Returning
        ``False`` stops training at that boundary.
      resume: a checkpoint from an earlier, interrupted call with the same arguments
        (its ``states``: a :class:`~sweepjax.engine.slots.Carry`).
      placement: devices to spread the members over (:func:`sweepjax.engine.distributed.placement`);
        default: one device. Results match the one-device run up to float rounding.
      folds: K-fold cross-validation (:func:`sweepjax.data.folds.pool`): member ``i`` holds
        out fold ``member_ids[i] % k``: it trains on the shared minibatch with that
        fold's rows weighted 0 and is evaluated on that fold's evaluation rows only.

    Example::

      hp = HParams.create(lr=np.geomspace(1e-3, 1, 64), l2=1e-4)
      res = train_population(ds, hp, ModelConfig(), TrainConfig(steps=500))
      res.best_val_acc.argmax()
    """
    m = hparams.num_members
    ids = np.arange(m) if member_ids is None else np.asarray(member_ids)
    if ids.shape != (m,):
        raise ValueError(f"member_ids must have shape ({m},), got {ids.shape}")
    policy = Full() if scheduler is None else scheduler
    if policy.plan().refills:
        raise ValueError(f"{policy.name} refills its slots: train it with `train_refilling`")
    where = SINGLE if placement is None else placement
    gsize = group_size(
        m, model_cfg, config, dataset.num_features, dataset.num_classes, dataset.info.input_shape
    )
    gsize = active.round_up(gsize, where.num_devices)
    setup = _setup(dataset, config, policy, where, folds, ids, model_cfg, hparams)
    # A resumed run keeps the program size it was checkpointed at (bit for bit).
    if resume is None or not resume.size:
        gsize = group_width.width(policy, hparams, m, gsize, setup.static, where)
    if resume is not None:
        step, host_states = resume.step, resume.states.slots  # a slots.Carry
        curves, sched = resume.curves, resume.schedule
    else:
        step, curves, sched = 0, Curves.empty(m), ScheduleState.start(hparams)
        prefetch.start_first(setup, hparams, m, gsize)  # compiles while weights are drawn
        host_states = init_states(dataset, hparams, model_cfg, config, ids)
    # A resumed population continues in the program size it had (results match bit for bit).
    size0 = resume.size if resume is not None and resume.size else None
    act = active.place(host_states, len(sched.active), gsize, where, size0)
    del host_states
    setup = setup._replace(sizes=(math.ceil(len(sched.active) / gsize), gsize))
    a = sched.active
    pop = Population(step, act, a, np.zeros(len(a), np.int64), sched.hparams.take(a), sched,
                     curves, RungLog.empty(int(dataset.x_val.shape[0])), None)  # fmt: skip
    return loop.run(setup, pop, Clock(), on_chunk)


def _setup(dataset, config, policy, where, folds, ids, model_cfg, hparams) -> Run:
    """The fixed part of a compacting run."""
    plan = policy.plan()
    total = config.steps
    ends = boundaries(total, config.resolved_eval_every, config.resolved_chunk_steps, plan.ages)
    init_bits, key_bits = root_bits(config.seed)
    # Each member row's held-out fold (a row keeps it through a policy's gathers: PBT
    # copies replica r of a config into replica r of another).
    fold_of = (ids % folds.k if folds is not None else np.full(len(ids), -1)).astype(np.int32)
    return Run(
        dataset=dataset,
        policy=policy,
        plan=plan,
        total=total,
        ends=tuple(ends),
        data=program.device_data(dataset, config, where, folds),
        static=static(dataset, model_cfg, config, folds is not None, hparams),
        where=where,
        key_bits=key_bits,
        init_bits=init_bits,
        fold_of=fold_of,
        member_ids=ids,
        sizes=(1, 1),
    )


def member_params(result: PopulationResult, i: int, *, best: bool = True):
    """Parameters of member row ``i`` (no member axis): at its best validation accuracy
    (default: the best-checkpoint choice used for test accuracy), or its final ones.
    Only members that trained to the end have them (``result.finished``)."""
    pos = np.flatnonzero(np.asarray(result.finished) == i)
    if not len(pos):
        raise ValueError(f"member row {i} did not train to the end: no parameters kept")
    tree = result.best_params if best else result.params
    if isinstance(tree, list):  # one tree per finished member (a choice sweep's parts)
        return tree[int(pos[0])]
    return jax.tree.map(lambda a: np.asarray(a)[int(pos[0])], tree)


def accuracy(
    params,
    model_cfg: ModelConfig,
    num_classes: int,
    x: np.ndarray,
    y: np.ndarray,
    input_shape=None,
    task: Task | None = None,
) -> float:
    """Accuracy (or ``task``'s metric, in the targets' units) of ONE member's ``params``
    on ``(x, y)`` (e.g. a winner on the test set); ``input_shape``: the dataset's example
    shape (a custom model's input)."""
    net = build_network(model_cfg, num_classes, input_shape=input_shape)
    fn = functools.partial(_logits_t, net=net)
    logits_t = aot.call("logits", fn, (params, np.asarray(x)), net)
    if task is not None and (task.target is not None or task.metric is not ACCURACY):
        return float(jnp.mean(loss_and_values(net, logits_t, jnp.asarray(y), task)[1]))
    # On the host: eager jax.numpy calls would each be a program of their own. The
    # count / n in float32, as jnp.mean computes it.
    hits = np.count_nonzero(np.argmax(np.asarray(logits_t), 0) == np.asarray(y))
    return float(np.float32(hits) / np.float32(len(y)))


def _logits_t(params, x, net):
    return net.logits_t(params, x.T, None)
