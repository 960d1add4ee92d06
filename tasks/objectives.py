"""Which training objective trains the best model: one VAE per objective from the same start
and batches, scored on one holdout yardstick."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference.estimator_study import TRAIN_OBJECTIVES, objective_comparison
from probnn.inference.serialization import serializable
from probnn.inference.vae import vae_stem

from .inputs import Inputs
from .validation import (EPOCHS, FRACTION, LATENT, OBJECTIVE, POSITIVE_INT, SAMPLES, SEED, SEEDS,
                         check, check_each, choice)
from .vae_training import ARCHITECTURES, LIKELIHOODS

KIND, DATA = "evaluate", "mnist"


@dataclass(frozen=True)
class Config:
    """The objectives (``trace``, ``meanfield``, ``stl``, ``iwae-K``, ``dreg-iwae-K``), the
    model trained with each, the training (first ``train_images``, ``epochs``, ``batch_size``),
    the yardstick (IWAE-``eval_k`` on the first ``eval_images`` holdout images) and the number
    of ``seeds`` (``seed``, ``seed + 1``, ...; every objective trained once per seed)."""
    objectives: tuple[str, ...] = TRAIN_OBJECTIVES
    latent_dim: int = 4
    architecture: str = "conv"
    likelihood: str = "bernoulli"
    binarize: bool = False
    train_images: int | None = None
    epochs: int = 1
    batch_size: int = 100
    eval_k: int = 5000
    eval_images: int | None = None
    seeds: int = 3
    holdout_split: float | None = None
    seed: int = COURSEWORK_SEED

    def __post_init__(self):
        check(self, latent_dim=LATENT, architecture=choice(*ARCHITECTURES),
              likelihood=choice(*LIKELIHOODS), train_images=POSITIVE_INT.optional(),
              epochs=EPOCHS, batch_size=POSITIVE_INT, eval_k=SAMPLES,
              eval_images=POSITIVE_INT.optional(), seeds=SEEDS,
              holdout_split=FRACTION.optional(), seed=SEED)
        check_each(self, "objectives", OBJECTIVE)


@serializable
@dataclass
class Result:
    name: str
    """The trained models' name stem, e.g. ``vae-mlp-d20``."""
    table: pd.DataFrame
    """One row per objective and seed: see
    :func:`~probnn.inference.estimator_study.objective_comparison` (and
    :func:`~probnn.inference.estimator_study.summarise_objectives` for the seed summary)."""


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> Result:
    inputs.check_sizes(config.holdout_split, train={"train_images": config.train_images},
                       holdout={"eval_images": config.eval_images})
    (train_x, _, _), (holdout_x, _, _) = inputs.mnist(config.holdout_split)
    table = objective_comparison(train_x, holdout_x, config.objectives, config.epochs,
                                 config.latent_dim, config.eval_k, config.seed,
                                 architecture=config.architecture, likelihood=config.likelihood,
                                 binarize=config.binarize, train_images=config.train_images,
                                 eval_images=config.eval_images, batch_size=config.batch_size,
                                 seeds=config.seeds, progress=progress)
    return Result(vae_stem(config.latent_dim, config.likelihood, config.architecture,
                           config.binarize), table)
