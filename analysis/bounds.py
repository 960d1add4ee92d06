"""How good are the bounds? Figures, tables and the written answer from the results of
:mod:`probnn.tasks.bounds` (one per model, all on the same holdout images)."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.inference.estimators import PARETO_K_UNRELIABLE
from probnn.inference.paired import PerImage, common, paired_difference

from .outputs import Plot, Section, Table
from .plotting import new_figure
from .significance import fmt_paired
from .holdout_table import k_columns

QUESTION = ("How far below log p(x) do the ELBO and the importance-weighted bounds sit? "
            "Estimate log p(x) by annealed importance sampling (AIS), check AIS by "
            "bidirectional Monte Carlo on simulated data, split each model's ELBO gap into "
            "approximation and amortisation parts, and ask whether the ranking of the models "
            "and the Pareto-k warnings hold up.")
FAR_OFF = 1.0
"""An IWAE estimate more than this many nats below AIS counts as far off."""
COLUMNS = ("images", "elbo", "elbo_local", "iwae_1000", "iwae_5000", "ais", "ais_se",
           "approximation_gap", "amortisation_gap", "unreliable", "bdmc_lower", "bdmc_upper",
           "bdmc_width")


def bounds_table(results: Sequence) -> pd.DataFrame:
    """One row per model: the means of :class:`probnn.tasks.bounds.Result` ``.row``."""
    return pd.DataFrame({r.name: r.row for r in results}).T.rename_axis("model")


def ladder_figure(results: Sequence) -> Figure:
    """Each estimator's mean gap to AIS per model (AIS at 0, its Monte Carlo error shaded):
    ELBO, ELBO of q*, IWAE-K."""
    fig, axes = new_figure(1, 1, (8.0, 4.5))
    ax = axes[0, 0]
    for i, r in enumerate(results):
        p = r.per_image
        ks = _iwae_ks(r)
        labels = ["ELBO", "ELBO(q*)"] + [f"IWAE-{k}" for k in ks]
        gaps = [(p[c] - p["ais"]).mean() for c in ["elbo", "elbo_local"] + [f"iwae_{k}" for k in ks]]
        ax.plot(range(len(labels)), gaps, marker="o", label=r.name, color=f"C{i}")
        ax.set_xticks(range(len(labels)), labels, rotation=20)
    se = max(r.row["ais_se"] for r in results)
    ax.axhspan(-2 * se, 2 * se, color="0.85", label="AIS ± 2 se")
    ax.axhline(0, color="0.3", linewidth=1)
    ax.set(ylabel="mean bound - AIS (nats per image)", title="How far below AIS each bound sits")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def pareto_figure(results: Sequence) -> Figure:
    """Per image: IWAE's Pareto k against how far IWAE sits below AIS."""
    fig, axes = new_figure(1, 1, (6.5, 4.5))
    ax = axes[0, 0]
    for i, r in enumerate(results):
        p = r.per_image
        if "pareto_k" in p:
            ax.scatter(p["pareto_k"], p["ais"] - p[_k_column(r)], s=14, color=f"C{i}",
                       label=r.name)
    ax.axvline(PARETO_K_UNRELIABLE, color="0.5", linestyle="--", label=f"k = {PARETO_K_UNRELIABLE}")
    ax.set(xlabel="Pareto k of the IWAE weights", ylabel="AIS - IWAE (nats)",
           title="Does a high k flag an estimate that is far off?")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


def bdmc_figure(results: Sequence) -> Figure:
    """BDMC sandwich width against the number of intermediate distributions."""
    fig, axes = new_figure(1, 1, (6.5, 4.5))
    ax = axes[0, 0]
    for i, r in enumerate(results):
        if len(r.bdmc):
            ax.plot(r.bdmc["steps"], r.bdmc["width"], marker="o", color=f"C{i}", label=r.name)
    ax.set(xlabel="intermediate distributions T", ylabel="upper - lower bound (nats)",
           xscale="log", title="BDMC on simulated data: the sandwich narrows with T")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    return fig


def _k_column(r) -> str:
    """The IWAE column whose weights gave the Pareto k (the task's ``pareto_k_at``)."""
    return f"iwae_{r.config.pareto_k_at}"


def _iwae_ks(r) -> list[int]:
    """The K of each IWAE bound the result holds, ascending: the task's ``iwae_ks``."""
    return [k for k in sorted(set(r.config.iwae_ks)) if f"iwae_{k}" in r.per_image]


