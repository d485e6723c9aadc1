"""The coarse -> fine flows: plan(spec), then run(plan).

``coarse(**options)`` and ``fine(**options)`` are what ``python -m sweepjax coarse|fine``
run, callable from a notebook; their keyword arguments are the options of
:class:`sweepjax.spec.SweepSpec` (the signatures are generated from that table). They
never print: remarks go to ``Callbacks.note`` (default: the ``sweepjax`` logger),
progress to ``Callbacks.progress``. What they are built from lives next door: the plan in
:mod:`sweepjax.flows.plan`, the resolved config in :mod:`sweepjax.flows.sweep_config`,
running, storing and resuming in :mod:`sweepjax.flows.runner`, a fine round's box in
:mod:`sweepjax.flows.fine_space`, the winner's refit in :mod:`sweepjax.flows.refit`.

Resume rule: a sweep's population is checkpointed in the store between chunks. With
``resume=True`` the flow continues the unfinished (running-but-dead or interrupted)
sweep of the same kind named ``name`` or, without a name, the newest unfinished one
whose resolved config equals this call's; it refuses (ConfigError, one line naming the
differing settings) when the config differs or the device count is not the one the sweep
ran on, and it ends with exactly the results of an uninterrupted run (same chunks, same
compiled programs, same minibatches). The stored timing adds up every part (a part ended
by kill -9 counts its wall time up to its last checkpoint, compile included, as training).
"""

from __future__ import annotations

import inspect
import os

from sweepjax.data.arrays import ARRAY_NAMES, raw_arrays
from sweepjax.data.checks import small_validation
from sweepjax.engine import distributed
from sweepjax.errors import ConfigError, StoreError
from sweepjax.flows.build import PARAMS_KEPT, build_result
from sweepjax.flows.inputs import data_targets
from sweepjax.flows.plan import Plan, plan_coarse, plan_fine
from sweepjax.flows.refit import refit_winner
from sweepjax.flows.runner import (
    CHECKPOINT_SHARE,
    Callbacks,
    SweepInterrupted,
    open_store,
    report_dir,
    run_sweep,
    write_report_hook,
)
from sweepjax.flows.sweep_config import (
    FINE_LR_DECAY,
    FINE_STEPS_FACTOR,
    SweepConfig,
    derive_seed,
    with_start,
)
from sweepjax.metric import Metric
from sweepjax.results.records import SweepResult
from sweepjax.spec import (
    DEFAULT_BATCH,
    DEFAULT_SAMPLER,
    DEFAULT_SCHEDULE,
    DEFAULT_STEPS,
    DEFAULT_TRIALS,
    MODEL_DEFAULTS,
    SAMPLERS,
    SweepSpec,
    help_of,
    options,
)
from sweepjax.store import Store


def coarse(*, callbacks: Callbacks | None = None, **options) -> SweepResult:
    """A coarse sweep: ``trials`` members drawn at random (log-uniformly on log axes) from
    the ``lr`` x ``l2`` box and every other axis given as a pair, trained ``steps`` steps
    at once in one compiled program, judged and stored.

    Each axis is traced per member: ``lr_decay``, ``hidden`` (the MLP's width: an int
    fixes it, a ``(lo, hi)`` pair searches whole widths, each member masked to its own
    inside a network ``hi`` wide), ``dropout`` (MLP), ``init_scale`` and ``momentum``
    (the ``momentum`` optimizer's coefficient, Adam's ``b1``): a number fixes the axis, a
    pair (or a :class:`~sweepjax.config.Range`) searches it. ``lr="auto"`` takes the box
    from the learning-rate finder. ``replicas`` / ``folds`` group members by config.
    ``model`` may be ``"softmax"``, ``"mlp"``, ``"package.module:Name"``, a flax module or
    a :class:`sweepjax.Custom` (with ``loss``). Every option: :class:`SweepSpec`.

    Data: ``dataset`` names a source, or arrays come straight in: ``x_train``,
    ``y_train`` (and optionally ``x_test``, ``y_test``: else a fixed 10% of training is
    held out as for ``npz:PATH``; ``x_val``, ``y_val``: else a seeded 10% is carved),
    recorded as dataset ``arrays``; ``[N, D]`` features are standardised per feature
    (``scaling``).

    Returns the :class:`SweepResult` (also stored; ``result.sweep_id`` names it).
    Raises ConfigError / DataError / StoreError (nothing written), SweepInterrupted,
    AllDivergedError (after storing the results).

    Example::

      res = sweepjax.coarse(dataset="mnist-sample", trials=64, steps=200, store="s.db")
      res.winner.val_acc  # ~0.9
      X, y = sklearn.datasets.load_wine(return_X_y=True)
      res = sweepjax.coarse(x_train=X, y_train=y, store="wine.db")
    """
    return coarse_from({}, callbacks=callbacks, **options)


