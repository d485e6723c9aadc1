"""What a sweep's appraisal lets us say, in real units: the verdict record (the JSON, the
store, the table and the report read it), the flagged edges, and the next box.

Every claim here is one the evidence supports (docs/verdicts.md): a region where most
members diverged is said to diverge, never to "make no measurable difference"; a flat
range in which too few members trained to the end is "not measured"; the optimum is
"inside" only at a confidence of at least 50%. Pure numpy on
:class:`sweepjax.results.appraise.Appraisal`; nothing here trains, stores or prints.
"""

from __future__ import annotations

import numpy as np

from sweepjax.analysis import evidence as ev
from sweepjax.analysis import verdict as vd
from sweepjax.config import Range, SearchSpace, axis_of
from sweepjax.results.appraise import Appraisal
from sweepjax.results.records import BoundaryFlag, VerdictRecord

# A claim about a stretch of an axis needs at least this many members that trained to the
# end in it (under halving the surface also reads members stopped after 11 steps).
MIN_FINISHED_FOR_CLAIM = 3


def optimum_status(v: vd.Verdict) -> str:
    """``"inside"`` (no flag, confidence >= 50%), ``"past an edge"`` (a flagged edge) or
    ``"not established"`` (neither: the posterior surfaces disagree)."""
    if v.flagged:
        return "past an edge"
    return "inside" if v.optimum_inside else "not established"


def _claims(a: Appraisal, v: vd.Verdict, bounds: dict[str, tuple[float, float]]):
    """Flat axes and flat ranges clipped to the divergence limits ``bounds`` (unit), and
    the ranges no longer claimed because too few members there trained to the end:
    ``(flat, flat_ranges, not_measured)``, all in unit coordinates."""
    fin = np.ones(len(a.x_unit), bool) if a.finished is None else a.finished
    flat, ranges, unmeasured = [], {}, {}
    for j, name in enumerate(a.axes):
        lo, hi = v.flat_ranges[name]
        b_lo, b_hi = bounds[name]
        lo, hi = max(lo, b_lo), min(hi, b_hi)  # no claim about a region that diverged
        inside = (a.x_unit[:, j] >= lo - 1e-9) & (a.x_unit[:, j] <= hi + 1e-9)
        n_fin = int((inside & fin).sum())
        if hi > lo and n_fin < MIN_FINISHED_FOR_CLAIM:
            unmeasured[name] = (lo, hi, int(inside.sum()), n_fin)
            ranges[name] = (v.optimum[name], v.optimum[name])
            continue
        ranges[name] = (lo, hi)
        if name in v.flat and lo <= 0.0 and hi >= 1.0:
            flat.append(name)
    return flat, ranges, unmeasured


def verdict_record(a: Appraisal, space: SearchSpace) -> VerdictRecord | None:
    """The verdict in real units (what the JSON, the store and the table show): the
    claims the evidence supports, the regions that diverged, the optimum with its SD."""
    if a.verdict is None:
        return None
    v, ranges = a.verdict, space.axes()

    def real(name: str, u: float) -> float:
        return float(ranges[name].from_unit(u))

    lim_lo, lim_hi = ev.frontier_limits(list(a.frontiers), len(a.axes))
    bounds = {n: (max(lim_lo[j], 0.0), min(lim_hi[j], 1.0)) for j, n in enumerate(a.axes)}
    flat, flat_ranges, unmeasured = _claims(a, v, bounds)
    return VerdictRecord(
        importance={k: round(val, 6) for k, val in v.importance.items()},
        importance_se={k: round(val, 6) for k, val in v.importance_se.items()},
        flat=flat,
        flat_ranges={k: [real(k, lo), real(k, hi)] for k, (lo, hi) in flat_ranges.items()},
        optimum={k: real(k, u) for k, u in v.optimum.items()},
        optimum_value=v.optimum_value,
        optimum_inside=v.optimum_inside,
        optimum_confidence=v.optimum_confidence,
        tol=v.tol,
        fit=a.fit_note,
        optimum_sd=round(v.optimum_sd, 6),
        optimum_status=optimum_status(v),
        optimum_supported=v.optimum_supported,
        unsupported_value=None if v.unsupported_value is None else round(v.unsupported_value, 6),
        edge_confidence={
            f"{b.param} {b.side}": round(b.confidence_past, 4) for b in v.boundaries if not b.capped
        },
        diverged_regions=[
            {
                "param": a.axes[f.axis],
                "side": f.side,
                "bound": real(a.axes[f.axis], f.bound),
                "diverged": f.diverged,
                "members": f.members,
            }
            for f in a.frontiers
        ],
        not_measured={
            k: {"range": [real(k, lo), real(k, hi)], "members": n, "finished": nf}
            for k, (lo, hi, n, nf) in unmeasured.items()
        },
    )


