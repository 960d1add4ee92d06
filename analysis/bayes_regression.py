"""Figures, tables and the written answer for the Bayesian regression fits.

Takes finished :class:`~probnn.inference.bayes_regression.BayesianRegressionFit` objects and
the :class:`~probnn.inference.bayes_regression.LooComparison` of
:func:`~probnn.inference.bayes_regression.loo_compare`; draws posterior-predictive samples
(no training) and returns figures, tables and text.
"""
from __future__ import annotations

from typing import Mapping

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from probnn.inference.estimators import PARETO_K_UNRELIABLE
from probnn.inference.bayes_regression import (BayesianRegressionFit, LooComparison,
                                               posterior_predictive)

from .outputs import Plot, Section, Table
from .plotting import new_figure

PARETO_K_OK = 0.5
RIBBON_DRAWS = 500


def ribbon_plot(fit: BayesianRegressionFit, draws: int = RIBBON_DRAWS, seed: int = 0,
                ax: Axes | None = None, num: int = 200) -> Figure:
    """Posterior-predictive ribbons on a grid from min(x) - 0.1 to max(x) + 0.1: the posterior
    mean of f, a central 95% band of f (uncertainty about the mean), a central 95% band of
    predictive y (f plus noise), and the data."""
    if ax is None:
        ax = new_figure()[1][0, 0]
    x, y = fit.x[:, 0].numpy(), fit.y[:, 0].numpy()
    grid = torch.linspace(float(x.min()) - 0.1, float(x.max()) + 0.1, num).unsqueeze(-1)
    pp = posterior_predictive(fit, grid, draws, seed)
    g = grid[:, 0].numpy()
    y_lo, y_hi = np.quantile(pp["y"], [0.025, 0.975], axis=0)
    f_lo, f_hi = np.quantile(pp["f"], [0.025, 0.975], axis=0)
    ax.fill_between(g, y_lo, y_hi, color="C0", alpha=0.18, lw=0, label="95% predictive y")
    ax.fill_between(g, f_lo, f_hi, color="C0", alpha=0.4, lw=0, label="95% band of f(x)")
    ax.plot(g, pp["f"].mean(0), color="C0", label="posterior mean of f(x)")
    ax.scatter(x, y, s=14, color="k", zorder=3, label="data")
    ax.set(xlabel="x", ylabel="y", title=f"Bayesian {fit.name}: {draws} posterior draws")
    ax.legend(loc="upper left", fontsize="small")
    return ax.figure


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


