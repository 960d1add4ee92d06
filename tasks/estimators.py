"""The ELBO-estimator study of one trained VAE: bias and spread of the estimators, gradient
SNR per objective, and (optionally) one model trained per objective."""
from __future__ import annotations

from dataclasses import dataclass

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference import estimator_study as es
from probnn.inference.vae import vae_name

from .inputs import Inputs

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

    @classmethod
    def preset(cls, name: str, **overrides) -> "Config":
        sizes = {k: tuple(v) if isinstance(v, list) else v for k, v in es.PRESETS[name].items()}
        return cls(**{**sizes, **overrides})

    def sizes(self) -> dict:
        return {k: v for k, v in vars(self).items() if k not in ("holdout_split", "seed")}


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> es.EstimatorStudy:
    """For the VAE of ``inputs.checkpoints[0]``."""
    model, guide = inputs.vae(0)
    (train_x, _, _), (holdout_x, _, _) = inputs.mnist(config.holdout_split)
    return es.run_estimator_study(model, guide, holdout_x, train_x, name=vae_name(model),
                                  seed=config.seed, progress=progress, **config.sizes())
