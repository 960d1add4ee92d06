"""Whether a variational fit is a fit: the checks a result passes before it is reported.

A stochastic optimiser that diverged still returns parameters, and every number computed from
them (an elpd of -1e33, a posterior mean sigma of 200) looks like a result. So a fit is
*failed*, and reported as such rather than as numbers, when

1. its ELBO history holds a non-finite value;
2. its ELBO did not improve: the smoothed ELBO at the end is not above the smoothed ELBO at
   the start;
3. it diverged after converging: the smoothed ELBO at the end is more than
   ``max(1, DROP * (best - start))`` nats per point below its best (a converged run
   fluctuates around its best; a diverging one falls away from it);
4. its expected log predictive density per point is not finite, or is below what the data
   allow: more than :data:`ELPD_MARGIN` nats per point below the constant model, the Normal
   with the data's own mean and variance, whose log density per point is
   ``-0.5 log(2 pi e var(y))``. Any fit of the data should beat that model, not lose to it
   by tens of nats.

Each check returns ``""`` for a fit that passes and a one-line reason otherwise.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

DROP = 0.05
"""A fall from the best smoothed ELBO larger than this fraction of the rise is divergence."""
ELPD_MARGIN = 10.0
"""Nats per point below the constant Normal model beyond which an elpd is absurd."""
MIN_STEPS = 100
"""Checks 2 and 3 need this many steps: over a handful, single-step ELBOs are too noisy to
tell a fall from a fluctuation (smoothing averages len / 50 steps)."""


def smoothed(elbo: pd.Series | np.ndarray, windows: int = 50) -> np.ndarray:
    """The ELBO history averaged over ``len / windows`` consecutive steps (at least 1)."""
    s = pd.Series(np.asarray(elbo, dtype=float))
    return s.rolling(max(1, len(s) // windows), min_periods=1).mean().to_numpy()


def svi_failure(history: pd.DataFrame, column: str = "elbo") -> str:
    """Checks 1-3 on the ELBO per point in ``history[column]`` (2 and 3 from
    :data:`MIN_STEPS` steps on): ``""`` or why the fit failed."""
    elbo = np.asarray(history[column], dtype=float)
    if len(elbo) == 0:
        return "no ELBO history"
    if not np.all(np.isfinite(elbo)):
        return f"non-finite ELBO at step {int(np.flatnonzero(~np.isfinite(elbo))[0]) + 1}"
    if len(elbo) < MIN_STEPS:
        return ""
    s = smoothed(elbo)
    start, best, end = s[0], s.max(), s[-1]
    if end <= start:
        return f"ELBO not improved: {end:.2f} at the end against {start:.2f} at the start"
    if best - end > max(1.0, DROP * (best - start)):
        return (f"diverged: ELBO fell from {best:.2f} at its best to {end:.2f} nats per point "
                "at the end")
    return ""


def constant_model_loglik(y) -> float:
    """Log density per point of the Normal with the data's mean and variance, the baseline
    every fit should beat: ``-0.5 log(2 pi e var(y))``."""
    v = float(np.var(np.asarray(y, dtype=float)))
    return -0.5 * math.log(2 * math.pi * math.e * v) if v > 0 else math.inf


def elpd_failure(elpd_per_point: float, y) -> str:
    """Check 4: ``""`` or why ``elpd_per_point`` cannot be a fit of the data ``y``."""
    if not np.isfinite(elpd_per_point):
        return f"non-finite elpd ({elpd_per_point})"
    floor = constant_model_loglik(y) - ELPD_MARGIN
    if elpd_per_point < floor:
        return (f"absurd elpd: {elpd_per_point:.3g} nats per point, below the constant model's "
                f"{floor + ELPD_MARGIN:.2f} by more than {ELPD_MARGIN:g}")
    return ""
