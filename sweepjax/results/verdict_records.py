"""What a sweep's verdict says, as stored and printed: the flagged edges and the
response-surface verdict in real units (built by :mod:`sweepjax.results.claims`; the JSON,
the store, the table and the report read them). Re-exported by
:mod:`sweepjax.results.records`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass


@dataclass(frozen=True)
class BoundaryFlag:
    """The modelled score still rises significantly toward an edge of the searched box
    (:func:`sweepjax.analysis.verdict.judge_surface`): the optimum may lie past it.

    ``rise`` is the modelled accuracy gained across the outer band toward the edge (SE
    ``rise_se``, one-sided ``p_value``); ``confidence`` the fraction of posterior surfaces
    whose best point lies in that band. ``member`` is only set on flags read from stores
    written before the model (the old rule flagged top members in the band)."""

    param: str  # "lr" | "l2" | ...
    side: str  # "low" | "high"
    member: int | None = None
    rise: float | None = None
    rise_se: float | None = None
    p_value: float | None = None
    confidence: float | None = None

    def as_dict(self) -> dict:
        return {k: v for k, v in dataclasses.asdict(self).items() if v is not None}


@dataclass(frozen=True)
class VerdictRecord:
    """The response-surface verdict of a sweep in real units (:mod:`sweepjax.results.appraise`).

    Attributes:
      importance: per axis, the range of the modelled partial-dependence curve
        (accuracy points between the axis's best and worst value, others averaged).
      importance_se: its posterior SD.
      flat: axes over which the model shows no measurable difference anywhere.
      flat_ranges: per axis, ``[lo, hi]`` around its best value with no measurable
        difference (the whole box for a flat axis).
      optimum: per axis, the modelled optimum; ``optimum_value`` the score there.
      optimum_inside: no edge is flagged; ``optimum_confidence`` the fraction of
        posterior surfaces whose optimum is inside.
      tol: the smallest difference called a difference (the winner's accuracy SE).
      fit: which members the surface was fitted on.
      optimum_sd: the model's posterior SD at the optimum.
      optimum_status: ``"inside"`` (no edge flagged and ``optimum_confidence`` >= 50%),
        ``"past an edge"`` (an edge is flagged) or ``"not established"``.
      optimum_supported: members near the optimum do not contradict it.
      unsupported_value: the model mean's own maximum, where the verdicts did not take it
        (no member supports it, or nearby members score more than 3 SE below it).
      edge_confidence: per uncapped edge (``"lr high"``), the fraction of posterior
        surfaces whose optimum lies in its band.
      diverged_regions: ``{"param", "side", "bound", "diverged", "members"}`` per axis
        edge where most members diverged (``fine`` stays on the near side of ``bound``).
      not_measured: per axis, a range the model called flat but in which fewer than 3
        members trained to the end: ``{"range", "members", "finished"}`` (no claim).
    """

    importance: dict[str, float]
    importance_se: dict[str, float]
    flat: list[str]
    flat_ranges: dict[str, list[float]]
    optimum: dict[str, float]
    optimum_value: float
    optimum_inside: bool
    optimum_confidence: float
    tol: float
    fit: str = ""
    optimum_sd: float | None = None
    optimum_status: str = ""
    optimum_supported: bool = True
    unsupported_value: float | None = None
    edge_confidence: dict[str, float] = dataclasses.field(default_factory=dict)
    diverged_regions: list[dict] = dataclasses.field(default_factory=list)
    not_measured: dict[str, dict] = dataclasses.field(default_factory=dict)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def optimum_where(self) -> str:
        """The optimum in words: "inside the box" (no flag, confidence >= 50%),
        "possibly past an edge" (a flagged edge) or "not established". Stores written
        before the status existed say inside / past an edge from ``optimum_inside``."""
        status = self.optimum_status or ("inside" if self.optimum_inside else "past an edge")
        return {"inside": "inside the box", "past an edge": "possibly past an edge"}.get(
            status, "not established"
        )
