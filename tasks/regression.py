"""Questions (a)-(b) and the dip cures: one maximum-likelihood fit of a regression model.

::

    from probnn.tasks import regression
    fit = regression.run(regression.Config(model="heteroscedastic", sigma_floor=0.05), Inputs())
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference.train import one_thread
from probnn.inference.regression import (COURSEWORK_EPOCHS, RegressionFit, fit_regression,
                                         load_regression)

from .inputs import Inputs
from .validation import (EPOCHS, NONNEG_FLOAT, POSITIVE_FLOAT, POSITIVE_INT, SEED, UNIT_INTERVAL,
                         check, choice, require)

KIND, DATA = "train", "xkcd"


@dataclass(frozen=True)
class Config:
    """``model``: ``homoscedastic`` or ``heteroscedastic``; the coursework's training (Adam,
    full batch) for ``epochs``; ``sigma_floor`` and ``beta`` are the heteroscedastic model's
    dip cures; ``jit`` compiles the loss (same numbers, faster)."""
    model: str = "heteroscedastic"
    epochs: int = COURSEWORK_EPOCHS
    lr: float = 1e-3
    checkpoint_every: int = 5000
    sigma_floor: float = 0.0
    beta: float = 0.0
    jit: bool = True
    seed: int = COURSEWORK_SEED

    def __post_init__(self):
        check(self, model=choice("homoscedastic", "heteroscedastic"), epochs=EPOCHS,
              lr=POSITIVE_FLOAT, checkpoint_every=POSITIVE_INT, sigma_floor=NONNEG_FLOAT,
              beta=UNIT_INTERVAL, seed=SEED)
        require(self.model == "heteroscedastic" or not (self.sigma_floor or self.beta),
                "sigma_floor and beta apply to the heteroscedastic model only")


def run(config: Config, inputs: Inputs, *, checkpoint=None, resume: bool = False,
        progress: bool = False) -> RegressionFit:
    """Fit the model (resuming ``checkpoint`` with ``resume``), on one torch thread: with 31
    points a second thread only adds synchronisation."""
    x, y = inputs.xkcd()
    with one_thread(), _scale_hint(x, y, config.model):
        return fit_regression(config.model, x, y, epochs=config.epochs, seed=config.seed,
                              lr=config.lr, checkpoint=checkpoint,
                              checkpoint_every=config.checkpoint_every, resume=resume,
                              progress=progress, jit=config.jit, sigma_floor=config.sigma_floor,
                              beta=config.beta, device=inputs.device)


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


def load(config: Config, inputs: Inputs, checkpoint) -> RegressionFit:
    """The fit a finished ``run`` left in ``checkpoint``, without training."""
    x, y = inputs.xkcd()
    return load_regression(config.model, x, y, checkpoint, sigma_floor=config.sigma_floor,
                           beta=config.beta)
