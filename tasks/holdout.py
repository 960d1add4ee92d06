"""Question (e): one VAE's log-likelihood estimates on holdout images (a row of the
d=4 vs d=20 vs PyTorch-example comparison)."""
from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from probnn.inference.serialization import serializable
from probnn.inference.vae import comparison_estimates, vae_name

from .inputs import Inputs
from .settings import HoldoutSizes, setting, validate
from .validation import POSITIVE_INT

KIND, DATA = "evaluate", "mnist"
VERSION = 1
"""Part of a cached result's name (:mod:`probnn.jobs`): 1, results carry per-image estimates."""


@dataclass(frozen=True)
class Config(HoldoutSizes):
    """ELBO, ELBO-MC and IWAE-``k`` on ``holdout_images`` random holdout images (all by
    default), IWAE-``large_k`` on ``large_k_images`` of them (0 or None: skip), and the
    one-sample ELBO on ``train_images`` training images."""
    train_images: int | None = setting(10_000, POSITIVE_INT.optional(),
                                       "random training images for the one-sample ELBO on "
                                       "training data")

    def __post_init__(self):
        validate(self)


@serializable
@dataclass
class Result:
    name: str
    row: dict
    """Estimates in nats per image: see :func:`~probnn.inference.vae.comparison_row`."""
    history: pd.DataFrame
    per_image: dict = field(default_factory=dict)
    """``"all"``/``"subset"`` -> :class:`~probnn.inference.paired.PerImage`, indexed by
    position in the holdout set: the images ``row``'s means are over."""


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> Result:
    """For the VAE of ``inputs.checkpoints[0]``."""
    inputs.check_sizes(config.holdout_split, train={"train_images": config.train_images},
                       holdout={"holdout_images": config.holdout_images})
    model, guide = inputs.vae(0)
    (train_x, _, _), (holdout_x, _, _) = inputs.mnist(config.holdout_split)
    row, per_image = comparison_estimates(
        model, guide, holdout_x, train_x, k=config.k, large_k=config.large_k or None,
        large_k_images=config.large_k_images, holdout_images=config.holdout_images,
        train_images=config.train_images, seed=config.seed, precision=config.precision)
    return Result(vae_name(model), row, inputs.history(0), per_image)
