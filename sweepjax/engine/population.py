"""``train_population``: the host loop around the compiled chunk program.

Between chunks (and only there) the host reports progress, hands out checkpoints on
request, and applies a scheduler's decisions: the active members are evaluated on the
whole validation set, ranked, and the survivors (or PBT's copies) are gathered on the
member axis into a smaller population, so a stopped member costs nothing afterwards.
Population sizes after a decision are bucketed to powers of two, so only a few shapes
ever compile.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from sweepjax.config import ModelConfig, TrainConfig
from sweepjax.data.dataset import Dataset
from sweepjax.data.folds import Folds
from sweepjax.engine import active, program
from sweepjax.engine.curves import HISTORY_FIELDS, Checkpoint, Curves, ScheduleState
from sweepjax.engine.decisions import RungView, Scheduler
from sweepjax.engine.distributed import SINGLE, Placement
from sweepjax.engine.hparams import HParams
from sweepjax.engine.member import Static
from sweepjax.engine.outcome import ChunkReport, PopulationResult, Timing
from sweepjax.engine.setup import group_size, init_states, root_keys, static
from sweepjax.models import build_network


def boundaries(total: int, every: int, chunk: int, decisions) -> list[int]:
    """Steps at which a compiled call ends: every ``every`` steps (an evaluation), every
    ``chunk`` steps, at each scheduler decision and at the end of the run."""
    out = set(range(every, total, every)) | set(range(chunk, total, chunk))
    return sorted(out | {d for d in decisions if 0 < d < total} | {total})


def _settle(
    sched: ScheduleState, act: active.Active, data, st: Static, where: Placement, step: int, folds
):
    """Measure the active members on the whole validation set and write their health,
    best and final numbers into the schedule state (before a decision, and at the end).

    The best checkpoint was chosen on the validation subset; measured on the whole set,
    the current parameters may beat it (at the end of an annealed run they often do):
    then they become the member's best. Returns the new state, the current-parameter
    (loss, acc), the mask of members whose current parameters won, and the seconds.
    """
    fold_active = folds[sched.active]
    small = active.small(act, where)
    loss, acc, s1 = active.evaluate(act, "params", data, st, where, fold_active)
    # A member whose subset-best is this very step holds its current parameters as its
    # best checkpoint (record_evaluation copied them): its best accuracy is ``acc``. Only
    # the others' best checkpoints are measured (early in a run, most members are still
    # improving, so this halves a decision's evaluation).
    best_acc, s2 = acc.copy(), 0.0
    stale = np.flatnonzero(small["best_step"] != step)
    if len(stale):
        _, best_acc[stale], s2 = active.evaluate_members(
            act, "best", stale, data, st, where, fold_active
        )
    rows = sched.active
    upd = {
        k: np.array(getattr(sched, k))
        for k in ScheduleState._fields
        if k not in ("active", "hparams", "lineage", "history")
    }
    upd["alive"][rows] = small["alive"]
    upd["diverged_at"][rows] = small["diverged_at"]
    upd["initial_loss"][rows] = small["initial_loss"]
    current_wins = small["alive"] & (acc > best_acc)
    upd["best_step"][rows] = np.where(current_wins, step, small["best_step"])
    # A member that never improved on its subset keeps its initial parameters as "best".
    upd["best_val_acc"][rows] = np.where(current_wins, acc, best_acc)
    upd["val_loss"][rows] = np.where(small["alive"], loss, np.nan)
    upd["val_acc"][rows] = np.where(small["alive"], acc, np.nan)
    return sched._replace(**upd), loss, acc, current_wins, s1 + s2


def _apply(sched: ScheduleState, decision, step: int) -> ScheduleState:
    """Record a scheduler's decision: stops, copies (lineage) and new values (history)."""
    rows_before = sched.active
    stopped = np.setdiff1d(rows_before, decision.rows)
    stopped_at = sched.stopped_at.copy()
    stopped_at[stopped] = step
    hp = HParams(*(np.array(f) for f in sched.hparams))
    lineage, history = [sched.lineage], [sched.history]
    copied = rows_before[decision.src] != decision.rows
    if copied.any():
        lineage.append(
            np.stack(
                [
                    np.full(copied.sum(), step),
                    decision.rows[copied],
                    rows_before[decision.src][copied],
                ],
                axis=1,
            ).astype(np.int64)
        )
    new_vals = np.stack(
        [np.asarray(getattr(decision.hparams, f), np.float32) for f in HISTORY_FIELDS], axis=1
    )
    old_vals = np.stack([np.asarray(getattr(hp, f))[decision.rows] for f in HISTORY_FIELDS], axis=1)
    changed = (new_vals != old_vals).any(axis=1)
    if changed.any():
        history.append(
            np.concatenate(
                [
                    np.stack([np.full(changed.sum(), step), decision.rows[changed]], axis=1),
                    new_vals[changed],
                ],
                axis=1,
            ).astype(np.float64)
        )
    for f, v in zip(hp, decision.hparams, strict=True):
        f[decision.rows] = v
    return sched._replace(
        active=np.asarray(decision.rows, np.int64),
        hparams=hp,
        stopped_at=stopped_at,
        lineage=np.concatenate(lineage),
        history=np.concatenate(history),
    )


