"""Guides for the regression models."""
from __future__ import annotations

import torch

from probnn.models.settings import LocalPyroModule


class MaximumLikelihoodGuide(LocalPyroModule):
    """The empty guide: fitting by maximum likelihood.

    The regression models have no latent sample sites, only parameters. With a guide that
    samples nothing, every ELBO term involving q vanishes and

        ELBO = E_q[log p(y, z | x) - log q(z)] = log p(y | x; theta),

    so maximising ``Trace_ELBO`` over the model's parameters is maximum-likelihood estimation,
    and the loss is exactly the negative log-likelihood.
    """

    config: dict = {}

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> None:
        return None
