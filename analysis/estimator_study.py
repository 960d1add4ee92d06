"""Figures, tables and the written answer of the ELBO-estimator study.

Takes the finished tables of :func:`probnn.inference.estimator_study.run_estimator_study`
(an :class:`~probnn.inference.estimator_study.EstimatorStudy`) and returns figures and text;
nothing here trains or runs an estimator. Every sentence of the answers is written from the
numbers, and claims a difference only when it lies outside the 95% t-interval of its noise.

Notebook use::

    from probnn.analysis.estimator_study import estimator_section
    from probnn.analysis.outputs import markdown, save
    section = estimator_section(study)          # figures, tables, answers, in memory
    save(section, "out/estimators")             # PNGs and CSVs
    print(markdown(section))
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.inference.estimator_study import summarise_objectives

from .outputs import Plot, Section, Table
from .plotting import new_figure
from .vae import bound_vs_k_figure

CONFIDENCE = 0.95
"""A difference is called real when it lies outside the two-sided 95% t-interval around zero
(t with the standard error's degrees of freedom: with 3 repeats that is 4.3 standard errors,
not 2, since an sd from 3 values is itself very uncertain)."""


def _fmt_diff(d: float, se: float) -> str:
    return f"{d:+.2f} ± {se:.2f}" if np.isfinite(se) else f"{d:+.2f}"


def _critical(df: float) -> float:
    from scipy.stats import t
    return float(t.ppf(0.5 + CONFIDENCE / 2, df)) if np.isfinite(df) and df >= 1 else math.inf


def _beyond_noise(d: float, se: float, df: float = math.inf) -> bool:
    """Whether ``d`` differs from zero beyond noise, given its standard error on ``df``
    degrees of freedom (normal when infinite)."""
    if se == 0:
        return d != 0
    crit = _critical(df) if np.isfinite(df) else 1.96
    return bool(np.isfinite(se) and abs(d) > crit * se)


def _iwae(table: pd.DataFrame) -> pd.DataFrame:
    return table[table["kind"] == "iwae"].sort_values("k")


def _row(table: pd.DataFrame, kind: str) -> pd.Series | None:
    rows = table[table["kind"] == kind]
    return rows.iloc[0] if len(rows) else None


# ----------------------------------------------------------------------------- 1. bias and spread
def estimator_bound_figure(table: pd.DataFrame, name: str = "") -> Figure:
    """The IWAE bound's mean (± stderr over repeats) against K, with the ELBO and ELBO-MC as
    horizontal references (their means do not depend on K), via
    :func:`probnn.analysis.vae.bound_vs_k_figure`."""
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
    """Bias and spread of the estimators, written from :func:`~probnn.inference.estimator_study.estimator_bias_spread`'s table."""
    iw = _iwae(table)
    n, reps = int(table["images"].iloc[0]), int(table["repeats"].iloc[0])
    df = reps - 1  # every standard error here comes from the spread of `reps` repeat means
    out = [f"On {n} holdout images, each estimate repeated {reps} times with independent seeds "
           f"(differences called real only beyond the 95% t-interval, {_critical(df):.1f} "
           f"stderrs with {reps} repeats):"]
    if not len(iw):
        return out[0] + " no IWAE bound was computed, so there is no reference to compare with."
    ref = iw.iloc[-1]
    kmax = int(ref["k"])
    out.append(f"the tightest bound, IWAE with K={kmax}, averages {ref['mean']:.2f} nats per "
               f"image (stderr {ref['stderr']:.3f}).")
    explained = False
    for kind in ("elbo", "elbo_mc"):
        r = _row(table, kind)
        if r is None:
            continue
        gap, se = -r["gap_to_ref"], r["gap_to_ref_se"]
        if _beyond_noise(gap, se, df) and gap > 0:
            out.append(f"{r['estimator']} is {gap:.2f} ± {se:.2f} nats below it"
                       + ("." if explained else
                          f": since log p(x) ≥ E[IWAE-{kmax}], the ELBO's bias is at least that "
                          "(it is the mean KL(q(z|x) || p(z|x)) of the guide; the gap is that KL "
                          "less what IWAE still misses). This is a gap on these images "
                          "against a different reference; each model's gap of record, on the "
                          "most images, is question (e)'s."))
            explained = True
        else:
            out.append(f"{r['estimator']} differs from it by {_fmt_diff(-gap, se)} nats, "
                       "within noise.")
    e, mc = _row(table, "elbo"), _row(table, "elbo_mc")
    if e is not None and mc is not None:
        d = mc["mean"] - e["mean"]
        se = math.hypot(mc["stderr"], e["stderr"])
        verdict = ("agree within noise, as two unbiased estimators of the same ELBO must"
                   if not _beyond_noise(d, se, df) else
                   "differ beyond noise, which two unbiased estimators of the same ELBO should "
                   "do only 1 time in 20: more repeats would tell")
        ratio = e["per_image_sd"] / mc["per_image_sd"] if mc["per_image_sd"] > 0 else math.inf
        out.append(f"ELBO and {mc['estimator']} {verdict} ({_fmt_diff(d, se)} nats); the "
                   f"{int(mc['k'])}-sample average cuts the per-image sd {ratio:.1f}-fold "
                   f"({e['per_image_sd']:.2f} → {mc['per_image_sd']:.2f} nats; "
                   f"√{int(mc['k'])} = {math.sqrt(mc['k']):.1f} for independent samples).")
    if len(iw) > 1:
        means, ses, ks = iw["mean"].to_numpy(), iw["stderr"].to_numpy(), iw["k"].astype(int).to_numpy()
        steps = np.diff(means)
        step_se = np.hypot(ses[1:], ses[:-1])
        drops = [(ks[i], ks[i + 1]) for i in range(len(steps))
                 if steps[i] < 0 and _beyond_noise(steps[i], step_se[i], df)]
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
        out.append(text)
        last, last_se = steps[-1], step_se[-1]
        out.append(f"The last step, K={ks[-2]} → {ks[-1]}, adds {_fmt_diff(last, last_se)} nats: "
                   + ("the bound is still rising, so log p(x) lies above the K="
                      f"{ks[-1]} value by an unknown further amount." if
                      _beyond_noise(last, last_se, df) and last > 0 else
                      "within noise of zero, so the bound has flattened; log p(x) is probably "
                      "close above it (flattening is evidence, not proof)."))
        sd = iw["per_image_sd"].to_numpy()
        trend = ("falls" if np.all(np.diff(sd) < 0) else
                 "falls overall, though not at every step," if sd[-1] < sd[0] else "does not fall")
        out.append(f"The spread of one image's estimate {trend} with K: per-image sd "
                   + ", ".join(f"{v:.3f}" for v in sd) + " nats for K = "
                   + ", ".join(str(k) for k in ks) + "; the sd of the mean over images, "
                   + ", ".join(f"{v:.3f}" for v in iw["sd_of_mean"]) + "."
                   + (" More samples buy both a tighter bound and a steadier one."
                      if sd[-1] < sd[0] else ""))
        one = iw[iw["k"] == 1]
        if len(one) and e is not None:
            r1 = one.iloc[0]
            out.append(f"IWAE with K=1 is the single-sample ELBO with a Monte Carlo KL: its "
                       f"per-image sd is {r1['per_image_sd']:.2f} nats against "
                       f"{e['per_image_sd']:.2f} for the ELBO with the KL computed exactly"
                       + (", so the analytic KL removes part of the noise." if
                          r1["per_image_sd"] > e["per_image_sd"] else "."))
        fastest = table.loc[table["ms_per_image"].idxmin()]
        out.append(f"Cost: IWAE-{kmax} takes {ref['ms_per_image']:.0f} ms per image, "
                   f"{ref['ms_per_image'] / fastest['ms_per_image']:.0f} times "
                   f"{fastest['estimator']}.")
    return " ".join(out)


