"""Questions (a) and (b) from the xkcd regression fits: figures, tables and the written answers.

Everything here takes finished :class:`~probnn.inference.regression.RegressionFit` objects and
returns figures, tables or text; nothing trains. Figures are bare
:class:`matplotlib.figure.Figure` objects, so they work under any backend (Agg included) and
do not pile up in pyplot's figure manager. The dip analysis is
:mod:`probnn.analysis.regression_dips`; the fits across seeds and the cures,
:mod:`probnn.analysis.regression_seeds`. Their public names are importable from here too.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from probnn.inference.regression import RegressionFit

from .outputs import Plot, Section, Table
from .plotting import new_figure
from .regression_dips import DipAnalysis, dip_analysis, dip_figure
from .regression_fits import (HETEROSCEDASTIC, extreme_after, has_record, train_epochs,
                              train_loglik)
from .regression_seeds import (cure_label, cures_answer, cures_section, seed_band_plot,
                               seed_table, seeds_section)

__all__ = ["HETEROSCEDASTIC", "MAX_LOGLIK_ANSWER", "QUESTION_A", "QUESTION_B", "REFERENCE",
           "REFERENCE_DIP", "DipAnalysis", "cure_label", "cures_answer", "cures_section",
           "dip_analysis", "dip_figure", "loglik_curves", "max_loglik_check",
           "max_loglik_supremum", "regression_answers", "regression_sections", "ribbon_plot",
           "seed_band_plot", "seed_table", "seeds_section", "summary_table"]

REFERENCE = {"homoscedastic": {"loglik": -1.811, "sigma": 1.481},
             "heteroscedastic": {"loglik": -0.525}}
"""The coursework's published results after 50,000 epochs (mean log-likelihood per point)."""
REFERENCE_DIP = -30.0
"""How low the coursework's heteroscedastic training curve dips."""

MAX_LOGLIK_ANSWER = (
    "Maximum possible training log-likelihood with a rich enough f (and, for the "
    "heteroscedastic model, a rich enough sigma(x)): if no two points share an x value, f can "
    "interpolate every point, all residuals are 0, and each term log N(y_i | f(x_i), sigma^2) = "
    "-log sigma - 1/2 log 2pi grows without bound as sigma -> 0, so the supremum is +∞ for both "
    "models (approached, never attained, since sigma = softplus(.) > 0). Points that share an x "
    "value but differ in y change this: f(x) can only sit at their mean, which leaves a "
    "within-x residual sum of squares RSS > 0. The homoscedastic model then has a finite maximum, "
    "at sigma^2 = RSS/n with mean log-likelihood -1/2 log(2pi RSS/n) - 1/2; the heteroscedastic "
    "model stays at +∞ as long as some x value carries a single y, because sigma(x) can shrink to "
    "0 there while staying at the spread of the shared points at their x."
)
"""The written answer on the largest training log-likelihood either model can reach."""


