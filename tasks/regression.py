"""Questions (a)-(b) and the dip cures: maximum-likelihood fits of a regression model from
``seeds`` seeds at once (one batched ensemble, see
:func:`~probnn.inference.regression.fit_ensemble`).

::

    from probnn.tasks import regression
    ens = regression.run(regression.Config(model="heteroscedastic", sigma_floor=0.05), Inputs())
    fit = ens.member(309)   # the coursework seed's fit
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference.train import one_thread
from probnn.inference.regression import (COURSEWORK_EPOCHS, EnsembleFit, ensemble_seeds,
                                         fit_ensemble, load_ensemble)
from probnn.models.regression import HeteroscedasticRegression

from .inputs import Inputs
from .validation import (ENSEMBLE_SEEDS, EPOCHS, MAX_SEED, NONNEG_FLOAT, POSITIVE_FLOAT,
                         POSITIVE_INT, SEED, UNIT_INTERVAL, check, choice, require)

MAX_SEED_EPOCHS = 4_000_000
"""Seeds x epochs at most: f and sigma are recorded for every member, point and epoch
(preallocated, 248 bytes per member-epoch): at most ~1 GB."""

KIND, DATA = "train", "xkcd"


@dataclass(frozen=True)
class Config:
    """``model``: ``homoscedastic`` or ``heteroscedastic``; the coursework's training (Adam,
    full batch) for ``epochs``, from the ``seeds`` seeds ``seed``, ``seed + 1``, ... at once;
    ``sigma_floor``, ``beta`` and ``cure`` (``none``, ``faithful``, ``natural``) are the
    heteroscedastic model's dip cures; ``jit`` compiles the loss (same numbers, faster)."""
    model: str = "heteroscedastic"
    epochs: int = COURSEWORK_EPOCHS
    lr: float = 1e-3
    checkpoint_every: int = 5000
    sigma_floor: float = 0.0
    beta: float = 0.0
    jit: bool = True
    seed: int = COURSEWORK_SEED
    seeds: int = 8
    cure: str = "none"

    def __post_init__(self):
        check(self, model=choice("homoscedastic", "heteroscedastic"), epochs=EPOCHS,
              lr=POSITIVE_FLOAT, checkpoint_every=POSITIVE_INT, sigma_floor=NONNEG_FLOAT,
              beta=UNIT_INTERVAL, seed=SEED, seeds=ENSEMBLE_SEEDS,
              cure=choice(*HeteroscedasticRegression.CURES))
        require(self.model == "heteroscedastic"
                or not (self.sigma_floor or self.beta or self.cure != "none"),
                "sigma_floor, beta and the cures apply to the heteroscedastic model only")
        require(self.cure == "none" or not (self.sigma_floor or self.beta),
                f"the {self.cure} cure does not combine with sigma_floor or beta")
        require(self.seeds * self.epochs <= MAX_SEED_EPOCHS,
                f"seeds x epochs must be at most {MAX_SEED_EPOCHS:,} (every member's f and sigma "
                f"are kept for every epoch), got {self.seeds} x {self.epochs:,}")
        require(self.seed + self.seeds - 1 <= MAX_SEED,
                f"the seeds run from seed to seed + seeds - 1, which must be at most {MAX_SEED}")

    @property
    def member_seeds(self) -> tuple[int, ...]:
        return ensemble_seeds(self.seed, self.seeds)


def run(config: Config, inputs: Inputs, *, checkpoint=None, resume: bool = False,
        progress: bool = False) -> EnsembleFit:
    """Fit the model from every seed (resuming ``checkpoint`` with ``resume``), on one torch
    thread: with 31 points a second thread only adds synchronisation."""
    x, y = inputs.xkcd()
    with one_thread(), _scale_hint(x, y, config.model):
        return fit_ensemble(config.model, x, y, seeds=config.member_seeds, epochs=config.epochs,
                            lr=config.lr, checkpoint=checkpoint,
                            checkpoint_every=config.checkpoint_every, resume=resume,
                            progress=progress, jit=config.jit, sigma_floor=config.sigma_floor,
                            beta=config.beta, cure=config.cure)


@contextmanager
def _scale_hint(x, y, model: str):
    """A diverged fit of data far from the coursework's scale says so: the maximum-likelihood
    models take x and y as they are (the xkcd data: |x| < 10, |y| < 20)."""
    try:
        yield
    except FloatingPointError as e:
        big = max(float(x.abs().max()), float(y.abs().max()))
        hint = (f"; the data reach |value| = {big:.3g} and these models take x and y unscaled: "
                "rescale them to within about +-100 (or lower --lr)" if big > 100 else
                "; try a lower --lr" + (" or a sigma floor (--sigma-floor)"
                                        if model == "heteroscedastic" else ""))
        raise FloatingPointError(f"{e}{hint}") from e


def load(config: Config, inputs: Inputs, checkpoint) -> EnsembleFit:
    """The fits a finished ``run`` left in ``checkpoint``, without training."""
    x, y = inputs.xkcd()
    return load_ensemble(config.model, x, y, checkpoint, seeds=config.member_seeds,
                         sigma_floor=config.sigma_floor, beta=config.beta, cure=config.cure)