# ----------------------------------------------------------------------------- 2. gradient SNR
FAMILIES = ("trace", "meanfield", "stl", "iwae", "dreg-iwae")
_STYLE = {"trace": ("C0", "o", "-"), "meanfield": ("C1", "s", "-"), "stl": ("C2", "^", "-"),
          "iwae": ("C3", "D", "--"), "dreg-iwae": ("C4", "v", "--")}


def snr_figure(table: pd.DataFrame, name: str = "") -> Figure:
    """Median per-parameter gradient SNR against K (± its bootstrap standard error), one line
    per objective family (trace, meanfield, stl, iwae, dreg-iwae), encoder (guide) and decoder
    (model) side by side; the noise floor of an SNR estimated from S draws as a dotted line."""
    sides = [s for s in ("encoder", "decoder") if s in set(table["side"])]
    fig, axes = new_figure(1, len(sides), (5.5 * len(sides), 4.3))
    families = [f for f in FAMILIES if f in set(table["elbo"])]
    families += [f for f in dict.fromkeys(table["elbo"]) if f not in families]
    for ax, side in zip(axes[0], sides):
        for f in families:
            t = table[(table["side"] == side) & (table["elbo"] == f)].sort_values("k")
            color, marker, style = _STYLE.get(f, ("0.3", "o", "-"))
            se = t["snr_median_se"] if "snr_median_se" in t else None
            ax.errorbar(t["k"], t["snr_median"], yerr=se, marker=marker, linestyle=style,
                        color=color, capsize=2, label=f)
        samples, images = int(table["samples"].iloc[0]), int(table["images"].iloc[0])
        ax.axhline(math.sqrt(2 / (math.pi * samples)), color="0.5", linestyle=":", linewidth=1,
                   label=f"noise floor √(2/πS) (S={samples})")
        ax.set(xlabel="K (particles)", ylabel="median |mean| / sd of the gradient",
               xscale="log", yscale="log",
               title=f"{name + ': ' if name else ''}{side} ({images} images)")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize="x-small")
    return fig


