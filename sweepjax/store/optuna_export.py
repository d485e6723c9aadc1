"""A stored sweep as an Optuna study, so optuna-dashboard, Optuna's plots and its
importances open it (``sweepjax export SWEEP --format optuna --storage URL``).

Each member becomes one trial: its searched hyperparameters on the box's scale
(``FloatDistribution(lo, hi, log=...)``, ``IntDistribution`` for whole-number axes), its
best validation accuracy as the value (the study maximizes), its validation curve as the
intermediate values, and its outcome as the state: COMPLETE (trained to the end), PRUNED
(a scheduler stopped it), FAIL (it diverged). :func:`trial_specs` builds the trials as
plain data (no optuna); :func:`export_study` writes them. optuna is an optional extra
(``pip install 'sweepjax[optuna]'``), imported only here, when a study is written.

Each trial is stamped with its member's own start and end (:func:`member_times`), so
optuna-dashboard's Timeline shows the population's shape: halving's rungs, ASHA's
refills, the members that diverged early. The store keeps no per-member clock, so the
times are derived, an approximation: a member trains from its birth step (0, or the
global step an ASHA refill started it) for its own steps (to the end, its stop or its
divergence), and a global step is placed in wall time by interpolating the sweep's live
progress rows (step, wall time; about one a second), step 0 placed before the first row
at the pace of the first rows. A sweep without live rows (stored before they existed)
spreads its training time evenly over its steps from its creation.
"""

from __future__ import annotations

import datetime
import math
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from sweepjax.config import axis_of
from sweepjax.errors import ConfigError
from sweepjax.results.records import EXTRA_AXES

if TYPE_CHECKING:  # annotations only
    from sweepjax.results.records import MemberRecord, SweepResult
    from sweepjax.store.db import Store

OPTUNA_MISSING = "export --format optuna needs optuna: pip install 'sweepjax[optuna]'"

# A member's status -> the Optuna trial state it is written as.
STATES = {"ok": "COMPLETE", "stopped": "PRUNED", "diverged": "FAIL"}


class ParamAxis(NamedTuple):
    """One searched axis as an Optuna distribution: ``[low, high]`` on its scale, an
    ``IntDistribution`` when ``integer``."""

    name: str
    low: float
    high: float
    log: bool
    integer: bool
    choices: tuple = ()  # a categorical axis (``choices``): CategoricalDistribution


class TrialSpec(NamedTuple):
    """One member as an Optuna trial, in plain data.

    ``value`` is None for a FAIL trial (Optuna refuses a value there) and never NaN for
    a COMPLETE one; ``intermediate`` maps step -> validation accuracy (NaN skipped)."""

    member: int
    state: str  # "COMPLETE" | "PRUNED" | "FAIL"
    value: float | None
    params: dict[str, float | int]
    intermediate: dict[int, float]
    user_attrs: dict[str, Any]


class StudyExport(NamedTuple):
    """What :func:`export_study` wrote: the study, where, and its trials per state."""

    study_name: str
    storage: str
    states: dict[str, int]

    @property
    def trials(self) -> int:
        return sum(self.states.values())


def import_optuna():
    """optuna, or a ConfigError naming the extra that installs it."""
    try:
        import optuna
    except ImportError as e:  # also a None entry in sys.modules (an import blocked)
        raise ConfigError(OPTUNA_MISSING) from e
    return optuna


def finite_or_none(x) -> float | None:
    """A finite Python float, or None (NaN, inf, None)."""
    if x is None:
        return None
    x = float(x)
    return x if math.isfinite(x) else None


def param_axes(result: SweepResult) -> dict[str, ParamAxis]:
    """The searched axes (``result.space``, in its order) as distributions. The box is
    widened to every member's value when one lies outside it (PBT explores past the box;
    a value must lie inside its distribution)."""
    out = {}
    typed = getattr(result.config, "space", None)
    typed = typed.axes() if typed is not None else {}
    for name, (lo, hi) in result.space.items():
        axis = axis_of(name, typed.get(name))
        vals = [v for m in result.members if (v := finite_or_none(getattr(m, name))) is not None]
        lo, hi = min([float(lo), *vals]), max([float(hi), *vals])
        if axis.integer:
            lo, hi = float(math.floor(lo)), float(math.ceil(hi))
        out[name] = ParamAxis(name, lo, hi, axis.log, axis.integer)
    for name, values in result.config.choices:  # categorical axes, after the floats
        out[name] = ParamAxis(name, 0.0, 0.0, False, False, tuple(values))
    return out


