"""A stored sweep as TensorBoard runs, so TensorBoard's Scalars and HParams views open it
(``sweepjax export SWEEP --format tensorboard --logdir DIR``).

Layout: ``DIR/SWEEP/`` holds the HParams experiment (the searched axes with their box,
the metrics), and ``DIR/SWEEP/member-0042/`` is one run per member: its curves as
scalars (``val_acc``, ``val_loss``, ``train_loss``, ``train_acc``, ``update_ratio`` at each
stored evaluation step, NaN skipped), its ``best_val_acc`` as one scalar at its last
step, and its HParams session (start: its hyperparameters, the searched axes and those it
trained with that were not searched; end: SUCCESS for a member that finished or that a
scheduler stopped, FAILURE for one that diverged). Replicas and folds of one config share
a session group (``c1/config-0003``), so the HParams view shows them as one row.

:func:`run_specs` builds the runs as plain data (no tensorboardX); :func:`export_runs`
writes them. tensorboardX is an optional extra (``pip install 'sweepjax[tensorboard]'``),
imported only here, when the runs are written. Wall times come from the same derived clock
as the Optuna export's timeline (:mod:`sweepjax.store.optuna_export`): a member's step is
placed in wall time on the sweep's live progress rows.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from sweepjax.errors import ConfigError
from sweepjax.results.records import EXTRA_AXES
from sweepjax.store.optuna_export import (
    finite_or_none,
    member_steps,
    param_axes,
)

if TYPE_CHECKING:  # annotations only
    from sweepjax.results.records import SweepResult

TENSORBOARDX_MISSING = (
    "export --format tensorboard needs tensorboardX: pip install 'sweepjax[tensorboard]'"
)

# The stored curves written as scalars (tag = the Curves field), in this order at a step.
CURVES = ("val_acc", "val_loss", "train_loss", "train_acc", "update_ratio")
BEST = "best_val_acc"
# A member whose values changed while it trained (PBT) also gets its schedule as scalars,
# ``schedule/lr`` etc.: at each evaluated step, the value it trained the steps before with.
SCHEDULED = ("lr", "l2", "lr_decay")
# Every metric of the HParams experiment: tag -> (display name, dataset).
METRICS = {
    BEST: ("best validation accuracy", "validation"),
    "val_acc": ("validation accuracy", "validation"),
    "val_loss": ("validation loss", "validation"),
    "train_loss": ("training loss", "training"),
    "train_acc": ("training accuracy", "training"),
    "update_ratio": ("update / weight ratio", "training"),
}
# A member's status -> the HParams session status it ends with.
STATUSES = {"ok": "STATUS_SUCCESS", "stopped": "STATUS_SUCCESS", "diverged": "STATUS_FAILURE"}
# The hparams plugin's tags and data version (tensorboard/plugins/hparams/metadata.py).
EXPERIMENT_TAG = "_hparams_/experiment"
SESSION_START_TAG = "_hparams_/session_start_info"
SESSION_END_TAG = "_hparams_/session_end_info"
PLUGIN = "hparams"


class HParamAxis(NamedTuple):
    """One searched axis of the experiment: its box ``[low, high]`` (an interval domain)."""

    name: str
    low: float
    high: float


class RunSpec(NamedTuple):
    """One member as a TensorBoard run, in plain data.

    ``points`` are ``(step, {tag: value})`` in step order, finite values only;
    ``span`` the first and last global step it trained over (its session's start and end);
    ``group`` its session group (``c1/config-0003`` for a replica, else ``""``: its own)."""

    member: int
    name: str
    group: str
    hparams: dict[str, float]
    status: str  # "STATUS_SUCCESS" | "STATUS_FAILURE" | "STATUS_RUNNING" | "STATUS_UNKNOWN"
    points: list[tuple[int, dict[str, float]]]
    best: float | None
    span: tuple[int, int]


class RunsExport(NamedTuple):
    """What :func:`export_runs` wrote: the sweep's folder and its runs per session status."""

    path: Path
    states: dict[str, int]

    @property
    def runs(self) -> int:
        return sum(self.states.values())


def import_tensorboardx():
    """tensorboardX, or a ConfigError naming the extra that installs it."""
    try:
        import tensorboardX
        from tensorboardX.event_file_writer import EventsWriter  # noqa: F401
        from tensorboardX.proto import api_pb2, plugin_hparams_pb2, summary_pb2  # noqa: F401
    except ImportError as e:  # also a None entry in sys.modules (an import blocked)
        raise ConfigError(TENSORBOARDX_MISSING) from e
    return tensorboardX


def run_name(member: int, width: int = 4) -> str:
    """A member's run folder, zero-padded so the runs sort by id: ``member-0042``."""
    return f"member-{int(member):0{width}d}"


def hparam_axes(result: SweepResult) -> list[HParamAxis]:
    """The searched axes (``result.space``, in its order) with their boxes, widened to every
    member's value (as :func:`sweepjax.store.optuna_export.param_axes`)."""
    axes = param_axes(result).values()  # a categorical axis is a string hparam (run_specs)
    return [HParamAxis(a.name, a.low, a.high) for a in axes if not a.choices]


def run_specs(result: SweepResult) -> list[RunSpec]:
    """One :class:`RunSpec` per member of ``result`` (in member order).

    Hparams: the searched axes, then the axes it trained with that were not searched
    (``lr``, ``l2``, ``lr_decay``, ``hidden``, ``dropout``, ``init_scale``, ``momentum``;
    those it has no value for left out), as the store's members table has them (after PBT:
    the last values). Points: the stored curves at ``curves.step``, NaN skipped (none when
    the result has no curves); a member whose values changed (PBT's ``history``) has
    ``schedule/lr``, ``schedule/l2``, ``schedule/lr_decay`` at each of its points, the
    values in force over the steps up to it. Status: SUCCESS (ok, or stopped by a
    scheduler), FAILURE (diverged); while the sweep is not finished an ok member is
    RUNNING (running) or UNKNOWN (interrupted).

    Example::

      specs = run_specs(store.load_sweep("c1", curves=True))
      specs[0].name, specs[0].hparams  # ('member-0000', {'lr': 0.012, 'l2': 3.1e-05, ...})
    """
    searched = [a.name for a in hparam_axes(result)]
    names = [*searched, *(n for n in ("lr", "l2", "lr_decay", *EXTRA_AXES) if n not in searched)]
    width = max(4, len(str(max((m.id for m in result.members), default=0))))
    spans = member_steps(result)
    curves = result.curves
    unfinished = {"running": "STATUS_RUNNING"}.get(result.status, "STATUS_UNKNOWN")
    history: dict[int, list[dict]] = {}
    for h in sorted(result.history, key=lambda h: int(h["step"])):  # stable: same-step order
        history.setdefault(int(h["member"]), []).append(h)
    out = []
    for i, m in enumerate(result.members):
        hp = {n: v for n in names if (v := finite_or_none(getattr(m, n))) is not None}
        hp.update(m.choice or {})  # categorical values (``choices``), as strings
        status = STATUSES.get(m.status, "STATUS_UNKNOWN")
        if m.status == "ok" and result.status != "finished":
            status = unfinished
        points: list[tuple[int, dict[str, float]]] = []
        if curves is not None and i < curves.val_acc.shape[0]:
            rows = {k: np.asarray(getattr(curves, k)[i], np.float64) for k in CURVES}
            for e, step in enumerate(curves.step):
                vals = {k: float(r[e]) for k, r in rows.items() if np.isfinite(r[e])}
                if vals:
                    points.append((int(step), vals))
        sched = history.get(m.id, [])
        if len(sched) >= 2:  # its values changed while it trained
            at = np.array([int(h["step"]) for h in sched])
            for step, vals in points:
                h = sched[max(int(np.searchsorted(at, step, side="left")) - 1, 0)]
                own = [k for k in h if k not in ("step", "member", *SCHEDULED)]  # user axes
                vals.update({f"schedule/{k}": float(h[k]) for k in (*SCHEDULED, *own) if k in h})
        group = "" if m.config is None else f"{result.sweep_id}/config-{int(m.config):0{width}d}"
        out.append(
            RunSpec(
                int(m.id),
                run_name(m.id, width),
                group,
                hp,
                status,
                points,
                finite_or_none(m.best_val_acc),
                spans.get(m.id, (0, 0)),
            )
        )
    return out


def metric_names(result: SweepResult) -> dict[str, tuple[str, str]]:
    """:data:`METRICS` with the sweep's metric named (the tags stay ``val_acc`` ...: what
    they hold is the metric's value, e.g. an MSE, lower is better)."""
    metric = result.config.metric
    if metric.binomial:
        return METRICS
    what = f"{metric.short} ({'higher' if metric.higher_is_better else 'lower'} is better)"
    out = dict(METRICS)
    for tag in (BEST, "val_acc", "train_acc"):
        out[tag] = (METRICS[tag][0].replace("accuracy", what), METRICS[tag][1])
    return out


def description(result: SweepResult) -> str:
    """The experiment's one-line description: which sweep, on what, how."""
    n = len(result.members)
    return (
        f"sweepjax {result.kind} sweep {result.sweep_id} on "
        f"{result.dataset.get('name', '?')}: {n} members, schedule "
        f"{result.spec.schedule or 'full'}, status {result.status}"
        + ("" if result.winner is None else f", winner member {result.winner.id}")
    )


def check_logdir(logdir: str | os.PathLike, sweep_id: str) -> Path:
    """``logdir/sweep_id``, where the runs go; a ConfigError when something is there
    already (runs of two exports in one folder would mix in TensorBoard) or ``logdir`` is
    not a folder."""
    root = Path(logdir)
    target = root / sweep_id
    if root.exists() and not root.is_dir():
        raise ConfigError(f"--logdir {root} is a file, not a folder; give a folder")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(
            f"{target} already exists and is not empty (two exports of sweep {sweep_id} in one "
            f"folder would mix in TensorBoard); give another --logdir, or delete {target}"
        )
    return target


def _summary(proto, tag: str, data):
    """A Summary holding one hparams plugin record ``data`` under ``tag``."""
    _, hp, sm = proto
    content = hp.HParamsPluginData(version=0, **data).SerializeToString()
    meta = sm.SummaryMetadata(
        plugin_data=sm.SummaryMetadata.PluginData(plugin_name=PLUGIN, content=content)
    )
    return sm.Summary(value=[sm.Summary.Value(tag=tag, metadata=meta)])


def experiment_summary(proto, result: SweepResult, created: float):
    """The HParams experiment: the searched axes (interval domains) and the metrics."""
    api = proto[0]
    datasets = {"validation": api.DATASET_VALIDATION, "training": api.DATASET_TRAINING}
    exp = api.Experiment(
        name=result.sweep_id,
        description=description(result),
        time_created_secs=created,
        hparam_infos=[
            api.HParamInfo(
                name=a.name,
                type=api.DATA_TYPE_FLOAT64,
                domain_interval=api.Interval(min_value=a.low, max_value=a.high),
            )
            for a in hparam_axes(result)
        ],
        metric_infos=[
            api.MetricInfo(name=api.MetricName(tag=tag), display_name=d, dataset_type=datasets[s])
            for tag, (d, s) in metric_names(result).items()
        ],
    )
    return _summary(proto, EXPERIMENT_TAG, {"experiment": exp})


def _events_file(folder: Path):
    """A new events file in ``folder`` (made), written in this thread (tensorboardX's
    ``EventsWriter``: no writer thread, one fsync at the close)."""
    from tensorboardX.event_file_writer import EventsWriter

    folder.mkdir(parents=True, exist_ok=True)
    return EventsWriter(str(folder / "events"))


def _write_run(proto, folder: Path, run: RunSpec, wall) -> None:
    """One member's events file: session start, a Summary per evaluated step (its curves),
    ``best_val_acc`` at its last step, session end; steps never go back (TensorBoard drops
    a tag's later points when a step does)."""
    from tensorboardX.proto.event_pb2 import Event

    api, hp, sm = proto
    start, end = wall(run.span[0]), wall(run.span[1])
    first = run.points[0][0] if run.points else run.span[0]
    last = run.points[-1][0] if run.points else run.span[1]
    ssi = hp.SessionStartInfo(group_name=run.group, start_time_secs=start)
    for k, v in run.hparams.items():
        if isinstance(v, str):  # a categorical value
            ssi.hparams[k].string_value = v
        else:
            ssi.hparams[k].number_value = v
    sei = hp.SessionEndInfo(status=api.Status.Value(run.status), end_time_secs=end)
    events = [
        Event(
            wall_time=start,
            step=first,
            summary=_summary(proto, SESSION_START_TAG, {"session_start_info": ssi}),
        )
    ]
    for step, vals in run.points:
        values = [sm.Summary.Value(tag=k, simple_value=v) for k, v in vals.items()]
        events.append(Event(wall_time=wall(step), step=step, summary=sm.Summary(value=values)))
    if run.best is not None:
        best = sm.Summary(value=[sm.Summary.Value(tag=BEST, simple_value=run.best)])
        events.append(Event(wall_time=wall(last), step=last, summary=best))
    events.append(
        Event(
            wall_time=end,
            step=last,
            summary=_summary(proto, SESSION_END_TAG, {"session_end_info": sei}),
        )
    )
    w = _events_file(folder)
    try:
        for ev in events:
            w.write_event(ev)
    finally:
        w.close()


def export_runs(
    result: SweepResult,
    logdir: str | os.PathLike,
    clock: tuple[np.ndarray, np.ndarray] | None = None,
) -> RunsExport:
    """Write ``result`` as TensorBoard runs under ``logdir/<sweep id>``: the HParams
    experiment in that folder, one run per member (:func:`run_specs`) in a folder each.
    ``clock`` (:func:`sweep_clock`, what ``sweepjax export`` passes) places each step in
    wall time; without it every event carries the time of export.

    The runs are written into a hidden folder beside the target and renamed into place at
    the end, so a failure leaves nothing behind. Raises ConfigError (nothing written) when
    tensorboardX is not installed, the target holds anything already
    (:func:`check_logdir`), or the folder cannot be written.

    Example::

      res = store.load_sweep("c1", curves=True)
      export_runs(res, "runs", clock=sweep_clock(store, res)).states
      # {'STATUS_SUCCESS': 8, 'STATUS_FAILURE': 0, ...}
    """
    import_tensorboardx()
    from tensorboardX.proto import api_pb2, plugin_hparams_pb2, summary_pb2
    from tensorboardX.proto.event_pb2 import Event

    proto = (api_pb2, plugin_hparams_pb2, summary_pb2)
    target = check_logdir(logdir, result.sweep_id)
    runs = run_specs(result)
    now = time.time()

    def wall(step: int) -> float:
        return now if clock is None else float(np.interp(step, clock[0], clock[1]))

    made = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
    tmp, done = None, False
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{result.sweep_id}.", dir=target.parent))
        created = now if clock is None else float(clock[1][0])
        root = _events_file(tmp)
        try:
            exp = experiment_summary(proto, result, created)
            root.write_event(Event(wall_time=created, step=0, summary=exp))
        finally:
            root.close()
        for run in runs:
            _write_run(proto, tmp / run.name, run, wall)
        if target.is_dir():  # an empty folder (check_logdir passed it): replaced
            target.rmdir()
        os.rename(tmp, target)
        done = True
    except OSError as e:
        full = e.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC))
        raise ConfigError(
            f"cannot write the TensorBoard runs to {target} ({e.strerror or e}); "
            f"{'free some space' if full else 'check that you can write there'}, or give "
            "another --logdir"
        ) from e
    finally:
        if not done:  # half a sweep helps nobody: leave the folder as it was
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            for p in made:  # the folders this call made, deepest first
                try:
                    p.rmdir()
                except OSError:
                    break
    states = {
        s: 0 for s in ("STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING", "STATUS_UNKNOWN")
    }
    for r in runs:
        states[r.status] += 1
    return RunsExport(target, states)