def bounds_answer(results: Sequence) -> str:
    """The answer, from the numbers: the ranking under AIS against IWAE (paired over the
    shared images), each model's ELBO gap split, and whether Pareto k flagged the
    estimates that are far off."""
    t = bounds_table(results)
    iw = _k_column(results[0])
    cond = {r.name for r in results if r.conditional}
    ranked = t.drop(index=list(cond))  # log p(x | y) is not comparable with log p(x)
    by_ais = ranked.sort_values("ais", ascending=False)
    per = {r.name: r.per_image for r in results}
    out = _ranking(t, ranked, cond, iw) if len(by_ais) else []
    out += [_margin(per[a], per[b], a, b, iw) for a, b in zip(by_ais.index[:-1], by_ais.index[1:])]
    out += [_gap_split(m, r, per[m]) for m, r in t.iterrows()]
    out += _pareto_k_text(results)
    widths = [(r.name, r.row["bdmc_width"], r.row["bdmc_steps"]) for r in results
              if "bdmc_width" in r.row]
    if widths:
        out.append("BDMC on data simulated from each model (the sandwich of forward and reverse "
                   "AIS bounds the forward estimate's error there): width "
                   + ", ".join(f"{m} {w:.2f} nats at T={s}" for m, w, s in widths) + ".")
    return " ".join(out)


def _ranking(t: pd.DataFrame, ranked: pd.DataFrame, cond: set, iw: str) -> list[str]:
    """AIS's estimates of each model, and whether the IWAE column ranks them the same."""
    n = int(t["images"].iloc[0])
    iw_name = iw.replace("_", "-").upper()
    by_ais = ranked.sort_values("ais", ascending=False)
    by_iw = ranked.sort_values(iw, ascending=False)
    same = list(by_ais.index) == list(by_iw.index)
    return [f"On the same {n} holdout images, AIS estimates log p(x) as "
            + ", ".join(f"{m} {r['ais']:.2f} ± {r['ais_se']:.2f}" for m, r in by_ais.iterrows())
            + " (± the AIS estimate's own Monte Carlo error)"
            + ("; and log p(x | y) as " + ", ".join(f"{m} {t.loc[m, 'ais']:.2f}" for m in cond)
               if cond else "") + ".",
            f"The ranking by {iw_name} is "
            + ("the same." if same else ", ".join(by_iw.index) + ": a different order.")]


def _margin(pa: pd.DataFrame, pb: pd.DataFrame, a: str, b: str, iw: str) -> str:
    """Model ``a``'s margin over ``b`` under AIS and under IWAE, paired over the images."""
    iw_name = iw.replace("_", "-").upper()
    d = pa["ais"].to_numpy() - pb["ais"].to_numpy()
    di = pa[iw].to_numpy() - pb[iw].to_numpy()
    se = d.std(ddof=1) / math.sqrt(len(d)) if len(d) > 1 else math.nan
    e = di - d  # how far IWAE's margin is from AIS's, image by image
    se_e = e.std(ddof=1) / math.sqrt(len(e)) if len(e) > 1 else math.nan
    return (f"{a} beats {b} by {d.mean():.2f} ± {se:.2f} nats under AIS (paired over "
            f"images), where {iw_name} says {di.mean():.2f}"
            + (f", off by {e.mean():+.2f} ± {se_e:.2f}"
               if abs(e.mean()) > max(2 * np.nan_to_num(se_e), FAR_OFF) else "")
            + ("." if abs(d.mean()) > 2 * se
               else "; within the images' spread, so these images do not separate them."))


def _gap_split(m: str, r: pd.Series, per_image: pd.DataFrame) -> str:
    """Model ``m``'s ELBO gap to AIS, split into its amortisation and approximation parts."""
    gap = r["ais"] - r["elbo"]
    share = r["amortisation_gap"] / gap if gap > 0 else math.nan
    g = per_image["ais"] - per_image["elbo"]
    se = g.std(ddof=1) / math.sqrt(len(g)) if len(g) > 1 else math.nan
    return (f"{m}: the ELBO sits {gap:.2f} ± {se:.2f} nats below AIS, of which "
            f"{r['amortisation_gap']:.2f} "
            f"is amortisation (a per-image Gaussian q* closes it) and "
            f"{r['approximation_gap']:.2f} approximation (no Gaussian can): "
            f"{share:.0%} amortisation.")


