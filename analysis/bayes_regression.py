"""Figures, tables and the written answer for the Bayesian regression fits.

Takes finished :class:`~probnn.inference.bayes_regression.BayesianRegressionFit` objects and
the :class:`~probnn.inference.bayes_regression.LooComparison` of
:func:`~probnn.inference.bayes_regression.loo_compare`; draws posterior-predictive samples
(no training) and returns figures, tables and text.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from probnn.inference.bayes_regression import (BayesianRegressionFit, LooComparison,
                                               posterior_predictive)

from ._plotting import new_figure, save_figure
from .regression import REFERENCE

PARETO_K_UNRELIABLE = 0.7
"""Pareto k above which a point's PSIS-LOO estimate is unreliable (Vehtari et al. 2017)."""
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
        k = np.asarray(loo.pareto_k)
        ax.scatter(np.arange(len(k)) + 0.15 * i, k, s=14, label=name)
    for t, ls in ((PARETO_K_OK, ":"), (PARETO_K_UNRELIABLE, "--")):
        ax.axhline(t, color="0.4", lw=0.8, ls=ls)
    ax.set(xlabel="data point", ylabel="Pareto k", title="PSIS-LOO diagnostics")
    ax.legend(fontsize="small")
    return fig


def loo_table(compare: LooComparison) -> pd.DataFrame:
    """The arviz comparison table plus, per model, the in-sample lppd and the Pareto-k counts."""
    table = compare.table.drop(columns=["scale"], errors="ignore").copy()
    for name, loo in compare.loo.items():
        k = np.asarray(loo.pareto_k)
        table.loc[name, "lppd"] = float(loo.elpd_loo + loo.p_loo)
        table.loc[name, "points"] = len(k)
        table.loc[name, "k_over_0.5"] = int((k > PARETO_K_OK).sum())
        table.loc[name, "k_over_0.7"] = int((k > PARETO_K_UNRELIABLE).sum())
        table.loc[name, "k_max"] = float(k.max())
    return table


def loo_answer(compare: LooComparison) -> str:
    """The comparison in words, from the numbers only."""
    t = loo_table(compare)
    if len(t) < 2:
        return "Only one model: nothing to compare."
    best, other = t.index[0], t.index[1]
    diff, dse = float(t.loc[other, "elpd_diff"]), float(t.loc[other, "dse"])
    n = int(t.loc[best, "points"])
    z = diff / dse if dse > 0 else np.inf
    verdict = ("a clear preference (the difference is more than twice its standard error)" if z > 2
               else "no clear preference: the difference is within two standard errors, "
                    "so on 31 points the data cannot tell the models apart reliably")
    lines = [
        f"PSIS-LOO prefers the {best} model: elpd_loo {t.loc[best, 'elpd_loo']:.1f} "
        f"(SE {t.loc[best, 'se']:.1f}, p_loo {t.loc[best, 'p_loo']:.1f}) against "
        f"{t.loc[other, 'elpd_loo']:.1f} (SE {t.loc[other, 'se']:.1f}, p_loo "
        f"{t.loc[other, 'p_loo']:.1f}) for the {other} model. The difference is "
        f"{diff:.1f} ± {dse:.1f} nats (SE of the pointwise differences), "
        f"{diff / n:.2f} nats per point: {verdict}.",
    ]
    bad = {m: int(t.loc[m, "k_over_0.7"]) for m in t.index}
    ok = {m: int(t.loc[m, "k_over_0.5"]) for m in t.index}
    counts = "; ".join(f"{m}: {bad[m]} of {n} points with k > 0.7 ({ok[m]} with k > 0.5, "
                       f"max {t.loc[m, 'k_max']:.2f})" for m in t.index)
    if any(bad.values()):
        meaning = ("For those points the importance-sampling estimate of log p(y_i | y_-i) is "
                   "unreliable: the posterior without the point differs too much from the one "
                   "with it (an influential point, or a variational posterior too narrow or "
                   "too wide in the tail), so the estimated elpd_loo is likely optimistic for "
                   "them and the comparison should be confirmed by refitting without those "
                   "points (exact LOO for them) or by K-fold cross-validation.")
    else:
        meaning = ("All Pareto k are at most 0.7, so every point's PSIS estimate is usable and "
                   "the elpd_loo values can be trusted as estimates.")
    lines.append(f"Pareto k diagnostics: {counts}. {meaning}")
    ml = REFERENCE
    lines.append(
        "Maximum likelihood compared the models on the training log-likelihood, which "
        f"rewards fitting the data used for the fit: the heteroscedastic model wins there by "
        f"far ({ml['heteroscedastic']['loglik']} against {ml['homoscedastic']['loglik']} nats "
        "per point in the coursework's reference run), and without bound if sigma(x) is "
        "allowed to shrink at single points. elpd_loo instead estimates how well each model "
        "predicts a point it has not seen, averaged over the posterior, and the extra "
        "flexibility is charged through p_loo (the in-sample lppd minus elpd_loo: "
        + ", ".join(f"{m} {t.loc[m, 'lppd']:.1f} - {t.loc[m, 'elpd_loo']:.1f} = "
                    f"{t.loc[m, 'p_loo']:.1f}" for m in t.index)
        + "). PSIS-LOO is not computed for the maximum-likelihood fits: a point estimate has "
        "no posterior draws to reweight.")
    return "\n\n".join(lines)