def _fixed_attrs(m: MemberRecord, searched) -> dict[str, Any]:
    """The axes a member trained with that were not searched (user attributes)."""
    names = ("lr", "l2", "lr_decay", *EXTRA_AXES, *m.hparams)
    return {
        n: finite_or_none(getattr(m, n))
        for n in names
        if n not in searched and getattr(m, n) is not None
    }


def trial_specs(result: SweepResult) -> list[TrialSpec]:
    """One :class:`TrialSpec` per member of ``result`` (in member order).

    Params: the searched axes (an axis a member has no value for is left out). Value: the
    best validation accuracy (a COMPLETE member without a finite one is written FAIL, as
    Optuna allows no NaN there; a diverged member's best before it diverged is the user
    attribute ``best_val_acc``). Intermediate values: ``curves.val_acc[i]`` at
    ``curves.step`` (NaN skipped; none when the result has no curves). User attributes:
    ``member``, ``status``, ``best_step``, ``val_acc_se``, ``diverged_at``,
    ``stopped_at``, ``config`` / ``replica`` (replicas, folds), the axes not searched, and
    on the winner's trial ``winner``, ``test_acc`` (and ``refit_test_acc``).

    Example::

      specs = trial_specs(store.load_sweep("c1"))
      specs[0].state, specs[0].params  # ('PRUNED', {'lr': 0.012, 'l2': 3.1e-05})
    """
    axes = param_axes(result)
    curves = result.curves
    win = result.winner
    out = []
    for i, m in enumerate(result.members):
        state = STATES.get(m.status, "FAIL")
        value = finite_or_none(m.best_val_acc)
        attrs: dict[str, Any] = {"member": int(m.id), "status": m.status}
        if state == "COMPLETE" and value is None:
            state = "FAIL"
            attrs["fail_reason"] = "no finite validation accuracy"
        if state == "FAIL":
            attrs["best_val_acc"], value = value, None
        attrs.update(best_step=int(m.best_step), val_acc_se=finite_or_none(m.val_acc_se))
        for k in ("diverged_at", "stopped_at"):
            attrs[k] = None if getattr(m, k) is None else int(getattr(m, k))
        if m.config is not None:  # replicas / folds: which config, which replica (fold)
            attrs.update(config=int(m.config), replica=int(m.replica or 0))
        attrs.update(_fixed_attrs(m, axes))
        if win is not None and win.id == m.id:
            attrs.update(winner=True, test_acc=finite_or_none(win.test_acc))
            if win.refit_test_acc is not None:
                attrs.update(
                    refit_test_acc=finite_or_none(win.refit_test_acc), refit_steps=win.refit_steps
                )
        params = {}
        for name, ax in axes.items():
            if ax.choices:  # the member's categorical value
                if m.choice is not None:
                    params[name] = m.choice[name]
                continue
            v = finite_or_none(getattr(m, name))
            if v is not None:
                params[name] = int(round(v)) if ax.integer else v
        inter = {}
        if curves is not None and i < curves.val_acc.shape[0]:
            row = np.asarray(curves.val_acc[i], np.float64)
            inter = {
                int(s): float(a) for s, a in zip(curves.step, row, strict=True) if np.isfinite(a)
            }
        out.append(TrialSpec(int(m.id), state, value, params, inter, attrs))
    return out


def winner_first(specs: list[TrialSpec], result: SweepResult) -> list[TrialSpec]:
    """``specs`` with the winner's trial moved to the front (trial 0), the rest in member
    order. Optuna's best trial is a COMPLETE trial of the highest value, and among equal
    values the storage returns the first: the winner (best accuracy, then lower loss, then
    id: :func:`sweepjax.analysis.ranking.rank_order`) may share its accuracy with a member
    of lower id (the default coarse on the sample: trial 56 was Optuna's best, member 115
    the winner). Put first, it is Optuna's best too."""
    win = result.winner
    if win is None:
        return list(specs)
    first = [t for t in specs if t.member == win.id]
    return first + [t for t in specs if t.member != win.id]