def _snr(table: pd.DataFrame, objective: str, side: str, col: str = "snr_median") -> float:
    r = table[(table["objective"] == objective) & (table["side"] == side)]
    return float(r[col].iloc[0]) if len(r) else math.nan


def snr_answer(table: pd.DataFrame) -> str:
    """What the gradient SNRs show, against Rainforth et al. (2018), from :func:`~probnn.inference.estimator_study.gradient_snr`'s
    table. Compares medians over parameters (the mean is dominated by a few parameters)."""
    samples, images = int(table["samples"].iloc[0]), int(table["images"].iloc[0])
    out = [f"Gradient SNR |E[Δ]|/sd[Δ] per parameter, from {samples} gradient draws on a fixed "
           f"minibatch of {images} images (median over parameters; with {samples} draws a "
           f"parameter with no signal still shows about {math.sqrt(2 / (math.pi * samples)):.2f})."]
    objectives = list(dict.fromkeys(table["objective"]))
    for side in ("encoder", "decoder"):
        if side in set(table["side"]):
            out.append(f"{side.capitalize()}: " + ", ".join(
                f"{o} {_snr(table, o, side):.3f}" for o in objectives) + ".")
    iw = table[table["elbo"] == "iwae"].sort_values("k")
    ks = sorted(set(iw["k"]))
    if len(ks) > 1:
        lo, hi = iw[iw["k"] == ks[0]]["objective"].iloc[0], iw[iw["k"] == ks[-1]]["objective"].iloc[0]
        dec = (_snr(table, lo, "decoder"), _snr(table, hi, "decoder"))
        enc = (_snr(table, lo, "encoder"), _snr(table, hi, "encoder"))
        dec_up, enc_down = dec[1] > dec[0], enc[1] < enc[0]
        text = (f"From IWAE K={ks[0]} to K={ks[-1]} the decoder's median SNR goes "
                f"{dec[0]:.3f} → {dec[1]:.3f} ({dec[1] / dec[0]:.2f}×; √(K ratio) = "
                f"{math.sqrt(ks[-1] / ks[0]):.2f}) and the encoder's {enc[0]:.3f} → {enc[1]:.3f} "
                f"({enc[1] / enc[0]:.2f}×).")
        if dec_up and enc_down:
            text += (" Both move as Rainforth et al. (2018) predict: a tighter bound gives the "
                     "decoder a cleaner gradient and the encoder a noisier one (O(√K) and "
                     "O(1/√K)).")
        elif dec_up:
            text += (" The decoder gains as Rainforth et al. (2018) predict, but the encoder's "
                     "SNR does not fall here: their O(1/√K) is an asymptotic, per-data-point "
                     "result, and at these K on this minibatch it has not set in.")
        elif enc_down:
            text += (" The encoder loses SNR as Rainforth et al. (2018) predict, but the "
                     "decoder does not gain.")
        else:
            text += " Neither moves as Rainforth et al. (2018) predict at these K."
        g_lo, g_hi = (_snr(table, o, "encoder", "mean_abs_grad") for o in (lo, hi))
        s_lo, s_hi = (_snr(table, o, "encoder", "mean_grad_sd") for o in (lo, hi))
        if np.isfinite(g_lo) and np.isfinite(g_hi):
            text += (f" The encoder's mean |gradient| goes {g_lo:.2e} → {g_hi:.2e} "
                     f"({g_hi / g_lo:.2f}×) and its noise sd {s_lo:.2e} → {s_hi:.2e} "
                     f"({s_hi / s_lo:.2f}×)"
                     + ("; the signal shrinks faster than the noise." if g_hi / g_lo < s_hi / s_lo
                        else "; the noise shrinks at least as fast as the signal."))
        out.append(text)
    if {"trace", "meanfield"} <= set(objectives):
        t, m = _snr(table, "trace", "encoder"), _snr(table, "meanfield", "encoder")
        out.append(f"Analytic KL (meanfield) against Monte Carlo KL (trace), encoder median SNR "
                   f"{m:.3f} against {t:.3f}"
                   + (": the exact KL removes part of the encoder's gradient noise." if m > t * 1.05
                      else ": about the same, so the KL term's Monte Carlo noise is not what limits"
                           " the encoder's gradient here." if m >= t * 0.95
                      else ": lower, although the exact KL should remove noise; at this S the "
                           "difference may be sampling noise of the SNR estimates."))
        if np.isclose(_snr(table, "trace", "decoder"), _snr(table, "meanfield", "decoder"),
                      rtol=1e-4):
            out[-1] += (" Their decoder SNRs are identical: the KL term holds no decoder "
                        "parameter, and both drew the same z.")
    for a, b in (("trace", "iwae-1"), ("stl", "dreg-iwae-1")):
        if {a, b} <= set(objectives):
            same = all(np.isclose(_snr(table, a, s), _snr(table, b, s), rtol=1e-3)
                       for s in ("encoder", "decoder") if s in set(table["side"]))
            out.append(f"{a} and {b} are the same estimator at K=1, and from the same draws "
                       "their SNRs " + ("agree, as they must." if same else
                                        "differ slightly: floating-point differences only."))
    out += [t for t in (dreg_answer(table), stl_answer(table)) if t]
    return " ".join(out)


