"""Bias and spread of the log-likelihood estimators: figures and the written answer.

Takes the table of :func:`probnn.inference.estimator_study.estimator_bias_spread` (one row
per estimator: ``kind``, ``k``, ``mean``, ``stderr``, the spreads, the cost) and returns
figures and text; a difference is called real only beyond noise
(:func:`~probnn.analysis.significance.beyond_noise`).
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .curves import bound_vs_k_figure
from .plotting import new_figure
from .significance import beyond_noise, fmt_diff, t_critical


def _iwae(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["kind"] == "iwae"].sort_values("k")


def _row(table: pd.DataFrame, kind: str) -> pd.Series | None:
    rows = table[table["kind"] == kind]
    return rows.iloc[0] if len(rows) else None


def estimator_bound_figure(table: pd.DataFrame, name: str = "") -> Figure:
    """The IWAE bound's mean (± stderr over repeats) against K, with the ELBO and ELBO-MC as
    horizontal references (their means do not depend on K), via
    :func:`probnn.analysis.curves.bound_vs_k_figure`."""
    iw = _iwae(table)
    refs = {r["estimator"]: (r["mean"], r["stderr"])
            for _, r in table[table["kind"] != "iwae"].iterrows()}
    images, repeats = int(table["images"].iloc[0]), int(table["repeats"].iloc[0])
    title = (f"{name + ': ' if name else ''}bound against K "
             f"({images} holdout images, {repeats} repeats)")
    return bound_vs_k_figure(iw["k"].to_numpy(), iw["mean"].to_numpy(), iw["stderr"].to_numpy(),
                             labels=["IWAE (mean ± stderr)"], references=refs, title=title)


def estimator_spread_figure(table: pd.DataFrame, name: str = "") -> Figure:
    """Left: Monte Carlo spread against K on log-log axes: per-image sd across repeats and
    the sd of the mean over images, for IWAE (lines) and the ELBO estimators (markers at
    their K). Right: wall time per image against K."""
    fig, axes = new_figure(1, 2, (11.0, 4.2))
    left, right = axes[0]
    iw = _iwae(table)
    for col, label, color in (("per_image_sd", "per-image sd", "C0"),
                              ("sd_of_mean", "sd of the mean over images", "C1")):
        left.plot(iw["k"], iw[col], marker="o", color=color, label=f"IWAE: {label}")
    for j, (_, r) in enumerate(table[table["kind"] != "iwae"].iterrows()):
        for col, marker in (("per_image_sd", "s"), ("sd_of_mean", "D")):
            left.scatter([r["k"]], [r[col]], marker=marker, color=f"C{2 + j}", zorder=3,
                         label=f"{r['estimator']}: {col.replace('_', ' ')}")
    left.set(xscale="log", yscale="log", xlabel="K (samples)", ylabel="sd across repeats (nats)",
             title=f"{name + ': ' if name else ''}spread of the estimates")
    left.grid(alpha=0.3, which="both")
    left.legend(fontsize="x-small")
    right.plot(iw["k"], iw["ms_per_image"], marker="o", label="IWAE")
    for j, (_, r) in enumerate(table[table["kind"] != "iwae"].iterrows()):
        right.scatter([r["k"]], [r["ms_per_image"]], color=f"C{2 + j}", zorder=3,
                      label=r["estimator"])
    right.set(xscale="log", yscale="log", xlabel="K (samples)", ylabel="ms per image",
              title="Wall time")
    right.grid(alpha=0.3, which="both")
    right.legend(fontsize="x-small")
    return fig


def estimator_answer(table: pd.DataFrame) -> str:
    """Bias and spread of the estimators, written from
    :func:`~probnn.inference.estimator_study.estimator_bias_spread`'s table."""
    iw = _iwae(table)
    n, reps = int(table["images"].iloc[0]), int(table["repeats"].iloc[0])
    df = reps - 1  # every standard error here comes from the spread of `reps` repeat means
    out = [f"On {n} holdout images, each estimate repeated {reps} times with independent seeds "
           f"(differences called real only beyond the 95% t-interval, {t_critical(df):.1f} "
           f"stderrs with {reps} repeats):"]
    if not len(iw):
        return out[0] + " no IWAE bound was computed, so there is no reference to compare with."
    ref = iw.iloc[-1]
    kmax = int(ref["k"])
    out.append(f"the tightest bound, IWAE with K={kmax}, averages {ref['mean']:.2f} nats per "
               f"image (stderr {ref['stderr']:.3f}).")
    out += _elbo_gaps(table, kmax, df)
    e, mc = _row(table, "elbo"), _row(table, "elbo_mc")
    if e is not None and mc is not None:
        out.append(_elbo_against_elbo_mc(e, mc, df))
    if len(iw) > 1:
        out += _bound_curve(iw, df)
        out.append(_spread_sentence(iw))
        out += _single_sample(iw, e)
        fastest = table.loc[table["ms_per_image"].idxmin()]
        out.append(f"Cost: IWAE-{kmax} takes {ref['ms_per_image']:.0f} ms per image, "
                   f"{ref['ms_per_image'] / fastest['ms_per_image']:.0f} times "
                   f"{fastest['estimator']}.")
    return " ".join(out)


