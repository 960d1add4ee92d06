"""The ELBO-estimator study of one trained VAE: bias and spread of the estimators, gradient
SNR per objective, and (optionally) one model trained per objective."""
from __future__ import annotations

from dataclasses import dataclass

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference import estimator_study as es
from probnn.inference.vae import vae_name

from .inputs import Inputs
from .validation import (DRAWS, EPOCHS, FRACTION, OBJECTIVE, POSITIVE_INT, SAMPLES, SAMPLES0, SEED,
                         SEEDS, STEPS0, check, check_each)

KIND, DATA = "evaluate", "mnist"
_FULL = es.FULL


@dataclass(frozen=True)
class Config:
    """Sizes of :func:`~probnn.inference.estimator_study.run_estimator_study` (defaults: its
    FULL preset; :meth:`preset` for ``quick``, ``full`` or ``issue``). An empty
    ``train_objectives`` trains no model."""
    holdout_images: int | None = _FULL["holdout_images"]
    ks: tuple[int, ...] = _FULL["ks"]
    elbo_mc_k: int | None = _FULL["elbo_mc_k"]
    repeats: int = _FULL["repeats"]
    snr_objectives: tuple[str, ...] = _FULL["snr_objectives"]
    snr_samples: int = _FULL["snr_samples"]
    snr_images: int = _FULL["snr_images"]
    snr_bootstrap: int = _FULL["snr_bootstrap"]
    train_objectives: tuple[str, ...] = _FULL["train_objectives"]
    train_images: int | None = _FULL["train_images"]
    epochs: int = _FULL["epochs"]
    batch_size: int = _FULL["batch_size"]
    eval_k: int = _FULL["eval_k"]
    eval_images: int | None = _FULL["eval_images"]
    seeds: int = _FULL["seeds"]
    holdout_split: float | None = None
    seed: int = COURSEWORK_SEED

    def __post_init__(self):
        # a spread needs two repeats and two gradient draws; elbo_mc_k 0 or None: no ELBO-MC;
        # snr_bootstrap 0: no standard error of the SNR median
        check(self, holdout_images=POSITIVE_INT.optional(), elbo_mc_k=SAMPLES0.optional(),
              repeats=DRAWS, snr_samples=DRAWS, snr_images=POSITIVE_INT,
              snr_bootstrap=STEPS0, train_images=POSITIVE_INT.optional(),
              epochs=EPOCHS, batch_size=POSITIVE_INT, eval_k=SAMPLES,
              eval_images=POSITIVE_INT.optional(), seeds=SEEDS,
              holdout_split=FRACTION.optional(), seed=SEED)
        check_each(self, "ks", SAMPLES)
        check_each(self, "snr_objectives", OBJECTIVE)
        check_each(self, "train_objectives", OBJECTIVE, empty=True)  # empty: train none

    @classmethod
    def preset(cls, name: str, **overrides) -> "Config":
        sizes = {k: tuple(v) if isinstance(v, list) else v for k, v in es.PRESETS[name].items()}
        return cls(**{**sizes, **overrides})

    def sizes(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in ("holdout_split", "seed")}


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
