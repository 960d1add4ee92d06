"""The Bayesian regression sampled by NUTS: LOO with exact refits, diagnostics, VI against NUTS.

Takes a :class:`probnn.tasks.bayes_regression.Result` of the ``nuts`` sampler (NUTS fits,
their LOO results with exact refits of the points PSIS flagged, the diagnostics, the
variational guides scored against NUTS, the timings) and returns its section; draws
posterior-predictive ribbons (no training).
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from probnn.inference.bayes_regression import LooComparison, posterior_predictive

from .loo import fmt_value, pareto_k_plot
from .outputs import Plot, Section, Table
from .plotting import new_figure

NUTS_QUESTION = (
    "Sample both Bayesian Wiggle models with NUTS as the reference posterior (R-hat and ESS "
    "checked), compare them by leave-one-out with exact refits wherever PSIS-LOO is unreliable, "
    "and measure how far variational guides get from NUTS.")
METHOD_LABELS = {"nuts": "NUTS", "normal": "AutoNormal (mean-field)",
                 "lowrank": "AutoLowRankMultivariateNormal", "diagonal": "AutoDiagonalNormal",
                 "mvn": "AutoMultivariateNormal"}


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
            f"{a.name} {fmt_value(sa['elpd'])} ± {fmt_value(sa['se'])} ({sa['k_over_0.7']} of "
            f"{n} points flagged, {sa['refitted']} refitted; PSIS alone "
            f"{fmt_value(sa['psis_elpd'])}), {b.name} {fmt_value(sb['elpd'])} ± "
            f"{fmt_value(sb['se'])} ({sb['k_over_0.7']} flagged, {sb['refitted']} refitted; PSIS "
            f"alone {fmt_value(sb['psis_elpd'])}). The difference {a.name} − {b.name} is "
            f"{fmt_value(d)} ± {fmt_value(se)} nats (standard error of the pointwise "
            f"differences): {verdict}.{trust} The exact terms carry a Monte Carlo error of "
            f"{fmt_value(sa['exact_mc_se'], 2)} and {fmt_value(sb['exact_mc_se'], 2)} nats in "
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
