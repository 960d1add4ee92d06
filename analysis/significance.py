"""How the written answers print an estimate with its standard error, and when the estimator
study calls a difference real: outside the 95% t-interval of its noise.

The rule is shared by the study's three answers (:mod:`probnn.analysis.estimator_bias`,
:mod:`probnn.analysis.estimator_snr`, :mod:`probnn.analysis.objectives`), so that each says
"beyond noise" the same way; the formats by every answer that prints a paired difference.
"""
from __future__ import annotations

import math

import numpy as np

CONFIDENCE = 0.95
"""A difference is called real when it lies outside the two-sided 95% t-interval around zero
(t with the standard error's degrees of freedom: with 3 repeats that is 4.3 standard errors,
not 2, since an sd from 3 values is itself very uncertain)."""


def fmt_diff(d: float, se: float) -> str:
    """A signed difference with its standard error, ``+1.23 ± 0.45`` (the bare difference
    when the error is unknown)."""
    return f"{d:+.2f} ± {se:.2f}" if np.isfinite(se) else f"{d:+.2f}"


def fmt_paired(p) -> str:
    """A paired difference (a :class:`~probnn.inference.paired.Paired`) as ``1.23 ± 0.45``
    (the bare mean when its standard error is unknown)."""
    return f"{p.mean:.2f} ± {p.se:.2f}" if np.isfinite(p.se) else f"{p.mean:.2f}"


def t_critical(df: float) -> float:
    """The two-sided :data:`CONFIDENCE` quantile of Student's t with ``df`` degrees of freedom
    (infinite below one degree of freedom: nothing can be called real then)."""
    from scipy.stats import t
    return float(t.ppf(0.5 + CONFIDENCE / 2, df)) if np.isfinite(df) and df >= 1 else math.inf


def beyond_noise(d: float, se: float, df: float = math.inf) -> bool:
    """Whether ``d`` differs from zero beyond noise, given its standard error on ``df``
    degrees of freedom (normal when infinite)."""
    if se == 0:
        return d != 0
    crit = t_critical(df) if np.isfinite(df) else 1.96
    return bool(np.isfinite(se) and abs(d) > crit * se)
