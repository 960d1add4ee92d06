"""Questions (c)-(d) for one trained VAE: reconstructions, noise, samples, interpolation, and
the likely and unlikely training images."""
from __future__ import annotations

from dataclasses import dataclass

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference.vae import VAEResults, compute_results, vae_name

from .inputs import Inputs
from .validation import (FRACTION, POSITIVE_INT, SAMPLES, SEED, check)

KIND, DATA = "evaluate", "mnist"


@dataclass(frozen=True)
class Config:
    """``rank_k``-sample IWAE bound of every training image (or a random ``rank_subset``)."""
    rank_subset: int | None = None
    rank_k: int = 100
    holdout_split: float | None = None
    seed: int = COURSEWORK_SEED

    def __post_init__(self):
        check(self, rank_subset=POSITIVE_INT.optional(), rank_k=SAMPLES,
              holdout_split=FRACTION.optional(), seed=SEED)


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> VAEResults:
    """For the VAE of ``inputs.checkpoints[0]``."""
    inputs.check_sizes(config.holdout_split, train={"rank_subset": config.rank_subset})
    model, guide = inputs.vae(0)
    (train_x, train_y, _), _ = inputs.mnist(config.holdout_split)
    return compute_results(model, guide, train_x, train_y, name=vae_name(model),
                           rank_subset=config.rank_subset, rank_k=config.rank_k, seed=config.seed,
                           progress=progress, history=inputs.history(0))