def _evaluate(fit: RegressionFit, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and sigma(x) at the model's current parameters, as 1-d arrays."""
    with torch.no_grad():
        f, s = fit.model.mean_and_scale(x)
    return f[:, 0].numpy(), s[:, 0].numpy()


def _final_f_sigma(fit: RegressionFit) -> tuple[np.ndarray, np.ndarray]:
    """f and sigma at the data: from the last record (the parameters of the final loss) when
    there is one, else from the model as it is now."""
    return (fit.f[-1], fit.sigma[-1]) if has_record(fit) else _evaluate(fit, fit.x)


def ribbon_plot(fit: RegressionFit, ax: Axes | None = None, num: int = 400) -> Figure:
    """Data, the fitted mean f(x) and the band f(x) ± 1.96 sigma(x) (95% of the noise).

    The model is evaluated at its current (final) parameters on ``num`` points from
    min(x) - 0.1 to max(x) + 0.1.
    """
    if ax is None:
        ax = new_figure()[1][0, 0]
    x, y = fit.x[:, 0].numpy(), fit.y[:, 0].numpy()
    grid = torch.linspace(float(x.min()) - 0.1, float(x.max()) + 0.1, num,
                          device="cpu").unsqueeze(-1)  # fits are returned on the CPU
    f, s = _evaluate(fit, grid)
    g = grid[:, 0].numpy()
    ax.fill_between(g, f - 1.96 * s, f + 1.96 * s, color="C0", alpha=0.25, lw=0,
                    label="f(x) ± 1.96 σ(x)")
    ax.plot(g, f, color="C0", label="f(x)")
    ax.scatter(x, y, s=14, color="k", zorder=3, label="data")
    ax.set(xlabel="x", ylabel="y",
           title=f"{fit.name}: final mean log-likelihood {train_loglik(fit)[-1]:.3f}")
    ax.legend(loc="upper left", fontsize="small")
    return ax.figure


def loglik_curves(fits: list[RegressionFit], ylim: tuple[float, float] = (-10, 0)) -> Figure:
    """Training mean log-likelihood per point against epoch, all fits on one axes.

    The epoch axis is linear: the dips are short events spread over the whole run, and a log
    axis would squeeze the last 45,000 epochs into a sliver. Values below ``ylim`` are clipped
    by the axes; the legend gives each fit's final value and lowest value after epoch 100.
    """
    fig, axes = new_figure(size=(9.0, 4.5))
    ax = axes[0, 0]
    for fit in fits:
        _, low = extreme_after(fit, 100)
        ax.plot(train_epochs(fit), train_loglik(fit), lw=0.6,
                label=f"{fit.name} (final {train_loglik(fit)[-1]:.3f}, lowest after 100: {low:.3g})")
    ax.set(xlabel="epoch", ylabel="mean log-likelihood per point", ylim=ylim,
           title="Training log-likelihood")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def max_loglik_supremum(x, y) -> dict[str, float]:
    """Supremum of the mean training log-likelihood per model when f and sigma(x) can be any
    function of x (see :data:`MAX_LOGLIK_ANSWER`), computed for these data."""
    df = pd.DataFrame({"x": np.asarray(x, np.float64).ravel(),
                       "y": np.asarray(y, np.float64).ravel()})
    n = len(df)
    # exact float equality is right here: a network sees equal inputs only when they are equal
    groups = df.groupby("x")["y"]
    counts = groups.size()
    rss = groups.var(ddof=0) * counts
    homo = math.inf if rss.sum() == 0 else -0.5 * math.log(2 * math.pi * rss.sum() / n) - 0.5
    if (rss == 0).any():
        hetero = math.inf
    else:  # every x carries a spread: sigma_g^2 = RSS_g / n_g at each x
        hetero = float((-0.5 * counts * (np.log(2 * np.pi * rss / counts) + 1)).sum() / n)
    return {"homoscedastic": homo, HETEROSCEDASTIC: hetero}


def max_loglik_check(x, y) -> str:
    """Say whether the data have distinct x values and what that makes the supremum, in numbers."""
    xs, ys = np.asarray(x, np.float64).ravel(), np.asarray(y, np.float64).ravel()
    values, counts = np.unique(xs, return_counts=True)
    sup = max_loglik_supremum(xs, ys)
    fmt = {k: ("+∞" if math.isinf(v) else f"{v:.3f}") for k, v in sup.items()}
    head = f"The data have {len(xs)} points at {len(values)} distinct x values"
    if len(values) == len(xs):
        return head + " (all distinct), so an interpolating f exists: the supremum is +∞ for both models."
    shared = "; ".join(f"x={v:g} holds {c} points (y = {', '.join(f'{t:g}' for t in ys[xs == v])})"
                       for v, c in zip(values, counts) if c > 1)
    return (f"{head}: {shared}. No f can interpolate them all, so the supremum of the mean "
            f"training log-likelihood is homoscedastic {fmt['homoscedastic']}, heteroscedastic "
            f"{fmt[HETEROSCEDASTIC]}.")


def summary_table(fits: list[RegressionFit]) -> pd.DataFrame:
    """One row per model: final mean log-likelihood, final sigma at the data (min, median, max;
    all three equal for the homoscedastic model), epochs, training seconds, the lowest mean
    log-likelihood after epoch 100 and its epoch, and the supremum with a rich f."""
    rows = []
    for fit in fits:
        _, s = _final_f_sigma(fit)
        low_epoch, low = extreme_after(fit, 100)
        rows.append({"model": fit.name, "epochs": len(fit.history),
                     "final_loglik": float(train_loglik(fit)[-1]),
                     "sigma_min": float(s.min()), "sigma_median": float(np.median(s)),
                     "sigma_max": float(s.max()),
                     "seconds": float(fit.history["seconds"].iloc[-1]) if len(fit.history) else 0.0,
                     "lowest_loglik_after_100": low, "lowest_epoch_after_100": low_epoch,
                     "sup_loglik_rich_f": max_loglik_supremum(fit.x, fit.y)[fit.name]})
    return pd.DataFrame(rows).set_index("model")


def _reference_text() -> str:
    h, e = REFERENCE["homoscedastic"], REFERENCE[HETEROSCEDASTIC]
    return (f"Coursework reference after 50,000 epochs: homoscedastic mean log-likelihood "
            f"{h['loglik']} with sigma={h['sigma']}; heteroscedastic {e['loglik']}; the "
            f"heteroscedastic training curve dips as low as {REFERENCE_DIP:g}.")


def regression_answers(fits: list[RegressionFit], dip: DipAnalysis | None = None) -> list[str]:
    """The written answers of questions (a)-(b), each generated from ``fits``: the dip
    analysis of the heteroscedastic fit (computed unless ``dip`` is given), the maximum
    log-likelihood check on this data set, the theory answer and the coursework reference."""
    parts = []
    hetero = next((f for f in fits if f.name == HETEROSCEDASTIC), None)
    if hetero is not None:
        parts.append((dip or dip_analysis(hetero)).text)
    if fits:
        parts.append(max_loglik_check(fits[0].x, fits[0].y))
    return parts + [MAX_LOGLIK_ANSWER, _reference_text()]


QUESTION_A = ("Fit Y ~ N(f(x), σ²) with a small MLP f by maximum likelihood (50,000 Adam epochs); "
              "show the fit with its ±1.96σ ribbon; what is the maximum possible training "
              "log-likelihood if f is rich enough?")
QUESTION_B = ("Fit Y ~ N(f(x), σ(x)²); plot log-likelihood per epoch for both models; why does "
              "the heteroscedastic curve dip?")


def regression_sections(fits: list[RegressionFit]) -> list[Section]:
    """Questions (a) and (b) from the maximum-likelihood fits (one model or both).

    (a): the fits table, the homoscedastic ribbon, the maximum-log-likelihood answers; (b)
    (with a heteroscedastic fit): its ribbon, the log-likelihood curves, the dip analysis.
    Every fit also gets its history (CSV) and per-epoch record (NPZ).
    """
    by_name = {f.name: f for f in fits}
    hetero = by_name.get(HETEROSCEDASTIC)
    dip = dip_analysis(hetero) if hetero is not None else None
    dip_text, *rest = regression_answers(fits, dip) if dip else [None, *regression_answers(fits)]
    ribbons = {f.name: Plot(f"ribbon_{f.name}", ribbon_plot(f),
                            "Data, f(x) and f(x) ± 1.96 σ(x)." if f.name == HETEROSCEDASTIC
                            else "Data, f(x) and f(x) ± 1.96 σ.") for f in fits}
    curves = Plot("loglik", loglik_curves(fits),
                  "Training mean log-likelihood per epoch (clipped at −10).")
    a = Section("regression-a", "(a) Homoscedastic regression", QUESTION_A, answers=rest,
                tables=[Table("summary", summary_table(fits),
                              "Both fits, the report seed only (mean log-likelihood per "
                              "point): one draw of a chaotic training; the spread over "
                              "seeds is in the seeds section")],
                plots=[p for n, p in ribbons.items() if n != HETEROSCEDASTIC])
    for f in fits:
        a.tables.append(Table(f"history_{f.name}", f.history[["epoch", "loglik", "seconds"]],
                              index=False))
        a.arrays[f"record_{f.name}"] = f.arrays()
    if hetero is None:
        a.plots.append(curves)
        return [a]
    b = Section("regression-b", "(b) Heteroscedastic regression and its dips", QUESTION_B,
                answers=[dip_text], plots=[ribbons[HETEROSCEDASTIC], curves,
                                           Plot("dip", dip_figure(hetero, dip),
                                                "The deepest dip after epoch 100, point by point.")],
                tables=[Table("dip_low", dip.low_points,
                              "Points that drive the dip (at its lowest epoch)",
                              view=dip.low_points.head(8)),
                        Table("dip_high", dip.high_points)])
    return [a, b]

