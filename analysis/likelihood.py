"""Question (d): the most and least likely images, and what makes an image likely.

Takes the per-image log-likelihood bounds of a set of images (with their labels and pixels)
and returns figures, tables and text: the bound by digit class, and its correlation with the
amount of ink and with intermediate-grey (stroke-edge) pixels, overall and within classes.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.inference.estimators import PARETO_K_UNRELIABLE

from .images import PX_PER_INCH, as_array, fill_grid, flat_images, grid_geometry
from .plotting import new_figure

INK_THRESHOLD = 0.5
GREY_RANGE = (0.1, 0.9)
"""Pixels strictly inside this range are intermediate grey: mostly the soft edges of strokes."""


def _strength(r: float) -> str:
    a = abs(r)
    return ("negligible" if a < 0.1 else "weak" if a < 0.3 else "moderate" if a < 0.5
            else "strong" if a < 0.7 else "very strong")


def _signed(r: float) -> str:
    return "undefined" if not np.isfinite(r) else f"{r:+.2f}"


def likely_unlikely_figure(images, bounds, order=None, k: int = 50, pareto_k=None) -> Figure:
    """The ``k`` most likely images (highest per-image bound, most likely first) beside the
    ``k`` least likely (least likely first), each titled with its bound in nats.

    ``order`` is ``np.argsort(bounds)`` if already computed. With ``pareto_k`` a '*' marks
    images whose bound has Pareto k > 0.7: an unreliable importance-sampling estimate.
    """
    b = as_array(bounds)
    if len(images) != len(b):
        raise ValueError(f"{len(images)} images but {len(b)} bounds")
    order = np.argsort(b, kind="stable") if order is None else np.asarray(order)
    k = min(k, len(b))
    shown = np.concatenate([order[::-1][:k], order[:k]])
    x = dict(zip(shown.tolist(), flat_images(images[shown])))  # only the images shown
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
        fill_grid(panel, [x[int(i)] for i in idx], nrows, ncols, titles=titles,
                   rect=[0.1 / w, 0.1 / h, 1 - 0.2 / w, 1 - 0.7 / h])
        panel.suptitle(f"{k} {what} likely (bound, nats)", fontsize=10, y=1 - 0.2 / h)
    if pareto_k is not None:
        checked = int(np.isfinite(as_array(pareto_k)).sum())  # k may be known for a few only
        fig.suptitle(f"* Pareto k > {PARETO_K_UNRELIABLE}: unreliable estimate "
                     f"({int(flagged.sum())} of the {checked} images checked)", fontsize=8)
    return fig


CHUNK_IMAGES = 4096
"""Images converted at a time by the per-image counts: their memory stays that of a chunk
(a float64 copy of all 60,000 training images would be 376 MB, once per feature)."""


def per_image(images, count) -> np.ndarray:
    """``count`` (an (n, 28, 28) float array -> (n,) values) over ``images`` (tensor or
    array: (N, 1, 28, 28), (N, 28, 28), (N, 784), or one image) chunk by chunk."""
    shape = tuple(getattr(images, "shape", None) or np.shape(images))
    if shape in ((28, 28), (1, 28, 28), (784,)):
        images, shape = images[None], (1,) + shape
    parts = [count(flat_images(images[i:i + CHUNK_IMAGES]))
             for i in range(0, shape[0], CHUNK_IMAGES)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def ink_pixels(images, threshold: float = INK_THRESHOLD) -> np.ndarray:
    """Number of pixels above ``threshold`` in each image, shape (N,): the amount of ink."""
    return per_image(images, lambda x: (x > threshold).reshape(len(x), -1).sum(1))


def _grey_pixels(images) -> np.ndarray:
    lo, hi = GREY_RANGE
    return per_image(images, lambda x: ((x > lo) & (x < hi)).reshape(len(x), -1).sum(1))


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