def direction_of(metric) -> str:
    """The Optuna study direction of a :class:`~sweepjax.metric.Metric`: ``maximize``
    for accuracy, ``minimize`` for an MSE (trial values are the metric's own)."""
    return "maximize" if metric.higher_is_better else "minimize"


def study_attrs(result: SweepResult) -> dict[str, Any]:
    """The study's user attributes: which sweep it is and who won."""
    win = result.winner
    attrs = {
        "sweep_id": result.sweep_id,
        "kind": result.kind,
        "parent": result.parent,
        "status": result.status,
        "dataset": result.dataset.get("name"),
        "schedule": result.spec.schedule or "full",
        "space": {k: [float(v) for v in b] for k, b in result.space.items()},
        "winner": None if win is None else int(win.id),
        "winner_val_acc": None if win is None else finite_or_none(win.val_acc),
        "winner_test_acc": None if win is None else finite_or_none(win.test_acc),
    }
    if result.config.train.metric != "accuracy":  # the values above are this metric's
        attrs["metric"] = result.config.train.metric
    if win is not None and win.config is not None:
        attrs["winner_config"] = int(win.config)
    return attrs


def _distribution(optuna, ax: ParamAxis):
    d = optuna.distributions
    if ax.choices:
        return d.CategoricalDistribution(list(ax.choices))
    if ax.integer:
        return d.IntDistribution(int(ax.low), int(ax.high), log=ax.log)
    return d.FloatDistribution(ax.low, ax.high, log=ax.log)


def new_study(
    optuna, url: str, name: str, url_option: str, exists_fix: str, direction: str = "maximize"
):
    """A new study ``name`` in the storage ``url`` (``direction``: the metric's,
    :func:`direction_of`), and the storage; one-line
    ConfigErrors for a bad URL (naming ``url_option``) and an existing study (saying
    ``exists_fix``)."""
    try:
        storage = optuna.storages.get_storage(url)
    except Exception as e:  # sqlalchemy / optuna raise several kinds for a bad URL
        raise ConfigError(
            f"cannot open the Optuna storage {url!r} ({type(e).__name__}); "
            f"give an Optuna storage URL, e.g. {url_option} sqlite:///optuna.db"
        ) from e
    try:
        study = optuna.create_study(
            storage=storage, study_name=name, direction=direction, load_if_exists=False
        )
    except optuna.exceptions.DuplicatedStudyError:
        raise ConfigError(f"study {name!r} already exists in {url}; {exists_fix}") from None
    return study, storage


# --------------------------------------------------------------------------- timeline
def member_steps(result: SweepResult) -> dict[int, tuple[int, int]]:
    """``{member id: (first, last) global step}`` each member trained over: born at step 0,
    or at its first hyperparameter row (an ASHA refill's birth), for its own steps: the
    run's ``steps``, or up to where a scheduler stopped it or it diverged."""
    steps = result.config.train.steps
    born: dict[int, int] = {}
    for h in result.history:
        m, at = int(h["member"]), int(h["step"])
        born[m] = min(born.get(m, at), at)
    out = {}
    for m in result.members:
        age = {"stopped": m.stopped_at, "diverged": m.diverged_at}.get(m.status, steps)
        b = born.get(m.id, 0)
        out[m.id] = (b, b + int(age if age is not None else steps))
    return out


