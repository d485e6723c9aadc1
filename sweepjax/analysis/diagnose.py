"""Reading a member's curves the way the lecture does: what went wrong, and what to try.

Each rule is a pure function of one member's curves (``[E]`` arrays) that returns a
:class:`Diagnosis` (kind, one-line advice, the numbers behind it) or None.

Kinds and default thresholds (:class:`Thresholds`):

- ``lr_too_high``: the member diverged (loss > 3x its start, or NaN) at some step.
- ``lr_too_low``: the training loss fell by less than 10% of its starting value.
- ``overfitting``: training accuracy exceeds validation accuracy by more than 0.10
  (ten points; on MNIST-like data a well-regularized softmax shows 0.02-0.05) ->
  raise lambda.
- ``underfitting``: gap under 0.02 and training accuracy under 0.90 -> more capacity
  (or less lambda). Not reported with ``lr_too_low``, which explains it better.
- ``update_ratio_high`` / ``update_ratio_low``: ||update|| / ||weights|| at the last
  evaluation outside [1e-4, 1e-2] (the lecture's "about 1e-3") -> lower / raise the lr.
- ``lr_decayed`` (from :func:`diagnose_sweep`, which knows the schedule): the ratio is low
  only because the run-relative schedule had annealed the rate (the ratio scaled back to
  the base rate is in the band) -> expected at the end of an annealed run, not a low lr.
- ``ratio_rule_overruled`` (from :func:`diagnose_sweep`, which knows the other members):
  the ratio is out of the band, but every member with a lower (higher) rate that trained
  as long scored worse by more than this member's SE: the scores, not the rule of thumb,
  say which rate is better. Otherwise the ratio finding names the best such member.

Diverged members get only ``lr_too_high``: their later curves are NaN.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from sweepjax.engine.curves import Curves


class Diagnosis(NamedTuple):
    """One finding about one member.

    Attributes:
      kind: ``lr_too_high`` | ``lr_too_low`` | ``lambda_too_high`` and ``lr_decayed``
        (from :func:`diagnose_sweep`, which knows lambda and the schedule) |
        ``overfitting`` | ``underfitting`` | ``update_ratio_high`` | ``update_ratio_low``.
      message: one line: what is seen and what to do.
      evidence: the numbers the rule looked at (e.g. ``{"gap": 0.14, "threshold": 0.1}``).
    """

    kind: str
    message: str
    evidence: dict

    def as_dict(self) -> dict:
        return self._asdict()


@dataclass(frozen=True)
class Thresholds:
    min_loss_decrease: float = 0.10  # relative decrease of train loss below this: lr too low
    overfit_gap: float = 0.10  # train acc - val acc above this: overfitting
    underfit_gap: float = 0.02  # gap below this ...
    underfit_train_acc: float = 0.90  # ... and train acc below this: underfitting
    ratio_lo: float = 1e-4  # update/weight ratio band around the lecture's 1e-3
    ratio_hi: float = 1e-2
    # A flat loss with lambda at least this large is blamed on the L2 term, not the rate:
    # with unit-scale features such a penalty holds the weights near zero.
    large_l2: float = 0.1


DEFAULT = Thresholds()


def _last_finite(a: np.ndarray) -> tuple[int, float] | None:
    idx = np.flatnonzero(np.isfinite(a))
    return (int(idx[-1]), float(a[idx[-1]])) if idx.size else None


# --------------------------------------------------------------------------- the rules
def diverged(diverged_at: int | None) -> Diagnosis | None:
    if diverged_at is None or diverged_at < 0:
        return None
    return Diagnosis(
        "lr_too_high",
        f"loss exploded at step {diverged_at} (over 3x its start, or NaN): lower the learning rate",
        {"diverged_at": int(diverged_at)},
    )


def loss_barely_moved(
    train_loss: np.ndarray, reference: float | None = None, th: Thresholds = DEFAULT
) -> Diagnosis | None:
    """``train_loss[E]``. The start is ``max(train_loss[0], reference)``: the first point
    is already a mean over the first evaluation block, so a fast learner's first point is
    low; ``reference`` (the initial loss, or ln K) restores the true start."""
    last = _last_finite(train_loss)
    if last is None or not np.isfinite(train_loss[0]):
        return None
    start = float(train_loss[0]) if reference is None else max(float(train_loss[0]), reference)
    decrease = (start - last[1]) / start if start > 0 else 0.0
    if decrease >= th.min_loss_decrease:
        return None
    return Diagnosis(
        "lr_too_low",
        f"training loss barely moved ({start:.3g} -> {last[1]:.3g}, {decrease:.1%} down): "
        "raise the learning rate",
        {
            "start": start,
            "end": last[1],
            "relative_decrease": decrease,
            "threshold": th.min_loss_decrease,
        },
    )


def accuracy_gap(
    train_acc: np.ndarray, val_acc: np.ndarray, th: Thresholds = DEFAULT
) -> Diagnosis | None:
    """Overfitting or underfitting from the last evaluation where both are finite."""
    ok = np.flatnonzero(np.isfinite(train_acc) & np.isfinite(val_acc))
    if not ok.size:
        return None
    tr, va = float(train_acc[ok[-1]]), float(val_acc[ok[-1]])
    gap = tr - va
    ev = {"train_acc": tr, "val_acc": va, "gap": gap}
    if gap > th.overfit_gap:
        return Diagnosis(
            "overfitting",
            f"train accuracy {tr:.3f} vs validation {va:.3f} (gap {gap:.3f} > "
            f"{th.overfit_gap}): raise lambda",
            {**ev, "threshold": th.overfit_gap},
        )
    if gap < th.underfit_gap and tr < th.underfit_train_acc:
        return Diagnosis(
            "underfitting",
            f"no gap ({gap:.3f}) and low training accuracy {tr:.3f} < "
            f"{th.underfit_train_acc}: more capacity (or less lambda)",
            {**ev, "threshold": th.underfit_train_acc},
        )
    return None


def update_ratio(ratio: np.ndarray, th: Thresholds = DEFAULT) -> Diagnosis | None:
    """The update/weight norm ratio at the last finite evaluation against [lo, hi]."""
    last = _last_finite(ratio)
    if last is None:
        return None
    r = last[1]
    ev = {"ratio": r, "lo": th.ratio_lo, "hi": th.ratio_hi}
    if r > th.ratio_hi:
        return Diagnosis(
            "update_ratio_high",
            f"update/weight ratio {r:.1e} (rule of thumb: about 1e-3): "
            "the learning rate may be too high",
            ev,
        )
    if r < th.ratio_lo:
        return Diagnosis(
            "update_ratio_low",
            f"update/weight ratio {r:.1e} (rule of thumb: about 1e-3): "
            "the learning rate may be too low",
            ev,
        )
    return None


# --------------------------------------------------------------------------- per member
def diagnose_member(
    curves: Curves,
    row: int,
    diverged_at: int | None = None,
    *,
    initial_loss: float | None = None,
    th: Thresholds = DEFAULT,
) -> list[Diagnosis]:
    """Every diagnosis of member row ``row`` of ``curves`` (``[M, E]`` arrays).

    Args:
      curves: the population's curves.
      row: the member's row.
      diverged_at: step it diverged at (None or -1 if it did not).
      initial_loss: the member's first loss (or ln K when unknown); see
        :func:`loss_barely_moved`.

    Example::

      diagnose_member(result.curves, 0, diverged_at=None, initial_loss=math.log(10))
      # [Diagnosis(kind='lr_too_low', message='training loss barely moved ...', ...)]
    """
    boom = diverged(diverged_at)
    if boom is not None:
        return [boom]
    out = []
    low = loss_barely_moved(curves.train_loss[row], initial_loss, th)
    if low is not None:
        out.append(low)
    gap = accuracy_gap(curves.train_acc[row], curves.val_acc[row], th)
    if gap is not None and not (low is not None and gap.kind == "underfitting"):
        out.append(gap)
    ratio = update_ratio(curves.update_ratio[row], th)
    if ratio is not None:
        out.append(ratio)
    return out


def diagnose_sweep(result, th: Thresholds = DEFAULT) -> dict[int, list[Diagnosis]]:
    """``{member id: [Diagnosis, ...]}`` for every member of a ``SweepResult``.

    Without curves (``result.curves`` None) only divergence can be diagnosed. The loss
    reference is ln(num_classes) when ``result.dataset`` records it.
    """
    k = result.dataset.get("num_classes") if isinstance(result.dataset, dict) else None
    ref = math.log(k) if k else None
    horizon = result.config.train.steps
    out: dict[int, list[Diagnosis]] = {}
    peers = _Peers.of(result)
    for row, m in enumerate(result.members):
        if result.curves is None:
            d = diverged(m.diverged_at)
            out[m.id] = [d] if d is not None else []
        else:
            found = diagnose_member(result.curves, row, m.diverged_at, initial_loss=ref, th=th)
            found = [_name_axes(_blame_lambda(d, m.l2, th), m) for d in found]
            found = [_blame_schedule(d, result.curves, row, m.lr_decay, horizon, th) for d in found]
            out[m.id] = [_against_the_scores(d, row, result, peers) for d in found]
    return out


def schedule_multiplier(step: float, horizon: float, floor: float) -> float:
    """The run-relative schedule's rate multiplier (as the trainer's ``lr_multiplier``)."""
    frac = min(step / max(horizon, 1), 1.0)
    return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * frac))


def _blame_schedule(d, curves, row, floor, horizon, th: Thresholds) -> Diagnosis:
    """A low update ratio at a step where the schedule had annealed the rate: scaled back
    to the base rate the ratio is in the band, so the schedule (not the base rate) is why
    it is low."""
    if d.kind != "update_ratio_low" or not horizon or floor is None or floor >= 1.0:
        return d
    last = _last_finite(curves.update_ratio[row])
    if last is None:
        return d
    step = float(curves.step[last[0]])
    mult = schedule_multiplier(step, horizon, float(floor))
    if mult >= 0.5 or last[1] / mult < th.ratio_lo:
        return d
    return Diagnosis(
        "lr_decayed",
        f"update/weight ratio {last[1]:.1e} at step {step:.0f}, where the schedule had "
        f"lowered the rate to {mult:.2g}x its base ({last[1] / mult:.1e} at the base rate): "
        "expected at the end of an annealed run; raise lr_decay for more movement",
        {**d.evidence, "multiplier": mult, "step": step, "lr_decay": float(floor)},
    )


def _name_axes(d: Diagnosis, m) -> Diagnosis:
    """An MLP member's gap diagnoses name its other regularisers: dropout next to lambda
    for overfitting; for underfitting, its width and dropout (its running training
    accuracy is measured with dropout on, so dropout alone lowers it)."""
    if m.hidden is None or d.kind not in ("overfitting", "underfitting"):
        return d
    drop = m.dropout or 0.0
    if d.kind == "overfitting":
        return d._replace(message=d.message.replace("raise lambda", "raise lambda or dropout"))
    extra = f" (width {m.hidden}" + (f", dropout {drop:.2g}: lower it" if drop > 0 else "") + ")"
    return d._replace(
        message=d.message + extra, evidence={**d.evidence, "hidden": m.hidden, "dropout": drop}
    )


def _blame_lambda(d: Diagnosis, l2: float, th: Thresholds) -> Diagnosis:
    """A loss that barely moved under a large lambda: the L2 term, not the learning rate,
    holds the weights near zero (raising the rate would not help)."""
    if d.kind != "lr_too_low" or not l2 >= th.large_l2:
        return d
    return Diagnosis(
        "lambda_too_high",
        f"training loss barely moved with lambda {l2:.3g}: the L2 term keeps the weights "
        "near zero; lower lambda",
        {**d.evidence, "l2": l2, "large_l2": th.large_l2},
    )


# A rate counts as "lower" (or "higher") than a member's when it differs by this factor.
RATE_STEP = 1.5


class _Peers(NamedTuple):
    """What the ratio check compares, built once per sweep: ``lr [N]``, ``usable [N]`` (did
    not diverge), ``va [N, E]`` validation accuracy curves and ``fin`` their finite mask."""

    lr: np.ndarray
    usable: np.ndarray
    va: np.ndarray
    fin: np.ndarray

    @classmethod
    def of(cls, result) -> _Peers | None:
        if result.curves is None:
            return None
        va = np.asarray(result.curves.val_acc, np.float64)
        return cls(
            np.array([o.lr for o in result.members], np.float64),
            np.array([o.status != "diverged" for o in result.members]),
            va,
            np.isfinite(va),
        )


def _against_the_scores(d: Diagnosis, row: int, result, pe: _Peers | None) -> Diagnosis:
    """The lecture's ~1e-3 update ratio is a rule of thumb; the sweep measured what other
    rates score. A "rate may be too high" (low) finding is checked against every member
    with a lower (higher) rate, each compared with this one at the last evaluation both
    reached (equal training: under halving the lower rates were mostly stopped at a rung).
    Where the best of them scored worse by more than two SEs of one evaluation, the scores
    overrule the rule of thumb and the finding says so (kind ``ratio_rule_overruled``);
    otherwise it names the best of them, so the advice comes with its evidence."""
    if d.kind not in ("update_ratio_high", "update_ratio_low") or pe is None:
        return d
    high = d.kind == "update_ratio_high"
    ms = result.members
    m = ms[row]
    va = pe.va
    other = pe.lr * RATE_STEP <= m.lr if high else pe.lr >= m.lr * RATE_STEP
    peers = np.flatnonzero(other & pe.usable)
    both = pe.fin[peers] & pe.fin[row]  # [P, E]: evaluations both members reached
    seen = both.any(axis=1)
    peers, both = peers[seen], both[seen]
    if len(peers) == 0:
        return d
    last = both.shape[1] - 1 - np.argmax(both[:, ::-1], axis=1)  # each pair's last one
    diffs = va[peers, last] - va[row, last]
    k = int(np.argmax(diffs))  # the best of them (the first, in member order, on ties)
    diff, q, e = float(diffs[k]), int(peers[k]), int(last[k])
    p = float(np.clip(va[row, e], 0.01, 0.99))
    n = result.config.train.val_subset  # the fixed subset the curves measure
    n = min(n, int(result.dataset.get("n_val") or n))
    se = math.sqrt(p * (1 - p) / n)
    side = "lower" if high else "higher"
    step = int(result.curves.step[e])
    o = ms[q]
    ev = {**d.evidence, f"best_{side}_lr": o.lr, "margin": diff, "at_step": step}
    if diff < -2.0 * se:
        return Diagnosis(
            "ratio_rule_overruled",
            f"update/weight ratio {d.evidence['ratio']:.1e} (rule of thumb: about 1e-3), but "
            f"every member with a {side} rate scored worse at equal training (the best, lr "
            f"{o.lr:.3g}, by {-diff:.3f} at step {step}): the scores favour this rate",
            ev,
        )
    return d._replace(
        message=d.message + f" (lr {o.lr:.3g} scored {diff:+.3f} against it at step {step})",
        evidence=ev,
    )
