"""Figures, tables and written answers for the image VAEs (see :mod:`probnn.inference.vae`).

Everything here takes finished results -- image arrays or tensors, per-image bounds, the
dicts of :func:`~probnn.inference.vae.evaluate`, training histories -- and returns
:class:`matplotlib.figure.Figure` objects, pandas tables or text; nothing trains and nothing
runs an estimator. Callers save and close the figures. Images are drawn with ``gray_r``:
ink (pixel value 1) is dark on a light background, as digits are written.
"""
from __future__ import annotations

import math
import re
from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.datasets.coursework import FIGURE_IMAGES, INTERPOLATION_IMAGES, NOISE_IMAGE
from probnn.inference.estimators import PARETO_K_UNRELIABLE

from .images import (PX_PER_INCH, as_array, fill_grid, flat_images, grid_figure, grid_geometry,
                     pixels)
from .outputs import Plot, Section, Table
from .plotting import new_figure

INK_THRESHOLD = 0.5
GREY_RANGE = (0.1, 0.9)
"""Pixels strictly inside this range are intermediate grey: mostly the soft edges of strokes."""

_MAIN_COLUMNS = ("images", "elbo", "elbo_mc", "reconstruction", "kl")


# ----------------------------------------------------------------------------- helpers
def _strength(r: float) -> str:
    a = abs(r)
    return ("negligible" if a < 0.1 else "weak" if a < 0.3 else "moderate" if a < 0.5
            else "strong" if a < 0.7 else "very strong")


def _signed(r: float) -> str:
    return "undefined" if not np.isfinite(r) else f"{r:+.2f}"


def reconstruction_figure(originals, probs, samples, labels) -> Figure:
    """One row per image: the original, then for each of the r reconstructions the decoder's
    probability map and a Bernoulli sample from it.

    ``originals`` is (n, 1, 28, 28); ``probs`` and ``samples`` are (r, n, 1, 28, 28) as
    returned by :func:`~probnn.inference.vae.reconstruct`; ``labels`` names each image
    (e.g. its index in the data set: row label "image 59289").
    """
    x, p, s = flat_images(originals), pixels(probs), pixels(samples)
    if p.ndim == 3:  # a single reconstruction given as (n, 28, 28)
        p, s = p[None], s[None]
    r, n = p.shape[:2]
    if len(x) != n or s.shape[:2] != (r, n) or len(labels) != n:
        raise ValueError(f"shapes disagree: {len(x)} originals, probs {p.shape[:2]}, "
                         f"samples {s.shape[:2]}, {len(labels)} labels")
    cells = []
    for i in range(n):
        cells.append(x[i])
        for j in range(r):
            cells += [p[j, i], s[j, i]]
    col_labels = ["original"] + [f"{kind} {j + 1}" for j in range(r) for kind in ("probs", "sample")]
    return grid_figure(cells, n, 1 + 2 * r, row_labels=[f"image {lab}" for lab in labels],
                        col_labels=col_labels)


def noise_figure(noisy, probs, samples, sds, bounds) -> Figure:
    """One column per noise level: the noisy input, its reconstruction's probability map and a
    Bernoulli sample.

    ``noisy`` is (m, 1, 28, 28), one noisy version of an image per standard deviation in
    ``sds``; ``probs`` and ``samples`` are (m, 1, 28, 28) or (r, m, 1, 28, 28) (then r rows of
    each); ``bounds`` are the log-likelihood bounds (nats) of the m noisy images, shown with
    the noise level above each column.
    """
    x, p, s = flat_images(noisy), pixels(probs), pixels(samples)
    p, s = (a if a.ndim == 4 else a[None] for a in (p, s))
    m = len(x)
    if len(sds) != m or len(bounds) != m or p.shape[1] != m or s.shape[:2] != p.shape[:2]:
        raise ValueError(f"{m} noisy images, {len(sds)} sds, {len(bounds)} bounds, "
                         f"probs {p.shape[:2]}, samples {s.shape[:2]}")
    r = p.shape[0]
    cells = list(x)
    row_labels = ["noisy input"]
    for j in range(r):
        cells += list(p[j]) + list(s[j])
        suffix = f" {j + 1}" if r > 1 else ""
        row_labels += [f"probs{suffix}", f"sample{suffix}"]
    titles = [f"sd={sd:g}\n{b:.1f} nats" for sd, b in zip(sds, as_array(bounds))]
    titles += [None] * (len(cells) - m)
    return grid_figure(cells, 1 + 2 * r, m, row_labels=row_labels, titles=titles)