def step_clock(
    points: list[tuple[int, float]], created: float, end_step: int, train_s: float
) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, walls)``: where each global step fell in wall time, to interpolate.

    ``points`` are the sweep's live rows ``(step, wall)`` in the order written; after a
    resume the steps restart from the checkpoint, and the later rows replace the earlier
    ones they overlap (the results are the resumed run's). Step 0 is placed before the
    first row at the pace of the first two rows (or of ``train_s`` over ``end_step``
    steps), never before ``created``; without rows, ``train_s`` spreads evenly over
    ``end_step`` steps from ``created``. Walls never decrease.
    """
    kept: list[tuple[int, float]] = []
    for step, wall in points:
        while kept and kept[-1][0] >= step:
            kept.pop()
        kept.append((int(step), float(wall)))
    pace = max(float(train_s), 0.0) / max(int(end_step), 1)  # seconds per step
    if len(points) >= 2 and points[1][0] > points[0][0]:  # the first run's own pace
        pace = (points[1][1] - points[0][1]) / (points[1][0] - points[0][0])
    if not kept:
        kept = [(0, created), (max(int(end_step), 1), created + pace * max(int(end_step), 1))]
    elif kept[0][0] > 0:
        kept.insert(0, (0, max(created, kept[0][1] - pace * kept[0][0])))
    steps = np.array([k[0] for k in kept], np.float64)
    walls = np.maximum.accumulate(np.array([k[1] for k in kept], np.float64))
    return steps, walls


def sweep_clock(store: Store, result: SweepResult) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, walls)``: where each global step of the sweep fell in wall time
    (:func:`step_clock` on its live rows), to interpolate; the clock both exports (Optuna
    trials, TensorBoard runs) place the members on."""
    from sweepjax.store.live import progress  # deferred: it imports the engine

    row = store.sweep_row(result.sweep_id)
    end_step = max((b for _, b in member_steps(result).values()), default=row.total_steps)
    rows = progress(store.conn, result.sweep_id, points=100_000)
    return step_clock(
        [(r.step, r.wall) for r in rows], row.created, end_step, result.timing.train_s
    )


def member_times(store: Store, result: SweepResult) -> dict[int, tuple[float, float]]:
    """``{member id: (start, end)}`` in seconds since the epoch: each member's
    :func:`member_steps` placed on the sweep's :func:`sweep_clock` (see the module
    docstring for the approximation)."""
    steps, walls = sweep_clock(store, result)
    return {
        m: (float(np.interp(a, steps, walls)), float(np.interp(b, steps, walls)))
        for m, (a, b) in member_steps(result).items()
    }


def _stamp(trial, when: tuple[float, float] | None):
    """The trial with its member's start and end (Optuna's naive local datetimes)."""
    if when is not None:
        start, end = when
        trial.datetime_start = datetime.datetime.fromtimestamp(start)
        trial.datetime_complete = datetime.datetime.fromtimestamp(max(start, end))
    return trial


def export_study(
    result: SweepResult,
    storage: str,
    study_name: str | None = None,
    times: dict[int, tuple[float, float]] | None = None,
) -> StudyExport:
    """Write ``result`` as a new Optuna study ``study_name`` (default: the sweep id) in
    ``storage`` (an Optuna storage URL, e.g. ``sqlite:///optuna.db``), one trial per member
    (:func:`trial_specs`), direction the metric's (maximize accuracy, minimize an MSE),
    with :func:`study_attrs`. ``times``
    (:func:`member_times`, what ``sweepjax export`` passes) stamps each trial with its
    member's start and end; without it Optuna stamps them all with the time of export.

    Raises ConfigError (nothing written) when optuna is not installed, the storage cannot
    be opened, or a study of that name exists.

    Example::

      res = store.load_sweep("c1")
      export_study(res, "sqlite:///optuna.db", times=member_times(store, res)).states
      # {'COMPLETE': 3, 'PRUNED': 5, 'FAIL': 0}
    """
    optuna = import_optuna()
    name = study_name or result.sweep_id
    dists = {n: _distribution(optuna, ax) for n, ax in param_axes(result).items()}
    trials = [
        _stamp(
            optuna.trial.create_trial(
                state=getattr(optuna.trial.TrialState, t.state),
                value=t.value,
                params=t.params,
                distributions={n: dists[n] for n in t.params},
                intermediate_values=t.intermediate,
                user_attrs=t.user_attrs,
            ),
            (times or {}).get(t.member),
        )
        for t in winner_first(trial_specs(result), result)
    ]
    study, store = new_study(
        optuna, storage, name, "--storage", "name another with --study NAME",
        direction_of(result.config.metric),
    )  # fmt: skip
    try:
        for k, v in study_attrs(result).items():
            study.set_user_attr(k, v)
        study.add_trials(trials)
    except BaseException:  # half a study helps nobody: leave the storage as it was
        optuna.delete_study(study_name=name, storage=store)
        raise
    states = {s: 0 for s in STATES.values()}
    for t in trials:
        states[t.state.name] += 1
    return StudyExport(name, storage, states)
