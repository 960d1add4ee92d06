"""Question (f): the label-conditioned VAE's style sets, digit samples, style transfer, holdout
evaluation and generative classifier."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from probnn.inference.batching import random_subset
from probnn.inference.cvae import CVAEResults, cvae_results
from probnn.inference.serialization import serializable
from probnn.inference.vae import vae_name

from .inputs import Inputs
from .settings import HoldoutSizes, setting, validate
from .validation import POSITIVE_INT

KIND, DATA = "evaluate", "mnist"
VERSION = 1
"""Part of a cached result's name (:mod:`probnn.jobs`): 1, results carry per-image estimates."""


@dataclass(frozen=True)
class Config(HoldoutSizes):
    """Bounds of log p(x | y) on ``holdout_images`` random holdout images (all by default):
    ELBO, ELBO-MC and IWAE-``k``, IWAE-``large_k`` on ``large_k_images`` of them (0 or None:
    skip); log p(x) and the classifier on ``classify_images`` (ten bounds each)."""
    classify_images: int | None = setting(1000, POSITIVE_INT.optional(),
                                          "holdout images for log p(x) and the classifier (10 "
                                          "bounds each)")

    def __post_init__(self):
        validate(self)


@serializable
@dataclass
class Result:
    name: str
    results: CVAEResults
    history: pd.DataFrame


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> Result:
    """For the conditional VAE of ``inputs.checkpoints[0]``."""
    inputs.check_sizes(config.holdout_split, holdout={"holdout_images": config.holdout_images})
    model, guide = inputs.vae(0, conditional=True)
    _, (hx, hy, _) = inputs.mnist(config.holdout_split)
    res = cvae_results(model, guide, hx, hy, seed=config.seed,
                       eval_index=random_subset(len(hx), config.holdout_images, config.seed),
                       k=config.k, large_k=config.large_k or None,
                       large_k_images=config.large_k_images,
                       classify_images=config.classify_images, progress=progress,
                       precision=config.precision)
    return Result(vae_name(model), res, inputs.history(0))
