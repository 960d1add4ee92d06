"""Questions (c)-(d) for one trained VAE: reconstructions, noise, samples, interpolation, and
the likely and unlikely training images."""
from __future__ import annotations

from dataclasses import dataclass

from probnn.inference.vae import VAEResults, compute_results, vae_name

from .inputs import Inputs
from .settings import holdout_split_setting, seed_setting, setting, validate
from .validation import POSITIVE_INT, SAMPLES

KIND, DATA = "evaluate", "mnist"


@dataclass(frozen=True)
class Config:
    """``rank_k``-sample IWAE bound of every training image (or a random ``rank_subset``)."""
    rank_subset: int | None = setting(None, POSITIVE_INT.optional(),
                                      "score a random subset of this many training images; "
                                      "none: all of them")
    rank_k: int = setting(100, SAMPLES, "samples per image for the bound")
    holdout_split: float | None = holdout_split_setting()
    seed: int = seed_setting()

    def __post_init__(self):
        validate(self)


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> VAEResults:
    """For the VAE of ``inputs.checkpoints[0]``."""
    inputs.check_sizes(config.holdout_split, train={"rank_subset": config.rank_subset})
    model, guide = inputs.vae(0)
    (train_x, train_y, _), _ = inputs.mnist(config.holdout_split)
    return compute_results(model, guide, train_x, train_y, name=vae_name(model),
                           rank_subset=config.rank_subset, rank_k=config.rank_k, seed=config.seed,
                           progress=progress, history=inputs.history(0))
