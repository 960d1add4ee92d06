"""Neural-network regression with Gaussian noise: the xkcd 2048 models of the coursework."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine

from .settings import LocalPyroModule


class Wiggle(nn.Sequential):
    """The coursework's small MLP ``1 -> 4 -> 20 -> 20 -> 1`` with LeakyReLU activations."""

    def __init__(self):
        super().__init__(
            nn.Linear(1, 4), nn.LeakyReLU(),
            nn.Linear(4, 20), nn.LeakyReLU(),
            nn.Linear(20, 20), nn.LeakyReLU(),
            nn.Linear(20, 1),
        )


class RegressionModel(LocalPyroModule):
    """Base class of the regression models (maximum-likelihood and Bayesian): subclasses give
    :meth:`mean_and_scale`; this class gives ``forward(x, y=None)`` with observations in plate
    ``"data"`` and :meth:`log_likelihood`.

    Sites: ``"f"`` and ``"sigma"`` (deterministic, shape (n, 1)) and ``"y"`` (observed or
    generated, shape (n, 1)). With ``y=None`` the model generates, so ``Predictive`` can sample.
    """

    config: dict = {}

    def mean_and_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != 1:
            raise ValueError(f"x must have shape (n, 1), got {tuple(x.shape)}")
        if y is not None and y.shape != x.shape:
            raise ValueError(f"y must have the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")
        f, sigma = self.mean_and_scale(x)  # latents, if any, are drawn here, outside the plate
        with pyro.plate("data", x.shape[0], dim=-1):
            pyro.deterministic("f", f, event_dim=1)
            pyro.deterministic("sigma", sigma, event_dim=1)
            with poutine.scale(scale=self.observation_weight(sigma)):
                return pyro.sample("y", dist.Normal(f, sigma).to_event(1), obs=y)

    def observation_weight(self, sigma: torch.Tensor):
        """Per-point weight of the log-likelihood in the training objective: 1 here."""
        return 1.0

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pointwise ``log N(y_i | f(x_i), sigma(x_i)^2)``, shape (n,).

        In the Bayesian models (:mod:`probnn.models.bayes_regression`) :meth:`mean_and_scale`
        samples the weights, so this is the log-likelihood under one draw of them (from the
        prior, or the values a handler such as ``poutine.replay`` supplies), shape (..., n)
        for vectorised draws.
        """
        f, sigma = self.mean_and_scale(x)
        return dist.Normal(f, sigma).log_prob(y).sum(-1)


class HomoscedasticRegression(RegressionModel):
    """Regression with one noise level for all inputs::

        f = Wiggle()                  # 1 -> 4 -> 20 -> 20 -> 1
        sigma = softplus(sigma_pre)   # sigma_pre a parameter, initialised to 1.0
        y_i ~ N(f(x_i), sigma^2)      # independently, i in plate "data"
    """

    def __init__(self):
        super().__init__()
        self.f = Wiggle()
        self.sigma_pre = nn.Parameter(torch.tensor(1.0))

    def mean_and_scale(self, x):
        f = self.f(x)
        return f, F.softplus(self.sigma_pre).expand_as(f)


class HeteroscedasticRegression(RegressionModel):
    """Regression whose noise level depends on the input::

        f = Wiggle(); g = Wiggle()
        sigma(x) = sigma_floor + softplus(g(x))
        y_i ~ N(f(x_i), sigma(x_i)^2)   # independently, i in plate "data"

    Two optional cures for the training dips (sigma shrinking at one point until a small move
    of f costs hundreds of nats): ``sigma_floor`` > 0 bounds sigma away from 0, and ``beta`` > 0
    trains with the beta-NLL loss of Seitzer et al. (2022), "On the Pitfalls of Heteroscedastic
    Uncertainty Estimation with Probabilistic Neural Networks": each point's log-likelihood is
    weighted by stop-gradient(sigma_i^(2 beta)) through ``poutine.scale``, so points the model is
    very sure of no longer dominate the gradient (beta = 0: maximum likelihood; beta = 1: the
    mean's gradient of a squared error). With ``beta`` > 0 the ELBO is that weighted objective,
    not the log-likelihood; :meth:`log_likelihood` stays the plain one.
    """

    def __init__(self, sigma_floor: float = 0.0, beta: float = 0.0):
        super().__init__()
        if sigma_floor < 0 or beta < 0:
            raise ValueError(f"sigma_floor and beta must be >= 0, got {sigma_floor}, {beta}")
        self.config = dict(sigma_floor=sigma_floor, beta=beta) if sigma_floor or beta else {}
        self.sigma_floor, self.beta = float(sigma_floor), float(beta)
        self.f = Wiggle()
        self.g = Wiggle()

    def mean_and_scale(self, x):
        return self.f(x), self.sigma_floor + F.softplus(self.g(x))

    def observation_weight(self, sigma: torch.Tensor):
        if not self.beta:
            return 1.0
        return sigma.detach().pow(2 * self.beta).squeeze(-1)


REGRESSION_MODELS = {"homoscedastic": HomoscedasticRegression,
                     "heteroscedastic": HeteroscedasticRegression}
