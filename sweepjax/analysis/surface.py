"""A response-surface model of a sweep's validation accuracy over its unit box.

Pure numpy: nothing here trains, stores, prints or jits. Positions are *unit
coordinates* of the searched box (0 = low edge, 1 = high edge, log space on log axes:
``sweepjax.config.Range.to_unit``); ``verdict.py`` turns the model into decisions.

The model, and why this one:

- **Additive piecewise-linear curves plus pairwise bilinear terms**,
  ``f(u) = sum_a s_a(u_a) + sum_{a<b} c_ab (u_a - 1/2)(u_b - 1/2)``, each ``s_a`` a
  linear interpolant through ``knots`` evenly spaced values (hat-function basis),
  fitted by weighted least squares with a first-difference ridge penalty (a degree-1
  P-spline; Eilers & Marx 1996) whose strength is picked by generalised
  cross-validation. Accuracy against log(lr) is a plateau that ends in a cliff
  (divergence): a global quadratic bends its whole shape to the cliff and invents
  slopes at the far edges; a hat basis is *local* (a knot only moves its two
  neighbouring intervals), so a cliff stays where it is and a flat stretch stays flat.
  The first-difference penalty shrinks towards *constant*, never towards a trend, so
  smoothing can only understate a slope (an edge flag needs the data, not the prior).
  The model is linear in its coefficients, so its posterior is Gaussian: means,
  standard errors and sampled surfaces (for bootstrap-style confidences and Thompson
  sampling) cost a matrix product. A GP would do the same with an N x N solve per fit
  and per hyperparameter; this stays ~1 ms for hundreds of members.
- **A floored score.** Accuracies below the ``floor_quantile`` of the alive members are
  raised to it: the model describes where the *top* of the population is, and a
  collapsed corner (accuracy 0.1 next to a 0.85 plateau) cannot pull the fit with
  leverage it has no right to. Importance is therefore measured down to that floor.
- **Divergence is data.** A member that diverged (its cost passed 3x its start: the
  lecture's stop rule) says "this region is bad" as surely as a collapsed one, so it
  enters the fit *at the floor* (a censored low score), with the floor's noise. Leaving
  it out, as this model once did, let the curve run free past the last survivor: on a
  softmax box reaching lr = 3, where 46 of 53 members diverged, the fit put its optimum
  on the edge at 0.93 against a best member of 0.843 (19.5 SE).
- **Known noise, then honest misfit.** Each member is weighted by its binomial
  variance ``p (1 - p) / n_val`` (or a given SE). The posterior covariance is then
  multiplied by the dispersion ``max(1, chi2 / (N - edf))``, so lack of fit (terms the
  model does not have) widens every interval instead of becoming false confidence.
- Outside ``[0, 1]`` each curve extends linearly along its outer interval, so a box
  extended past an edge can be scored (with widening uncertainty) by :func:`propose`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

DEFAULT_KNOTS = 11  # knots at 0, 0.1, ..., 1
# The verdicts search the model's maximum and draw posterior surfaces on the full knot
# grid (``knots ** A`` points): with more axes the curves get fewer knots so that grid stays
# below this many points (11 knots up to 4 axes; 7, 5, 4 for 5, 6, 7 axes).
MAX_GRID_POINTS = 20_000
DEFAULT_FLOOR_QUANTILE = 0.25
_LAMBDAS = np.logspace(-4.0, 1.0, 8)  # penalty grid, relative to mean(diag(X'WX))
_INTERACTION_RIDGE = 1e-6


class Surface(NamedTuple):
    """A fitted response surface (see the module docstring).

    Attributes:
      axes: axis names, ``A`` of them, in column order of the positions.
      knots: knots per axis curve.
      coef: ``[P]`` posterior mean of the coefficients.
      cov: ``[P, P]`` posterior covariance (dispersion included).
      floor: scores below this accuracy were raised to it before the fit.
      noise_se: ``[N_fit]`` SE of each fitted member's score (after weighting).
      dispersion: ``chi2 / (N - edf)`` of the fit, at least 1 (1 = fits to the noise).
      edf: effective number of parameters at the chosen penalty.
      penalty: chosen penalty strength (absolute).
      x: ``[N_fit, A]`` unit positions of the fitted members (diverged ones included).
      y: ``[N_fit]`` the scores fitted (floored; a diverged member's is the floor).
      diverged: ``[N_fit]`` bool, the member diverged (entered at the floor).
      exact: ``[N_fit]`` bool, the member's score measures what the model predicts (it
        trained to the end; a stopped member's score is a lower bound with a wide SE).
    """

    axes: tuple[str, ...]
    knots: int
    coef: np.ndarray
    cov: np.ndarray
    floor: float
    noise_se: np.ndarray
    dispersion: float
    edf: float
    penalty: float
    x: np.ndarray | None = None
    y: np.ndarray | None = None
    diverged: np.ndarray | None = None
    exact: np.ndarray | None = None

    @property
    def num_axes(self) -> int:
        return len(self.axes)


def knots_for(num_axes: int) -> int:
    """Knots per axis curve for ``num_axes`` axes: ``DEFAULT_KNOTS``, or fewer so that the
    knot grid has at most ``MAX_GRID_POINTS`` points (at least 3 knots)."""
    k = DEFAULT_KNOTS
    while k > 3 and k ** max(num_axes, 1) > MAX_GRID_POINTS:
        k -= 1
    return k


def min_members(num_axes: int) -> int:
    """Alive members a fit needs: two per axis curve plus two, and at least as many as the
    level, the slopes and the pairwise terms (``1 + A + A (A - 1) / 2``): the pair terms
    carry only a token ridge, so the data must pin them (6 members for 2 axes, 8 for 3,
    11 for 4, 16 for 5, 22 for 6, 29 for 7)."""
    a = num_axes
    return max(2 * a + 2, 1 + a + a * (a - 1) // 2)


def num_features(num_axes: int, knots: int = DEFAULT_KNOTS) -> int:
    """Coefficients of the model: ``knots`` for axis 0, ``knots - 1`` for the others (their
    curve is pinned to 0 at the low edge, the level lives in axis 0), plus one per pair."""
    return knots + (num_axes - 1) * (knots - 1) + num_axes * (num_axes - 1) // 2


def features(x: np.ndarray, knots: int = DEFAULT_KNOTS) -> np.ndarray:
    """Design matrix of the model at positions ``x``.

    Args:
      x: ``[M, A]`` unit coordinates; values outside ``[0, 1]`` extrapolate linearly.
      knots: knots per axis curve.

    Returns:
      ``[M, P]`` with ``P = num_features(A, knots)``; ``features(x) @ coef`` is the
      modelled score.

    Example::

      features(np.array([[0.0, 1.0]]), knots=3)  # [[1, 0, 0, 0, 1, 0.25]]
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    m, a = x.shape
    h = 1.0 / (knots - 1)
    cols = []
    for j in range(a):
        # Interval index clamped to the first/last interval, weight left unclamped: inside
        # [0, 1] this is linear interpolation, outside it continues the outer interval.
        seg = np.clip(np.floor(x[:, j] / h), 0, knots - 2).astype(int)
        w = x[:, j] / h - seg
        hats = np.zeros((m, knots))
        rows = np.arange(m)
        hats[rows, seg] = 1.0 - w
        hats[rows, seg + 1] = w
        cols.append(hats if j == 0 else hats[:, 1:])
    for j in range(a):
        for k in range(j + 1, a):
            cols.append(((x[:, j] - 0.5) * (x[:, k] - 0.5))[:, None])
    return np.concatenate(cols, axis=1)


def _penalty_matrix(num_axes: int, knots: int) -> np.ndarray:
    """First-difference penalty ``D'D`` per axis curve; a tiny ridge on the pair terms."""
    d = np.diff(np.eye(knots), axis=0)
    dtd = d.T @ d
    blocks = [dtd] + [dtd[1:, 1:] for _ in range(num_axes - 1)]
    p = num_features(num_axes, knots)
    s = np.zeros((p, p))
    i = 0
    for b in blocks:
        s[i : i + len(b), i : i + len(b)] = b
        i += len(b)
    s[i:, i:] = np.eye(p - i) * _INTERACTION_RIDGE
    return s


def binomial_se(acc: np.ndarray, n_val: int) -> np.ndarray:
    """SE of accuracies measured on ``n_val`` examples, ``sqrt(p (1 - p) / n_val)`` with
    ``p`` shrunk by half an example (a perfect score still carries noise)."""
    p = (np.asarray(acc, dtype=np.float64) * n_val + 0.5) / (n_val + 1.0)
    return np.sqrt(p * (1.0 - p) / n_val)


def fit_surface(
    x_unit: np.ndarray,
    acc: np.ndarray,
    alive: np.ndarray,
    n_val: int,
    axes: tuple[str, ...] | list[str],
    acc_se: np.ndarray | None = None,
    knots: int | None = None,
    floor_quantile: float = DEFAULT_FLOOR_QUANTILE,
    diverged: np.ndarray | None = None,
    exact: np.ndarray | None = None,
) -> Surface:
    """Fit the response surface to the alive members and, at the floor, the diverged ones.

    Args:
      x_unit: ``[N, A]`` member positions in unit coordinates of the searched box.
      acc: ``[N]`` validation accuracies.
      alive: ``[N]`` bool, the member has a score to fit (finished or stopped).
      n_val: validation set size (binomial SE of each accuracy).
      axes: ``A`` axis names.
      acc_se: optional ``[N]`` empirical SEs (replicas, folds); replaces the binomial SE.
      knots: knots per axis curve (default :func:`knots_for` the axes: 11, one every
        tenth of the box, up to 4 axes).
      floor_quantile: scores below this quantile of the alive accuracies are raised to it.
      diverged: optional ``[N]`` bool, the member diverged: it enters the fit at the floor
        (with the floor's binomial SE, or the median given SE), whatever its ``acc``.
      exact: optional ``[N]`` bool, the member trained to the end (default: every alive
        member did); kept for the verdicts' consistency check.

    Returns:
      A :class:`Surface`.

    Example::

      x = np.random.default_rng(0).uniform(size=(256, 2))
      acc = 0.85 - 0.2 * (x[:, 0] - 0.5) ** 2
      s = fit_surface(x, acc, np.ones(256, bool), 6000, ["lr", "l2"])
      predict(s, [[0.5, 0.5]])  # (array([~0.85]), array([~0.001]))
    """
    x_all = np.asarray(x_unit, dtype=np.float64)
    acc_all = np.asarray(acc, dtype=np.float64)
    alive = np.asarray(alive, dtype=bool) & np.isfinite(acc_all)
    div = np.zeros(len(acc_all), bool) if diverged is None else np.asarray(diverged, bool)
    div = div & ~alive
    y = acc_all[alive]
    need = min_members(len(axes))
    if len(y) < need:
        raise ValueError(
            f"need at least {need} alive members to fit {len(axes)} axes, got {len(y)}"
        )
    knots = knots_for(len(axes)) if knots is None else knots
    se = binomial_se(y, n_val) if acc_se is None else np.asarray(acc_se, dtype=np.float64)[alive]
    floor = float(np.quantile(y, floor_quantile))
    y = np.maximum(y, floor)
    if div.any():  # censored low: at the floor, with the noise of a score there
        d_se = binomial_se(np.array([floor]), n_val)[0] if acc_se is None else np.median(se)
        y = np.concatenate([y, np.full(int(div.sum()), floor)])
        se = np.concatenate([se, np.full(int(div.sum()), d_se)])
    x = np.concatenate([x_all[alive], x_all[div]], axis=0)
    is_div = np.concatenate([np.zeros(int(alive.sum()), bool), np.ones(int(div.sum()), bool)])
    ex = np.ones(len(acc_all), bool) if exact is None else np.asarray(exact, bool)
    is_exact = np.concatenate([ex[alive], np.zeros(int(div.sum()), bool)])
    w = 1.0 / np.maximum(se, 1e-12) ** 2

    phi = features(x, knots)
    xtwx = phi.T @ (phi * w[:, None])
    xtwy = phi.T @ (w * y)
    pen = _penalty_matrix(len(axes), knots)
    scale = float(np.mean(np.diag(xtwx)))
    n = len(y)
    best = None
    for lam in _LAMBDAS * scale:
        prec = xtwx + lam * pen
        chol = np.linalg.cholesky(prec)
        coef = np.linalg.solve(chol.T, np.linalg.solve(chol, xtwy))
        inv = np.linalg.inv(prec)
        edf = float(np.sum(inv * xtwx))  # tr(inv @ xtwx), both symmetric
        chi2 = float(np.sum(w * (y - phi @ coef) ** 2))
        gcv = n * chi2 / max(n - edf, 1.0) ** 2
        if best is None or gcv < best[0]:
            best = (gcv, lam, coef, inv, edf, chi2)
    _, lam, coef, inv, edf, chi2 = best
    dispersion = max(1.0, chi2 / max(n - edf, 1.0))
    # Posterior covariance of a penalised fit with known noise: (X'WX + lam S)^-1.
    cov = inv * dispersion
    cov = (cov + cov.T) / 2.0
    return Surface(
        tuple(axes), knots, coef, cov, floor, se, dispersion, edf, float(lam), x, y, is_div,
        is_exact,
    )  # fmt: skip


def predict(surface: Surface, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Modelled score and its SE at positions ``x`` ``[M, A]`` -> ``([M], [M])``."""
    phi = features(x, surface.knots)
    var = np.einsum("mp,pq,mq->m", phi, surface.cov, phi)
    return phi @ surface.coef, np.sqrt(np.maximum(var, 0.0))


def sample_coefs(surface: Surface, n: int, rng: np.random.Generator) -> np.ndarray:
    """``[n, P]`` coefficient vectors drawn from the posterior (surfaces for Thompson
    sampling and for the confidence of every verdict)."""
    p = len(surface.coef)
    # Cholesky, not eigh: on a busy machine OpenBLAS's threaded eigh of a 34 x 34 matrix
    # costs milliseconds. A relative jitter covers near-singular directions.
    scale = float(np.mean(np.diag(surface.cov)))
    for jitter in (0.0, 1e-12, 1e-9, 1e-6):
        try:
            root = np.linalg.cholesky(surface.cov + jitter * scale * np.eye(p))
            break
        except np.linalg.LinAlgError:
            continue
    else:
        raise ValueError("surface covariance is not positive definite")
    return surface.coef + rng.standard_normal((n, p)) @ np.ascontiguousarray(root.T)


def knot_grid(num_axes: int, knots: int = DEFAULT_KNOTS) -> np.ndarray:
    """``[knots ** A, A]`` all knot positions. The model is piecewise multilinear on this
    grid, so its maximum over the box is always at one of these points."""
    g = np.linspace(0.0, 1.0, knots)
    mesh = np.meshgrid(*([g] * num_axes), indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)