# --------------------------------------------------------------------------- the loop
def train_population(
    dataset: Dataset,
    hparams: HParams,
    model_cfg: ModelConfig,
    config: TrainConfig,
    *,
    member_ids=None,
    scheduler: Scheduler | None = None,
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
      scheduler: decides between chunks which members continue
        (:mod:`sweepjax.schedulers.rules`); None trains every member the whole run.
      on_chunk: called after every chunk with a :class:`ChunkReport`. Returning
        ``False`` stops training at that boundary.
      resume: a checkpoint from an earlier, interrupted call with the same arguments.
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
    where = SINGLE if placement is None else placement
    total = config.steps
    decisions = set(scheduler.decision_steps()) if scheduler is not None else set()
    ends = boundaries(total, config.resolved_eval_every, config.resolved_chunk_steps, decisions)
    st = static(dataset, model_cfg, config, folds is not None, hparams)
    _, data_key = root_keys(config.seed)
    key_bits = np.asarray(jax.random.key_data(data_key))
    data = program.device_data(dataset, config, where, folds)
    # Each member row's held-out fold (a row keeps it through a scheduler's gathers: PBT
    # copies replica r of a config into replica r of another).
    fold_of = (ids % folds.k if folds is not None else np.full(m, -1)).astype(np.int32)

    if resume is not None:
        step, host_states, curves, sched = (
            resume.step,
            resume.states,
            resume.curves,
            resume.schedule,
        )
    else:
        step, curves, sched = 0, Curves.empty(m), ScheduleState.start(hparams)
        host_states = init_states(dataset, hparams, model_cfg, config, ids)
    gsize = group_size(
        m, model_cfg, config, dataset.num_features, dataset.num_classes, dataset.info.input_shape
    )
    gsize = active.round_up(gsize, where.num_devices)
    num_groups = math.ceil(len(sched.active) / gsize)
    # A resumed population continues in the program size it had (results match bit for bit).
    size0 = resume.size if resume is not None and resume.size else None
    act = active.place(host_states, len(sched.active), gsize, where, size0)
    del host_states

    compile_s = train_s = eval_s = transfer_s = 0.0
    member_steps = 0
    t_start = time.perf_counter()
    completed = True
    quick_best = float("nan")
    while step < total and len(sched.active):
        n_steps = next(e for e in ends if e > step) - step
        hp_active = sched.hparams.take(sched.active)
        act, met, c, t = active.run_chunk(
            act, hp_active, fold_of[sched.active], data, step, n_steps, total, key_bits, st, where
        )
        compile_s, train_s = compile_s + c, train_s + t
        member_steps += act.n * n_steps
        step += n_steps
        curves = curves.append(np.array([step]), met, sched.active)
        decided = step in decisions and step < total
        if decided:
            sched, loss, acc, _, secs = _settle(sched, act, data, st, where, step, fold_of)
            eval_s += secs
            view = RungView(step, sched.active, loss, acc, sched.alive[sched.active], hp_active)
            decision = scheduler.decide(view)
            sched = _apply(sched, decision, step)
            nxt = min([d for d in decisions if d > step] + [total])
            act = active.gather(act, np.asarray(decision.src, np.int64), gsize, where, nxt - step)
        fin = curves.val_acc[:, -1]  # this block's; NaN where a member diverged or stopped
        if np.isfinite(fin).any():
            quick_best = float(np.fmax(quick_best, np.nanmax(fin)))  # fmax skips the NaN
        if on_chunk is not None:

            def checkpoint(act=act, step=step, curves=curves, sched=sched) -> Checkpoint:
                nonlocal transfer_s
                t0 = time.perf_counter()
                host = jax.tree.map(np.array, active.to_host_rows(act, where))
                transfer_s += time.perf_counter() - t0
                return Checkpoint(step, host, curves, sched, act.size if act.on_device else 0)

            full = sched.best_val_acc
            report = ChunkReport(
                step=step,
                total_steps=total,
                # After a decision (PBT may revive a slot) the settled health; otherwise
                # the block's metrics say it, with no extra transfer from the device.
                alive=int(np.sum(sched.alive[sched.active]))
                if decided
                else int(np.isfinite(fin[sched.active]).sum()),
                active=len(sched.active),
                num_members=m,
                best_val_acc=quick_best,
                best_full_val_acc=float(np.nanmax(full))
                if np.isfinite(full).any()
                else float("nan"),
                elapsed_s=time.perf_counter() - t_start,
                decided=decided,
                state_bytes=active.state_bytes(act),
                checkpoint=checkpoint,
                curves=curves,
                schedule=sched,
            )
            if on_chunk(report) is False and step < total:
                completed = False
                break

    ckpt = None
    wins = None
    if completed and act.n:
        sched, _, _, wins, secs = _settle(sched, act, data, st, where, step, fold_of)
        eval_s += secs
    t0 = time.perf_counter()
    host = jax.tree.map(np.array, active.to_host_rows(act, where))
    transfer_s += time.perf_counter() - t0
    if wins is not None and wins.any():  # the final parameters are these members' best
        best = jax.tree.map(
            lambda b, p: np.where(wins.reshape((-1,) + (1,) * (p.ndim - 1)), p, b),
            host.best.params,
            host.params,
        )
        host = host._replace(best=host.best._replace(params=best))
    if not completed:
        ckpt = Checkpoint(step, host, curves, sched, act.size if act.on_device else 0)
    return PopulationResult.of(
        ids,
        sched,
        curves,
        finished=sched.active,
        params=host.params,
        best_params=host.best.params,
        lineage=sched.lineage,
        timing=Timing(
            compile_s,
            train_s,
            eval_s,
            transfer_s,
            member_steps / train_s if train_s else 0.0,
            num_groups,
            gsize,
        ),
        completed=completed,
        checkpoint=ckpt,
    )


def member_params(result: PopulationResult, i: int, *, best: bool = True):
    """Parameters of member row ``i`` (no member axis): at its best validation accuracy
    (default: the best-checkpoint choice used for test accuracy), or its final ones.
    Only members that trained to the end have them (``result.finished``)."""
    pos = np.flatnonzero(np.asarray(result.finished) == i)
    if not len(pos):
        raise ValueError(f"member row {i} did not train to the end: no parameters kept")
    tree = result.best_params if best else result.params
    return jax.tree.map(lambda a: np.asarray(a)[int(pos[0])], tree)


def accuracy(
    params,
    model_cfg: ModelConfig,
    num_classes: int,
    x: np.ndarray,
    y: np.ndarray,
    input_shape=None,
) -> float:
    """Accuracy of ONE member's ``params`` on ``(x, y)`` (e.g. a winner on the test set);
    ``input_shape``: the dataset's example shape (a custom model's input)."""
    net = build_network(model_cfg, num_classes, input_shape=input_shape)
    logits_t = jax.jit(lambda p, x: net.logits_t(p, x.T, None))(params, jnp.asarray(x))
    return float(jnp.mean(jnp.argmax(logits_t, 0) == jnp.asarray(y)))
