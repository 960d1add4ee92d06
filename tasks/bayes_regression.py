"""Bayesian versions of both regression models, compared by PSIS-LOO.

::

    from probnn.tasks import bayes_regression
    result = bayes_regression.run(bayes_regression.Config.preset("quick"), Inputs())
"""
from __future__ import annotations

from dataclasses import dataclass, field

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference import bayes_regression as br
from probnn.inference.serialization import serializable
from probnn.models.bayes_regression import DEFAULT_PRIOR_SCALE

from .inputs import Inputs
from .validation import (DRAWS, EPOCHS, POSITIVE_FLOAT, SAMPLES, SEED, STEPS0, check)

KIND, DATA = "evaluate", "xkcd"


@serializable
@dataclass(frozen=True)
class Config:
    """SVI ``epochs`` after ``map_steps`` MAP steps per model, ``draws`` posterior draws for
    PSIS-LOO (defaults: the FULL preset)."""
    epochs: int = br.FULL["epochs"]
    draws: int = br.FULL["draws"]
    map_steps: int = br.FULL["map_steps"]
    lr: float = br.DEFAULT_LR
    num_particles: int = br.DEFAULT_PARTICLES
    prior_scale: float = DEFAULT_PRIOR_SCALE
    seed: int = COURSEWORK_SEED

    def __post_init__(self):
        # PSIS-LOO needs two draws at least; 0 MAP steps: SVI starts from the guide's init
        check(self, epochs=EPOCHS, draws=DRAWS, map_steps=STEPS0,
              lr=POSITIVE_FLOAT, num_particles=SAMPLES, prior_scale=POSITIVE_FLOAT,
              seed=SEED)

    @classmethod
    def preset(cls, name: str, **overrides) -> "Config":
        """``quick`` or ``full`` (:data:`~probnn.inference.bayes_regression.QUICK`/``FULL``)."""
        return cls(**{**{"quick": br.QUICK, "full": br.FULL}[name], **overrides})


@serializable
@dataclass
class Result:
    fits: list[br.BayesianRegressionFit]
    compare: br.LooComparison
    config: Config = field(default_factory=Config)


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> Result:
    x, y = inputs.xkcd()
    with br.one_thread():
        fits, compare = br.run_bayes_regression(
            x, y, epochs=config.epochs, draws=config.draws, seed=config.seed, progress=progress,
            map_steps=config.map_steps, lr=config.lr, num_particles=config.num_particles,
            prior_scale=config.prior_scale)
    return Result(fits, compare, config)