def noise_answer(clean_bound: float, sds, bounds) -> str:
    """What the noise did to the image's log-likelihood bound, written from the numbers."""
    b = as_array(bounds)
    drops = [f"sd {sd:g}: {v:.1f} ({v - clean_bound:+.1f})" for sd, v in zip(sds, b)]
    monotone = bool(np.all(np.diff(np.concatenate([[clean_bound], b])) < 0))
    return (f"The clean image's bound is {clean_bound:.1f} nats; with Gaussian pixel noise "
            + "; ".join(drops) + " nats. "
            + ("The bound falls with every step up in noise: "
               if monotone else "The bound does not fall at every step (Monte Carlo noise): ")
            + "the model, trained on clean digits, gives grey speckle a low likelihood, since "
            "each noisy pixel pays its own cross-entropy. The figure's reconstructions show "
            "what the encoder makes of each noisy input: the decoder can only draw the "
            "digit-like images it was trained on, never the speckle.")


def prior_samples_figure(probs, samples) -> Figure:
    """Images generated from the prior z ~ N(0, I): probability maps above, Bernoulli samples
    below (at most 12 per row; more images wrap onto further rows of each kind)."""
    p, s = flat_images(probs), flat_images(samples)
    if len(p) != len(s):
        raise ValueError(f"{len(p)} probability maps but {len(s)} samples")
    ncols = min(len(p), 12)
    per_kind = math.ceil(len(p) / ncols)

    def padded(a):
        return list(a) + [None] * (per_kind * ncols - len(a))

    cells = padded(p) + padded(s)
    row_labels = ["probs"] * per_kind + ["sample"] * per_kind
    return grid_figure(cells, 2 * per_kind, ncols, row_labels=row_labels)


def interpolation_figure(probs, samples=None, start_label=str(INTERPOLATION_IMAGES[0]),
                         end_label=str(INTERPOLATION_IMAGES[1])) -> Figure:
    """Decoded points on the line between two images' posterior means, in one row (and a
    second row of Bernoulli samples when ``samples`` is given). The ends are titled with
    the two images' labels, the steps with their fraction t of the way."""
    p = flat_images(probs)
    steps = len(p)
    ts = np.linspace(0.0, 1.0, steps)
    titles = [f"t={t:.2f}" for t in ts]
    titles[0], titles[-1] = f"image {start_label}", f"image {end_label}"
    cells, row_labels = list(p), ["probs"]
    if samples is not None:
        s = flat_images(samples)
        if len(s) != steps:
            raise ValueError(f"{steps} probability maps but {len(s)} samples")
        cells += list(s)
        row_labels.append("sample")
        titles += [None] * steps
    return grid_figure(cells, len(row_labels), steps, row_labels=row_labels, titles=titles)


