"""Figures and tables for the xkcd regression fits (see :mod:`probnn.inference.regression`).

Everything here takes finished :class:`~probnn.inference.regression.RegressionFit` objects and
returns figures, tables or text; nothing trains. Figures are bare
:class:`matplotlib.figure.Figure` objects, so they work under any backend (Agg included) and
do not pile up in pyplot's figure manager.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from probnn.inference.regression import (DIP_AFTER, DIP_BEFORE, DIP_FOLLOW, EnsembleFit,
                                         RegressionFit)

from .outputs import Plot, Section, Table
from .plotting import new_figure

HETEROSCEDASTIC = "heteroscedastic"

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


# ----------------------------------------------------------------------------- helpers
def _has_record(fit: RegressionFit) -> bool:
    return fit.f.shape[0] == len(fit.history) and len(fit.history) > 0


def _loglik(fit: RegressionFit) -> np.ndarray:
    return fit.history["loglik"].to_numpy()


def _epochs(fit: RegressionFit) -> np.ndarray:
    return fit.history["epoch"].to_numpy()


def _row(fit: RegressionFit, epoch: int) -> int:
    """Row of ``epoch`` in the history and the per-epoch records (resumed fits may not start at 1)."""
    return int(np.searchsorted(_epochs(fit), epoch))


def _evaluate(fit: RegressionFit, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """f(x) and sigma(x) at the model's current parameters, as 1-d arrays."""
    with torch.no_grad():
        f, s = fit.model.mean_and_scale(x)
    return f[:, 0].numpy(), s[:, 0].numpy()


def _final_f_sigma(fit: RegressionFit) -> tuple[np.ndarray, np.ndarray]:
    """f and sigma at the data: from the last record (the parameters of the final loss) when
    there is one, else from the model as it is now."""
    return (fit.f[-1], fit.sigma[-1]) if _has_record(fit) else _evaluate(fit, fit.x)


def _points(fit: RegressionFit, row: int, loglik: np.ndarray) -> pd.DataFrame:
    """Per-point state at one history row, worst-fitted point first."""
    x, y = fit.x[:, 0].numpy(), fit.y[:, 0].numpy()
    f, s = fit.f[row], fit.sigma[row]
    df = pd.DataFrame({"x": x, "y": y, "f": f, "sigma": s, "sq_resid": (y - f) ** 2,
                       "loglik": loglik[row]})
    df.index.name = "point"
    return df.sort_values("loglik", kind="stable")


def _extreme_after(fit: RegressionFit, after_epoch: int,
                   highest: bool = False) -> tuple[int | None, float]:
    """(epoch, mean log-likelihood) of the lowest (or highest) epoch after ``after_epoch``."""
    late = fit.history.loc[fit.history["epoch"] > after_epoch, "loglik"]
    if late.empty:
        return None, math.nan
    i = late.idxmax() if highest else late.idxmin()
    return int(fit.history.at[i, "epoch"]), float(late[i])


# ----------------------------------------------------------------------------- figures
def ribbon_plot(fit: RegressionFit, ax: Axes | None = None, num: int = 400) -> Figure:
    """Data, the fitted mean f(x) and the band f(x) ± 1.96 sigma(x) (95% of the noise).

    The model is evaluated at its current (final) parameters on ``num`` points from
    min(x) - 0.1 to max(x) + 0.1.
    """
    if ax is None:
        ax = new_figure()[1][0, 0]
    x, y = fit.x[:, 0].numpy(), fit.y[:, 0].numpy()
    grid = torch.linspace(float(x.min()) - 0.1, float(x.max()) + 0.1, num).unsqueeze(-1)
    f, s = _evaluate(fit, grid)
    g = grid[:, 0].numpy()
    ax.fill_between(g, f - 1.96 * s, f + 1.96 * s, color="C0", alpha=0.25, lw=0,
                    label="f(x) ± 1.96 σ(x)")
    ax.plot(g, f, color="C0", label="f(x)")
    ax.scatter(x, y, s=14, color="k", zorder=3, label="data")
    ax.set(xlabel="x", ylabel="y",
           title=f"{fit.name}: final mean log-likelihood {_loglik(fit)[-1]:.3f}")
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
        _, low = _extreme_after(fit, 100)
        ax.plot(_epochs(fit), _loglik(fit), lw=0.6,
                label=f"{fit.name} (final {_loglik(fit)[-1]:.3f}, lowest after 100: {low:.3g})")
    ax.set(xlabel="epoch", ylabel="mean log-likelihood per point", ylim=ylim,
           title="Training log-likelihood")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    return fig


