"""Question (f): the label-conditioned VAE's style sets, digit samples, style transfer, holdout
evaluation and generative classifier."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference.batching import random_subset
from probnn.inference.cvae import CVAEResults, cvae_results
from probnn.inference.precision import PRECISIONS
from probnn.inference.serialization import serializable
from probnn.inference.vae import vae_name

from .inputs import Inputs
from .validation import (FRACTION, POSITIVE_INT, SAMPLES, SAMPLES0, SEED, check, choice)

KIND, DATA = "evaluate", "mnist"
VERSION = 1
"""Part of a cached result's name (:mod:`probnn.jobs`): 1, results carry per-image estimates."""


@dataclass(frozen=True)
class Config:
    """Bounds of log p(x | y) on ``holdout_images`` random holdout images (all by default):
    ELBO, ELBO-MC and IWAE-``k``, IWAE-``large_k`` on ``large_k_images`` of them (0 or None:
    skip); log p(x) and the classifier on ``classify_images`` (ten bounds each)."""
    k: int = 100
    large_k: int | None = 1000
    large_k_images: int | None = 1000
    classify_images: int | None = 1000
    holdout_images: int | None = None
    holdout_split: float | None = None
    seed: int = COURSEWORK_SEED
    precision: str = "fp32"
    """The networks' precision in every estimator: ``fp32`` or ``bf16``."""

    def __post_init__(self):
        check(self, precision=choice(*PRECISIONS))
        check(self, k=SAMPLES, large_k=SAMPLES0.optional(),
              large_k_images=POSITIVE_INT.optional(), classify_images=POSITIVE_INT.optional(),
              holdout_images=POSITIVE_INT.optional(), holdout_split=FRACTION.optional(),
              seed=SEED)


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
