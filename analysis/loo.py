"""PSIS-LOO of the Bayesian regression fits: the Pareto-k plot, the LOO table and its answer.

Takes the :class:`~probnn.inference.bayes_regression.LooComparison` of
:func:`~probnn.inference.bayes_regression.loo_compare` (the arviz comparison table and each
model's LOO result) and returns a figure, a table and text, written from the numbers only.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.inference.bayes_regression import LooComparison
from probnn.inference.estimators import PARETO_K_UNRELIABLE

from .plotting import new_figure

PARETO_K_OK = 0.5


def pareto_k_plot(compare: LooComparison) -> Figure:
    """Pareto k of every point for each model, with the 0.5 and 0.7 thresholds."""
    fig, axes = new_figure()
    ax = axes[0, 0]
    for i, (name, loo) in enumerate(compare.loo.items()):
        k = np.asarray(loo.pareto_k, dtype=float)
        idx = np.arange(len(k)) + 0.15 * i
        ok = np.isfinite(k)
        ax.scatter(idx[ok], k[ok], s=14, color=f"C{i}", label=name)
        if not ok.all():  # inf/NaN k would vanish from the plot: mark them at the top instead
            top = max(1.5, float(k[ok].max()) + 0.2) if ok.any() else 1.5
            ax.scatter(idx[~ok], np.full((~ok).sum(), top), marker="x", s=30, color=f"C{i}",
                       label=f"{name}: k not finite")
    for t, ls in ((PARETO_K_OK, ":"), (PARETO_K_UNRELIABLE, "--")):
        ax.axhline(t, color="0.4", lw=0.8, ls=ls)
    ax.set(xlabel="data point", ylabel="Pareto k", title="PSIS-LOO diagnostics")
    ax.legend(fontsize="small")
    return fig


def loo_table(compare: LooComparison) -> pd.DataFrame:
    """The arviz comparison table plus, per model, the in-sample lppd and the Pareto-k counts.

    ``k_over_0.7`` counts every point whose k is not <= 0.7, so a k of inf or NaN (PSIS failed
    for that point) is counted there too, and separately in ``k_nonfinite``; ``elpd_finite``
    says whether elpd_loo itself is a finite number.
    """
    table = compare.table.drop(columns=["scale"], errors="ignore").copy()
    for name, loo in compare.loo.items():
        k = np.asarray(loo.pareto_k, dtype=float)
        table.loc[name, "lppd"] = float(loo.elpd_loo + loo.p_loo)
        table.loc[name, "points"] = len(k)
        table.loc[name, "k_over_0.5"] = int((~(k <= PARETO_K_OK)).sum())
        table.loc[name, "k_over_0.7"] = int((~(k <= PARETO_K_UNRELIABLE)).sum())
        table.loc[name, "k_nonfinite"] = int((~np.isfinite(k)).sum())
        table.loc[name, "k_max"] = float(np.max(k)) if np.isfinite(k).all() else float("inf")
        table.loc[name, "elpd_finite"] = bool(np.isfinite(loo.elpd_loo) and np.isfinite(loo.se))
    return table


def fmt_value(v: float, digits: int = 1) -> str:
    """A number to ``digits`` decimals, or as Python prints it when it is not finite."""
    return f"{v:.{digits}f}" if np.isfinite(v) else str(v)


def loo_answer(compare: LooComparison, ml_loglik: Mapping[str, float] | None = None) -> str:
    """The comparison in words, from the numbers only.

    ``ml_loglik``: model name -> final mean training log-likelihood per point of the
    maximum-likelihood fit, as measured in this run; without it no comparison with maximum
    likelihood is made.
    """
    t = loo_table(compare)
    if len(t) < 2:
        return "Only one model: nothing to compare."
    lines = [_ranking(t), _pareto_k_text(t)]
    fitq = ", ".join(
        f"{m} {fmt_value(t.loc[m, 'lppd_per_point'], 2)}" for m in t.index
        if "lppd_per_point" in t and np.isfinite(t.loc[m, "lppd_per_point"]))
    if fitq:
        lines.append("In-sample posterior-predictive log density per training point "
                     f"(lppd / n): {fitq}.")
    if ml_loglik:
        lines += _against_ml(t, ml_loglik)
    lines.append("p_loo (in-sample lppd minus elpd_loo) is the effective number of parameters "
                 "the LOO estimate charges: "
                 + ", ".join(f"{m} {fmt_value(t.loc[m, 'lppd'])} - "
                             f"{fmt_value(t.loc[m, 'elpd_loo'])} = {fmt_value(t.loc[m, 'p_loo'])}"
                             for m in t.index) + ".")
    return "\n\n".join(lines)


def _points(t: pd.DataFrame) -> int:
    return int(t.loc[t.index[0], "points"])


def _ranking(t: pd.DataFrame) -> str:
    """The two models' elpd_loo, their difference and whether it separates them."""
    best, other = t.index[0], t.index[1]
    diff, dse = float(t.loc[other, "elpd_diff"]), float(t.loc[other, "dse"])
    n = _points(t)
    finite = bool(t["elpd_finite"].all()) and np.isfinite(diff) and np.isfinite(dse)
    if not finite:
        verdict = ("no usable comparison: an elpd_loo or its standard error is not finite, "
                   "so the ranking is meaningless")
    elif dse > 0 and diff > 2 * dse:
        verdict = "the difference is more than twice its standard error"
    else:
        verdict = ("the difference is within two standard errors, so the data do not separate "
                   "the models")
    return (f"PSIS-LOO ranks the {best} model first: elpd_loo {fmt_value(t.loc[best, 'elpd_loo'])} "
            f"(SE {fmt_value(t.loc[best, 'se'])}, p_loo {fmt_value(t.loc[best, 'p_loo'])}) against "
            f"{fmt_value(t.loc[other, 'elpd_loo'])} (SE {fmt_value(t.loc[other, 'se'])}, p_loo "
            f"{fmt_value(t.loc[other, 'p_loo'])}) for the {other} model. The difference is "
            f"{fmt_value(diff)} ± {fmt_value(dse)} nats (SE of the pointwise differences), "
            f"{fmt_value(diff / n, 2)} nats per point: {verdict}.")


