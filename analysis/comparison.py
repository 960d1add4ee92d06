"""Question (e)'s answer: the VAEs compared by their held-out bounds, image by image.

Every difference the answer states is taken over the same images. The K=``large`` bound runs on
a subset of the holdout images, so its gap to the ELBO is the *paired* gap on that subset
(``gap_<large>`` of :func:`~probnn.inference.evaluation.holdout_estimates`), never the
subset's bound minus the ELBO of all images; two models are compared through their per-image
estimates on the images both were scored on (:func:`~probnn.inference.paired.paired_difference`),
and a model is named better only when the difference is more than :data:`Z` standard errors
from zero. Without per-image estimates (a table read back from a CSV) the answer says that the
uncertainty of a difference is unknown instead of naming a winner.
"""
from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from probnn.inference.estimators import PARETO_K_UNRELIABLE
from probnn.inference.paired import Paired, PerImage, paired_difference

from .curves import history_figure
from .holdout_table import comparison_table, k_columns
from .outputs import Plot, Section, Table
from .significance import fmt_paired

QUESTION_E = ("Compare the latent dimensions (and the PyTorch example's MLP VAE) on a holdout "
              "set: which is the better model, and what is the right measure?")
Z = 2.0
"""A difference counts when it is more than Z standard errors from zero (about 95%)."""


def _values(per_image: Mapping | None, model: str, part: str, col: str) -> PerImage | None:
    """The per-image estimates ``col`` of ``model`` in ``part`` ("all" or "subset"), if any."""
    pi = (per_image or {}).get(model, {}).get(part)
    return pi if pi is not None and col in pi else None


def _between(per_image, a: str, b: str, part: str, col: str) -> Paired | None:
    """Paired difference of ``col`` between models ``a`` and ``b`` over their common images."""
    pa, pb = _values(per_image, a, part, col), _values(per_image, b, part, col)
    if pa is None or pb is None:
        return None
    return paired_difference(pa, col, pb, col)


def _gap_images(per_image, model: str, large: str) -> PerImage | None:
    """The per-image gap, IWAE-``large`` minus ELBO-MC, on the model's large-K subset."""
    sub = _values(per_image, model, "subset", large)
    if sub is None or "elbo_mc" not in sub:
        return None
    return PerImage(sub.index, {"gap": sub.values[large] - sub.values["elbo_mc"]})


def model_gaps(table: pd.DataFrame, k: int) -> dict[str, Paired]:
    """Each model's gap between the K=``k`` bound and ELBO-MC, on the same images: the paired
    ``gap_<k>`` ± ``gap_<k>_se`` where the table has it; else, when the K=``k`` bound covers
    every image of the ELBO (no ``large_k_images`` smaller than ``images``), the plain
    difference without a standard error; else no gap (different images)."""
    col, out = f"iwae_{k}", {}
    for m in table.index:
        row = table.loc[m]
        if pd.notna(row.get(f"gap_{k}")):
            n = int(row.get("large_k_images", row.get("images", 0)))
            out[m] = Paired(float(row[f"gap_{k}"]), float(row.get(f"gap_{k}_se", math.nan)), n)
        elif pd.notna(row.get(col)) and pd.notna(row.get("elbo_mc")) and not (
                pd.notna(row.get("large_k_images")) and row["large_k_images"] < row["images"]):
            out[m] = Paired(float(row[col] - row["elbo_mc"]), math.nan, int(row.get("images", 0)))
    return out


def _ranking(table, col: str, k: int, per_image, part: str) -> list[str]:
    ranked = table[col].dropna().sort_values(ascending=False)
    if ranked.empty:
        raise ValueError(f"no model has a value for {col}")
    n = table["large_k_images"].dropna() if "large_k_images" in table else table["images"]
    where = (f"the same {int(n.iloc[0])} held-out images" if len(set(n)) == 1
             else "held-out images")
    best, values = ranked.index[0], ", ".join(f"{m} {v:.2f}" for m, v in ranked.items())
    if len(ranked) == 1:
        return [f"On {where}, {best}'s importance-weighted bound with K={k} is "
                f"{ranked.iloc[0]:.2f} nats per image."]
    second = ranked.index[1]
    d = _between(per_image, best, second, part, col)
    head = f"By the importance-weighted bound with K={k} on {where} ({values} nats per image)"
    if d is None:
        return [f"{head}, {best} scores highest, {ranked.iloc[0] - ranked.iloc[1]:.2f} nats above "
                f"{second}; without per-image estimates the uncertainty of that difference is "
                "unknown, so no model is named better."]
    if d.beyond(Z):
        return [f"{head}, the best model is {best}: {fmt_paired(d)} nats above {second} "
                f"(paired over {d.n} common images)."]
    return [f"{head}, {best} and {second} are not distinguishable: their difference is "
            f"{fmt_paired(d)} nats over {d.n} common images, within {Z:g} standard errors."]


