"""The maximum-likelihood fits across seeds, and the cures of the dips across seeds.

Takes :class:`~probnn.inference.regression.EnsembleFit` objects (one model trained from
several seeds at once; label -> ensemble) and returns the seed table, the seed bands and the
answers; a cure is said to beat no cure on a measure only when it does in every seed, paired
by seed.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.inference.regression import DIP_AFTER, EnsembleFit, RegressionFit

from .outputs import Plot, Section, Table
from .plotting import new_figure
from .regression_dips import dip_analysis, dip_figure
from .regression_fits import HETEROSCEDASTIC

QUESTION_CURES = ("Train the heteroscedastic model with a floor under σ(x), with the β-NLL "
                  "loss (Seitzer et al., 2022), the faithful loss (Stirn et al., 2023) and the "
                  "natural-parameter likelihood (Immer et al., 2023); does the log-likelihood "
                  "still dip, across seeds?")
QUESTION_SEEDS = ("Training is chaotic: the same seed gives other numbers on another machine. "
                  "What do the maximum-likelihood fits give across seeds?")
BASELINE = "no cure"
CURE_LABELS = {"faithful": "faithful (Stirn 2023)", "natural": "natural parameters (Immer 2023)"}

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


def seeds_section(runs: Mapping[str, EnsembleFit]) -> Section:
    """The maximum-likelihood fits across seeds (label -> ensemble; the heteroscedastic one
    named :data:`~probnn.analysis.regression_fits.HETEROSCEDASTIC`): the seed table, each run's
    coursework-seed curve in its seed band, and the dip explanation for the seed with the
    deepest dip."""
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
