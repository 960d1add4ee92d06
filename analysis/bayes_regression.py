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


# ----------------------------------------------------------------------------- NUTS
NUTS_QUESTION = (
    "Sample both Bayesian Wiggle models with NUTS as the reference posterior (R-hat and ESS "
    "checked), compare them by leave-one-out with exact refits wherever PSIS-LOO is unreliable, "
    "and measure how far variational guides get from NUTS.")
METHOD_LABELS = {"nuts": "NUTS", "normal": "AutoNormal (mean-field)",
                 "lowrank": "AutoLowRankMultivariateNormal", "diagonal": "AutoDiagonalNormal",
                 "mvn": "AutoMultivariateNormal"}


def result_section(result, ml_loglik: Mapping[str, float] | None = None) -> Section:
    """The section for a :class:`probnn.tasks.bayes_regression.Result`: the NUTS section, or
    for the ``vi`` sampler the variational one (:func:`bayes_section`)."""
    if not result.nuts:
        return bayes_section(result.fits, result.compare, ml_loglik, draws=result.config.draws,
                             seed=result.config.seed)
    return nuts_section(result, ml_loglik)


def nuts_loo_table(loos) -> pd.DataFrame:
    """One row per model (:meth:`~probnn.inference.bayes_nuts.LooResult.summary`): PSIS-LOO
    elpd and se, p_loo, k > 0.7 count and max k, points refitted, the corrected elpd (exact
    terms for the refitted points) with its se and the exact terms' Monte Carlo error."""
    table = pd.DataFrame({l.name: l.summary() for l in loos}).T
    return table.drop(columns=["refit_seconds"]).rename_axis("model")


def loo_difference_table(loos) -> pd.DataFrame:
    """First model minus second: elpd difference by PSIS alone and corrected, each with the
    standard error of the pointwise differences, and difference / se."""
    from probnn.inference.bayes_nuts import elpd_difference
    if len(loos) != 2:
        return pd.DataFrame()
    a, b = loos
    rows = {}
    for label, col in (("psis", "psis_elpd_i"), ("corrected", "elpd_i")):
        d, se = elpd_difference(a.pointwise[col], b.pointwise[col])
        rows[label] = {"difference": d, "se": se, "z": d / se if se > 0 else float("nan")}
    return pd.DataFrame(rows).T.rename_axis(f"{a.name} - {b.name}")


def loo_verdict(loos) -> str:
    """The comparison in words, on the corrected elpd (exact terms for refitted points)."""
    from probnn.inference.bayes_nuts import elpd_difference
    if len(loos) != 2:
        return "Only one model: nothing to compare."
    a, b = loos
    n = len(a.pointwise)
    d, se = elpd_difference(a.pointwise["elpd_i"], b.pointwise["elpd_i"])
    better, worse = (a, b) if d > 0 else (b, a)
    sa, sb = a.summary(), b.summary()
    unfixed = [l for l in loos if l.refitted < l.flagged]
    trust = ("" if not unfixed else " Not every flagged point was refitted ("
             + "; ".join(f"{l.name}: {l.refitted} of {l.flagged}" for l in unfixed)
             + "): the remaining PSIS terms stay unreliable, so this comparison is too.")
    if np.isfinite(d) and np.isfinite(se) and se > 0 and abs(d) > 2 * se:
        verdict = (f"the {better.name} model predicts new points better: the difference is "
                   f"more than twice its standard error")
    else:
        verdict = ("the difference is within two standard errors, so these 31 points do not "
                   "tell which model predicts new points better")
    return (f"Leave-one-out elpd with exact refits for every point PSIS flagged (k > 0.7): "
            f"{a.name} {_fmt(sa['elpd'])} ± {_fmt(sa['se'])} ({sa['k_over_0.7']} of {n} "
            f"points flagged, {sa['refitted']} refitted; PSIS alone {_fmt(sa['psis_elpd'])}), "
            f"{b.name} {_fmt(sb['elpd'])} ± {_fmt(sb['se'])} ({sb['k_over_0.7']} flagged, "
            f"{sb['refitted']} refitted; PSIS alone {_fmt(sb['psis_elpd'])}). The difference "
            f"{a.name} − {b.name} is {_fmt(d)} ± {_fmt(se)} nats (standard error of the "
            f"pointwise differences): {verdict}.{trust} The exact terms carry a Monte Carlo "
            f"error of {_fmt(sa['exact_mc_se'], 2)} and {_fmt(sb['exact_mc_se'], 2)} nats in "
            "total, small against those standard errors.")


