"""The Pareto k diagnostic of importance weights (PSIS), the same under every ArviZ.

Pareto smoothed importance sampling (Vehtari, Simpson, Gelman, Yao & Gabry 2024, "Pareto
smoothed importance sampling", JMLR 25(72)) fits a generalised Pareto distribution to the
``M`` largest of ``S`` importance weights; its shape ``k`` tells how many moments the weights
have (``k > 0.7``: the estimate is unreliable). Both ArviZ APIs implement it with the same fit
(Zhang & Stephens' empirical-Bayes estimate, shrunk towards 0.5 by a weakly informative prior
worth 10 observations), but they round the tail length differently:

- arviz 0.2x (``arviz.psislw``), like the authors' R packages ``loo`` and ``posterior``:
  ``M = ceil(min(S / 5, 3 sqrt(S / r_eff)))``;
- arviz-stats 0.8 (ArviZ 1.x): ``M = floor(3 sqrt(S / r_eff))`` if ``S r_eff > 225`` else
  ``floor(S / 5)``.

So they give the same k whenever both rules give the same ``M`` (``S <= 225`` a multiple of 5,
as every K of the quick report, or ``3 sqrt(S / r_eff)`` a whole number) and differ by one
tail draw otherwise (S = 1000: M = 95 against 94, k moving by up to 0.04 on Student-t weights;
S = 101: 21 against 20, up to 0.08). arviz-stats offers no way to set ``M`` for importance
weights, so probnn computes k here with the reference rule (``ceil``): the same number under
either ArviZ, equal to ``arviz.psislw``'s to rounding (``tests/test_arviz_compat.py``). For
LOO, :func:`probnn.inference.arviz_compat.loo` hands arviz-stats the smoothed weights of
:func:`psislw` (arviz 0.2x's algorithm written out), whatever tail rule its version has.
"""
from __future__ import annotations

import math

import numpy as np

PRIOR_K_WEIGHT = 10
"""The weakly informative prior's weight on ``k = 0.5``, in observations (Vehtari et al. 2024)."""


def tail_length(n_draws: int, r_eff: float = 1.0) -> int:
    """The number ``M`` of largest weights the generalised Pareto fit uses:
    ``ceil(min(S / 5, 3 sqrt(S / r_eff)))``."""
    return int(math.ceil(min(n_draws / 5.0, 3.0 * math.sqrt(n_draws / r_eff))))


def gpd_fit(exceedances: np.ndarray) -> tuple[float, float]:
    """Shape ``k`` and scale ``sigma`` of a generalised Pareto distribution fitted to sorted,
    non-negative ``exceedances`` (n,): Zhang & Stephens' (2009) posterior mean of
    ``b = -k / sigma`` over a grid of ``30 + floor(sqrt(n))`` values, then
    ``k = mean(log1p(-b x))`` shrunk to ``(n k + 10 * 0.5) / (n + 10)``."""
    x = np.asarray(exceedances, dtype=np.float64)
    n = len(x)
    m = 30 + int(n ** 0.5)
    b = 1.0 - np.sqrt(m / (np.arange(1, m + 1, dtype=np.float64) - 0.5))
    b /= 3.0 * x[int(n / 4 + 0.5) - 1]
    b += 1.0 / x[-1]
    k_b = np.log1p(-b[:, None] * x).mean(axis=1)
    profile = n * (np.log(-b / k_b) - k_b - 1.0)
    weights = np.exp(profile - profile.max())
    weights /= weights.sum()
    keep = weights >= 10 * np.finfo(float).eps
    b, weights = b[keep], weights[keep] / weights[keep].sum()
    b_post = float(np.sum(b * weights))
    k = float(np.log1p(-b_post * x).mean())
    sigma = -k / b_post
    return (n * k + PRIOR_K_WEIGHT * 0.5) / (n + PRIOR_K_WEIGHT), sigma


def _gpd_quantiles(probs: np.ndarray, k: float, sigma: float) -> np.ndarray:
    """Quantiles of a generalised Pareto distribution (location 0) at ``probs`` in (0, 1)."""
    if sigma <= 0:
        return np.full_like(probs, np.nan)
    if abs(k) < np.finfo(float).eps:
        return -sigma * np.log1p(-probs)
    return sigma * np.expm1(-k * np.log1p(-probs)) / k


def psislw(log_ratios: np.ndarray, r_eff: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """Pareto smoothed log weights and k of each row of ``log_ratios`` (..., S): the tail of
    :func:`tail_length` largest ratios replaced by the fitted distribution's quantiles at
    ``(i - 1/2) / M`` (none above the largest raw ratio), then normalised to sum to one (in
    log). Rows with too few tail draws to fit (k = ``inf``) are only normalised. This is
    ``arviz.psislw`` (arviz 0.2x) written out, so that a LOO computed with arviz-stats uses the
    same weights."""
    lr = np.asarray(log_ratios, dtype=np.float64)
    n_draws = lr.shape[-1]
    m = tail_length(n_draws, r_eff)
    rows = lr.reshape(-1, n_draws)
    out, ks = np.empty_like(rows), np.empty(len(rows))
    floor = np.log(np.finfo(float).tiny)
    for i, row in enumerate(rows):
        x = row - row.max()
        order = np.argsort(x)
        cutoff = max(x[order[-m - 1]], floor) if m < n_draws else floor
        tail = np.flatnonzero(x > cutoff)
        if len(tail) <= 4:
            k = np.inf
        else:
            tail = tail[np.argsort(x[tail])]
            k, sigma = gpd_fit(np.exp(x[tail]) - np.exp(cutoff))
            if np.isfinite(k):
                probs = np.arange(0.5, len(tail)) / len(tail)
                x[tail] = np.log(_gpd_quantiles(probs, k, sigma) + np.exp(cutoff))
                x[x > 0] = 0.0
        top = x.max()
        out[i] = x - (top + np.log(np.exp(x - top).sum()))
        ks[i] = k
    return out.reshape(lr.shape), ks.reshape(lr.shape[:-1])


def pareto_k(log_weights: np.ndarray, r_eff: float = 1.0, tail: int | None = None) -> np.ndarray:
    """PSIS Pareto k of each row of ``log_weights`` (..., S) (unnormalised log importance
    weights), from its ``tail`` (default :func:`tail_length`) largest weights; ``inf`` where
    fewer than 5 weights lie above the cutoff (too few to fit)."""
    lw = np.asarray(log_weights, dtype=np.float64)
    n_draws = lw.shape[-1]
    m = tail_length(n_draws, r_eff) if tail is None else int(tail)
    rows = lw.reshape(-1, n_draws)
    out = np.empty(len(rows))
    floor = np.log(np.finfo(float).tiny)
    for i, row in enumerate(rows):
        x = np.sort(row - row.max())
        cutoff = max(x[-m - 1], floor) if m < n_draws else floor
        top = x[x > cutoff]
        if len(top) <= 4:
            out[i] = np.inf
            continue
        out[i] = gpd_fit(np.exp(top) - np.exp(cutoff))[0]
    return out.reshape(lw.shape[:-1])