def _by_k(table: pd.DataFrame, family: str, side: str, col: str = "snr_median") -> pd.Series:
    t = table[(table["elbo"] == family) & (table["side"] == side)]
    if col not in t:
        return pd.Series(math.nan, index=sorted(t["k"]))
    return t.set_index("k")[col].sort_index()


def _ratio(table, num: tuple, den: tuple) -> tuple[float, float]:
    """Ratio of two median SNRs (``(family, K)`` each, encoder) and its standard error, from
    their bootstrap standard errors (the draws of different objectives are independent)."""
    a, b = _by_k(table, num[0], "encoder")[num[1]], _by_k(table, den[0], "encoder")[den[1]]
    sa = _by_k(table, num[0], "encoder", "snr_median_se")[num[1]]
    sb = _by_k(table, den[0], "encoder", "snr_median_se")[den[1]]
    r = a / b
    return r, r * math.hypot(sa / a, sb / b)


def _fmt_ratio(r: float, se: float) -> str:
    return f"{r:.2f}× ± {se:.2f}" if np.isfinite(se) else f"{r:.2f}×"


def dreg_answer(table: pd.DataFrame) -> str:
    """Whether the doubly reparameterised gradient removes the encoder-SNR decline of IWAE
    (Tucker et al. 2019 against Rainforth et al. 2018), from the measured medians: a ratio
    counts as below (or above) 1 only beyond two bootstrap standard errors."""
    iw, dr = _by_k(table, "iwae", "encoder"), _by_k(table, "dreg-iwae", "encoder")
    ks = sorted(set(iw.index) & set(dr.index))
    if len(ks) < 2:
        return ""
    lo, hi = ks[0], ks[-1]
    r_iw, s_iw = _ratio(table, ("iwae", hi), ("iwae", lo))
    r_dr, s_dr = _ratio(table, ("dreg-iwae", hi), ("dreg-iwae", lo))
    known = np.isfinite(s_iw) and np.isfinite(s_dr)
    text = (f"DReG against IWAE, encoder median SNR from K={lo} to K={hi}: IWAE {iw[lo]:.3f} → "
            f"{iw[hi]:.3f} ({_fmt_ratio(r_iw, s_iw)}), DReG {dr[lo]:.3f} → {dr[hi]:.3f} "
            f"({_fmt_ratio(r_dr, s_dr)}); at each K, DReG/IWAE = "
            + ", ".join(f"K={k} {_fmt_ratio(*_ratio(table, ('dreg-iwae', k), ('iwae', k)))}"
                        for k in ks) + ".")
    iw_falls = r_iw + 2 * (s_iw if known else 0.0) < 1
    dr_falls = r_dr + 2 * (s_dr if known else 0.0) < 1
    slower = r_dr - r_iw > 2 * (math.hypot(s_iw, s_dr) if known else 0.0)
    if not iw_falls:
        text += (" IWAE's encoder SNR does not fall over these K here"
                 + (" beyond its noise" if known and r_iw < 1 else "")
                 + ", so there is no decline for DReG to remove.")
    elif not dr_falls:
        text += (" DReG removes the decline here: its encoder SNR does not fall as K grows"
                 + (" beyond the noise of the estimate." if known and r_dr < 1 else "."))
    elif slower:
        text += (" DReG slows the decline but does not remove it here: its encoder SNR still "
                 "falls as K grows, less than IWAE's.")
    else:
        text += (" DReG does not remove the decline here: its encoder SNR falls about as fast "
                 "as IWAE's, or faster.")
    if known:
        text += " (Ratios ± standard errors from bootstrap resamples of the gradient draws.)"
    d_dec = _by_k(table, "dreg-iwae", "decoder")
    i_dec = _by_k(table, "iwae", "decoder")
    if len(d_dec) and np.allclose(d_dec.reindex(i_dec.index), i_dec, rtol=1e-3):
        text += " The decoder SNRs match IWAE's: DReG changes only the encoder's gradient."
    return text