# ----------------------------------------------------------------------------- dips
@dataclass
class DipAnalysis:
    """What drives the lowest point of a training curve after ``after_epoch``.

    The dip is measured against a baseline: the ``window`` epochs just before the low epoch
    (not earlier than ``after_epoch``). A point's drop is its mean log-likelihood over the
    baseline minus its log-likelihood at the low epoch; the driver is the point with the
    largest drop. ``found`` is False when there is nothing to explain (no record, no epochs
    after ``after_epoch``, or the mean log-likelihood at the low epoch is less than
    ``min_drop`` below the baseline, as on a curve that only rises).
    """
    name: str
    found: bool
    text: str
    after_epoch: int
    low_epoch: int | None = None
    low_loglik: float = math.nan
    high_epoch: int | None = None
    high_loglik: float = math.nan
    baseline_epochs: tuple[int, int] | None = None  # first and last epoch of the baseline
    baseline_loglik: float = math.nan               # mean log-likelihood over the baseline
    driver: int | None = None                       # index of the driving data point
    driver_drop: float = math.nan                   # its loss of log-likelihood, nats
    total_drop: float = math.nan                    # loss of summed log-likelihood, nats
    low_points: pd.DataFrame = field(default_factory=pd.DataFrame)
    high_points: pd.DataFrame = field(default_factory=pd.DataFrame)
    drops: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))  # per point, nats


def dip_analysis(fit: RegressionFit, after_epoch: int = DIP_AFTER, window: int = DIP_BEFORE,
                 min_drop: float = 0.1) -> DipAnalysis:
    """Find the lowest and highest mean log-likelihood after ``after_epoch`` and the point
    that drives the low one (see :class:`DipAnalysis` for the definitions).

    Needs the per-epoch record (``fit_regression(..., record=True)``, or an ensemble member,
    whose record keeps f and sigma over the epochs read here: see
    :class:`~probnn.inference.regression.DipRecorder`, whose ``after``, ``before`` and
    ``follow`` are these defaults and ``dip_figure``'s). Epochs are 1-based, as
    in ``fit.history["epoch"]``. ``min_drop`` is in nats per point.
    """
    def no_dip(reason: str, **kw) -> DipAnalysis:
        return DipAnalysis(fit.name, False, f"{fit.name}: no dip analysed: {reason}.", after_epoch,
                           **kw)

    if not _has_record(fit):
        return no_dip("the fit has no per-epoch record of f and sigma (fit with record=True)")
    low_epoch, low = _extreme_after(fit, after_epoch)
    if low_epoch is None:
        return no_dip(f"training stopped at epoch {int(_epochs(fit)[-1])}, "
                      f"not after epoch {after_epoch}")
    high_epoch, high = _extreme_after(fit, after_epoch, highest=True)

    ll = fit.pointwise_loglik()
    lo_row, hi_row = _row(fit, low_epoch), _row(fit, high_epoch)
    first = max(lo_row - window, _row(fit, after_epoch + 1))
    common = dict(low_epoch=low_epoch, low_loglik=low, high_epoch=high_epoch, high_loglik=high,
                  low_points=_points(fit, lo_row, ll), high_points=_points(fit, hi_row, ll))
    if first >= lo_row:
        return no_dip(f"the lowest mean log-likelihood after epoch {after_epoch} ({low:.3f}) is at "
                      f"epoch {low_epoch}, the first one considered: the curve never falls below "
                      "its start", **common)
    base = ll[first:lo_row].mean(axis=0)
    epochs = _epochs(fit)
    baseline_epochs = (int(epochs[first]), int(epochs[lo_row - 1]))
    base_mean = float(base.mean())
    if base_mean - low < min_drop:
        return no_dip(f"the lowest mean log-likelihood after epoch {after_epoch}, {low:.3f} at "
                      f"epoch {low_epoch}, is only {base_mean - low:.3g} below the mean over epochs "
                      f"{baseline_epochs[0]}-{baseline_epochs[1]} ({base_mean:.3f})", **common)
    drops = pd.Series(base - ll[lo_row], name="drop")
    drops.index.name = "point"
    driver = int(drops.idxmax())
    dip = DipAnalysis(fit.name, True, "", after_epoch, baseline_epochs=baseline_epochs,
                      baseline_loglik=base_mean, driver=driver, driver_drop=float(drops[driver]),
                      total_drop=float(drops.sum()), drops=drops, **common)
    dip.text = _dip_text(fit, dip, first, lo_row)
    return dip


