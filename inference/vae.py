"""Training, loading and evaluating the image VAEs (coursework questions c-e).

Notebook use::

    from probnn.inference.vae import train_vae, load_vae
    fit = train_vae(latent_dim=4, epochs=5)             # or: model, guide = load_vae("vae-d4.ckpt")
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyro
import torch
from pyro.infer import Predictive

from probnn.datasets import mnist_splits
from probnn.datasets.coursework import (COURSEWORK_SEED, FIGURE_IMAGES, INTERPOLATION_IMAGES,
                                         NOISE_IMAGE, NOISE_SDS)
from probnn.guides.cvae import ConditionalVAEGuide
from probnn.guides.vae import VAEGuide
from probnn.models.cvae import ConditionalVAE
from probnn.models.vae import ARCHITECTURES, LIKELIHOODS, MAX_LATENT_DIM, VAE

from .batching import TensorBatches, random_subset, subset_rows
from .checkpoint import CheckpointError, load_checkpoint, of_type, read_checkpoint, record, require
from .estimators import elbo_mc, iwae_bound, pareto_k, posterior_means
from .evaluation import holdout_estimates
from .serialization import serializable
from .train import HISTORY, fit

class BinarizedBatches(TensorBatches):
    """Dynamic binarisation: every epoch each pixel is redrawn as Bernoulli(grey level).

    Draws from torch's global RNG, so seeded runs and resumed runs see the same images.
    """

    def __iter__(self):
        for batch in super().__iter__():
            yield (torch.bernoulli(batch[0]),) + tuple(batch[1:])


def build_vae(latent_dim: int = 4, likelihood: str = "bernoulli", architecture: str = "conv",
              binarize: bool = False, conditional: bool = False):
    """A fresh model/guide pair (weights drawn from torch's global RNG): a
    :class:`~probnn.models.vae.VAE`, or with ``conditional`` a label-conditioned
    :class:`~probnn.models.cvae.ConditionalVAE`."""
    model_cls, guide_cls = (ConditionalVAE, ConditionalVAEGuide) if conditional else (VAE, VAEGuide)
    return model_cls(latent_dim, likelihood, architecture, binarize), guide_cls(latent_dim, architecture)


def vae_name(model: VAE) -> str:
    """A file-name stem for a model: ``vae-d4``, ``vae-mlp-d20``, ``vae-d4-cb-bin``, ``cvae-d4``."""
    c = model.config
    return vae_stem(c["latent_dim"], c["likelihood"], c["architecture"], c["binarize"],
                    isinstance(model, ConditionalVAE))


def vae_stem(latent_dim: int, likelihood: str = "bernoulli", architecture: str = "conv",
             binarize: bool = False, conditional: bool = False) -> str:
    """:func:`vae_name` of the model :func:`build_vae` would build with these settings."""
    parts = ["cvae" if conditional else "vae"]
    parts += ["mlp"] if architecture == "mlp" else []
    parts += [f"d{latent_dim}"]
    parts += ["cb"] if likelihood == "continuous_bernoulli" else []
    parts += ["bin"] if binarize else []
    return "-".join(parts)


@dataclass
class VAEFit:
    model: VAE
    guide: VAEGuide
    history: pd.DataFrame
    checkpoint: Path | None


def train_vae(latent_dim: int = 4, *, data_dir=None, x: torch.Tensor | None = None,
              y: torch.Tensor | None = None, conditional: bool = False,
              epochs: int = 5, batch_size: int = 100, lr: float = 1e-3, seed: int = COURSEWORK_SEED,
              elbo: str = "trace", num_particles: int = 1, likelihood: str = "bernoulli",
              architecture: str = "conv", binarize: bool = False, checkpoint=None,
              resume: bool = False, progress: bool = True, holdout_split: float | None = None,
              train_images: int | None = None, device: str | torch.device = "cpu",
              precision: str = "fp32") -> VAEFit:
    """Train a VAE by SVI on MNIST training images (or on the images ``x`` given).

    Defaults are the coursework's: Adam lr 1e-3, batch 100, 5 epochs, seed 309, Trace_ELBO.
    With ``holdout_split`` the training set is the coursework's random (1 - fraction) part
    (with ``x`` given, it is only recorded, so that a resume on another split is refused).
    With ``conditional`` the model is the label-conditioned VAE, trained on ``(x, y)``.
    ``train_images`` keeps only the first N training images (for quick runs).
    ``precision``: ``"fp32"`` or ``"bf16"`` (the networks under bfloat16 autocast; see
    :mod:`probnn.inference.precision`). ``device``: the model and the data are moved there once.
    The checkpoint is written every epoch and on Ctrl-C; ``resume=True`` continues it.
    """
    if train_images is not None and train_images < 0:  # x[:-5] would drop 5 images instead
        raise ValueError(f"train_images must be >= 1 or None, got {train_images}")
    if x is None:
        (x, y, _), _ = mnist_splits(data_dir, holdout_split)
    if train_images:
        x, y = x[:train_images], (y[:train_images] if y is not None else None)
    if conditional and y is None:
        raise ValueError("the conditional VAE trains on labelled images: pass y")
    torch.manual_seed(seed)
    model, guide = build_vae(latent_dim, likelihood, architecture, binarize, conditional)
    model.to(device), guide.to(device)
    data = (x.to(device),) + ((y.to(device),) if conditional else ())
    batches = (BinarizedBatches if binarize else TensorBatches)(data, batch_size)
    result = fit(model, guide, batches, epochs=epochs, elbo=elbo, num_particles=num_particles,
                 lr=lr, seed=seed, checkpoint=checkpoint, checkpoint_every=1, resume=resume,
                 progress=progress, desc=vae_name(model), precision=precision,
                 settings={"train_images": train_images, "holdout_split": holdout_split})
    return VAEFit(model, guide, result.history, result.checkpoint)


VAE_CONFIG = record({
    "latent_dim": of_type(int, expected=f"an int from 1 to {MAX_LATENT_DIM:,}",
                          when=lambda n: 1 <= n <= MAX_LATENT_DIM),
    "likelihood": of_type(str, expected=f"one of {LIKELIHOODS}", when=lambda s: s in LIKELIHOODS),
    "architecture": of_type(str, expected=f"one of {ARCHITECTURES}",
                            when=lambda s: s in ARCHITECTURES),
    "binarize": of_type(bool, expected="a bool"),
}, expected="a VAE's settings", closed=True)
"""A VAE's ``config`` as a checkpoint stores it: :func:`build_vae`'s settings."""


def load_vae(path, latent_dim: int | None = None, *, device: str | torch.device = "cpu", **config):
    """Load a trained VAE (or conditional VAE) and its guide from a checkpoint, in eval mode,
    on ``device`` (the modules are moved there first and the weights copied in, as
    ``map_location`` would).

    With no arguments the model is built from the checkpoint's own configuration. Passing
    ``latent_dim`` (or other settings) asserts what you expect: a checkpoint written for
    another configuration raises :class:`~probnn.inference.checkpoint.CheckpointError`.
    """
    state = read_checkpoint(path)
    kinds = {VAE.__name__: False, ConditionalVAE.__name__: True}
    if state["model"]["class"] not in kinds:
        raise CheckpointError(f"{path} holds a {state['model']['class']}, not a VAE")
    saved = dict(state["model"]["config"])
    require(saved, VAE_CONFIG, path, "model.config")
    want = {**saved, **config, **({"latent_dim": latent_dim} if latent_dim is not None else {})}
    model, guide = build_vae(**want, conditional=kinds[state["model"]["class"]])
    model.to(device), guide.to(device)
    load_checkpoint(path, model, guide)
    return model.eval(), guide.eval()


def history_from_checkpoint(path) -> pd.DataFrame:
    """The per-epoch training history stored in a checkpoint (empty if it has none)."""
    extra = read_checkpoint(path)["extra"]
    if "history" in extra:
        require(extra["history"], HISTORY, path, "extra.history")
    rows = extra.get("history", [])
    # no epoch finished yet (interrupted in the first): the columns all the same
    return pd.DataFrame(rows) if rows else pd.DataFrame(columns=["epoch", "loss", "elbo", "seconds"])




# ----------------------------------------------------------------------------- sampling
@torch.no_grad()
def posterior_samples(guide, x: torch.Tensor, num_samples: int) -> torch.Tensor:
    """``num_samples`` draws of z ~ q(z | x) for each image, shape (num_samples, n, d)."""
    return Predictive(guide, num_samples=num_samples, return_sites=["z"], parallel=True)(x)["z"]


@torch.no_grad()
def decode(model, z: torch.Tensor, generator: torch.Generator | None = None):
    """Pixel probability maps for latent codes ``z`` (..., d) and one Bernoulli sample of each."""
    probs = model.pixel_probs(z).clamp(0, 1)
    return probs, torch.bernoulli(probs, generator=generator)


@torch.no_grad()
def reconstruct(model, guide, x: torch.Tensor, num_samples: int = 3):
    """Reconstructions of images ``x``: z ~ q(z | x), then the decoder's probability map and a
    Bernoulli sample, each of shape (num_samples, n, 1, 28, 28)."""
    return decode(model, posterior_samples(guide, x, num_samples))


@torch.no_grad()
def sample_prior(model, n: int):
    """``n`` images from the model: z ~ N(0, I), probability maps and samples, (n, 1, 28, 28)."""
    z = Predictive(model, num_samples=1, return_sites=["z"])(None, n)["z"][0]
    return decode(model, z)


@torch.no_grad()
def interpolate(model, guide, x_from: torch.Tensor, x_to: torch.Tensor, steps: int = 12):
    """Decode ``steps`` points on the straight line between the posterior means of two images."""
    mu = posterior_means(guide, (torch.stack([x_from, x_to]),))
    t = torch.linspace(0, 1, steps, device=mu.device).unsqueeze(-1)
    return decode(model, (1 - t) * mu[0] + t * mu[1])


def add_noise(x: torch.Tensor, sd: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Gaussian pixel noise of standard deviation ``sd``, clamped back to [0, 1]."""
    # drawn on the CPU (where ``generator`` lives), so every device adds the same noise
    noise = torch.randn(x.shape, generator=generator, device="cpu").to(x.device) * sd
    return (x + noise).clamp(0, 1)


# ----------------------------------------------------------------------------- coursework results
@serializable
@dataclass
class VAEResults:
    """Everything the VAE figures and tables of questions (c)-(e) need, computed from a
    trained model; plotted by :func:`probnn.analysis.vae.vae_sections`."""
    name: str
    originals: torch.Tensor          # (4, 1, 28, 28) training images FIGURE_IMAGES
    recon_probs: torch.Tensor        # (3, 4, 1, 28, 28)
    recon_samples: torch.Tensor
    noise_sds: tuple
    noisy: torch.Tensor              # (5, 1, 28, 28) training image NOISE_IMAGE with noise
    noisy_probs: torch.Tensor
    noisy_samples: torch.Tensor
    noisy_bounds: np.ndarray         # (5,) IWAE bound of each noisy image
    clean_bound: float               # IWAE bound of image NOISE_IMAGE itself
    prior_probs: torch.Tensor        # (12, 1, 28, 28)
    prior_samples: torch.Tensor
    interp_probs: torch.Tensor       # (12, 1, 28, 28) between the INTERPOLATION_IMAGES
    interp_samples: torch.Tensor
    rank_index: np.ndarray           # training-image indices that were scored
    rank_labels: np.ndarray
    rank_bounds: np.ndarray          # their IWAE bound with rank_k samples
    rank_k: int
    shown_pareto_k: dict             # training index -> Pareto k, for the most/least likely shown
    history: pd.DataFrame


@torch.no_grad()
def compute_results(model, guide, train_x: torch.Tensor, train_y: torch.Tensor, *,
                    name: str = "vae", rank_subset: int | None = None, rank_k: int = 100,
                    shown: int = 50, seed: int = COURSEWORK_SEED, batch_size: int = 100,
                    progress: bool = True, history: pd.DataFrame | None = None) -> VAEResults:
    """Compute the coursework's VAE results: reconstructions, noisy inputs with their bounds,
    prior samples, an interpolation, and the ``rank_k``-sample bound of every training image
    (or of a random ``rank_subset`` of them) for the likely/unlikely analysis."""
    pyro.set_rng_seed(seed)
    idx = list(FIGURE_IMAGES)
    originals = train_x[idx]
    r_probs, r_samples = reconstruct(model, guide, originals, 3)
    g = torch.Generator().manual_seed(seed)
    base = train_x[NOISE_IMAGE]
    noisy = torch.stack([add_noise(base, sd, g) for sd in NOISE_SDS])
    n_probs, n_samples = reconstruct(model, guide, noisy, 1)
    bounds = iwae_bound(model, guide, (torch.cat([noisy, base[None]]),), rank_k,
                        diagnostics=False).bound
    p_probs, p_samples = sample_prior(model, 12)
    start, end = INTERPOLATION_IMAGES
    i_probs, i_samples = interpolate(model, guide, train_x[start], train_x[end], 12)

    rank_index = random_subset(len(train_x), rank_subset, seed)
    rank = iwae_bound(model, guide, (subset_rows(train_x, rank_index),), rank_k,
                      batch_size=batch_size, diagnostics=True, pareto=False, progress=progress)
    order = np.argsort(rank.bound)
    shown_rows = np.concatenate([order[:shown], order[-shown:]])
    k = pareto_k(rank.log_weights[shown_rows])
    shown_k = {int(rank_index[r]): float(v) for r, v in zip(shown_rows, k)}
    cpu = [t.cpu() for t in (originals, r_probs, r_samples, noisy, n_probs[0], n_samples[0],
                             p_probs, p_samples, i_probs, i_samples)]
    return VAEResults(name, *cpu[:3], NOISE_SDS, *cpu[3:6], bounds[:-1], float(bounds[-1]),
                      *cpu[6:], rank_index.numpy(),
                      train_y[rank_index].cpu().numpy(), rank.bound, rank_k, shown_k,
                      history if history is not None else pd.DataFrame())


def comparison_row(model, guide, holdout_x: torch.Tensor, train_x: torch.Tensor | None = None,
                   **kw) -> dict:
    """The row of :func:`comparison_estimates` (its per-image estimates dropped)."""
    return comparison_estimates(model, guide, holdout_x, train_x, **kw)[0]


def comparison_subset(n: int, holdout_images: int | None, large_k_images: int | None,
                      seed: int = COURSEWORK_SEED) -> torch.Tensor:
    """Indices into a holdout set of ``n`` images of the large-K subset that
    :func:`comparison_estimates` scores (``holdout_images``, then ``large_k_images`` of them),
    so that another question can score the same images and pair its estimates with these."""
    outer = random_subset(n, holdout_images, seed)
    return outer[random_subset(len(outer), large_k_images, seed + 1)]


def comparison_estimates(model, guide, holdout_x: torch.Tensor,
                         train_x: torch.Tensor | None = None, *, k: int = 100,
                         large_k: int | None = 1000, large_k_images: int | None = 1000,
                         holdout_images: int | None = None, train_images: int | None = 10_000,
                         seed: int = COURSEWORK_SEED, batch_size: int = 100,
                         precision: str = "fp32") -> tuple[dict, dict]:
    """One model's row of the comparison table (question e), in nats per image, and its
    per-image estimates.

    On ``holdout_images`` holdout images (all by default): the one-sample ELBO, ELBO-MC (100
    samples, split into reconstruction and KL), IWAE-``k``, the active units and, for ``k``
    other than 100, the fraction of images whose Pareto k is above 0.7
    (:func:`~probnn.inference.evaluation.holdout_estimates`). The
    ``large_k`` bound costs ``large_k / k`` times more, so it runs on a random subset of
    ``large_k_images``, beside the other estimates of the same images (``*_subset``) and the
    paired gap ``gap_<large_k>`` for a like-for-like comparison. ``train_elbo``: the one-sample
    ELBO on ``train_images`` training images, to show the train/holdout gap.

    The per-image estimates (``{"all": PerImage, "subset": PerImage}``) are indexed by
    position in ``holdout_x``, so two models' estimates pair up image by image.
    """
    hx_index = random_subset(len(holdout_x), holdout_images, seed)
    hx = holdout_x[hx_index]
    # the K=k estimates and the large-K comparison in one seeded pass; ELBO-MC keeps the
    # coursework's 100 samples whatever k is
    row, per_image = holdout_estimates(model, guide, (hx,), k=k, ks=(k,), mc_samples=100,
                                       large_k=large_k, large_k_images=large_k_images, seed=seed,
                                       batch_size=batch_size, with_active_units=True,
                                       precision=precision, index=hx_index.numpy())
    if train_x is not None:
        tx = train_x[random_subset(len(train_x), train_images, seed + 2)]
        row["train_images"] = len(tx)
        row["train_elbo"] = float(elbo_mc(model, guide, (tx,), 1, batch_size=batch_size,
                                          precision=precision).elbo.mean())
    return row, per_image
