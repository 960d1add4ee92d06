"""Which training objective trains the best model: one VAE per objective from the same start
and batches, scored on one holdout yardstick."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import pandas as pd

from probnn.inference.estimator_study import TRAIN_OBJECTIVES, objective_comparison
from probnn.inference.serialization import serializable
from probnn.inference.vae import vae_stem

from .inputs import Inputs
from .settings import holdout_split_setting, seed_setting, setting, validate, with_preset
from .validation import EPOCHS, OBJECTIVE, POSITIVE_INT, SAMPLES, SEEDS
from .vae_training import architecture_setting, binarize_setting, latent_setting, likelihood_setting

KIND, DATA = "evaluate", "mnist"


@dataclass(frozen=True)
class Config:
    """The objectives (``trace``, ``meanfield``, ``stl``, ``iwae-K``, ``dreg-iwae-K``), the
    model trained with each, the training (first ``train_images``, ``epochs``, ``batch_size``),
    the yardstick (IWAE-``eval_k`` on the first ``eval_images`` holdout images) and the number
    of ``seeds`` (``seed``, ``seed + 1``, ...; every objective trained once per seed).
    Defaults: the ``standard`` preset of :data:`PRESETS`, the PyTorch example's MLP VAE
    (IWAE-50 costs about 50 decoder passes a step, which the conv VAE cannot afford in
    minutes)."""
    objectives: tuple[str, ...] = setting(TRAIN_OBJECTIVES, None,
                                          "trace, meanfield, stl, iwae-K, dreg-iwae-K",
                                          each=OBJECTIVE)
    latent_dim: int = latent_setting(20)
    architecture: str = architecture_setting("mlp")
    likelihood: str = likelihood_setting()
    binarize: bool = binarize_setting()
    train_images: int | None = setting(20_000, POSITIVE_INT.optional(),
                                       "first N training images to train on; none: all")
    epochs: int = setting(1, EPOCHS, "training epochs")
    batch_size: int = setting(100, POSITIVE_INT, "batch size")
    eval_k: int = setting(1000, SAMPLES, "IWAE K of the yardstick")
    eval_images: int | None = setting(100, POSITIVE_INT.optional(),
                                      "first N holdout images to score on; none: all")
    seeds: int = setting(3, SEEDS, "train every objective from this many seeds")
    holdout_split: float | None = holdout_split_setting()
    seed: int = seed_setting()

    def __post_init__(self):
        validate(self)

    @classmethod
    def preset(cls, name: str, **overrides) -> "Config":
        """The sizes of ``PRESETS[name]`` with ``overrides``."""
        return with_preset(cls, PRESETS, name, **overrides)


PRESETS = {
    "quick": dict(objectives=("trace", "stl", "iwae-5", "dreg-iwae-5"), train_images=1000,
                  eval_k=50, eval_images=50, seeds=2),
    "standard": {},
    "thorough": dict(latent_dim=4, architecture="conv", train_images=None, eval_k=5000,
                     eval_images=None),
}
"""The sizes by name, as changes to the defaults: ``quick`` a first look (seconds);
``standard`` (the defaults) the report's objectives job, minutes on a laptop; ``thorough``
the coursework's conv VAE on all 60,000 training images scored by IWAE-5000 on every holdout
image (hours on a laptop)."""


@serializable
@dataclass
class Result:
    name: str
    """The trained models' name stem, e.g. ``vae-mlp-d20``."""
    table: pd.DataFrame
    """One row per objective and seed: see
    :func:`~probnn.inference.estimator_study.objective_comparison` (and
    :func:`~probnn.inference.estimator_study.summarise_objectives` for the seed summary)."""


def merge(results: Sequence[Result]) -> Result:
    """One result from results of the same settings for different seeds, in the order given
    (the report runs one job per seed, so that both cores work): their rows one after the
    other. Each seed's rows are complete on their own (the paired differences are against
    that seed's best model), so this equals one run over all the seeds."""
    if len({r.name for r in results}) != 1:
        raise ValueError("merge: results of different models")
    if len(results) == 1:
        return results[0]
    return Result(results[0].name, pd.concat([r.table for r in results], ignore_index=True))


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