def diagnostics_answer(diag: pd.DataFrame) -> str:
    parts = []
    for _, r in diag.iterrows():
        ok = r["rhat_max"] <= 1.01 and r["ess_bulk_min"] >= 100 and r["ess_tail_min"] >= 100
        parts.append(
            f"{r['model']}: {int(r['chains'])} chains, {int(r['draws'])} draws, R-hat at most "
            f"{r['rhat_max']:.3f}, bulk/tail ESS at least {r['ess_bulk_min']:.0f}/"
            f"{r['ess_tail_min']:.0f} over f, sigma and the log-likelihood at every point, "
            f"{int(r['divergences'])} divergent transitions"
            + ("" if ok else " (short of R-hat ≤ 1.01 and ESS ≥ 100: these draws are a rough "
                             "reference, not a converged one)"))
    return ("NUTS diagnostics — " + "; ".join(parts) + ". R-hat and ESS are taken on "
            "functions of the weights (f, sigma, the pointwise log-likelihood): the weights "
            "themselves are identified only up to permutations of hidden units, so chains in "
            "equivalent modes disagree about weights (their R-hat is in the table, "
            "weights_rhat_max) while agreeing about every prediction.")


def vi_answer(table: pd.DataFrame) -> str:
    lines = []
    for model, g in table.groupby("model", sort=False):
        ref = g[g["method"] == "nuts"].iloc[0]
        parts = [f"NUTS lppd/n {ref['lppd_per_point']:.2f}, elpd_loo/n "
                 f"{ref['elpd_loo_per_point']:.2f}, mean sigma {ref['sigma_mean']:.2f}"]
        for _, r in g[g["method"] != "nuts"].iterrows():
            if isinstance(r.get("error"), str) and r["error"]:
                parts.append(f"{METHOD_LABELS.get(r['method'], r['method'])} failed to fit "
                             f"({r['error']}): no estimate is reported and it is drawn in no "
                             "figure")
                continue
            parts.append(f"{METHOD_LABELS.get(r['method'], r['method'])} lppd/n "
                         f"{r['lppd_per_point']:.2f}, elpd_loo/n {r['elpd_loo_per_point']:.2f} "
                         f"({int(r['k_over_0.7'])} points with k > 0.7), mean sigma "
                         f"{r['sigma_mean']:.2f}, overlap of its 95% band of f with NUTS's "
                         f"{r['f_band_overlap']:.2f} (of a new y {r['y_band_overlap']:.2f})")
        lines.append(f"{model}: " + "; ".join(parts) + ".")
    return ("Variational guides against NUTS (band overlap: mean over the plotting grid of "
            "|A ∩ B| / |A ∪ B| for the two 95% intervals; 1 means the same band): "
            + " ".join(lines))


def nuts_ribbon_plot(fit, seed: int = 0, ax: Axes | None = None, vi: Mapping | None = None
                     ) -> Figure:
    """NUTS posterior-predictive ribbons: mean of f, 95% band of f, 95% band of a new y, the
    data; with ``vi`` (label -> ribbon dict) the guides' 95% f bands as dashed lines."""
    from probnn.inference.bayes_nuts import ribbon_grid, ribbons
    if ax is None:
        ax = new_figure()[1][0, 0]
    r = ribbons(fit.model(), fit.flat(), ribbon_grid(fit.x), seed=seed)
    ax.fill_between(r["x"], r["y_lo"], r["y_hi"], color="C0", alpha=0.18, lw=0,
                    label="95% predictive y")
    ax.fill_between(r["x"], r["f_lo"], r["f_hi"], color="C0", alpha=0.4, lw=0,
                    label="95% band of f(x)")
    ax.plot(r["x"], r["mean"], color="C0", label="posterior mean of f(x)")
    for i, (label, v) in enumerate((vi or {}).items()):
        ax.plot(v["x"], v["f_lo"], color=f"C{i + 1}", ls="--", lw=1, label=f"{label}: 95% f")
        ax.plot(v["x"], v["f_hi"], color=f"C{i + 1}", ls="--", lw=1)
    x, y = fit.x[:, 0].numpy(), fit.y[:, 0].numpy()
    ax.scatter(x, y, s=14, color="k", zorder=3, label="data")
    ax.set(xlabel="x", ylabel="y",
           title=f"Bayesian {fit.name}, NUTS: {fit.flat()[next(iter(fit.draws))].shape[0]} draws")
    ax.legend(loc="best", fontsize="small")
    return ax.figure


