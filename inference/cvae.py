"""The label-conditioned VAE (question f): generation by label and style, and the model as a
generative classifier. Training and loading are shared with the VAE
(:func:`~probnn.inference.vae.train_vae` / :func:`~probnn.inference.vae.load_vae` with
``conditional=True``); the estimators are the shared ones of :mod:`~probnn.inference.estimators`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyro
import torch

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.models.cvae import NUM_CLASSES
from probnn.models.settings import module_device

from .batching import random_subset
from .estimators import active_units, iwae_bound, posterior_means
from .evaluation import holdout_estimates
from .paired import PerImage
from .serialization import serializable

LOG_PRIOR = -math.log(NUM_CLASSES)  # log p(y) under the uniform label prior


def _decode(model, z: torch.Tensor, y: torch.Tensor):
    probs = model.pixel_probs(z, y).clamp(0, 1)
    return probs, torch.bernoulli(probs)


@torch.no_grad()
def style_sets(model, num_styles: int = 4):
    """For each of ``num_styles`` styles z ~ N(0, I), the ten digits 0..9 in that style:
    probability maps and samples of shape (num_styles, 10, 1, 28, 28)."""
    device = module_device(model)
    z = torch.randn(num_styles, 1, model.latent_dim, device=device).expand(
        num_styles, NUM_CLASSES, model.latent_dim)
    y = torch.arange(NUM_CLASSES, device=device)
    return _decode(model, z, y)


@torch.no_grad()
def digit_samples(model, per_digit: int = 10):
    """``per_digit`` samples of each digit, each with its own z: (10, per_digit, 1, 28, 28)."""
    device = module_device(model)
    z = torch.randn(NUM_CLASSES, per_digit, model.latent_dim, device=device)
    y = torch.arange(NUM_CLASSES, device=device).repeat_interleave(per_digit)
    probs, samples = _decode(model, z.reshape(-1, model.latent_dim), y)
    shape = (NUM_CLASSES, per_digit) + probs.shape[1:]
    return probs.reshape(shape), samples.reshape(shape)


@torch.no_grad()
def style_transfer(model, guide, x: torch.Tensor, y: torch.Tensor):
    """Encode real images (x, y) to their posterior-mean style z and decode that style with
    every label: (n, 10, 1, 28, 28) probability maps and samples."""
    z = posterior_means(guide, (x, y))
    n = len(x)
    zz = z[:, None].expand(n, NUM_CLASSES, z.shape[-1]).reshape(-1, z.shape[-1])
    probs, samples = _decode(model, zz, torch.arange(NUM_CLASSES, device=z.device).repeat(n))
    shape = (n, NUM_CLASSES) + probs.shape[1:]
    return probs.reshape(shape), samples.reshape(shape)


def label_log_joint(model, guide, x: torch.Tensor, num_samples: int = 100, *,
                    batch_size: int = 100, progress: bool = False,
                    precision: str = "fp32") -> np.ndarray:
    """IWAE estimates of ``log p(x, y=c)`` for every image and every class c, shape (N, 10).

    Each class gets its own importance sampler q(z | x, c); the cost is ten IWAE bounds.
    """
    cols = []
    for c in range(NUM_CLASSES):
        y = torch.full((len(x),), c, dtype=torch.long, device=x.device)
        cols.append(iwae_bound(model, guide, (x, y), num_samples, batch_size=batch_size,
                               diagnostics=False, progress=progress,
                               precision=precision).bound)
    return np.stack(cols, axis=1)


def conditional_from_joint(log_joint: np.ndarray) -> np.ndarray:
    """``log p(x | y) = log p(x, y) - log p(y)`` with the uniform label prior."""
    return np.asarray(log_joint) - LOG_PRIOR


def marginal_log_likelihood(log_conditional: np.ndarray) -> np.ndarray:
    """``log p(x) = logsumexp_y [log p(x | y) + log 1/10]`` from (N, 10) conditional estimates.

    With IWAE estimates inside, this is still a stochastic lower bound on log p(x) (Jensen:
    the log of a sum of unbiased estimators), comparable with an unconditional VAE's bound.
    """
    a = np.asarray(log_conditional, dtype=np.float64) + LOG_PRIOR
    return torch.logsumexp(torch.from_numpy(a), dim=1).numpy()


def class_posterior(log_conditional: np.ndarray) -> np.ndarray:
    """The generative classifier ``p(y | x) = p(x | y) p(y) / p(x)``, rows sum to 1, (N, 10)."""
    a = torch.from_numpy(np.asarray(log_conditional, dtype=np.float64) + LOG_PRIOR)
    return torch.softmax(a, dim=1).numpy()


@serializable
@dataclass
class CVAEEvaluation:
    """What :func:`evaluate_cvae` returns."""
    row: dict
    """The table row, nats per image (see :func:`evaluate_cvae`)."""
    confusion: np.ndarray
    """(10, 10) counts of the classified images: true label (rows) against predicted."""
    class_posterior: np.ndarray
    """(classify_images, 10) the classifier's p(y | x); rows sum to 1."""
    labels: np.ndarray
    """(classify_images,) the true labels of the classified images."""
    per_image: dict = field(default_factory=dict)
    """``"all"``, ``"subset"`` (of :func:`~probnn.inference.evaluation.holdout_estimates`) and
    ``"classified"`` (``marginal_iwae_<k>``, ``iwae_<k>_classified``) ->
    :class:`~probnn.inference.paired.PerImage`, indexed by position in the holdout set."""


