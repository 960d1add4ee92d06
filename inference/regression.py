"""Fitting the regression models by maximum likelihood, recording what the dip analysis needs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.guides.regression import MaximumLikelihoodGuide
from probnn.models.regression import REGRESSION_MODELS

from .checkpoint import load_checkpoint
from .train import fit, training_state

COURSEWORK_EPOCHS = 50_000


@dataclass
class RegressionFit:
    """A fitted regression model with its training record (see :func:`fit_regression`)."""
    name: str
    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    history: pd.DataFrame  # epoch, loss (= -mean log-likelihood), loglik, seconds
    f: np.ndarray          # (epochs, n) f(x_i) at each epoch, at the parameters its loss used
    sigma: np.ndarray      # (epochs, n) sigma(x_i), likewise

    def pointwise_loglik(self) -> np.ndarray:
        """(epochs, n) log N(y_i | f(x_i), sigma(x_i)^2) at each epoch; rows sum to n * loglik."""
        y = self.y[:, 0].numpy()[None, :].astype(np.float64)
        s = self.sigma.astype(np.float64)
        return -0.5 * ((y - self.f) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-epoch record as arrays: ``x``, ``y``, ``f``, ``sigma``, ``loglik``, ``epoch``."""
        return dict(x=self.x[:, 0].numpy(), y=self.y[:, 0].numpy(), f=self.f, sigma=self.sigma,
                    loglik=self.history["loglik"].to_numpy(),
                    epoch=self.history["epoch"].to_numpy())

    def save(self, path: str | Path) -> Path:
        """Save the per-epoch record (:meth:`arrays`) as a compressed ``.npz``."""
        path = Path(path)
        np.savez_compressed(path, **self.arrays())
        return path


def fit_regression(name: str, x: torch.Tensor, y: torch.Tensor, *, epochs: int = COURSEWORK_EPOCHS,
                   seed: int = COURSEWORK_SEED, lr: float = 1e-3, elbo: str = "trace",
                   record: bool = True, checkpoint=None, checkpoint_every: int = 5000,
                   resume: bool = False, progress: bool = True, jit: bool = True,
                   sigma_floor: float = 0.0, beta: float = 0.0,
                   device: str | torch.device = "cpu") -> RegressionFit:
    """Fit the ``homoscedastic`` or ``heteroscedastic`` model by maximum likelihood.

    As in the coursework: Adam with ``lr``, full batch, ``epochs`` epochs, seeded with ``seed``
    before the networks are initialised, so the same seed gives the same fit.
    ``sigma_floor`` and ``beta`` (heteroscedastic only) are the dip cures of
    :class:`~probnn.models.regression.HeteroscedasticRegression`; with ``beta`` the history's
    ``loglik`` is recomputed from the recorded f and sigma and ``objective`` holds the
    weighted ELBO. ``jit`` compiles the loss (the same Trace_ELBO objective; see
    :class:`~probnn.inference.train.TracedLoss`). ``device``: where to fit (the model and
    the data are moved there once); the returned fit is on the CPU, like its data.
    """
    torch.manual_seed(seed)
    model, guide = _build(name, sigma_floor, beta)
    model.to(device), guide.to(device)
    result = fit(model, guide, (x.to(device), y.to(device)), epochs=epochs, elbo=elbo, lr=lr, seed=seed,
                 checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                 progress=progress, desc=name, record=("f", "sigma") if record else (), jit=jit)
    return _regression_fit(name, model.cpu(), x, y, result.history, result.records, beta)


def _build(name: str, sigma_floor: float, beta: float):
    if name not in REGRESSION_MODELS:
        raise ValueError(f"unknown regression model {name!r}; choose from {list(REGRESSION_MODELS)}")
    cures = dict(sigma_floor=sigma_floor, beta=beta) if sigma_floor or beta else {}
    if cures and name != "heteroscedastic":
        raise ValueError("sigma_floor and beta apply to the heteroscedastic model only")
    return REGRESSION_MODELS[name](**cures), MaximumLikelihoodGuide()


def _regression_fit(name, model, x, y, history: pd.DataFrame, records: dict, beta: float
                    ) -> RegressionFit:
    history = history.rename(columns={"elbo": "loglik"})
    empty = np.empty((0, len(x)), np.float32)
    f = records["f"][..., 0] if "f" in records else empty
    s = records["sigma"][..., 0] if "sigma" in records else empty
    out = RegressionFit(name, model, x, y, history, f, s)
    if beta and "f" in records:  # the ELBO is the beta-weighted objective: report the likelihood
        history["objective"] = history["loglik"]
        history["loglik"] = out.pointwise_loglik().mean(1)
    return out


def load_regression(name: str, x: torch.Tensor, y: torch.Tensor, checkpoint, *,
                    sigma_floor: float = 0.0, beta: float = 0.0) -> RegressionFit:
    """The :class:`RegressionFit` stored in a checkpoint of :func:`fit_regression` (weights,
    history and per-epoch record), without training: what ``fit_regression`` returned when
    it wrote the checkpoint last."""
    model, guide = _build(name, sigma_floor, beta)
    extra = training_state(load_checkpoint(checkpoint, model, guide), checkpoint)
    history = pd.DataFrame(extra["history"])
    records = {s: v[:len(history)] for s, v in extra["records"].items()}
    return _regression_fit(name, model.eval(), x, y, history, records, beta)