def coarse_from(start: dict, *, callbacks: Callbacks | None = None, **options) -> SweepResult:
    """:func:`coarse` with an ASHA sweep's first member at ``start`` (``{axis: value}``,
    the other axes at the box's centre; ``{}``: all of them): ``auto`` starts its search
    at its learning-rate finder's best rate."""
    spec = SweepSpec.create("coarse", **with_arrays(options))
    cb = callbacks or Callbacks()
    plan = plan_coarse(spec, cb)
    plan = plan._replace(config=with_start(plan.config, start))
    with open_store(spec.store, True, plan.where) as st:
        return run(plan, st, cb)


def fine(*, callbacks: Callbacks | None = None, **options) -> SweepResult:
    """A fine sweep around the best region of ``parent`` (default: the newest finished
    coarse sweep in the store); ``fine(parent=<a fine sweep>)`` chains rounds.

    Options not given are the parent's (its stored spec: data, model, optimizer, trials,
    batch size, fixed axes, replicas / folds, seed) except the round's own: the box comes
    from the parent's response surface (per axis, the members tied with the winner, the
    modelled optimum and its flat range, widened by ``margin``; extended past an edge the
    modelled score still rises toward, never past a cap; with too few members for a model,
    the span of the ``top_k`` best), ``lr`` / ``l2`` / a pair for another axis replace an
    axis of that box and one number fixes it; ``steps`` defaults to the model's factor
    (``MODEL_DEFAULTS``: 8x for the softmax, 16x for the MLP and your own models) times
    the parent's; ``lr_decay`` is searched over ``FINE_LR_DECAY`` when the parent kept the
    rate constant (``"off"`` keeps it so); ``sampler`` draws the members (``uniform``,
    ``thompson``, ``ei``); ``refit`` retrains the winner on train + validation.

    ``seed`` is the root seed (default: the parent's): it fixes the validation split of
    the whole chain, and the round trains with :func:`derive_seed` of it and the lineage.
    A parent trained on arrays from Python needs them again (``x_train=``, ...): the
    store keeps results, not data.
    """
    spec = SweepSpec.create("fine", **with_arrays(options))
    cb = callbacks or Callbacks()
    where = distributed.placement(spec.devices)
    with open_store(spec.store, False, where) as st:
        return run(plan_fine(spec, st, cb, where), st, cb)


def with_arrays(options: dict) -> dict:
    """``options`` with the array keywords (``x_train``, ``y_train``, ...) turned into
    the ``dataset`` option's value: the checked arrays (one-line DataError otherwise)."""
    given = {k: options.pop(k) for k in ARRAY_NAMES if k in options}
    given = {k: v for k, v in given.items() if v is not None}
    if not given:
        return options
    if options.get("dataset") is not None:
        raise ConfigError("give `dataset` or arrays (x_train=, y_train=), not both")
    # A regression's metric reads the targets as real numbers (whole-number floats too).
    m = options.get("metric")
    real = m.real if isinstance(m, Metric) else data_targets(m) == "real"
    arrays = {k: given.get(k) for k in ARRAY_NAMES}
    return {**options, "dataset": raw_arrays(**arrays, targets="real" if real else "auto")}