def stl_answer(table: pd.DataFrame) -> str:
    """Sticking the landing against Trace_ELBO's encoder SNR at each K: higher or lower only
    beyond two bootstrap standard errors of their ratio."""
    tr, st = _by_k(table, "trace", "encoder"), _by_k(table, "stl", "encoder")
    ks = sorted(set(tr.index) & set(st.index))
    if not ks:
        return ""
    ratios = {k: _ratio(table, ("stl", k), ("trace", k)) for k in ks}
    text = ("STL against Trace_ELBO, encoder median SNR: " + ", ".join(
        f"K={k} {st[k]:.3f} vs {tr[k]:.3f} ({_fmt_ratio(*ratios[k])})" for k in ks) + ".")
    up = [k for k, (r, se) in ratios.items() if r - 2 * np.nan_to_num(se) > 1]
    down = [k for k, (r, se) in ratios.items() if r + 2 * np.nan_to_num(se) < 1]
    if len(up) == len(ks):
        text += " Dropping the score term raises the encoder's SNR at every K here."
    elif len(down) == len(ks):
        text += (" Dropping the score term lowers the encoder's SNR here: far from the exact "
                 "posterior the score term can act as a control variate for the path term "
                 "(Roeder et al. 2017 guarantee zero variance only at the exact posterior).")
    else:
        text += (f" Dropping the score term raises it beyond noise at K = {up or 'none'}, "
                 f"lowers it at K = {down or 'none'}, and the rest is within noise.")
    return text


