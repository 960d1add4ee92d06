"""Neural-network regression with Gaussian noise: the xkcd 2048 models of the coursework."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import pyro
import pyro.distributions as dist
from pyro.nn import PyroModule


class Wiggle(nn.Sequential):
    """The coursework's small MLP ``1 -> 4 -> 20 -> 20 -> 1`` with LeakyReLU activations."""

    def __init__(self):
        super().__init__(
            nn.Linear(1, 4), nn.LeakyReLU(),
            nn.Linear(4, 20), nn.LeakyReLU(),
            nn.Linear(20, 20), nn.LeakyReLU(),
            nn.Linear(20, 1),
        )


class _Regression(PyroModule):
    """Shared body: ``forward(x, y=None)`` with observations in plate ``"data"``.

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
        f, sigma = self.mean_and_scale(x)
        with pyro.plate("data", x.shape[0]):
            pyro.deterministic("f", f, event_dim=1)
            pyro.deterministic("sigma", sigma, event_dim=1)
            return pyro.sample("y", dist.Normal(f, sigma).to_event(1), obs=y)

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pointwise ``log N(y_i | f(x_i), sigma(x_i)^2)``, shape (n,)."""
        f, sigma = self.mean_and_scale(x)
        return dist.Normal(f, sigma).log_prob(y).sum(-1)


class HomoscedasticRegression(_Regression):
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


class HeteroscedasticRegression(_Regression):
    """Regression whose noise level depends on the input::

        f = Wiggle(); g = Wiggle()
        sigma(x) = softplus(g(x))
        y_i ~ N(f(x_i), sigma(x_i)^2)   # independently, i in plate "data"
    """

    def __init__(self):
        super().__init__()
        self.f = Wiggle()
        self.g = Wiggle()

    def mean_and_scale(self, x):
        return self.f(x), F.softplus(self.g(x))


REGRESSION_MODELS = {"homoscedastic": HomoscedasticRegression,
                     "heteroscedastic": HeteroscedasticRegression}