def evaluate_cvae(model, guide, x: torch.Tensor, y: torch.Tensor, *, k: int = 100,
                  large_k: int | None = 1000, large_k_images: int | None = 1000,
                  classify_images: int | None = 1000, batch_size: int = 100, seed: int = COURSEWORK_SEED,
                  progress: bool = False, precision: str = "fp32", index=None) -> CVAEEvaluation:
    """Holdout evaluation of the conditional VAE, in nats per image.

    Conditional bounds of ``log p(x | y)`` for the true labels: ``elbo`` (K=1) and
    ``elbo_mc`` (K=``k``, split into ``reconstruction`` and ``kl``), ``iwae_<k>`` on all images
    and ``iwae_<large_k>`` on ``large_k_images`` of them (beside ``iwae_<k>_subset``, the
    K=``k`` bound of the same images). On ``classify_images`` images, the
    ten per-class bounds give ``marginal_iwae_<k>`` (log p(x), comparable with the
    unconditional VAEs) and the classifier's ``accuracy``; ``confusion`` and
    ``class_posterior`` are returned for the figures. ``active_units`` counts the style units
    in use given the true labels. The bounds come from
    :func:`~probnn.inference.evaluation.holdout_estimates`, shifted by ``-log p(y)``; the
    per-image estimates carry ``index`` (the images' indices in the holdout set; default
    ``0..n-1``) so they pair with the unconditional models' estimates of the same images.
    """
    # ELBO/IWAE of log p(x, y) -> of log p(x | y): shift by -log p(y)
    out, per_image = holdout_estimates(model, guide, (x, y), k=k, large_k=large_k,
                                       large_k_images=large_k_images, seed=seed,
                                       batch_size=batch_size, shift=-LOG_PRIOR,
                                       precision=precision, index=index)
    sub = random_subset(len(x), classify_images, seed + 2)
    cond = conditional_from_joint(label_log_joint(model, guide, x[sub], k, batch_size=batch_size,
                                                  progress=progress, precision=precision))
    post = class_posterior(cond)
    truth = y[sub].cpu().numpy()
    pred = post.argmax(1)
    confusion = np.zeros((NUM_CLASSES, NUM_CLASSES), dtype=int)
    np.add.at(confusion, (truth, pred), 1)
    classified = PerImage(per_image["all"].index[sub.numpy()],
                          {f"marginal_iwae_{k}": marginal_log_likelihood(cond),
                           f"iwae_{k}_classified": cond[np.arange(len(sub)), truth]})
    per_image["classified"] = classified
    out.update(classify_images=len(sub), accuracy=float((pred == truth).mean()),
               **{n: float(v.mean()) for n, v in classified.values.items()})
    out["active_units"] = active_units(guide, (x, y))[0]  # last: its guide pass draws too
    return CVAEEvaluation(out, confusion, post, truth, per_image)


TRANSFER_DIGITS = (3, 7)
"""The style-transfer figure redraws the first holdout image of each of these digits."""


@serializable
@dataclass
class CVAEResults:
    """What :func:`cvae_results` returns: everything question (f) shows."""
    styles: tuple
    """(probs, samples) of :func:`style_sets`, each (4, 10, 1, 28, 28)."""
    digits: tuple
    """(probs, samples) of :func:`digit_samples`, each (10, 10, 1, 28, 28)."""
    transfer: tuple
    """(originals, labels, probs): the images of :data:`TRANSFER_DIGITS`, their labels and
    :func:`style_transfer`'s probability maps."""
    evaluation: CVAEEvaluation


def cvae_results(model, guide, x: torch.Tensor, y: torch.Tensor, *, seed: int = COURSEWORK_SEED,
                 eval_index=None, progress: bool = False, **evaluate_kw) -> CVAEResults:
    """Everything question (f) shows, for :func:`probnn.analysis.cvae.cvae_section`.

    Seeded with ``seed``: four style sets, ten samples of each digit, the style of the first
    image of each of :data:`TRANSFER_DIGITS` in ``(x, y)`` redrawn as every digit, and
    :func:`evaluate_cvae` (``evaluate_kw``: ``k``, ``large_k``, ...) on ``x[eval_index]``
    (all of ``x`` by default), as a :class:`CVAEResults`.
    """
    pyro.set_rng_seed(seed)
    styles = style_sets(model, 4)
    digits = digit_samples(model, 10)
    pick = [int((y == d).nonzero()[0]) for d in TRANSFER_DIGITS]
    transfer = (x[pick], y[pick], style_transfer(model, guide, x[pick], y[pick])[0])
    index = None
    if eval_index is not None:
        x, y = x[eval_index], y[eval_index]
        index = np.asarray(eval_index)
    evaluation = evaluate_cvae(model, guide, x, y, seed=seed, progress=progress, index=index,
                               **evaluate_kw)
    return CVAEResults(styles, digits, transfer, evaluation)