def _dip_text(fit: RegressionFit, dip: DipAnalysis, first: int, lo_row: int) -> str:
    """Explain the dip from the measured numbers only."""
    i = dip.driver
    x, y = float(fit.x[i, 0]), float(fit.y[i, 0])
    s_base, s_low = float(fit.sigma[first:lo_row, i].mean()), float(fit.sigma[lo_row, i])
    r2 = (y - fit.f[first:lo_row + 1, i]) ** 2
    r2_base, r2_low = float(r2[:-1].mean()), float(r2[-1])
    # log N = -log sigma - (y-f)^2 / 2 sigma^2 - const: split the driver's drop between the two terms
    pen = r2 / (2 * fit.sigma[first:lo_row + 1, i].astype(np.float64) ** 2)
    pen_rise = float(pen[-1] - pen[:-1].mean())
    log_sigma_rise = dip.driver_drop - pen_rise
    median_sigma = float(np.median(fit.sigma[lo_row]))
    b0, b1 = dip.baseline_epochs
    lines = [
        f"{fit.name}: after epoch {dip.after_epoch} the mean log-likelihood is lowest at epoch "
        f"{dip.low_epoch}: {dip.low_loglik:.3f}, against a mean of {dip.baseline_loglik:.3f} over "
        f"epochs {b0}-{b1} just before, so the summed log-likelihood of the {fit.x.shape[0]} points "
        f"falls by {dip.total_drop:.1f} nats. (The highest after epoch {dip.after_epoch} is "
        f"{dip.high_loglik:.3f}, at epoch {dip.high_epoch}.)",
        f"Point {i} (x={x:.3f}, y={y:.3f}) loses the most: {dip.driver_drop:.1f} nats, "
        f"{100 * dip.driver_drop / dip.total_drop:.0f}% of the drop. At the dip its sigma is "
        f"{s_low:.3g} (baseline mean {s_base:.3g}; median sigma over all points at the dip "
        f"{median_sigma:.3g}) and its squared residual (y-f)^2 is {r2_low:.3g} (baseline mean "
        f"{r2_base:.3g}). Of its drop, {pen_rise:.1f} nats come from the penalty "
        f"(y-f)^2/2sigma^2 and {log_sigma_rise:+.1f} from log sigma (negative when sigma shrank).",
    ]
    if pen_rise <= 0.5 * dip.driver_drop:
        lines.append("So the drop is mostly a larger sigma at this point, not a residual "
                     "penalised by a small sigma.")
    else:
        why = []
        if s_low < median_sigma:
            why.append(f"the model has shrunk sigma at this point to {median_sigma / s_low:.1f}x "
                       "below the median")
        if r2_low > r2_base:
            why.append(f"f has moved so that (y-f)^2 went from {r2_base:.3g} to {r2_low:.3g}")
        if s_low < s_base:
            why.append(f"sigma fell from {s_base:.3g} to {s_low:.3g}")
        lines.append("So the drop is the penalty term" + (": " + ", and ".join(why) if why else "")
                     + f"; divided by 2sigma^2 = {2 * s_low ** 2:.3g} the residual costs "
                     f"{float(pen[-1]):.1f} nats at the dip.")
    return "\n".join(lines)


