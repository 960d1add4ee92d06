"""Why the heteroscedastic training curve dips: the analysis of one dip, its text and figure.

Takes a :class:`~probnn.inference.regression.RegressionFit` with its per-epoch record of f
and sigma and finds the lowest point of the curve after an epoch, the data point that drives
it, and how much of that point's loss is its residual penalty and how much its log sigma.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.inference.regression import DIP_AFTER, DIP_BEFORE, DIP_FOLLOW, RegressionFit

from .plotting import new_figure
from .regression_fits import extreme_after, has_record, train_epochs, train_loglik


def _row(fit: RegressionFit, epoch: int) -> int:
    """Row of ``epoch`` in the history and the per-epoch records (resumed fits may not start at 1)."""
    return int(np.searchsorted(train_epochs(fit), epoch))


def _points(fit: RegressionFit, row: int, loglik: np.ndarray) -> pd.DataFrame:
    """Per-point state at one history row, worst-fitted point first."""
    x, y = fit.x[:, 0].numpy(), fit.y[:, 0].numpy()
    f, s = fit.f[row], fit.sigma[row]
    df = pd.DataFrame({"x": x, "y": y, "f": f, "sigma": s, "sq_resid": (y - f) ** 2,
                       "loglik": loglik[row]})
    df.index.name = "point"
    return df.sort_values("loglik", kind="stable")


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

    if not has_record(fit):
        return no_dip("the fit has no per-epoch record of f and sigma (fit with record=True)")
    low_epoch, low = extreme_after(fit, after_epoch)
    if low_epoch is None:
        return no_dip(f"training stopped at epoch {int(train_epochs(fit)[-1])}, "
                      f"not after epoch {after_epoch}")
    high_epoch, high = extreme_after(fit, after_epoch, highest=True)

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
    epochs = train_epochs(fit)
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
        ax.plot(train_epochs(fit), train_loglik(fit), lw=0.6)
        ax.set(xlabel="epoch", ylabel="mean log-likelihood", title=f"{fit.name}: no dip")
        ax.text(0.02, 0.02, dip.text, transform=ax.transAxes, fontsize="small", wrap=True)
        return fig
    fig, axes = new_figure(3, 1, size=(8.0, 10.0))
    lo_row, first = _row(fit, dip.low_epoch), _row(fit, dip.baseline_epochs[0])
    sl = slice(first, min(lo_row + epochs_after + 1, len(fit.history)))
    ep, i = train_epochs(fit)[sl], dip.driver

    ax = axes[0, 0]
    ax.plot(ep, train_loglik(fit)[sl], lw=0.8)
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