def _vi_ribbons(result, name: str) -> dict:
    from probnn.inference.bayes_nuts import ribbon_grid
    out = {}
    for f in result.vi:
        if f.name == name:
            grid = ribbon_grid(f.x)
            pp = posterior_predictive(f, grid, result.config.draws, result.config.seed)
            f_lo, f_hi = np.quantile(pp["f"], [0.025, 0.975], axis=0)
            out[METHOD_LABELS.get(f.guide.config["kind"], f.guide.config["kind"])] = dict(
                x=grid[:, 0].numpy(), f_lo=f_lo, f_hi=f_hi)
    return out


def nuts_section(result, ml_loglik: Mapping[str, float] | None = None) -> Section:
    """NUTS ribbons per model (with the guides' f bands), diagnostics, the LOO table (PSIS and
    exact), the VI-against-NUTS table and the timings, with answers from those numbers."""
    loo = nuts_loo_table(result.loo)
    diag = result.diagnostics
    answers = [loo_verdict(result.loo), diagnostics_answer(diag)]
    if result.vi_vs_nuts is not None and len(result.vi_vs_nuts):
        answers.append(vi_answer(result.vi_vs_nuts))
    if ml_loglik:
        nuts_rows = result.vi_vs_nuts[result.vi_vs_nuts["method"] == "nuts"].set_index("model")
        answers.append("In-sample fit per point, NUTS lppd/n against the maximum-likelihood "
                       "fits' final mean log-likelihood of this run: " + "; ".join(
                           f"{m} {nuts_rows.loc[m, 'lppd_per_point']:.2f} against "
                           f"{float(ml_loglik[m]):.2f}" for m in nuts_rows.index
                           if m in ml_loglik) + ".")
    t = result.timings
    total = float(t["seconds"].sum())
    answers.append("Time: " + ", ".join(f"{r.model} {r.stage} {r.seconds:.0f} s"
                                        for r in t.itertuples()) + f"; {total:.0f} s in all.")
    s = Section("regression-bayes", "(a–b, further) Bayesian regression: NUTS, LOO and VI",
                NUTS_QUESTION, answers=answers,
                tables=[Table("bayes-loo", loo, "Leave-one-out: PSIS, and with exact refits of "
                              "the flagged points (elpd, se)"),
                        Table("bayes-loo-difference", loo_difference_table(result.loo),
                              "Difference between the models (pointwise standard error)"),
                        Table("bayes-diagnostics", diag, "NUTS diagnostics", index=False),
                        Table("bayes-vi-vs-nuts", result.vi_vs_nuts,
                              "Variational guides against NUTS", index=False),
                        Table("bayes-timings", t, "Seconds per stage", index=False)])
    for fit, l in zip(result.nuts, result.loo):
        s.plots.append(Plot(f"bayes-ribbon_{fit.name}",
                            nuts_ribbon_plot(fit, result.config.seed,
                                             vi=_vi_ribbons(result, fit.name)),
                            f"{fit.name}, NUTS: posterior-predictive mean of f, its 95% band, "
                            "the 95% band of a new y; dashed: the guides' 95% bands of f."))
        s.tables.append(Table(f"bayes-pointwise_{fit.name}", l.pointwise))
    s.plots.append(Plot("bayes-pareto-k",
                        pareto_k_plot(LooComparison(None, {l.name: l.psis for l in result.loo})),
                        "Pareto k of each point's PSIS-LOO estimate from the NUTS draws "
                        "(above 0.7: refitted exactly)."))
    return s
