"""The ELBO-estimator study of one trained VAE: bias and spread of the estimators, gradient
SNR per objective, and (optionally) one model trained per objective."""
from __future__ import annotations

from dataclasses import dataclass

from probnn.inference import estimator_study as es
from probnn.inference.vae import vae_name

from .inputs import Inputs
from .settings import holdout_split_setting, seed_setting, setting, validate, with_preset
from .validation import (DRAWS, EPOCHS, OBJECTIVE, POSITIVE_INT, SAMPLES, SAMPLES0, SEEDS,
                         STEPS0)

KIND, DATA = "evaluate", "mnist"


@dataclass(frozen=True)
class Config:
    """Sizes of :func:`~probnn.inference.estimator_study.run_estimator_study`: the bias and
    spread of the estimators, the gradient SNR, and one model trained per objective (an
    empty ``train_objectives`` trains none). Defaults: the ``standard`` preset of
    :data:`PRESETS` (minutes per conv model); :meth:`preset` for the others."""
    holdout_images: int | None = setting(12, POSITIVE_INT.optional(),
                                         "holdout images for the bias/spread part")
    ks: tuple[int, ...] = setting(es.ESTIMATOR_KS, None, "IWAE sample sizes K", each=SAMPLES)
    elbo_mc_k: int | None = setting(100, SAMPLES0.optional(), "samples of ELBO-MC, 0 to skip it")
    repeats: int = setting(5, DRAWS, "independent repeats of every estimate, 2 at least")
    snr_objectives: tuple[str, ...] = setting(
        es.OBJECTIVES, None, "objectives for the gradient SNR: trace, meanfield, stl, iwae, "
        "dreg-iwae, each with -K for K particles", each=OBJECTIVE)
    snr_samples: int = setting(30, DRAWS, "gradient draws per objective, 2 at least")
    snr_images: int = setting(16, POSITIVE_INT, "training images in the fixed minibatch")
    snr_bootstrap: int = setting(100, STEPS0, "bootstrap resamples of the SNR median's "
                                 "standard error; 0: none")
    train_objectives: tuple[str, ...] = setting(
        es.TRAIN_OBJECTIVES, None, "objectives to train a VAE with", each=OBJECTIVE, empty=True)
    train_images: int | None = setting(800, POSITIVE_INT.optional(),
                                       "first N training images to train on; none: all")
    epochs: int = setting(1, EPOCHS, "training epochs")
    batch_size: int = setting(40, POSITIVE_INT, "training batch size")
    eval_k: int = setting(200, SAMPLES, "IWAE K scoring the trained models")
    eval_images: int | None = setting(20, POSITIVE_INT.optional(),
                                      "holdout images scoring the trained models")
    seeds: int = setting(3, SEEDS, "train every objective from this many seeds (seed, "
                         "seed + 1, ...)")
    holdout_split: float | None = holdout_split_setting()
    seed: int = seed_setting()

    def __post_init__(self):
        validate(self)

    @classmethod
    def preset(cls, name: str, **overrides) -> "Config":
        """The sizes of ``PRESETS[name]`` with ``overrides``."""
        return with_preset(cls, PRESETS, name, **overrides)

    def sizes(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in ("holdout_split", "seed")}


PRESETS = {
    "quick": dict(holdout_images=3, ks=(1, 10, 100), elbo_mc_k=10, repeats=2,
                  snr_objectives=("trace", "stl", "iwae-1", "dreg-iwae-1", "iwae-5",
                                  "dreg-iwae-5"),
                  snr_samples=3, snr_images=2, train_objectives=("trace", "dreg-iwae-5"),
                  train_images=40, batch_size=20, eval_k=20, eval_images=5, seeds=2),
    "standard": {},
    "thorough": dict(holdout_images=1000, snr_objectives=es.objective_grid(ks=(1, 5, 50, 500)),
                     snr_samples=100, snr_images=100, train_images=None, epochs=5,
                     batch_size=100, eval_k=5000, eval_images=1000),
}
"""The study's sizes by name, as changes to the defaults: ``quick`` a smoke run of every part
(seconds a model, numbers too noisy to read); ``standard`` (the defaults) minutes a conv
model, the report's sizes; ``thorough`` the literature's sizes (all 60,000 training images
for 5 epochs, SNR up to K=500): many hours a model on a laptop. Costs scale as: bias/spread
~ holdout_images x repeats x (sum(ks) + elbo_mc_k + 1) image-particle pairs; SNR ~
snr_objectives x snr_samples x snr_images x (1 + K) passes; training ~ train_images x epochs
x the objectives' (1 + K)."""


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> es.EstimatorStudy:
    """For the VAE of ``inputs.checkpoints[0]``."""
    trains = bool(config.train_objectives)
    inputs.check_sizes(config.holdout_split,
                       train={"snr_images": config.snr_images,
                              **({"train_images": config.train_images} if trains else {})},
                       holdout={"holdout_images": config.holdout_images,
                                **({"eval_images": config.eval_images} if trains else {})})
    model, guide = inputs.vae(0)
    (train_x, _, _), (holdout_x, _, _) = inputs.mnist(config.holdout_split)
    return es.run_estimator_study(model, guide, holdout_x, train_x, name=vae_name(model),
                                  seed=config.seed, progress=progress, **config.sizes())