def _gap_sentences(table, k: int, per_image) -> list[str]:
    gaps = model_gaps(table, k)
    if not gaps:
        return [f"The ELBO was not measured on the images of the K={k} bound, so no gap is "
                "given."]
    parts = []
    for m, g in gaps.items():
        bits = [f"gap {fmt_paired(g)}"]
        if pd.notna(table.at[m, "elbo_mc_subset"] if "elbo_mc_subset" in table else math.nan):
            bits.append(f"ELBO {table.at[m, 'elbo_mc_subset']:.2f} on those {g.n} images")
        else:
            bits.insert(0, f"ELBO {table.at[m, 'elbo_mc']:.2f}")
        if "kl" in table and pd.notna(table.at[m, "kl"]):
            bits.append(f"KL {table.at[m, 'kl']:.2f}")
        if "active_units" in table and pd.notna(table.at[m, "active_units"]):
            bits.append(f"{int(table.at[m, 'active_units'])} active units")
        parts.append(f"{m}: " + ", ".join(bits))
    out = [f"The gap between the K={k} bound and ELBO-MC, each on the same images, is in "
           "expectation a lower bound on KL(q(z|x) || p(z|x)), the guide's misfit to the "
           "model's posterior (" + "; ".join(parts) + "). This is each model's gap of record; "
           "the bounds and estimator sections measure it on fewer images and point here."]
    out += _largest_gap(gaps, k, per_image)
    below = [m for m, g in gaps.items() if g.mean < 0]
    for m in below:
        g = gaps[m]
        out.append(f"{m}'s gap is below zero beyond its Monte Carlo error ({fmt_paired(g)}): "
                   "the bound is never below the ELBO in expectation, so an estimate is wrong."
                   if g.beyond(Z) else
                   f"{m}'s negative gap ({fmt_paired(g)}) is within its Monte Carlo error.")
    return out


def _largest_gap(gaps: Mapping[str, Paired], k: int, per_image) -> list[str]:
    if len(gaps) < 2:
        return []
    hi = max(gaps, key=lambda m: gaps[m].mean)
    lo = min(gaps, key=lambda m: gaps[m].mean)
    a, b = _gap_images(per_image, hi, f"iwae_{k}"), _gap_images(per_image, lo, f"iwae_{k}")
    d = paired_difference(a, "gap", b, "gap") if a is not None and b is not None else None
    if d is not None and d.beyond(Z):
        return [f"The gap is largest for {hi} and smallest for {lo}: {fmt_paired(d)} nats apart "
                f"over {d.n} common images."]
    why = (f"{fmt_paired(d)} nats over {d.n} common images" if d is not None
           else "no per-image estimates to pair")
    return [f"The gap is largest for {hi} ({gaps[hi].mean:.2f}) and smallest for {lo} "
            f"({gaps[lo].mean:.2f}), a difference not beyond its uncertainty ({why})."]


def _elbo_ranking(table, best: str, per_image) -> list[str]:
    by_elbo = table["elbo_mc"].dropna() if "elbo_mc" in table else pd.Series(dtype=float)
    if len(by_elbo) < 2 or best not in by_elbo:
        return []
    top = by_elbo.idxmax()
    if top == best:
        return [f"The ELBO also ranks {best} highest, but the gaps show how much of each ELBO "
                "is the guide's misfit rather than the model."]
    d = _between(per_image, top, best, "all", "elbo_mc")
    unc = (f"{fmt_paired(d)} nats over {d.n} common images" if d is not None
           else "uncertainty unknown without per-image estimates")
    verdict = ("the ELBO ranking is distorted by the guides' different gaps"
               if d is not None and d.beyond(Z) else "a difference within its uncertainty")
    return [f"Ranked by ELBO instead, {top} would come first ({by_elbo[top]:.2f} against "
            f"{by_elbo[best]:.2f} for {best}; {unc}): {verdict}."]


def _rise(table, ks, per_image) -> list[str]:
    (lo_k, lo_col), (k, col) = ks[0], ks[-1]
    if f"{lo_col}_subset" in table:  # the large-K bound's images carry their small-K bound
        lo_col = f"{lo_col}_subset"
    rise = (table[col] - table[lo_col]).dropna()
    if not len(rise):
        return []
    se = {m: paired_difference(p, col, p, ks[0][1]).se for m in rise.index
          if (p := _values(per_image, m, "subset", col)) is not None and ks[0][1] in p}
    fell = [m for m, r in rise.items() if r <= 0]
    spread = ", ".join(f"{m} {r:.2f}" + (f" ± {se[m]:.2f}" if m in se else "")
                       for m, r in rise.items())
    if not fell:
        return [f"From K={lo_k} to K={k} the bound rises for every model on the same images "
                f"({spread} nats), as it should while it tightens towards log p(x)."]
    return [f"From K={lo_k} to K={k} the bound does not rise for {', '.join(fell)} on the same "
            f"images ({spread} nats): within Monte Carlo noise unless beyond {Z:g} standard "
            "errors."]