def likely_unlikely_figure(images, bounds, order=None, k: int = 50, pareto_k=None) -> Figure:
    """The ``k`` most likely images (highest per-image bound, most likely first) beside the
    ``k`` least likely (least likely first), each titled with its bound in nats.

    ``order`` is ``np.argsort(bounds)`` if already computed. With ``pareto_k`` a '*' marks
    images whose bound has Pareto k > 0.7: an unreliable importance-sampling estimate.
    """
    x, b = flat_images(images), as_array(bounds)
    if len(x) != len(b):
        raise ValueError(f"{len(x)} images but {len(b)} bounds")
    order = np.argsort(b, kind="stable") if order is None else np.asarray(order)
    k = min(k, len(b))
    flagged = (np.zeros(len(b), bool) if pareto_k is None
               else as_array(pareto_k) > PARETO_K_UNRELIABLE)
    ncols = min(k, 10)
    nrows = math.ceil(k / ncols)
    titles = [[f"{b[i]:.1f}"] for i in range(nrows * ncols)]  # one line above each image
    _, height, width = grid_geometry(nrows, ncols, titles)
    w, h = width / PX_PER_INCH + 0.2, height / PX_PER_INCH + 0.8
    fig = Figure(figsize=(2 * w + 0.3, h))
    panels = fig.subfigures(1, 2, wspace=0.05)
    for panel, idx, what in ((panels[0], order[::-1][:k], "most"), (panels[1], order[:k], "least")):
        titles = [f"{b[i]:.1f}{'*' if flagged[i] else ''}" for i in idx]
        fill_grid(panel, [x[i] for i in idx], nrows, ncols, titles=titles,
                   rect=[0.1 / w, 0.1 / h, 1 - 0.2 / w, 1 - 0.7 / h])
        panel.suptitle(f"{k} {what} likely (bound, nats)", fontsize=10, y=1 - 0.2 / h)
    if pareto_k is not None:
        checked = int(np.isfinite(as_array(pareto_k)).sum())  # k may be known for a few only
        fig.suptitle(f"* Pareto k > {PARETO_K_UNRELIABLE}: unreliable estimate "
                     f"({int(flagged.sum())} of the {checked} images checked)", fontsize=8)
    return fig