def write_bayes_outputs(fits: list[BayesianRegressionFit], compare: LooComparison, out_dir,
                        draws: int = RIBBON_DRAWS, seed: int = 0) -> list[Path]:
    """Write ``bayes-ribbon_<name>.png``, ``bayes-history_<name>.csv``,
    ``bayes-pointwise_<name>.csv`` (elpd_loo_i and Pareto k per point) per fit, and
    ``bayes-pareto-k.png``, ``bayes-loo.csv`` and ``bayes-summary.md``; return the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for fit in fits:
        written.append(save_figure(ribbon_plot(fit, draws, seed), out / f"bayes-ribbon_{fit.name}.png"))
        path = out / f"bayes-history_{fit.name}.csv"
        fit.history.to_csv(path, index=False)
        written.append(path)
        if fit.name in compare.loo:
            loo = compare.loo[fit.name]
            path = out / f"bayes-pointwise_{fit.name}.csv"
            pd.DataFrame({"x": fit.x[:, 0].numpy(), "y": fit.y[:, 0].numpy(),
                          "elpd_loo_i": np.asarray(loo.loo_i), "pareto_k": np.asarray(loo.pareto_k)}
                         ).rename_axis("point").to_csv(path)
            written.append(path)
    written.append(save_figure(pareto_k_plot(compare), out / "bayes-pareto-k.png"))
    table = loo_table(compare)
    table.to_csv(out / "bayes-loo.csv")
    written.append(out / "bayes-loo.csv")
    fit_lines = "\n".join(
        f"- {f.name}: {len(f.history)} SVI steps, final ELBO (mean of the last 10%) "
        f"{f.history['elbo'].iloc[-max(1, len(f.history) // 10):].mean():.3f} nats per point, "
        f"{f.history['seconds'].iloc[-1] if len(f.history) else 0.0:.0f} s" for f in fits)
    shown = table[["elpd_loo", "se", "p_loo", "elpd_diff", "dse", "weight", "lppd",
                   "k_over_0.5", "k_over_0.7", "k_max"]]
    text = "\n\n".join([
        "# Bayesian regression: PSIS-LOO comparison",
        fit_lines,
        "```\n" + shown.to_string(float_format=lambda v: f"{v:.3f}") + "\n```",
        loo_answer(compare),
    ])
    (out / "bayes-summary.md").write_text(text + "\n")
    written.append(out / "bayes-summary.md")
    return written