def boundary_records(a: Appraisal) -> list[BoundaryFlag]:
    """The flagged edges (the model's score still rises significantly toward them)."""
    if a.verdict is None:
        return []
    return [
        BoundaryFlag(
            param=b.param,
            side=b.side,
            rise=round(b.rise, 6),
            rise_se=round(b.rise_se, 6),
            p_value=b.p_value,
            confidence=b.confidence_past,
        )
        for b in a.verdict.flags
    ]


def next_space(a: Appraisal, space: SearchSpace) -> tuple[SearchSpace, str]:
    """The next box in real units (:func:`sweepjax.analysis.verdict.refine_box` mapped back with
    ``Range.from_unit``), never past a cap (whole bounds on ``hidden``), and a one-line
    explanation per axis."""
    if a.box is None or a.verdict is None:
        raise ValueError("no model to refine from")
    ranges = space.axes()
    flagged = {(b.param, b.side) for b in a.verdict.flags}
    out, why = {}, []
    for j, name in enumerate(a.axes):
        r = ranges[name]
        lo, hi = (float(v) for v in r.from_unit([a.box.lo[j], a.box.hi[j]]))
        lo = r.lo if a.box.lo[j] == 0.0 else lo
        hi = r.hi if a.box.hi[j] == 1.0 else hi
        lo, hi, notes = axis_of(name, r).clamp(lo, hi)  # never past a cap; whole hidden units
        for side in ("low", "high"):
            if (name, side) in flagged:
                notes.append(f"score still rises toward the {side} edge: extended past it")
        if name in a.verdict.flat:
            notes.append("flat: kept wide")
        out[name] = Range(lo, hi, r.log)
        width = a.box.hi[j] - a.box.lo[j]
        why.append(
            f"{name}: [{lo:.3g}, {hi:.3g}] ({width:.0%} of the parent's "
            f"{'log-' if r.log else ''}width" + (f"; {', '.join(notes)}" if notes else "") + ")"
        )
    return SearchSpace.of(out), "model box around the optimum and the tied set: " + "; ".join(why)


# "Most members tied": at least this share of the finished members (or configs) is tied
# with the winner.
SETTLED_TIED_SHARE = 0.5


def settled(result) -> bool:
    """Another ``fine`` round will not separate a sweep's winners: the optimum is inside
    the box (confidence >= 50%), every searched axis is flat, and most of the finished
    members (configs, with replicas or folds) are tied with the winner. Only a more
    precise measurement can: a bigger validation set, replicas or folds. ``auto`` stops
    there too.

    Example::

      settled(sweepjax.fine(store="s.db"))  # True on a plateau the data cannot split
    """
    v = result.verdict
    if v is None or not result.tied or v.optimum_where != "inside the box":
        return False
    if set(v.flat) != set(result.space):
        return False
    units = result.configs or result.members
    finished = sum(1 for m in units if m.status == "ok")
    return finished > 0 and len(result.tied) >= SETTLED_TIED_SHARE * finished
