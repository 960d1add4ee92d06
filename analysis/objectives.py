"""Which training objective trains the best model: the figure, the answer and the section.

Takes the table of :func:`probnn.inference.estimator_study.objective_comparison` (one VAE
trained per objective and seed, all scored on the same holdout images) and names a winner
only beyond the spread of its noise (:func:`~probnn.analysis.significance.beyond_noise`):
paired over images from one seed, paired within seeds from several.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.inference.estimator_study import summarise_objectives

from .outputs import Plot, Section, Table
from .plotting import new_figure
from .significance import beyond_noise, fmt_diff

QUESTION_OBJECTIVES = ("Which training objective trains the best model, beyond the spread "
                       "over seeds?")
SHOWN_OBJECTIVES = ("objective", "seeds", "train_seconds", "train_objective", "holdout_elbo",
                    "holdout_iwae", "holdout_iwae_seed_se", "holdout_iwae_seed_sd",
                    "delta_vs_best", "delta_vs_best_se")


def objectives_figure(table: pd.DataFrame, reference: dict | None = None, name: str = "") -> Figure:
    """Left: each objective's holdout IWAE bound, one dot per seed and the mean over seeds
    (± the seeds' sd), and the mean holdout ELBO (the studied checkpoint as a dashed line when
    given). Right: training time per objective (mean over seeds)."""
    summary = summarise_objectives(table)
    fig, axes = new_figure(1, 2, (11.0, 4.2))
    left, right = axes[0]
    x = np.arange(len(summary))
    k = int(summary["eval_k"].iloc[0])
    pos = dict(zip(summary["objective"], x))
    left.scatter(table["objective"].map(pos) - 0.1, table["holdout_iwae"], s=12, color="C0",
                 alpha=0.5, label="one seed")
    sd = summary["holdout_iwae_seed_sd"].fillna(0.0)
    left.errorbar(x - 0.1, summary["holdout_iwae"], yerr=sd, fmt="o", color="C0", capsize=3,
                  label=f"holdout IWAE (K={k}), mean ± sd over {int(summary['seeds'].iloc[0])} "
                        "seed(s)")
    left.plot(x + 0.1, summary["holdout_elbo"], "s", color="C1", label="holdout ELBO (mean)")
    if reference:
        values = np.concatenate([table["holdout_iwae"], table["holdout_elbo"]])
        span = max(float(np.ptp(values)), 1.0)
        ref = reference["holdout_iwae"]
        if values.min() - 3 * span <= ref <= values.max() + 3 * span:
            left.axhline(ref, color="C2", linestyle="--", label=f"studied checkpoint, IWAE (K={k})")
        else:  # a line far off would squash the models' differences into one pixel row
            left.plot([], [], " ", label=f"studied checkpoint: {ref:.1f} (off the scale)")
    left.set_xticks(x, summary["objective"], rotation=20)
    left.set(ylabel="nats per image", title=f"{name + chr(10) if name else ''}models trained "
             f"with each objective ({int(summary['epochs'].iloc[0])} epoch(s), "
             f"{int(summary['train_images'].iloc[0])} images)")
    left.grid(alpha=0.3, axis="y")
    left.legend(fontsize="x-small")
    right.bar(x, summary["train_seconds"], color="C1")
    right.set_xticks(x, summary["objective"], rotation=20)
    right.set(ylabel="training seconds (mean over seeds)", title="Training time")
    right.grid(alpha=0.3, axis="y")
    return fig


def objectives_answer(table: pd.DataFrame, reference: dict | None = None) -> str:
    """Which objective trained the best model, from
    :func:`~probnn.inference.estimator_study.objective_comparison`'s table:
    over several seeds, :func:`objectives_seed_answer`; from one seed, ranked by the common
    holdout IWAE bound with standard errors paired over images, the ELBO ranking, the cost,
    and (with ``reference``) how far from the studied checkpoint the models stop."""
    if "seed" in table and table["seed"].nunique() > 1:
        return objectives_seed_answer(table, reference)
    t = table.sort_values("holdout_iwae", ascending=False)
    k, n = int(t["eval_k"].iloc[0]), int(t["eval_images"].iloc[0])
    best = t.iloc[0]
    out = [f"Trained from the same initialisation on the same {int(best['train_images'])} images "
           f"for {int(best['epochs'])} epoch(s) and scored by the IWAE bound with K={k} on the "
           f"same {n} holdout images, the best model comes from {best['objective']} "
           f"({best['holdout_iwae']:.2f} nats per image)."]
    if len(t) > 1:
        second = t.iloc[1]
        d, se = -second["delta_vs_best"], second["delta_vs_best_se"]
        out.append(f"It beats the runner-up, {second['objective']}, by {fmt_diff(d, se)} nats "
                   "(paired over images)" + (": a real difference." if beyond_noise(d, se, n - 1)
                                             else ": within noise, so the two are not "
                                                  "distinguishable on these images."))
        out.append("Ranking: " + ", ".join(f"{r['objective']} {r['holdout_iwae']:.2f}"
                                           for _, r in t.iterrows()) + ".")
        by_elbo = t.sort_values("holdout_elbo", ascending=False)
        if by_elbo.iloc[0]["objective"] != best["objective"]:
            d = -best.get("elbo_delta_vs_best", math.nan)
            se = best.get("elbo_delta_vs_best_se", math.nan)
            real = np.isfinite(d) and beyond_noise(d, se, n - 1)
            out.append(f"By the holdout ELBO instead, {by_elbo.iloc[0]['objective']} would come "
                       f"first ({by_elbo.iloc[0]['holdout_elbo']:.2f} against "
                       f"{best['holdout_elbo']:.2f}"
                       + (f", {fmt_diff(d, se)} nats paired" if np.isfinite(d) else "") + ")"
                       + (": the ELBO ranks the models differently from the tighter bound, "
                          "because it also charges each model for its guide's misfit."
                          if real or not np.isfinite(d) else
                          ", a difference within noise."))
        else:
            out.append(f"The holdout ELBO ranks {best['objective']} first too.")
        cheapest = t.loc[t["train_seconds"].idxmin()]
        out.append(f"Training cost {best['train_seconds']:.0f} s for {best['objective']} against "
                   f"{cheapest['train_seconds']:.0f} s for {cheapest['objective']}, the cheapest.")
        if {"trace", "iwae-1"} <= set(t["objective"]):
            a, b = (t[t["objective"] == o].iloc[0]["holdout_iwae"] for o in ("trace", "iwae-1"))
            out.append("trace and iwae-1 train " + ("the identical model (the same loss from the "
                                                    "same draws)." if np.isclose(a, b, atol=1e-3)
                                                    else f"models {abs(a - b):.3f} nats apart, "
                                                         "floating-point drift of one loss."))
    out += _reference_text(reference, best["holdout_iwae"])
    return " ".join(out)


def _reference_text(reference: dict | None, best: float) -> list[str]:
    if not reference:
        return []
    gap = reference["holdout_iwae"] - best
    return [f"The studied checkpoint scores {reference['holdout_iwae']:.2f} on the same images "
            f"with the same estimator, {gap:.2f} nats "
            + ("above the best of these models: they are far from converged, so this ranking "
               "describes early training and may change with longer runs."
               if gap > 5 else "from the best of these models.")]


def objectives_seed_answer(table: pd.DataFrame, reference: dict | None = None) -> str:
    """The objective comparison over seeds: a winner is named only where its advantage,
    paired within seeds, lies outside the 95% t-interval of the seed-to-seed spread."""
    sm = summarise_objectives(table).sort_values("holdout_iwae", ascending=False)
    n, k = int(sm["seeds"].iloc[0]), int(sm["eval_k"].iloc[0])
    best = sm.iloc[0]
    seeds = sorted(set(table["seed"]))
    out = [f"Every objective trained from {n} seeds ({', '.join(map(str, seeds))}; within a "
           f"seed all start from the same initialisation and see the same {int(best['train_images'])}"
           f" images in the same order, {int(best['epochs'])} epoch(s)) and scored by the IWAE "
           f"bound with K={k} on the same {int(best['eval_images'])} holdout images. Mean over "
           "seeds ± standard error: " + ", ".join(
               f"{r['objective']} {r['holdout_iwae']:.2f} ± {r['holdout_iwae_seed_se']:.2f}"
               for _, r in sm.iterrows()) + "."]
    beaten, level = [], []
    for _, r in sm.iloc[1:].iterrows():
        d, se = -r["delta_vs_best"], r["delta_vs_best_se"]
        (beaten if beyond_noise(d, se, n - 1) else level).append(
            f"{r['objective']} ({fmt_diff(d, se)})")
    if beaten and not level:
        out.append(f"{best['objective']} is the best objective here, beyond the seed spread "
                   f"against every other (paired over seeds, best minus other): "
                   + ", ".join(beaten) + ".")
    elif beaten:
        out.append(f"{best['objective']} has the highest mean. It beats "
                   + ", ".join(beaten) + " beyond the seed spread (paired over seeds), but not "
                   + ", ".join(level) + ": no single winner among those.")
    else:
        out.append(f"{best['objective']} has the highest mean, but no objective is better than "
                   "the others beyond the seed spread (paired differences against it: "
                   + ", ".join(level) + f"; a real difference needs to clear the 95% t-interval "
                   f"with {n - 1} degrees of freedom).")
    first = table[table["seed"] == seeds[0]].sort_values("holdout_iwae", ascending=False)
    top = first.iloc[0]
    margin = top["holdout_iwae"] - first.iloc[1]["holdout_iwae"] if len(first) > 1 else math.nan
    out.append(f"Seed {seeds[0]} alone would rank {top['objective']} first by {margin:.2f} "
               "nats" + (", as the seed average does." if top["objective"] == best["objective"]
                         else f"; over {n} seeds {best['objective']} comes first instead: one "
                              "run's ranking is not to be trusted."))
    piv = table.pivot(index="seed", columns="objective", values="holdout_iwae")
    for a, b in (("dreg-iwae", "iwae"), ("stl", "trace")):
        for spec in sm["objective"]:
            if spec.startswith(a) and spec.replace(a, b, 1) in set(sm["objective"]):
                other = spec.replace(a, b, 1)
                d = piv[spec] - piv[other]
                se = float(d.std(ddof=1) / math.sqrt(len(d)))
                out.append(f"{spec} against {other}: {fmt_diff(float(d.mean()), se)} nats "
                           "paired over seeds" + (", a real difference."
                                                  if beyond_noise(float(d.mean()), se, n - 1)
                                                  else ", within the seed spread."))
    cheapest = sm.loc[sm["train_seconds"].idxmin()]
    out.append(f"Training cost (mean over seeds) {best['train_seconds']:.0f} s for "
               f"{best['objective']} against {cheapest['train_seconds']:.0f} s for "
               f"{cheapest['objective']}, the cheapest.")
    out += _reference_text(reference, best["holdout_iwae"])
    return " ".join(out)


def objectives_section(table: pd.DataFrame, reference: dict | None = None,
                       stem: str = "objectives", name: str = "") -> Section:
    """One VAE trained per objective and seed (the table of
    :func:`~probnn.inference.estimator_study.objective_comparison`), scored on one holdout
    yardstick and summarised over the seeds; ``reference``: the studied checkpoint scored the
    same way."""
    summary = summarise_objectives(table)
    row = summary.iloc[0]
    arch = f"{name}, " if name else ""
    return Section("objectives", "Training objectives compared", QUESTION_OBJECTIVES,
                   answers=[objectives_answer(table, reference)],
                   tables=[Table(f"{stem}-summary", summary,
                                 f"Training with each objective, over {int(row['seeds'])} "
                                 "seed(s) (nats per image; delta paired within seeds)",
                                 view=summary[[c for c in SHOWN_OBJECTIVES if c in summary]]
                                 .set_index("objective"), index=False),
                           Table(stem, table, index=False)],
                   plots=[Plot(stem, objectives_figure(table, reference, name),
                               f"One VAE per training objective and seed ({arch}"
                               f"{int(row['epochs'])} epoch(s) on {int(row['train_images'])} "
                               f"training images; within a seed the same start and the same "
                               f"batches), scored by IWAE-{int(row['eval_k'])} on "
                               f"{int(row['eval_images'])} holdout images.")])