def _elbo_gaps(table: pd.DataFrame, kmax: int, df: float) -> list[str]:
    """How far the ELBO and ELBO-MC sit below the tightest bound (what the gap means, once)."""
    out, explained = [], False
    for kind in ("elbo", "elbo_mc"):
        r = _row(table, kind)
        if r is None:
            continue
        gap, se = -r["gap_to_ref"], r["gap_to_ref_se"]
        if beyond_noise(gap, se, df) and gap > 0:
            out.append(f"{r['estimator']} is {gap:.2f} ± {se:.2f} nats below it"
                       + ("." if explained else
                          f": since log p(x) ≥ E[IWAE-{kmax}], the ELBO's bias is at least that "
                          "(it is the mean KL(q(z|x) || p(z|x)) of the guide; the gap is that KL "
                          "less what IWAE still misses). This is a gap on these images "
                          "against a different reference; each model's gap of record, on the "
                          "most images, is question (e)'s."))
            explained = True
        else:
            out.append(f"{r['estimator']} differs from it by {fmt_diff(-gap, se)} nats, "
                       "within noise.")
    return out


def _elbo_against_elbo_mc(e: pd.Series, mc: pd.Series, df: float) -> str:
    """The two unbiased ELBO estimators: their agreement and how much averaging cuts the sd."""
    d = mc["mean"] - e["mean"]
    se = math.hypot(mc["stderr"], e["stderr"])
    verdict = ("agree within noise, as two unbiased estimators of the same ELBO must"
               if not beyond_noise(d, se, df) else
               "differ beyond noise, which two unbiased estimators of the same ELBO should "
               "do only 1 time in 20: more repeats would tell")
    ratio = e["per_image_sd"] / mc["per_image_sd"] if mc["per_image_sd"] > 0 else math.inf
    return (f"ELBO and {mc['estimator']} {verdict} ({fmt_diff(d, se)} nats); the "
            f"{int(mc['k'])}-sample average cuts the per-image sd {ratio:.1f}-fold "
            f"({e['per_image_sd']:.2f} → {mc['per_image_sd']:.2f} nats; "
            f"√{int(mc['k'])} = {math.sqrt(mc['k']):.1f} for independent samples).")


def _bound_curve(iw: pd.DataFrame, df: float) -> list[str]:
    """The IWAE bound against K: whether it ever falls beyond noise, and its last step."""
    means, ses, ks = iw["mean"].to_numpy(), iw["stderr"].to_numpy(), iw["k"].astype(int).to_numpy()
    steps = np.diff(means)
    step_se = np.hypot(ses[1:], ses[:-1])
    drops = [(ks[i], ks[i + 1]) for i in range(len(steps))
             if steps[i] < 0 and beyond_noise(steps[i], step_se[i], df)]
    rise = means[-1] - means[0]
    text = (f"The IWAE bound goes from {means[0]:.2f} at K={ks[0]} to {means[-1]:.2f} at "
            f"K={ks[-1]} ({rise:+.2f} nats): "
            + ", ".join(f"K={k} {m:.2f}" for k, m in zip(ks, means)) + ".")
    if drops:
        text += (" It falls beyond noise between K=" + ", ".join(f"{a} and {b}" for a, b in drops)
                 + ", which a bound rising in expectation should not do: check the repeats.")
    else:
        text += (" It never falls beyond noise, consistent with E[IWAE-K] rising with K"
                 + (" (the dips are Monte Carlo noise)." if (steps < 0).any() else "."))
    last, last_se = steps[-1], step_se[-1]
    return [text,
            f"The last step, K={ks[-2]} → {ks[-1]}, adds {fmt_diff(last, last_se)} nats: "
            + ("the bound is still rising, so log p(x) lies above the K="
               f"{ks[-1]} value by an unknown further amount." if
               beyond_noise(last, last_se, df) and last > 0 else
               "within noise of zero, so the bound has flattened; log p(x) is probably "
               "close above it (flattening is evidence, not proof).")]


def _spread_sentence(iw: pd.DataFrame) -> str:
    """How the spread of one image's estimate, and of the mean over images, moves with K."""
    ks = iw["k"].astype(int).to_numpy()
    sd = iw["per_image_sd"].to_numpy()
    trend = ("falls" if np.all(np.diff(sd) < 0) else
             "falls overall, though not at every step," if sd[-1] < sd[0] else "does not fall")
    return (f"The spread of one image's estimate {trend} with K: per-image sd "
            + ", ".join(f"{v:.3f}" for v in sd) + " nats for K = "
            + ", ".join(str(k) for k in ks) + "; the sd of the mean over images, "
            + ", ".join(f"{v:.3f}" for v in iw["sd_of_mean"]) + "."
            + (" More samples buy both a tighter bound and a steadier one."
               if sd[-1] < sd[0] else ""))


def _single_sample(iw: pd.DataFrame, e: pd.Series | None) -> list[str]:
    """IWAE with K=1 against the ELBO with its exact KL (when both were run)."""
    one = iw[iw["k"] == 1]
    if not len(one) or e is None:
        return []
    r1 = one.iloc[0]
    return [f"IWAE with K=1 is the single-sample ELBO with a Monte Carlo KL: its "
            f"per-image sd is {r1['per_image_sd']:.2f} nats against "
            f"{e['per_image_sd']:.2f} for the ELBO with the KL computed exactly"
            + (", so the analytic KL removes part of the noise." if
               r1["per_image_sd"] > e["per_image_sd"] else ".")]
