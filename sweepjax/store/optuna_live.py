"""``--optuna-storage URL``: a running sweep written into an Optuna study as it goes.

Each member becomes one trial the moment its fate is known: PRUNED when a scheduler stops
it, FAIL when it diverges, COMPLETE when it finishes (an ASHA member finishes mid-run; the
others at the end). Its value, curve and attributes are those of
:func:`sweepjax.store.optuna_export.trial_specs`, so a live study and an ``export
--format optuna`` of the finished sweep hold the same trials; at the end the trials not
yet written are added from the stored result and the study gets its attributes.

A failed write switches the writer off with a note (the sweep goes on; ``export`` can
write the study afterwards).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from sweepjax.config import SearchSpace, axis_of
from sweepjax.store.optuna_export import (
    direction_of,
    import_optuna,
    new_study,
    study_attrs,
    trial_specs,
    winner_first,
)
from sweepjax.sweep_config import space_from_dict

if TYPE_CHECKING:
    from sweepjax.engine import ChunkReport
    from sweepjax.results.records import SweepResult


class OptunaLive:
    """Writes ended members of sweep ``sweep_id`` (searching ``space``: a SearchSpace,
    ``{axis: [lo, hi]}``, or the sweep's ``SweepConfig``: its space, and its metric's
    direction) as trials of a new study ``study`` (default: the sweep id) in ``url``.

    ``member_ids[row]`` is each member row's id (None: the row itself, as in ASHA, whose
    rows grow as members are created)."""

    def __init__(
        self,
        url: str,
        sweep_id: str,
        space: dict,
        member_ids=None,
        study: str | None = None,
        note: Callable[[str], None] | None = None,
    ):
        self.optuna = optuna = import_optuna()
        self.url, self.name = url, study or sweep_id
        self.ids = None if member_ids is None else np.asarray(member_ids, np.int64)
        self.note = note or (lambda m: None)
        self.written: set[int] = set()
        direction, self.cats = "maximize", {}
        if hasattr(space, "metric"):  # the sweep's config
            self.cats = dict(space.choices)  # categorical axes (``choices``)
            space, direction = space.space, direction_of(space.metric)
        typed = space if isinstance(space, SearchSpace) else space_from_dict(space)
        self.axes = {k: axis_of(k, r) for k, r in typed.axes().items()}
        self.space = {k: (float(r.lo), float(r.hi)) for k, r in typed.axes().items()}
        self.study, _ = new_study(
            optuna, url, self.name, "`optuna_storage`", "remove it or write another store's sweep",
            direction,
        )  # fmt: skip
        self.on = True

    # ------------------------------------------------------------------ during the run
    def _dist(self, name: str, value: float):
        d, axis = self.optuna.distributions, self.axes[name]
        lo, hi = self.space[name]
        lo, hi = min(lo, value), max(hi, value)  # PBT explores past the box
        if axis.integer:
            return d.IntDistribution(math.floor(lo), math.ceil(hi), log=axis.log)
        return d.FloatDistribution(lo, hi, log=axis.log)

    def _categorical(self, name: str):
        """A categorical axis's distribution (its values as the sweep declares them)."""
        return self.optuna.distributions.CategoricalDistribution(list(self.cats[name]))

    def update(self, rep: ChunkReport) -> None:
        """Write the members whose fate became known by this chunk."""
        sched, curves = rep.schedule, rep.curves
        if not self.on or sched is None or curves is None:
            return
        n = len(sched.stopped_at)
        active = np.zeros(n, bool)
        active[np.asarray(sched.active, np.int64)] = True
        stopped = sched.stopped_at >= 0
        ended = stopped | ~sched.alive | (rep.anytime is not None and ~active)
        ids = getattr(rep, "member_ids", None)  # a choice part's rows: the sweep's ids
        ids = np.asarray([self._id(r) for r in range(n)] if ids is None else ids, np.int64)
        rows = [r for r in np.flatnonzero(ended) if int(ids[r]) not in self.written]
        if not rows:
            return
        try:
            for r in rows:
                self._write_row(int(r), int(ids[r]), sched, curves, rep.choice or {})
        except Exception as e:  # never stop a sweep for its side channel
            self.on = False
            self.note(f"note: Optuna live writes stopped ({type(e).__name__}: {e})")

    def _id(self, row: int) -> int:
        return int(row if self.ids is None else self.ids[row])

    def _write_row(self, r: int, mid: int, sched, curves, choice) -> None:
        optuna = self.optuna
        if not sched.alive[r]:
            state, value = "FAIL", None
        else:
            state = "PRUNED" if sched.stopped_at[r] >= 0 else "COMPLETE"
            value = float(sched.best_val_acc[r])
            if not math.isfinite(value):
                state, value = ("FAIL", None) if state == "COMPLETE" else (state, None)
        params = {}
        for name in self.space:
            v = float(np.asarray(sched.hparams.column(name))[r])
            params[name] = int(round(v)) if self.axes[name].integer else v
        row = np.asarray(curves.val_acc[r], np.float64)
        inter = {int(s): float(a) for s, a in zip(curves.step, row, strict=True) if np.isfinite(a)}
        attrs: dict[str, Any] = {"member": mid, "status": state.lower()}
        for k in ("diverged_at", "stopped_at"):
            v = int(getattr(sched, k)[r])
            attrs[k] = v if v >= 0 else None
        self.study.add_trial(
            optuna.trial.create_trial(
                state=getattr(optuna.trial.TrialState, state),
                value=value,
                params={**params, **choice},
                distributions={
                    **{n: self._dist(n, v) for n, v in params.items()},
                    **{n: self._categorical(n) for n in choice},
                },
                intermediate_values=inter,
                user_attrs=attrs,
            )
        )
        self.written.add(mid)

    # ------------------------------------------------------------------ at the end
    def finish(self, result: SweepResult) -> None:
        """The trials not written yet (the members that trained to the end), from the
        stored result, and the study's attributes (winner, test accuracy, ...)."""
        if not self.on:
            return
        optuna = self.optuna
        try:
            # The winner first of those left, so Optuna's best trial is the winner on
            # ties (unless a member of equal accuracy was written mid-run: ASHA).
            cats = dict(result.config.choices)  # categorical axes (``choices``)
            for t in winner_first(trial_specs(result), result):
                if t.member in self.written:  # the study's attributes name the winner
                    continue
                dists = {
                    n: optuna.distributions.CategoricalDistribution(list(cats[n]))
                    if n in cats
                    else self._dist(n, float(v))
                    for n, v in t.params.items()
                }
                self.study.add_trial(
                    optuna.trial.create_trial(
                        state=getattr(optuna.trial.TrialState, t.state),
                        value=t.value,
                        params=t.params,
                        distributions=dists,
                        intermediate_values=t.intermediate,
                        user_attrs=t.user_attrs,
                    )
                )
                self.written.add(t.member)
            for k, v in study_attrs(result).items():
                self.study.set_user_attr(k, v)
        except Exception as e:
            self.on = False
            self.note(f"note: Optuna live writes stopped ({type(e).__name__}: {e})")


__all__ = ["OptunaLive"]