# ----------------------------------------------------------------------------- 3. objectives
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
    """Which objective trained the best model, from :func:`~probnn.inference.estimator_study.objective_comparison`'s table:
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
        out.append(f"It beats the runner-up, {second['objective']}, by {_fmt_diff(d, se)} nats "
                   "(paired over images)" + (": a real difference." if _beyond_noise(d, se, n - 1)
                                             else ": within noise, so the two are not "
                                                  "distinguishable on these images."))
        out.append("Ranking: " + ", ".join(f"{r['objective']} {r['holdout_iwae']:.2f}"
                                           for _, r in t.iterrows()) + ".")
        by_elbo = t.sort_values("holdout_elbo", ascending=False)
        if by_elbo.iloc[0]["objective"] != best["objective"]:
            d = -best.get("elbo_delta_vs_best", math.nan)
            se = best.get("elbo_delta_vs_best_se", math.nan)
            real = np.isfinite(d) and _beyond_noise(d, se, n - 1)
            out.append(f"By the holdout ELBO instead, {by_elbo.iloc[0]['objective']} would come "
                       f"first ({by_elbo.iloc[0]['holdout_elbo']:.2f} against "
                       f"{best['holdout_elbo']:.2f}"
                       + (f", {_fmt_diff(d, se)} nats paired" if np.isfinite(d) else "") + ")"
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
        (beaten if _beyond_noise(d, se, n - 1) else level).append(
            f"{r['objective']} ({_fmt_diff(d, se)})")
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
                out.append(f"{spec} against {other}: {_fmt_diff(float(d.mean()), se)} nats "
                           "paired over seeds" + (", a real difference."
                                                  if _beyond_noise(float(d.mean()), se, n - 1)
                                                  else ", within the seed spread."))
    cheapest = sm.loc[sm["train_seconds"].idxmin()]
    out.append(f"Training cost (mean over seeds) {best['train_seconds']:.0f} s for "
               f"{best['objective']} against {cheapest['train_seconds']:.0f} s for "
               f"{cheapest['objective']}, the cheapest.")
    out += _reference_text(reference, best["holdout_iwae"])
    return " ".join(out)


# ----------------------------------------------------------------------------- builders
QUESTION = ("How biased and how noisy are the ELBO, ELBO-MC and IWAE-K estimators of log p(x)? "
            "How good are the gradients of each training objective (Trace_ELBO, "
            "TraceMeanField_ELBO, sticking-the-landing STL, IWAE and doubly reparameterised "
            "DReG-IWAE, at K = 1, 5, 50)? Does DReG remove IWAE's encoder-SNR decline? Which "
            "objective trains the best model, beyond the spread over seeds?")
QUESTION_OBJECTIVES = ("Which training objective trains the best model, beyond the spread "
                       "over seeds?")
SHOWN_BIAS = ("estimator", "mean", "stderr", "per_image_sd", "ms_per_image")
SHOWN_OBJECTIVES = ("objective", "seeds", "train_seconds", "train_objective", "holdout_elbo",
                    "holdout_iwae", "holdout_iwae_seed_se", "holdout_iwae_seed_sd",
                    "delta_vs_best", "delta_vs_best_se")


def _sizes_text(study) -> str:
    training = ("train_images", "epochs", "batch_size", "eval_k", "eval_images")
    shown = {k: v for k, v in study.config.items()
             if study.objectives is not None or k not in training}  # none trained: no sizes
    parts = ["Sizes: " + ", ".join(f"{k}={v}" for k, v in shown.items())] if shown else []
    if study.seconds:
        parts.append("Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in study.seconds.items()))
    return ". ".join(parts) + "." if parts else ""


def estimator_section(study, name: str | None = None) -> Section:
    """The study of one model (an :class:`~probnn.inference.estimator_study.EstimatorStudy`):
    bias and spread of the estimators, gradient SNR per objective, and (when the study trained
    them) the objective comparison; files are named ``<name>-estimators-*``."""
    label = name or study.name
    stem = f"{label}-estimators"
    c, b = study.config, study.bias_spread
    s = Section(f"estimators-{label}", f"ELBO estimators: {label}", QUESTION,
                answers=[t for t in (_sizes_text(study), f"{label}. " + estimator_answer(b),
                                     f"{label}. " + snr_answer(study.snr)) if t],
                tables=[Table(f"{stem}-bias-spread", b,
                              f"{label}: log-likelihood estimators (nats per image)",
                              view=b[[col for col in SHOWN_BIAS if col in b]].set_index("estimator"),
                              index=False),
                        Table(f"{stem}-snr", study.snr, index=False)],
                plots=[Plot(f"{stem}-bound-vs-k", estimator_bound_figure(b, label),
                            f"{label}: the bound against K (mean over {c.get('holdout_images')} "
                            f"holdout images ± stderr over {c.get('repeats')} repeats), ELBO and "
                            "ELBO-MC beside it."),
                       Plot(f"{stem}-spread", estimator_spread_figure(b, label),
                            f"{label}: spread and cost of each estimator."),
                       Plot(f"{stem}-snr", snr_figure(study.snr, label),
                            f"{label}: gradient signal-to-noise ratio of encoder and decoder "
                            "parameters, per training objective.")])
    if study.objectives is not None and len(study.objectives):
        o = objectives_section(study.objectives, study.reference, f"{stem}-objectives", label)
        s.tables += o.tables
        s.plots += o.plots
        s.answers += o.answers
    return s


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
