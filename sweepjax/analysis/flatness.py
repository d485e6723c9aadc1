"""Is an axis flat? The equivalence test behind the flat-axis verdict
(:mod:`sweepjax.analysis.verdict`): the widest stretch of a partial-dependence curve
around its best knot over which a Wald test cannot tell the curve from a constant AND
the modelled curve moves by less than ``FLAT_TOL_FACTOR`` tolerances.

Small normal / chi-square helpers live here too (no scipy: the levels used are few and
the approximations are stated where they are made).
"""

from __future__ import annotations

import functools
import math

import numpy as np

# A flat stretch's modelled curve moves by less than this many ``tol``: the posterior mean
# of an 11-knot curve wanders ~1 tol on a truly flat axis; a difference between two
# members carries sqrt(2) tol of noise.
FLAT_TOL_FACTOR = 2.0


def norm_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@functools.lru_cache(maxsize=1024)
def chi2_crit(df: int, alpha: float) -> float:
    """Upper ``alpha`` quantile of chi-square with ``df`` degrees of freedom
    (Wilson-Hilferty; within ~1% for df >= 1 at the levels used here)."""
    z = norm_isf(alpha)
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def norm_isf(p: float) -> float:
    lo, hi = -10.0, 10.0
    for _ in range(80):  # bisection on the normal survival function
        mid = (lo + hi) / 2.0
        lo, hi = (mid, hi) if norm_sf(mid) > p else (lo, mid)
    return (lo + hi) / 2.0


def flat_range(pd_mean, pd_cov, tol, alpha) -> tuple[int, int]:
    """Widest knot interval ``[lo, hi]`` around the best knot of the partial-dependence
    curve ``pd_mean [K]`` (covariance ``pd_cov [K, K]``) over which it is flat: the Wald
    test that the curve is constant there does not reject at level ``alpha``, and the
    modelled curve moves by less than ``FLAT_TOL_FACTOR * tol`` there."""
    k = len(pd_mean)
    top = int(np.argmax(pd_mean))
    best = (top, top)
    for lo in range(top, -1, -1):
        if np.ptp(pd_mean[lo : top + 1]) >= FLAT_TOL_FACTOR * tol or not is_constant(
            pd_mean, pd_cov, lo, top, alpha
        ):
            break
        for hi in range(top, k):
            seg = pd_mean[lo : hi + 1]
            if np.ptp(seg) >= FLAT_TOL_FACTOR * tol or not is_constant(
                pd_mean, pd_cov, lo, hi, alpha
            ):
                break
            if hi - lo > best[1] - best[0]:
                best = (lo, hi)
    return best


def is_constant(pd_mean, pd_cov, lo, hi, alpha) -> bool:
    """Wald test of ``pd[lo] == pd[lo + 1] == ... == pd[hi]``: True when not rejected."""
    if hi == lo:
        return True
    c = np.zeros((hi - lo, len(pd_mean)))
    c[np.arange(hi - lo), np.arange(lo + 1, hi + 1)] = 1.0
    c[:, lo] = -1.0
    d = c @ pd_mean
    try:
        stat = float(d @ np.linalg.solve(c @ pd_cov @ c.T, d))
    except np.linalg.LinAlgError:  # a degenerate curve: nothing measurable moves
        return True
    return stat <= chi2_crit(hi - lo, alpha)
