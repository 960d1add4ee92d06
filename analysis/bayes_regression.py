"""Figures, tables and the written answer for the Bayesian regression fits.

Takes finished :class:`~probnn.inference.bayes_regression.BayesianRegressionFit` objects and
the :class:`~probnn.inference.bayes_regression.LooComparison` of
:func:`~probnn.inference.bayes_regression.loo_compare`; draws posterior-predictive samples
(no training) and returns figures, tables and text. The PSIS-LOO plot, table and answer are
:mod:`probnn.analysis.loo`; the NUTS section, :mod:`probnn.analysis.bayes_nuts`. Their public
names are importable from here too.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from probnn.inference.bayes_regression import (BayesianRegressionFit, LooComparison,
                                               posterior_predictive)

from .bayes_nuts import nuts_section
from .loo import PARETO_K_OK, loo_answer, loo_table, pareto_k_plot
from .outputs import Plot, Section, Table
from .plotting import new_figure

__all__ = ["PARETO_K_OK", "QUESTION", "REPORT_COLUMNS", "RIBBON_DRAWS", "bayes_section",
           "loo_answer", "loo_table", "nuts_section", "pareto_k_plot", "result_section",
           "ribbon_plot"]

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
    :func:`~probnn.analysis.loo.loo_answer`), each fit's SVI history and pointwise
    elpd_loo_i / Pareto k. Works on fits read back from the report's cache
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


def result_section(result, ml_loglik: Mapping[str, float] | None = None) -> Section:
    """The section for a :class:`probnn.tasks.bayes_regression.Result`: the NUTS section, or
    for the ``vi`` sampler the variational one (:func:`bayes_section`)."""
    if not result.nuts:
        return bayes_section(result.fits, result.compare, ml_loglik, draws=result.config.draws,
                             seed=result.config.seed)
    return nuts_section(result, ml_loglik)
