"""Training a VAE or the label-conditioned VAE (the models of questions c-f).

::

    from probnn.tasks import vae_training
    fit = vae_training.run(vae_training.Config(latent_dim=20), Inputs(), checkpoint="vae-d20.ckpt")
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from probnn.inference.elbos import ELBO_NAMES
from probnn.inference.vae import VAEFit, history_from_checkpoint, load_vae, train_vae, vae_stem

from .inputs import Inputs
from .settings import precision_setting, seed_setting, setting, validate
from .validation import EPOCHS, FRACTION, LATENT, POSITIVE_FLOAT, POSITIVE_INT, SAMPLES, choice

ARCHITECTURES = ("conv", "mlp")
LIKELIHOODS = ("bernoulli", "continuous_bernoulli")

KIND, DATA = "train", "mnist"


def latent_setting(default: int):
    return setting(default, LATENT, "dimension of the latent z")


def architecture_setting(default: str):
    return setting(default, choice(*ARCHITECTURES),
                   "conv: the coursework's networks; mlp: the PyTorch example VAE's")


def likelihood_setting():
    return setting("bernoulli", choice(*LIKELIHOODS), "the pixels' likelihood")


def binarize_setting():
    return setting(False, None, "train on dynamically binarised images")


@dataclass(frozen=True)
class Config:
    """The model (``latent_dim``, ``architecture`` ``conv``/``mlp``, ``conditional``,
    ``likelihood``, ``binarize``), the training (the coursework's: Adam lr 1e-3, batch 100,
    5 epochs, Trace_ELBO) and the data (the first ``train_images`` of the training set;
    ``holdout_split``: train on the coursework's random 1 - fraction of it)."""
    latent_dim: int = latent_setting(4)
    architecture: str = architecture_setting("conv")
    conditional: bool = setting(False, None, "condition on the label (question f)", cli=False)
    likelihood: str = likelihood_setting()
    binarize: bool = binarize_setting()
    epochs: int = setting(5, EPOCHS, "training epochs")
    batch_size: int = setting(100, POSITIVE_INT, "batch size")
    lr: float = setting(1e-3, POSITIVE_FLOAT, "Adam learning rate")
    elbo: str = setting("trace", choice(*ELBO_NAMES),
                        "trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL); stl: "
                        "the ELBO without the guide's score term (sticking the landing); iwae: "
                        "importance-weighted bound with --particles samples; dreg-iwae: the "
                        "same bound with doubly reparameterised guide gradients")
    num_particles: int = setting(1, SAMPLES, "samples per image of the objective",
                                 flag="--particles")
    train_images: int | None = setting(None, POSITIVE_INT.optional(),
                                       "train on the first N training images only; none: all")
    holdout_split: float | None = setting(None, FRACTION.optional(),
                                          "hold out this random fraction of the training set "
                                          "(coursework: 0.1) instead of using the official test "
                                          "set")
    seed: int = seed_setting()
    precision: str = precision_setting("bf16", "training")
    """bf16 by default: its holdout ELBO and IWAE sat within the fp32 seed spread for d=4 and
    d=20 (``benchmarks/precision_check.py``), at a lower cost per step on a CPU with bf16
    arithmetic."""

    def __post_init__(self):
        validate(self)

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
    """The trained model (on ``inputs.device``) and its history from a finished ``run``'s
    checkpoint."""
    model, guide = load_vae(checkpoint, device=inputs.device)
    return VAEFit(model, guide, history_from_checkpoint(checkpoint), checkpoint)