def _pareto_k_text(results: Sequence) -> list[str]:
    """Whether a high Pareto k flagged the IWAE estimates that sit far below AIS."""
    flagged, ok = [], []
    for r in results:
        p = r.per_image
        if "pareto_k" not in p:
            continue
        off = p["ais"] - p[_k_column(r)]
        bad = p["pareto_k"] > PARETO_K_UNRELIABLE
        flagged.append(off[bad].to_numpy())
        ok.append(off[~bad].to_numpy())
    if not flagged:
        return []
    f, o = np.concatenate(flagged), np.concatenate(ok)
    text = (f"Pareto k > {PARETO_K_UNRELIABLE} flagged {len(f)} of {len(f) + len(o)} "
            "estimates.")
    if len(f):
        text += (f" Flagged ones sit on average {f.mean():.2f} nats below AIS "
                 f"({(f > FAR_OFF).mean():.0%} more than {FAR_OFF:g} nat off)")
    if len(o):
        text += (f"; unflagged ones {o.mean():.2f} nats "
                 f"({(o > FAR_OFF).mean():.0%} more than {FAR_OFF:g} nat off)")
    all_off = np.concatenate([f, o])
    all_k = np.concatenate([r.per_image["pareto_k"].to_numpy() for r in results
                            if "pareto_k" in r.per_image])
    if len(all_off) > 2 and np.std(all_off) > 0 and np.std(all_k) > 0:  # else undefined
        rho = pd.Series(all_k).corr(pd.Series(all_off), method="spearman")
        text += f". Spearman correlation of k with the shortfall: {rho:+.2f}"
    return [text + "."]


def record_answer(results: Sequence, holdouts: Mapping) -> str:
    """Where each model's ELBO gap is stated once (question (e)) and why this section's differs:
    ``holdouts``: name -> the (e) result's ``per_image``. The gap of record is (e)'s IWAE-K
    minus ELBO-MC over its large-K subset; this section's images are drawn from that subset,
    so on them the two sections pair up image by image, and the gap here is to AIS (above
    IWAE-K), on fewer images."""
    out = []
    for r in results:
        sub = holdouts.get(r.name, {}).get("subset")
        ks = k_columns(sub.values, "iwae") if sub is not None else []
        if not ks:
            continue
        col = ks[-1][1]
        here = PerImage(r.per_image["index"].to_numpy(),
                        {c: r.per_image[c].to_numpy() for c in ("ais", "elbo")})
        record = paired_difference(sub, col, sub, "elbo_mc")
        same = paired_difference(sub.at(common(sub, here)[0]), col, None, "elbo_mc")
        ais = paired_difference(here, "ais", here, "elbo")
        out.append(f"{r.name}: gap of record (question e) {fmt_paired(record)} nats, {col} minus "
                   f"ELBO-MC over its {record.n} images; on the {same.n} of them scored here "
                   f"it is {fmt_paired(same)}, and AIS minus ELBO {fmt_paired(ais)} (AIS, with a long enough schedule, sits above {col}).")
    if not out:
        return ""
    return ("Each model's ELBO gap is stated once, in question (e); the numbers here differ from "
            "it because they are over fewer images and against AIS rather than the IWAE bound. "
            + " ".join(out))


def bounds_section(results: Sequence, holdouts: Mapping | None = None) -> Section:
    """The section: the table of means, the per-image and BDMC tables, three figures; with
    ``holdouts`` (name -> question (e)'s per-image estimates) the pointer to (e)'s gaps."""
    t = bounds_table(results)
    record = record_answer(results, holdouts or {})
    s = Section("bounds", "(e, further) How good are the bounds?", QUESTION,
                answers=[bounds_answer(results)] + ([record] if record else []),
                tables=[Table("bounds", t, "Bounds and gaps (nats per image; means over the "
                              "same holdout images)",
                              view=t[[c for c in COLUMNS if c in t]])],
                plots=[Plot("bounds-ladder", ladder_figure(results),
                            "Each estimator's mean distance below AIS, per model."),
                       Plot("bounds-pareto-k", pareto_figure(results),
                            "Per image: the Pareto k of IWAE's weights against how far IWAE "
                            "sits below AIS.")])
    if any(len(r.bdmc) for r in results):
        s.plots.append(Plot("bounds-bdmc", bdmc_figure(results),
                            "BDMC sandwich width against the number of intermediate "
                            "distributions, on data simulated from each model."))
        s.tables.append(Table("bounds-bdmc", pd.concat(
            [r.bdmc.assign(model=r.name) for r in results if len(r.bdmc)]), index=False))
    for r in results:
        s.tables.append(Table(f"bounds-{r.name}-per-image", r.per_image, index=False))
    return s
