"""Questions (c) and (d) for one image VAE: its section builder, from the parts that draw it.

Takes a finished :class:`~probnn.inference.vae.VAEResults` and the training images it indexes,
and returns :class:`~probnn.analysis.outputs.Section` objects; nothing trains and nothing runs
an estimator. The image grids of (c) are :mod:`probnn.analysis.vae_images`; the likely and
unlikely images of (d) and what makes an image likely, :mod:`probnn.analysis.likelihood`; the
held-out comparison table, :mod:`probnn.analysis.holdout_table`; the curves,
:mod:`probnn.analysis.curves`. Their public names are importable from here too.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from probnn.datasets.coursework import FIGURE_IMAGES, INTERPOLATION_IMAGES, NOISE_IMAGE
from probnn.inference.batching import subset_rows
from probnn.inference.estimators import PARETO_K_UNRELIABLE

from .curves import bound_vs_k_figure, history_figure
from .holdout_table import comparison_table
from .likelihood import (ink_pixels, likelihood_answer, likelihood_feature_correlations,
                         likelihood_features_figure, likelihood_features_table,
                         likely_unlikely_figure)
from .outputs import Plot, Section, Table
from .vae_images import (interpolation_figure, noise_answer, noise_figure, prior_samples_figure,
                         reconstruction_figure)

__all__ = ["QUESTION_C", "bound_vs_k_figure", "comparison_table", "history_figure", "ink_pixels",
           "interpolation_figure", "likelihood_answer", "likelihood_feature_correlations",
           "likelihood_features_figure", "likelihood_features_table", "likely_unlikely_figure",
           "noise_figure", "prior_samples_figure", "reconstruction_figure", "vae_sections"]

QUESTION_C = ("Train the Bernoulli-image VAE; show reconstructions of four training images, "
              "reconstructions of a noisy image, random samples, and an interpolation between "
              "two images in latent space.")


def vae_sections(results, images) -> list[Section]:
    """Questions (c) and (d) for one model: reconstructions, noise, prior samples,
    interpolation; the likely and unlikely images and what makes an image likely.

    ``results`` is a :class:`~probnn.inference.vae.VAEResults`; ``images`` are the training
    images it indexes (``results.rank_index`` into them).
    """
    return [_section_c(results), _section_d(results, images)]


def _section_c(r) -> Section:
    """(c): reconstructions, the noisy image and its bounds, prior samples, interpolation."""
    n = r.name
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
    return c


def _section_d(r, images) -> Section:
    """(d): the training images scored by their bound, the most and least likely, and what
    makes an image likely."""
    n = r.name
    scored = subset_rows(images, r.rank_index)
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
    return d
