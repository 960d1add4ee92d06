"""Question (c)'s image grids: reconstructions, a noisy image, prior samples, interpolation.

Each figure takes image arrays or tensors (as :mod:`probnn.inference.vae` returns them) and
returns a :class:`matplotlib.figure.Figure`; callers save and close the figures.
:func:`noise_answer` says what the noise did to the image's bound. Images are drawn with
``gray_r``: ink (pixel value 1) is dark on a light background, as digits are written.
"""
from __future__ import annotations

import math

import numpy as np
from matplotlib.figure import Figure

from probnn.datasets.coursework import INTERPOLATION_IMAGES

from .images import as_array, flat_images, grid_figure, pixels


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