def _pareto_k_text(t: pd.DataFrame) -> str:
    """Each model's Pareto-k counts, and what a high k means for its elpd_loo."""
    n = _points(t)
    bad = {m: int(t.loc[m, "k_over_0.7"]) for m in t.index}
    counts = "; ".join(
        f"{m}: {bad[m]} of {n} points with k > 0.7 ({int(t.loc[m, 'k_over_0.5'])} with "
        f"k > 0.5, max {fmt_value(t.loc[m, 'k_max'], 2)})"
        + (f", of which {int(t.loc[m, 'k_nonfinite'])} with a non-finite k (inf or NaN: "
           "PSIS failed there)" if t.loc[m, "k_nonfinite"] else "")
        + ("" if t.loc[m, "elpd_finite"] else ", and its elpd_loo is not finite")
        for m in t.index)
    if any(bad.values()):
        meaning = ("For those points the importance-sampling estimate of log p(y_i | y_-i) is "
                   "unreliable: the posterior draws do not stand in for the posterior without "
                   "the point (an influential point, or a variational posterior that is too "
                   "narrow or wrongly shaped in the tail), so the elpd_loo of a model with "
                   "such points is unreliable too, and its comparison should be confirmed by "
                   "exact LOO refits for those points or by K-fold cross-validation.")
    else:
        meaning = ("All Pareto k are at most 0.7, so every point's PSIS estimate is usable.")
    return f"Pareto k diagnostics: {counts}. {meaning}"


def _against_ml(t: pd.DataFrame, ml_loglik: Mapping[str, float]) -> list[str]:
    """The Bayesian fits' in-sample fit against the maximum-likelihood fits of this run."""
    n = _points(t)
    parts = []
    for m in t.index:
        if m in ml_loglik and "lppd_per_point" in t:
            ml, bayes = float(ml_loglik[m]), float(t.loc[m, "lppd_per_point"])
            rel = ("fits the training points less well than" if bayes < ml - 0.05 else
                   "fits the training points better than" if bayes > ml + 0.05 else
                   "fits the training points about as well as")
            parts.append(f"the Bayesian {m} model ({fmt_value(bayes, 2)}) {rel} its "
                         f"maximum-likelihood fit ({fmt_value(ml, 2)})")
    if not parts:
        return []
    return ["Against the maximum-likelihood fits of this run (final mean training "
            "log-likelihood per point): " + "; ".join(parts) + ". The "
            "maximum-likelihood numbers are in-sample and reward fitting the very "
            "points they are scored on; elpd_loo / n estimates the log density of "
            "a point not used for fitting: "
            + ", ".join(f"{m} {fmt_value(t.loc[m, 'elpd_loo'] / n, 2)}" for m in t.index)
            + ". PSIS-LOO is not computed for the maximum-likelihood fits: a "
            "point estimate has no posterior draws to reweight."]
