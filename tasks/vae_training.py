"""Training a VAE or the label-conditioned VAE (the models of questions c-f).

::

    from probnn.tasks import vae_training
    fit = vae_training.run(vae_training.Config(latent_dim=20), Inputs(), checkpoint="vae-d20.ckpt")
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference.precision import PRECISIONS
from probnn.inference.vae import VAEFit, history_from_checkpoint, load_vae, train_vae, vae_stem

from .inputs import Inputs
from .validation import (EPOCHS, FRACTION, LATENT, POSITIVE_FLOAT, POSITIVE_INT,
                         SAMPLES, SEED, check, choice)

ARCHITECTURES = ("conv", "mlp")
LIKELIHOODS = ("bernoulli", "continuous_bernoulli")

KIND, DATA = "train", "mnist"


@dataclass(frozen=True)
class Config:
    """The model (``latent_dim``, ``architecture`` ``conv``/``mlp``, ``conditional``,
    ``likelihood``, ``binarize``), the training (the coursework's: Adam lr 1e-3, batch 100,
    5 epochs, Trace_ELBO) and the data (the first ``train_images`` of the training set;
    ``holdout_split``: train on the coursework's random 1 - fraction of it)."""
    latent_dim: int = 4
    architecture: str = "conv"
    conditional: bool = False
    likelihood: str = "bernoulli"
    binarize: bool = False
    epochs: int = 5
    batch_size: int = 100
    lr: float = 1e-3
    elbo: str = "trace"
    num_particles: int = 1
    train_images: int | None = None
    holdout_split: float | None = None
    seed: int = COURSEWORK_SEED
    precision: str = "bf16"
    """The networks' precision in training: ``bf16`` (bfloat16 autocast; sums, KL, output
    layers, parameters and Adam state in fp32; :mod:`probnn.inference.precision`) or
    ``fp32``. bf16 by default: its holdout ELBO and IWAE sat within the fp32 seed spread for
    d=4 and d=20 (``benchmarks/precision_check.py``; ``benchmarks/issue14-results.md``), at
    about 0.57x the time of a step."""

    def __post_init__(self):
        from probnn.inference.elbos import ELBO_NAMES
        check(self, latent_dim=LATENT, architecture=choice(*ARCHITECTURES),
              likelihood=choice(*LIKELIHOODS), epochs=EPOCHS, batch_size=POSITIVE_INT,
              lr=POSITIVE_FLOAT, elbo=choice(*ELBO_NAMES), num_particles=SAMPLES,
              train_images=POSITIVE_INT.optional(), holdout_split=FRACTION.optional(), seed=SEED,
              precision=choice(*PRECISIONS))

    def name(self) -> str:
        """The model's file-name stem (``vae-d4``, ``vae-mlp-d20``, ``cvae-d4``, ...)."""
        return vae_stem(self.latent_dim, self.likelihood, self.architecture, self.binarize,
                        self.conditional)


def run(config: Config, inputs: Inputs, *, checkpoint=None, resume: bool = False,
        progress: bool = False, device: str | torch.device | None = None) -> VAEFit:
    check_data(config, inputs)
    (x, y, _), _ = inputs.mnist(config.holdout_split)
    return train_vae(config.latent_dim, x=x, y=y, conditional=config.conditional,
                     epochs=config.epochs, batch_size=config.batch_size, lr=config.lr,
                     seed=config.seed, elbo=config.elbo, num_particles=config.num_particles,
                     likelihood=config.likelihood, architecture=config.architecture,
                     binarize=config.binarize, checkpoint=checkpoint, resume=resume,
                     progress=progress, train_images=config.train_images,
                     holdout_split=config.holdout_split, precision=config.precision,
                     device=inputs.device if device is None else device)


def check_data(config: Config, inputs: Inputs) -> None:
    """The settings that depend on the data (``train_images``): :class:`~probnn.tasks.validation.ConfigError` before
    any training when they do not fit it."""
    inputs.check_sizes(config.holdout_split, train={"train_images": config.train_images})


def load(config: Config, inputs: Inputs, checkpoint) -> VAEFit:
    """The trained model and its history from a finished ``run``'s checkpoint."""
    model, guide = load_vae(checkpoint)
    return VAEFit(model, guide, history_from_checkpoint(checkpoint), checkpoint)