# ----------------------------------------------------------------------------- image features
def ink_pixels(images, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """Number of pixels above ``threshold`` in each image, shape (N,): the amount of ink."""
    x = flat_images(images)
    return (x > threshold).reshape(len(x), -1).sum(1)


def _grey_pixels(images) -> np.ndarray:
    x = flat_images(images)
    lo, hi = GREY_RANGE
    return ((x > lo) & (x < hi)).reshape(len(x), -1).sum(1)


def _features(bounds, labels, images) -> pd.DataFrame:
    b, ink, grey = as_array(bounds), ink_pixels(images), _grey_pixels(images)
    if len(ink) != len(b):
        raise ValueError(f"{len(ink)} images but {len(b)} bounds")
    df = pd.DataFrame({"bound": b, "ink": ink, "grey": grey})
    if labels is not None:
        lab = as_array(labels).astype(int)
        if len(lab) != len(b):
            raise ValueError(f"{len(lab)} labels but {len(b)} bounds")
        df["digit"] = lab
    return df


def _by_digit(df: pd.DataFrame) -> pd.DataFrame:
    g = df.groupby("digit")["bound"]
    table = pd.DataFrame({"count": g.size(), "mean_bound": g.mean(), "std_bound": g.std(),
                          "median_bound": g.median(),
                          "mean_ink": df.groupby("digit")["ink"].mean()})
    return table.sort_index()


def likelihood_features_table(bounds, labels, images) -> pd.DataFrame:
    """Per digit class (index ``digit``): number of images, mean / std / median of the
    per-image log-likelihood bound (nats) and the mean number of ink pixels (> 0.5)."""
    return _by_digit(_features(bounds, labels, images)).round(
        {"mean_bound": 2, "std_bound": 2, "median_bound": 2, "mean_ink": 1})


def _corr(a: pd.Series, b: pd.Series, method: str) -> float:
    """Correlation, NaN when either side is constant (binarised images have no grey pixels;
    scipy would warn and return NaN anyway)."""
    if a.nunique() < 2 or b.nunique() < 2:
        return math.nan
    return float(a.corr(b, method=method))


def _within_digit_spearman(df: pd.DataFrame, feature: str) -> float:
    """Count-weighted mean over digit classes of the Spearman correlation inside each class,
    so a correlation that only reflects differences between classes shows up as near zero."""
    rs, ws = [], []
    for _, g in df.groupby("digit"):
        r = _corr(g["bound"], g[feature], "spearman") if len(g) >= 3 else math.nan
        if np.isfinite(r):
            rs.append(r)
            ws.append(len(g))
    return float(np.average(rs, weights=ws)) if rs else math.nan


def likelihood_feature_correlations(bounds, images, labels=None) -> dict[str, float]:
    """Correlations of the per-image bound with two image features.

    Keys ``ink_pearson``, ``ink_spearman`` (ink pixels, > 0.5) and ``grey_pearson``,
    ``grey_spearman`` (intermediate-grey pixels, 0.1 < x < 0.9: stroke edges); with
    ``labels`` also ``ink_spearman_within_digit`` and ``grey_spearman_within_digit``. A
    feature that is constant (e.g. no grey pixels in binarised images) gives NaN.
    """
    df = _features(bounds, labels, images)
    out = {}
    for feature in ("ink", "grey"):
        for method in ("pearson", "spearman"):
            out[f"{feature}_{method}"] = _corr(df["bound"], df[feature], method)
        if labels is not None:
            out[f"{feature}_spearman_within_digit"] = _within_digit_spearman(df, feature)
    return out


def likelihood_features_figure(bounds, labels, images) -> Figure:
    """Left: the per-image bound by digit class (box plots). Right: bound against number of
    ink pixels (a hexbin above 2,000 images, where a scatter would be one blot), with the
    correlations in the title."""
    df = _features(bounds, labels, images)
    corr = likelihood_feature_correlations(bounds, images, labels)
    fig, axes = new_figure(1, 2, (11.0, 4.5))
    left, right = axes[0]
    digits = sorted(df["digit"].unique())
    left.boxplot([df.loc[df["digit"] == d, "bound"] for d in digits],
                 flierprops=dict(markersize=2, alpha=0.4))
    # boxplot's label keyword is tick_labels from matplotlib 3.9 and labels before it
    left.set_xticks(range(1, len(digits) + 1), [str(d) for d in digits])
    left.set(xlabel="digit", ylabel="log-likelihood bound (nats)", title="Bound by digit class")
    left.grid(alpha=0.3, axis="y")
    if len(df) > 2000:
        hb = right.hexbin(df["ink"], df["bound"], gridsize=40, bins="log", mincnt=1, cmap="viridis")
        fig.colorbar(hb, ax=right, label="images")
    else:
        right.scatter(df["ink"], df["bound"], s=8, alpha=0.6)
    right.set(xlabel=f"ink pixels (> {INK_THRESHOLD})", ylabel="log-likelihood bound (nats)",
              title=f"Bound vs ink: Pearson r = {_signed(corr['ink_pearson'])}, "
                    f"Spearman ρ = {_signed(corr['ink_spearman'])}")
    right.grid(alpha=0.3)
    return fig


def likelihood_answer(bounds, labels, images) -> str:
    """A paragraph on what makes an image likely, written from the measured numbers: the most
    and least likely digit classes, and the sign and size of the bound's correlation with ink
    (overall and within classes) and with intermediate-grey pixels."""
    df = _features(bounds, labels, images)
    table = _by_digit(df)
    corr = likelihood_feature_correlations(bounds, images, labels)
    ranked = table["mean_bound"].sort_values(ascending=False)
    best, worst = int(ranked.index[0]), int(ranked.index[-1])
    out = [f"Over {len(df)} images, digit {best} has the highest mean log-likelihood bound "
           f"({ranked.iloc[0]:.1f} nats) and digit {worst} the lowest ({ranked.iloc[-1]:.1f} "
           f"nats), a spread of {ranked.iloc[0] - ranked.iloc[-1]:.1f} nats between class means."]
    if len(ranked) > 2:
        out.append("From most to least likely: " + ", ".join(str(int(d)) for d in ranked.index) + ".")

    rho, r = corr["ink_spearman"], corr["ink_pearson"]
    if not np.isfinite(rho):
        out.append("The bound or the number of ink pixels is the same for every image, so "
                   "their correlation is undefined.")
        return " ".join(out)
    out.append(f"The bound's correlation with the number of ink pixels is {_strength(rho)} and "
               f"{'negative' if rho < 0 else 'positive'} (Spearman ρ = {rho:+.2f}, "
               f"Pearson r = {r:+.2f}).")
    ink_best, ink_worst = table.at[best, "mean_ink"], table.at[worst, "mean_ink"]
    if rho <= -0.1:
        out.append("Images with less ink get higher likelihood: every ink pixel is one the "
                   "model must place, and each costs log-probability under the Bernoulli "
                   "likelihood, whereas the blank background is predicted almost for free. Images "
                   "with few, thin strokes are therefore the most likely.")
    elif rho >= 0.1:
        out.append("Images with more ink get higher likelihood, the opposite of what a cost per "
                   "ink pixel alone would give: what the bound rewards here is not a small amount "
                   "of ink but something else about the images, such as how typical the shape is.")
    else:
        out.append("So the amount of ink explains little of the variation in the bound.")
    if best != worst:
        agrees = ink_best < ink_worst if rho < 0 else ink_best > ink_worst
        out.append(f"The most likely class, {best}, averages {ink_best:.0f} ink pixels against "
                   f"{ink_worst:.0f} for {worst}" + (
                       "." if abs(rho) < 0.1 else "; the class ranking goes the same way." if agrees
                       else "; the class ranking goes against the overall correlation, so these "
                            "classes differ in more than ink."))
    within = corr.get("ink_spearman_within_digit", math.nan)
    if np.isfinite(within) and abs(rho) >= 0.1:
        if np.sign(within) == np.sign(rho) and abs(within) >= 0.1:
            out.append(f"The relation holds within digit classes too (mean within-class ρ = "
                       f"{within:+.2f}), so it is not only a difference between digits.")
        else:
            out.append(f"Within digit classes it is {within:+.2f}, so the overall correlation "
                       "comes mostly from differences between the classes.")
    grey = corr["grey_spearman"]
    if np.isfinite(grey):
        out.append(f"Intermediate-grey (stroke-edge) pixels correlate {grey:+.2f} with the bound"
                   + ("; a grey target x costs at least its binary entropy H(x) nats under a "
                      "Bernoulli likelihood even when predicted perfectly, so soft edges lower "
                      "the bound unavoidably." if grey <= -0.1 else "."))
    else:
        out.append("The images have no variation in intermediate-grey pixels (binarised images "
                   "have none), so stroke edges cannot explain the bound here.")
    return " ".join(out)


# ----------------------------------------------------------------------------- comparison
def k_columns(columns, prefix: str) -> list[tuple[int, str]]:
    """The columns ``<prefix>_<K>`` (K an integer) as sorted ``(K, column)`` pairs."""
    pattern = re.compile(rf"{prefix}_(\d+)$")
    return sorted((int(m.group(1)), c) for c in columns if (m := pattern.match(str(c))))


def comparison_table(rows: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per model from :func:`~probnn.inference.vae.evaluate` dicts, keyed by name.

    Columns: images, elbo, elbo_mc, reconstruction, kl, iwae_K (by K), active_units,
    unreliable_K (by K), then any other entries in the order first seen (e.g. ``train_elbo``,
    the last epoch's training ELBO). Nats rounded to 2 decimals, fractions to 3.
    """
    df = pd.DataFrame.from_dict({name: dict(row) for name, row in rows.items()}, orient="index")
    df.index.name = "model"
    iwae = [c for _, c in k_columns(df.columns, "iwae")]
    unreliable = [c for _, c in k_columns(df.columns, "unreliable")]
    known = [c for c in _MAIN_COLUMNS if c in df] + iwae + (
        ["active_units"] if "active_units" in df else []) + unreliable
    df = df[known + [c for c in df.columns if c not in known]]
    for c in ("images", "active_units"):
        if c in df and df[c].notna().all():
            df[c] = df[c].astype(int)
    rounding = {c: 3 for c in unreliable}
    rounding.update({c: 2 for c in df.columns if c not in rounding
                     and c not in ("images", "active_units") and pd.api.types.is_float_dtype(df[c])})
    return df.round(rounding)


# ----------------------------------------------------------------------------- curves
def bound_vs_k_figure(ks, means, stderrs=None, labels=None, references=None,
                      title: str | None = None) -> Figure:
    """The estimated bound (mean over images, nats) against the number of importance samples
    K on a log axis, one line per model; ``means`` is (models, len(ks)) or (len(ks),), and
    ``stderrs`` (same shape) adds error bars.

    ``references`` maps a label to a value or a ``(value, stderr)`` pair drawn as a
    horizontal dashed line (with a ±stderr band), e.g. the ELBO and ELBO-MC, which do not
    depend on K."""
    ks = np.asarray(ks)
    means = np.atleast_2d(as_array(means))
    errs = None if stderrs is None else np.atleast_2d(as_array(stderrs))
    if means.shape[1] != len(ks) or (errs is not None and errs.shape != means.shape):
        raise ValueError(f"{len(ks)} values of K but means {means.shape}"
                         + ("" if errs is None else f", stderrs {errs.shape}"))
    if labels is not None and len(labels) != len(means):
        raise ValueError(f"{len(labels)} labels for {len(means)} models")
    fig, axes = new_figure(size=(6.5, 4.5))
    ax = axes[0, 0]
    for i, m in enumerate(means):
        ax.errorbar(ks, m, yerr=None if errs is None else errs[i], marker="o", capsize=3,
                    label=None if labels is None else labels[i])
    for j, (label, ref) in enumerate((references or {}).items()):
        value, err = (ref if isinstance(ref, (tuple, list)) else (ref, None))
        color = f"C{len(means) + j}"
        ax.axhline(value, color=color, linestyle="--", linewidth=1.2, label=label)
        if err is not None and np.isfinite(err) and err > 0:
            ax.axhspan(value - err, value + err, color=color, alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set(xlabel="K (importance samples)", ylabel="bound (nats per image)",
           title=title or "Importance-weighted bound against K")
    ax.grid(alpha=0.3, which="both")
    if labels is not None or references:
        ax.legend(fontsize="small")
    return fig


def history_figure(histories: Mapping[str, pd.DataFrame]) -> Figure:
    """Training ELBO per epoch (columns ``epoch`` and ``elbo`` of each history), one line per
    model, labelled with the final value."""
    fig, axes = new_figure(size=(6.5, 4.5))
    ax = axes[0, 0]
    for name, h in histories.items():
        if h.empty:  # stopped in its first epoch: nothing to draw
            continue
        ax.plot(h["epoch"], h["elbo"], marker="o", label=f"{name} (final {h['elbo'].iloc[-1]:.2f})")
    ax.set(xlabel="epoch", ylabel="training ELBO (nats per image)", title="Training ELBO")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig


# ----------------------------------------------------------------------------- builders
QUESTION_C = ("Train the Bernoulli-image VAE; show reconstructions of four training images, "
              "reconstructions of a noisy image, random samples, and an interpolation between "
              "two images in latent space.")
QUESTION_E = ("Compare the latent dimensions (and the PyTorch example's MLP VAE) on a holdout "
              "set: which is the better model, and what is the right measure?")


def vae_sections(results, images) -> list[Section]:
    """Questions (c) and (d) for one model: reconstructions, noise, prior samples,
    interpolation; the likely and unlikely images and what makes an image likely.

    ``results`` is a :class:`~probnn.inference.vae.VAEResults`; ``images`` are the training
    images it indexes (``results.rank_index`` into them).
    """
    r, n = results, results.name
    a, b = INTERPOLATION_IMAGES
    noise = pd.DataFrame({"noise_sd": (0.0,) + tuple(r.noise_sds),
                          "bound": np.concatenate([[r.clean_bound], r.noisy_bounds])})
    c = Section("vae-c", f"(c) The VAE ({n}): reconstructions, noise, samples, interpolation",
                QUESTION_C,
                answers=[noise_answer(r.clean_bound, r.noise_sds, r.noisy_bounds)],
                tables=[Table(f"{n}-noise-bounds", noise, f"Bound of image {NOISE_IMAGE} "
                              f"({r.rank_k} samples) by noise level", index=False)],
                plots=[Plot(f"{n}-reconstructions",
                            reconstruction_figure(r.originals, r.recon_probs, r.recon_samples,
                                                  [str(i) for i in FIGURE_IMAGES]),
                            "Originals; the decoder's pixel probabilities and a Bernoulli sample "
                            "for three draws z ~ q(z | x)."),
                       Plot(f"{n}-noise", noise_figure(r.noisy, r.noisy_probs, r.noisy_samples,
                                                       r.noise_sds, r.noisy_bounds),
                            f"Image {NOISE_IMAGE} with Gaussian noise of growing sd, its "
                            "reconstruction, and its log-likelihood bound."),
                       Plot(f"{n}-prior-samples", prior_samples_figure(r.prior_probs,
                                                                       r.prior_samples),
                            "Images from z ~ N(0, I)."),
                       Plot(f"{n}-interpolation",
                            interpolation_figure(r.interp_probs, r.interp_samples, str(a), str(b)),
                            f"Decoding the straight line between the posterior means of images "
                            f"{a} and {b}.")])
    if len(r.history):
        c.plots.append(Plot(f"{n}-history", history_figure({n: r.history}),
                            "Training ELBO per epoch."))
    scored = images[r.rank_index]
    pk = np.full(len(r.rank_bounds), np.nan)
    pos = {int(i): j for j, i in enumerate(r.rank_index)}
    for idx, k in r.shown_pareto_k.items():
        pk[pos[idx]] = k
    order = np.argsort(r.rank_bounds)
    flagged = sum(k > PARETO_K_UNRELIABLE for k in r.shown_pareto_k.values())
    scored_text = (f"Scored {len(r.rank_bounds)} training images with the {r.rank_k}-sample "
                   f"bound. Most likely: index {int(r.rank_index[order[-1]])} (bound "
                   f"{r.rank_bounds[order[-1]]:.1f}); least likely: index "
                   f"{int(r.rank_index[order[0]])} (bound {r.rank_bounds[order[0]]:.1f}). Pareto "
                   f"k > {PARETO_K_UNRELIABLE} for {flagged} of the {len(r.shown_pareto_k)} "
                   "images shown.")
    d = Section("vae-d", f"(d) Likely and unlikely images ({n})",
                f"Estimate each image's log-likelihood with {r.rank_k} Monte Carlo / importance "
                "samples; show the most and least likely images; what makes an image likely?",
                answers=[scored_text, likelihood_answer(r.rank_bounds, r.rank_labels, scored)],
                tables=[Table(f"{n}-bound-by-digit",
                              likelihood_features_table(r.rank_bounds, r.rank_labels, scored),
                              "Bound by digit class"),
                        Table(f"{n}-bounds", pd.DataFrame(
                            {"index": r.rank_index, "label": r.rank_labels, "bound": r.rank_bounds,
                             "ink_pixels": ink_pixels(scored)}), index=False)],
                plots=[Plot(f"{n}-likely-unlikely",
                            likely_unlikely_figure(scored, r.rank_bounds, pareto_k=pk),
                            "Most and least likely training images by their bound (Pareto k "
                            "flags the estimates that may be far from log p(x))."),
                       Plot(f"{n}-likelihood-features",
                            likelihood_features_figure(r.rank_bounds, r.rank_labels, scored),
                            "The bound against digit class and amount of ink.")])
    return [c, d]