def load(
    store: str | os.PathLike | None = None, sweep_id: str | None = None, *, curves: bool = True
) -> SweepResult:
    """Reopen a stored sweep: the :class:`SweepResult` that ``coarse`` / ``fine``
    returned (members, configs, winner, verdict, dataset, config), read back.

    Args:
      store: the store file (default: ``$SWEEPJAX_STORE`` or ``./sweepjax.db``).
      sweep_id: e.g. ``"c1"`` (default: the newest finished sweep of any kind).
      curves: also read every member's curves (False is faster on big sweeps).

    Raises StoreError (one line) for a missing store, an unknown sweep, or an empty store.

    Example::

      res = sweepjax.load("wine.db")          # the newest finished sweep
      res.winner.test_acc, res.dataset["scaling"]
      c1 = sweepjax.load("wine.db", "c1", curves=False)
    """
    with Store.open(store) as st:
        sid = sweep_id or st.newest()
        if sid is None:
            raise StoreError(
                f"no finished sweep in {st.path}; pass `sweep_id` (see `sweepjax list`)"
            )
        return st.load_sweep(sid, curves=curves)


def run(plan: Plan, st, cb: Callbacks) -> SweepResult:
    """Train, judge and store a planned sweep (its name, resume and report are options of
    the plan's spec, never stored), then refit a fine round's winner when asked."""
    spec = plan.spec
    info = plan.data.info
    if not plan.config.folds and (
        small := small_validation(info.n_val, info.n_train + info.n_val, info.real)
    ):
        cb.say(small)  # said once the plan holds, so a refused plan prints its error only
    result = run_sweep(
        plan.config,
        plan.data,
        st,
        cb,
        name=spec.name,
        resume=spec.value("resume"),
        report=spec.value("report"),
        refinement=plan.refinement,
        where=plan.where,
        draws=plan.draws,
    )
    if plan.config.kind == "fine" and spec.value("refit"):
        result = refit_winner(result, plan.config, plan.data, st, cb)
    return result


def _signature(command: str) -> inspect.Signature:
    """``coarse`` / ``fine``'s keyword arguments, generated from the option table."""
    params = [
        inspect.Parameter(
            o.name,
            inspect.Parameter.KEYWORD_ONLY,
            default=o.default if command == "coarse" else None,
        )
        for o in options(command)
    ]
    params += [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, default=None) for n in ARRAY_NAMES
    ]
    params.append(inspect.Parameter("callbacks", inspect.Parameter.KEYWORD_ONLY, default=None))
    return inspect.Signature(params, return_annotation=SweepResult)


CALLBACKS_HELP = (
    "a sweepjax.Callbacks, the caller's hooks (the library never prints): note(msg) "
    "receives each one-line remark, begin(sweep_id, start_step, total_steps, chunk_steps) "
    "is called as training starts, progress(sweep_id, report) after every chunk, and "
    "stop() is polled after every chunk: True checkpoints and raises SweepInterrupted, as "
    "Ctrl-C does (default None: remarks go to the `sweepjax` logger)"
)


ARRAYS_HELP = (
    "arrays in memory instead of `dataset`: features [N, D] or images [N, H, W(, C)] "
    "and labels [N]; the test pair defaults to a fixed 10% of training (as npz:PATH), "
    "the validation pair to a seeded 10%"
)


def _arguments_doc(command: str) -> str:
    lines = ["", "    Options (:class:`sweepjax.spec.SweepSpec`):", ""]
    lines += [f"      {o.name}: {help_of(o, command, python=True)}" for o in options(command)]
    lines.append(f"      x_train, y_train, x_test, y_test, x_val, y_val: {ARRAYS_HELP}")
    lines.append(f"      callbacks: {CALLBACKS_HELP}")
    return "\n".join(lines) + "\n"


for _fn in (coarse, fine):
    _fn.__signature__ = _signature(_fn.__name__)
    _fn.__doc__ = (_fn.__doc__ or "") + _arguments_doc(_fn.__name__)


__all__ = [
    "CHECKPOINT_SHARE",
    "DEFAULT_BATCH",
    "DEFAULT_SAMPLER",
    "DEFAULT_SCHEDULE",
    "DEFAULT_STEPS",
    "DEFAULT_TRIALS",
    "FINE_LR_DECAY",
    "FINE_STEPS_FACTOR",
    "MODEL_DEFAULTS",
    "PARAMS_KEPT",
    "SAMPLERS",
    "Callbacks",
    "SweepConfig",
    "SweepInterrupted",
    "build_result",
    "coarse",
    "derive_seed",
    "fine",
    "load",
    "report_dir",
    "run",
    "write_report_hook",
]