def _fmt(v: float, digits: int = 1) -> str:
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
    best, other = t.index[0], t.index[1]
    diff, dse = float(t.loc[other, "elpd_diff"]), float(t.loc[other, "dse"])
    n = int(t.loc[best, "points"])
    finite = bool(t["elpd_finite"].all()) and np.isfinite(diff) and np.isfinite(dse)
    if not finite:
        verdict = ("no usable comparison: an elpd_loo or its standard error is not finite, "
                   "so the ranking is meaningless")
    elif dse > 0 and diff > 2 * dse:
        verdict = "the difference is more than twice its standard error"
    else:
        verdict = ("the difference is within two standard errors, so the data do not separate "
                   "the models")
    lines = [
        f"PSIS-LOO ranks the {best} model first: elpd_loo {_fmt(t.loc[best, 'elpd_loo'])} "
        f"(SE {_fmt(t.loc[best, 'se'])}, p_loo {_fmt(t.loc[best, 'p_loo'])}) against "
        f"{_fmt(t.loc[other, 'elpd_loo'])} (SE {_fmt(t.loc[other, 'se'])}, p_loo "
        f"{_fmt(t.loc[other, 'p_loo'])}) for the {other} model. The difference is "
        f"{_fmt(diff)} ± {_fmt(dse)} nats (SE of the pointwise differences), "
        f"{_fmt(diff / n, 2)} nats per point: {verdict}.",
    ]
    bad = {m: int(t.loc[m, "k_over_0.7"]) for m in t.index}
    counts = "; ".join(
        f"{m}: {bad[m]} of {n} points with k > 0.7 ({int(t.loc[m, 'k_over_0.5'])} with "
        f"k > 0.5, max {_fmt(t.loc[m, 'k_max'], 2)})"
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
    lines.append(f"Pareto k diagnostics: {counts}. {meaning}")
    fitq = ", ".join(
        f"{m} {_fmt(t.loc[m, 'lppd_per_point'], 2)}" for m in t.index
        if "lppd_per_point" in t and np.isfinite(t.loc[m, "lppd_per_point"]))
    if fitq:
        lines.append("In-sample posterior-predictive log density per training point "
                     f"(lppd / n): {fitq}.")
    if ml_loglik:
        parts = []
        for m in t.index:
            if m in ml_loglik and "lppd_per_point" in t:
                ml, bayes = float(ml_loglik[m]), float(t.loc[m, "lppd_per_point"])
                rel = ("fits the training points less well than" if bayes < ml - 0.05 else
                       "fits the training points better than" if bayes > ml + 0.05 else
                       "fits the training points about as well as")
                parts.append(f"the Bayesian {m} model ({_fmt(bayes, 2)}) {rel} its "
                             f"maximum-likelihood fit ({_fmt(ml, 2)})")
        if parts:
            lines.append("Against the maximum-likelihood fits of this run (final mean training "
                         "log-likelihood per point): " + "; ".join(parts) + ". The "
                         "maximum-likelihood numbers are in-sample and reward fitting the very "
                         "points they are scored on; elpd_loo / n estimates the log density of "
                         "a point not used for fitting: "
                         + ", ".join(f"{m} {_fmt(t.loc[m, 'elpd_loo'] / n, 2)}"
                                     for m in t.index)
                         + ". PSIS-LOO is not computed for the maximum-likelihood fits: a "
                         "point estimate has no posterior draws to reweight.")
    lines.append("p_loo (in-sample lppd minus elpd_loo) is the effective number of parameters "
                 "the LOO estimate charges: "
                 + ", ".join(f"{m} {_fmt(t.loc[m, 'lppd'])} - {_fmt(t.loc[m, 'elpd_loo'])} = "
                             f"{_fmt(t.loc[m, 'p_loo'])}" for m in t.index) + ".")
    return "\n\n".join(lines)


QUESTION = ("Put a Normal prior on every Wiggle weight, fit a Normal guide (AutoNormal) by SVI, "
            "draw posterior-predictive ribbons, and compare the two models by PSIS-LOO from the "
            "pointwise log-likelihoods of posterior draws.")
REPORT_COLUMNS = ("elpd_loo", "se", "p_loo", "elpd_diff", "dse", "lppd_per_point", "sigma_mean",
                  "k_over_0.7", "k_nonfinite", "k_max")


def bayes_section(fits: list[BayesianRegressionFit], compare: LooComparison,
                  ml_loglik: Mapping[str, float] | None = None, draws: int = RIBBON_DRAWS,
                  seed: int = 0) -> Section:
    """Bayesian regression compared by PSIS-LOO: a posterior-predictive ribbon per fit (``draws``
    draws, seeded), the Pareto-k plot, the LOO table and answer (``ml_loglik`` goes to
    :func:`loo_answer`), each fit's SVI history and pointwise elpd_loo_i / Pareto k.
    Works on fits read back from the report's cache
    (:func:`probnn.inference.serialization.load`)."""
    table = loo_table(compare)
    steps = ", ".join(f"{f.name} {len(f.history)} SVI steps" for f in fits)
    s = Section("regression-bayes", "(a–b, further) Bayesian regression and PSIS-LOO", QUESTION,
                answers=[loo_answer(compare, ml_loglik)],
                tables=[Table("bayes-loo", table, f"PSIS-LOO ({steps})",
                              view=table[[c for c in REPORT_COLUMNS if c in table]])])
    for fit in fits:
        s.plots.append(Plot(f"bayes-ribbon_{fit.name}", ribbon_plot(fit, draws, seed),
                            f"{fit.name}: posterior-predictive mean of f, its 95% band, and the "
                            "95% band of a new y."))
        s.tables.append(Table(f"bayes-history_{fit.name}", fit.history, index=False))
        if fit.name in compare.loo:
            loo = compare.loo[fit.name]
            s.tables.append(Table(f"bayes-pointwise_{fit.name}", pd.DataFrame(
                {"x": fit.x[:, 0].numpy(), "y": fit.y[:, 0].numpy(),
                 "elpd_loo_i": np.asarray(loo.loo_i), "pareto_k": np.asarray(loo.pareto_k)}
            ).rename_axis("point")))
    s.plots.append(Plot("bayes-pareto-k", pareto_k_plot(compare),
                        "Pareto k of each point's PSIS-LOO estimate (above 0.7: unreliable)."))
    return s