def dip_figure(fit: RegressionFit, dip: DipAnalysis, epochs_after: int = DIP_FOLLOW) -> Figure:
    """Three panels: the log-likelihood curve around the dip (baseline shaded), the driving
    point's sigma and ``|y - f|`` over the same epochs, and every point's log-likelihood at the dip
    against its baseline mean, with the driver marked. Without a dip: the curve and the reason.
    """
    if not dip.found:
        fig, axes = new_figure()
        ax = axes[0, 0]
        ax.plot(_epochs(fit), _loglik(fit), lw=0.6)
        ax.set(xlabel="epoch", ylabel="mean log-likelihood", title=f"{fit.name}: no dip")
        ax.text(0.02, 0.02, dip.text, transform=ax.transAxes, fontsize="small", wrap=True)
        return fig
    fig, axes = new_figure(3, 1, size=(8.0, 10.0))
    lo_row, first = _row(fit, dip.low_epoch), _row(fit, dip.baseline_epochs[0])
    sl = slice(first, min(lo_row + epochs_after + 1, len(fit.history)))
    ep, i = _epochs(fit)[sl], dip.driver

    ax = axes[0, 0]
    ax.plot(ep, _loglik(fit)[sl], lw=0.8)
    ax.axvspan(*dip.baseline_epochs, color="0.85", label="baseline")
    ax.axvline(dip.low_epoch, color="C3", lw=0.8, label=f"dip, epoch {dip.low_epoch}")
    ax.set(ylabel="mean log-likelihood", title=f"{fit.name}: dip to {dip.low_loglik:.3f}")
    ax.legend(fontsize="small")

    ax = axes[1, 0]
    ax.semilogy(ep, fit.sigma[sl, i], label="σ")
    ax.semilogy(ep, np.abs(fit.y[i, 0].item() - fit.f[sl, i]), label="|y − f|")
    ax.axvline(dip.low_epoch, color="C3", lw=0.8)
    ax.set(xlabel="epoch",
           title=f"driving point {i} (x={float(fit.x[i, 0]):.3f}, y={float(fit.y[i, 0]):.3f})")
    ax.legend(fontsize="small")

    ax = axes[2, 0]
    x = fit.x[:, 0].numpy()
    at_dip = fit.pointwise_loglik()[lo_row]
    ax.scatter(x, at_dip + dip.drops.to_numpy(), s=14, label="baseline mean")
    ax.scatter(x, at_dip, s=14, marker="x", label=f"epoch {dip.low_epoch}")
    ax.annotate(f"point {i}: −{dip.driver_drop:.1f} nats", (x[i], at_dip[i]),
                xytext=(10, 0), textcoords="offset points", fontsize="small")
    ax.set_yscale("symlog", linthresh=1)  # one point can sit hundreds of nats below the rest
    ax.set(xlabel="x", ylabel="log N(y_i | f(x_i), σ(x_i)²)", title="per-point log-likelihood")
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- tables
def max_loglik_supremum(x, y) -> dict[str, float]:
    """Supremum of the mean training log-likelihood per model when f and sigma(x) can be any
    function of x (see ``MAX_LOGLIK_ANSWER``), computed for these data."""
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
        low_epoch, low = _extreme_after(fit, 100)
        rows.append({"model": fit.name, "epochs": len(fit.history),
                     "final_loglik": float(_loglik(fit)[-1]),
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


DIP_THRESHOLD = -5.0
"""A seed "dips" when its mean log-likelihood falls below this after epoch 100."""


def _lowest_after(loglik: np.ndarray, epochs: np.ndarray, after: int = DIP_AFTER) -> np.ndarray:
    """(seeds,) lowest mean log-likelihood after epoch ``after`` (NaN when training stopped
    before it)."""
    late = loglik[epochs > after]
    return late.min(0) if len(late) else np.full(loglik.shape[1], math.nan)


def seed_table(runs: Mapping[str, EnsembleFit], after: int = DIP_AFTER) -> pd.DataFrame:
    """One row per run (label -> ensemble): the final mean log-likelihood and the deepest
    dip (lowest after epoch ``after``) as distributions over the seeds (median, min, max),
    how many seeds dip below :data:`DIP_THRESHOLD`, the seed with the deepest dip, the
    coursework seed's (the first member's) two numbers and the ensemble's training time."""
    rows = []
    for label, ens in runs.items():
        ll, ep = ens.loglik(), ens.history["epoch"].to_numpy()
        final, low = ll[-1], _lowest_after(ll, ep, after)
        deepest = int(np.nanargmin(low)) if np.isfinite(low).any() else 0
        rows.append({"run": label, "seeds": len(ens.seeds), "epochs": len(ens.history),
                     "final_loglik_median": float(np.median(final)),
                     "final_loglik_min": float(final.min()), "final_loglik_max": float(final.max()),
                     f"lowest_after_{after}_median": float(np.median(low)),
                     f"lowest_after_{after}_min": float(np.min(low)),
                     f"lowest_after_{after}_max": float(np.max(low)),
                     f"seeds_below_{DIP_THRESHOLD:g}": int((low < DIP_THRESHOLD).sum()),
                     "deepest_dip_seed": ens.seeds[deepest],
                     "coursework_seed_final": float(final[0]),
                     f"coursework_seed_lowest_after_{after}": float(low[0]),
                     "seconds": (float(ens.history["seconds"].iloc[-1]) if len(ens.history)
                                 else 0.0)})
    return pd.DataFrame(rows).set_index("run")


def seed_band_plot(runs: Mapping[str, EnsembleFit], ylim: tuple[float, float] = (-10, 0)
                   ) -> Figure:
    """One panel per run: the coursework seed's (first member's) training log-likelihood in
    front of the band of all seeds (min-max, light; 10-90% quantiles, darker). Clipped at
    ``ylim``: the dips reach far lower (see the seed table)."""
    fig, axes = new_figure(len(runs), 1, size=(9.0, 2.6 * len(runs)))
    for ax, (label, ens) in zip(axes[:, 0], runs.items()):
        ll, ep = ens.loglik(), ens.history["epoch"].to_numpy()
        if len(ep):
            ax.fill_between(ep, ll.min(1), ll.max(1), color="C0", alpha=0.15, lw=0,
                            label=f"all {len(ens.seeds)} seeds (min–max)")
            lo, hi = np.quantile(ll, [0.1, 0.9], axis=1)
            ax.fill_between(ep, lo, hi, color="C0", alpha=0.3, lw=0, label="10–90% of seeds")
            ax.plot(ep, ll[:, 0], color="C3", lw=0.6, label=f"seed {ens.seeds[0]}")
        ax.set(ylabel="mean log-lik.", ylim=ylim, title=label)
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize="small")
    axes[-1, 0].set_xlabel("epoch")
    return fig


def _paired(ens: EnsembleFit, base: EnsembleFit, after: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """Per seed (paired: the same seed draws the same initial f and g in both runs), whether
    ``ens`` has the shallower deepest dip and the higher final log-likelihood than ``base``."""
    if ens.seeds != base.seeds or len(ens.history) != len(base.history):
        raise ValueError("paired comparisons need the same seeds and epochs")
    ep = ens.history["epoch"].to_numpy()
    a, b = ens.loglik(), base.loglik()
    return _lowest_after(a, ep, after) > _lowest_after(b, ep, after), a[-1] > b[-1]


def _across(better: np.ndarray, what: str) -> str:
    k, n = int(better.sum()), len(better)
    if k == n:
        return f"{what} in all {n} seeds, so it holds across seeds"
    if k == 0:
        return f"{what} in none of the {n} seeds: the opposite holds across seeds"
    return f"{what} in only {k} of {n} seeds: no claim either way"


def cures_answer(table: pd.DataFrame, runs: Mapping[str, EnsembleFit], baseline: str,
                 after: int = 100) -> str:
    """How each cure changed the dips and the final fit across seeds, from :func:`seed_table`.
    A cure "beats no cure" on a measure only if it does so for every seed, paired by seed."""
    b = table.loc[baseline]
    low = f"lowest_after_{after}"
    out = [f"Rule: a cure beats no cure on a measure (the deepest dip after epoch {after}, the "
           "final log-likelihood) only if it is better in every seed, comparing the runs of the "
           "same seed (they start from the same networks); otherwise no winner is named. "
           f"Without a cure, over {int(b.seeds)} seeds the deepest dip has median "
           f"{b[f'{low}_median']:.3g} (range {b[f'{low}_min']:.3g} to {b[f'{low}_max']:.3g}), "
           f"{int(b[f'seeds_below_{DIP_THRESHOLD:g}'])} seeds dip below {DIP_THRESHOLD:g}; the "
           f"final mean log-likelihood has median {b.final_loglik_median:.3f} (range "
           f"{b.final_loglik_min:.3f} to {b.final_loglik_max:.3f})."]
    for run, r in table.drop(index=baseline).iterrows():
        dip_better, final_better = _paired(runs[run], runs[baseline], after)
        out.append(
            f"{run}: deepest dip median {r[f'{low}_median']:.3g} (range {r[f'{low}_min']:.3g} to "
            f"{r[f'{low}_max']:.3g}), final median {r.final_loglik_median:.3f} (range "
            f"{r.final_loglik_min:.3f} to {r.final_loglik_max:.3f}); "
            f"{_across(dip_better, 'a shallower deepest dip than no cure')}; "
            f"{_across(final_better, 'a higher final log-likelihood')}.")
    out.append("A dip happens when sigma(x_i) has shrunk onto a point and f moves: the cost "
               "(y - f)^2 / 2 sigma^2 explodes for that point. A floor on sigma bounds that cost; "
               "beta-NLL (Seitzer et al., 2022) weights each point's loss by sigma^(2 beta), which "
               "slows the shrinking but also stops pulling f towards the points with small sigma; "
               "the faithful cure (Stirn et al., 2023) fits f by squared error, so sigma cannot "
               "steer f, and the natural-parameter likelihood (Immer et al., 2023) changes the "
               "geometry of the gradient steps; none of them optimises the log-likelihood "
               "reported here as directly as plain maximum likelihood, so they may end lower.")
    return " ".join(out)


# ----------------------------------------------------------------------------- builders
QUESTION_A = ("Fit Y ~ N(f(x), σ²) with a small MLP f by maximum likelihood (50,000 Adam epochs); "
              "show the fit with its ±1.96σ ribbon; what is the maximum possible training "
              "log-likelihood if f is rich enough?")
QUESTION_B = ("Fit Y ~ N(f(x), σ(x)²); plot log-likelihood per epoch for both models; why does "
              "the heteroscedastic curve dip?")
QUESTION_CURES = ("Train the heteroscedastic model with a floor under σ(x), with the β-NLL "
                  "loss (Seitzer et al., 2022), the faithful loss (Stirn et al., 2023) and the "
                  "natural-parameter likelihood (Immer et al., 2023); does the log-likelihood "
                  "still dip, across seeds?")
QUESTION_SEEDS = ("Training is chaotic: the same seed gives other numbers on another machine. "
                  "What do the maximum-likelihood fits give across seeds?")
BASELINE = "no cure"


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


def seeds_section(runs: Mapping[str, EnsembleFit]) -> Section:
    """The maximum-likelihood fits across seeds (label -> ensemble; the heteroscedastic one
    named ``HETEROSCEDASTIC``): the seed table, each run's coursework-seed curve in its
    seed band, and the dip explanation for the seed with the deepest dip."""
    table = seed_table(runs)
    answers, plots, tables = [], [Plot("seeds-loglik", seed_band_plot(runs),
                                       "Training mean log-likelihood: the coursework seed in "
                                       "front of the band of all seeds (clipped at −10).")], []
    hetero = runs.get(HETEROSCEDASTIC)
    low = table.filter(like="lowest_after_100").columns
    for label, r in table.iterrows():
        dips = (f"deepest dip after epoch 100 median {r[low[0]]:.3g} (range {r[low[1]]:.3g} to "
                f"{r[low[2]]:.3g})" if np.isfinite(r[low[0]]) else
                "no epochs after 100 to measure a dip in")
        answers.append(
            f"{label}, {int(r.seeds)} seeds: final mean log-likelihood median "
            f"{r.final_loglik_median:.3f} (range {r.final_loglik_min:.3f} to "
            f"{r.final_loglik_max:.3f}); {dips}; the coursework seed (seed "
            f"{runs[label].seeds[0]}) ends at {r.coursework_seed_final:.3f}, one draw from these.")
    if hetero is not None:
        seed = int(table.loc[HETEROSCEDASTIC, "deepest_dip_seed"])
        fit = hetero.member(seed)
        dip = dip_analysis(fit)
        answers.append(f"The deepest dip over the seeds is seed {seed}'s. " + dip.text)
        if dip.found:
            plots.append(Plot("seeds-deepest-dip", dip_figure(fit, dip),
                              f"The deepest dip over the seeds (seed {seed}), point by point."))
            tables.append(Table("seeds-deepest-dip-points", dip.low_points,
                                f"Seed {seed}: points at the deepest dip",
                                view=dip.low_points.head(8)))
    return Section("regression-seeds", "(a–b) Maximum-likelihood fits across seeds",
                   QUESTION_SEEDS, answers=answers,
                   tables=[Table("seeds", table, "Final log-likelihood and deepest dip over seeds")]
                   + tables, plots=plots)


def cures_section(runs: Mapping[str, EnsembleFit]) -> Section:
    """The dip cures across seeds: one heteroscedastic ensemble per training run (label ->
    ensemble, the first the baseline), their seed table, seed bands and answer."""
    table = seed_table(runs)
    return Section("regression-cures", "(b, further) Curing the dips", QUESTION_CURES,
                   answers=[cures_answer(table, runs, next(iter(runs)))],
                   tables=[Table("cures", table, "Heteroscedastic runs across seeds")],
                   plots=[Plot("cures-loglik", seed_band_plot(runs, ylim=(-20, 1)),
                               "True training log-likelihood per epoch across seeds, with and "
                               "without the cures (β-NLL and faithful train other objectives; "
                               "this is the log-likelihood).")])


def cure_label(fit: RegressionFit | EnsembleFit) -> str:
    """How a heteroscedastic run was trained: ``no cure``, ``σ floor 0.05``, ``β-NLL β=0.5``,
    ``faithful (Stirn 2023)``, ``natural parameters (Immer 2023)``."""
    floor, beta = getattr(fit.model, "sigma_floor", 0.0), getattr(fit.model, "beta", 0.0)
    cure = getattr(fit.model, "cure", "none")
    parts = ([f"σ floor {floor:g}"] if floor else []) + ([f"β-NLL β={beta:g}"] if beta else [])
    parts += [CURE_LABELS[cure]] if cure != "none" else []
    return ", ".join(parts) or BASELINE


CURE_LABELS = {"faithful": "faithful (Stirn 2023)", "natural": "natural parameters (Immer 2023)"}