def comparison_answer(table: pd.DataFrame, per_image: Mapping | None = None) -> str:
    """Which model is best and why that comparison is the right one, written from ``table``
    (as from :func:`~probnn.analysis.holdout_table.comparison_table`) and, where given, each
    model's per-image estimates (name -> ``{"all": PerImage, "subset": PerImage}``).

    Ranks the models by the IWAE bound with the largest K, gives each model's paired gap
    between that bound and ELBO-MC on the same images (a lower bound on the guide's KL from the
    true posterior) with its standard error, its KL and active units, and names a winner only
    where a paired difference is beyond :data:`Z` standard errors.
    """
    ks = k_columns(table.columns, "iwae")
    if not ks:
        raise ValueError("the table has no iwae_K column")
    k, col = ks[-1]
    part = "subset" if "large_k_images" in table else "all"
    out = _ranking(table, col, k, per_image, part)
    best = table[col].dropna().idxmax()
    if "elbo_mc" in table:
        out += _gap_sentences(table, k, per_image) + _elbo_ranking(table, best, per_image)
    if "kl" in table and "active_units" in table and table["kl"].notna().sum() > 1:
        m = table["kl"].idxmax()
        out.append(f"{m} puts the most information into its code: KL(q || p(z)) "
                   f"{table.at[m, 'kl']:.2f} nats with {int(table.at[m, 'active_units'])} "
                   "active latent units.")
    if len(ks) > 1:
        out += _rise(table, ks, per_image)
    out += _unreliable(table, k) + _training(table, best)
    out.append(CLOSING)
    return " ".join(out)


def _unreliable(table, k: int) -> list[str]:
    ucol = f"unreliable_{k}"
    if ucol not in table or not (table[ucol] > 0).any():
        return []
    m = table[ucol].idxmax()
    return [f"The estimate is not fully trustworthy everywhere: for {m}, "
            f"{100 * table.at[m, ucol]:.1f}% of images have Pareto k > {PARETO_K_UNRELIABLE}, "
            f"where the K={k} bound may still sit well below log p(x)."]


def _training(table, best: str) -> list[str]:
    if "train_elbo" not in table or table["train_elbo"].notna().sum() < 2:
        return []
    train = table["train_elbo"].dropna()
    top, out = train.idxmax(), []
    if "elbo" in table:
        over = (train - table["elbo"]).reindex(table.index).dropna()
        if len(over):
            out.append("Training ELBO minus held-out ELBO (one sample each, different images): "
                       + ", ".join(f"{m} {v:+.2f}" for m, v in over.items()) + " nats.")
    out.append(f"Ranked by training ELBO, {top} would come first"
               + (", as by the held-out bound." if top == best
                  else f", not {best}: here the training ELBO would mislead."))
    return out


CLOSING = ("The held-out IWAE bound is the ground for comparison because the ELBO equals "
           "log p(x) minus KL(q(z|x) || p(z|x)), so it mixes the model's quality with how "
           "well the guide fits the posterior: a model with a richer latent space can be the "
           "better density model and still have the looser ELBO. The IWAE bound rises with "
           "K towards log p(x), so it measures the model far more than the guide; and "
           "held-out images penalise overfitting, which a bound on the training images "
           "rewards, so comparing models by training ELBO can mislead.")

TABLE_CAPTION = ("Held-out estimates (nats per image). Columns elbo to iwae_K are means over "
                 "the `images` holdout images; the `*_subset` columns, the large-K bound and "
                 "gap_K (IWAE-K minus ELBO-MC, paired, with its standard error gap_K_se) are "
                 "over the `large_k_images` subset of them, the same images for every model.")


def comparison_section(rows: Mapping[str, Mapping], histories: Mapping | None = None,
                       per_image: Mapping | None = None) -> Section:
    """Question (e): the holdout estimates of each model (name -> row of
    :func:`~probnn.inference.vae.comparison_row`), the answer (paired over the same images
    where ``per_image``, name -> the result's ``per_image``, is given), and the training
    histories."""
    table = comparison_table(rows)
    s = Section("vae-e", "(e) d = 4 vs d = 20 vs the PyTorch example VAE", QUESTION_E,
                answers=[comparison_answer(table, per_image)],
                tables=[Table("comparison", table, TABLE_CAPTION)])
    if histories:
        s.plots.append(Plot("comparison-history", history_figure(histories),
                            "Training ELBO per epoch."))
    return s


def results_section(results) -> Section:
    """:func:`comparison_section` of :class:`probnn.tasks.holdout.Result` objects (one per
    model), with their per-image estimates: ``results_section([holdout.run(...), ...])``."""
    results = list(results)
    return comparison_section({r.name: r.row for r in results},
                              {r.name: r.history for r in results},
                              {r.name: r.per_image for r in results})
