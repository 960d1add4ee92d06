"""Amortised Gaussian guides q(z | x) for the image VAEs."""
from __future__ import annotations

import torch
import torch.nn as nn
import pyro
import pyro.distributions as dist

from probnn.models.settings import LocalPyroModule
from probnn.models.vae import check_images, flat_batch, fp32_layer


class GaussianEncoder(nn.Module):
    """The coursework's encoder: image (..., 1, 28, 28) -> ``(mu, tau)``, each (..., d);
    ``tau`` is the log-variance, so q(z | x) = N(mu, exp(tau / 2)^2)."""

    def __init__(self, d: int = 4, extra_inputs: int = 0):
        super().__init__()
        self.d = d
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(32, 64, 3, 1),
            nn.MaxPool2d(2),
            nn.Flatten(1),
        )
        self.features.to(memory_format=torch.channels_last)
        self.head = nn.Sequential(nn.Linear(9216 + extra_inputs, 128), nn.LeakyReLU(inplace=True),
                                  nn.Linear(128, 2 * d))

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None):
        flat, batch = flat_batch(x, 3)
        h = self.features(flat)
        if extra is not None:
            h = torch.cat([h, extra.reshape(h.shape[0], -1)], dim=-1)
        out = fp32_layer(self.head[-1], self.head[:-1](h))
        mu, tau = out.reshape(batch + (2 * self.d,)).split(self.d, dim=-1)
        return mu, tau


class MLPEncoder(nn.Module):
    """The PyTorch example VAE's encoder: 784 -> 400 ReLU -> (mu, logvar), each (..., d)."""

    def __init__(self, d: int = 20, hidden: int = 400, extra_inputs: int = 0):
        super().__init__()
        self.d = d
        self.body = nn.Sequential(nn.Linear(784 + extra_inputs, hidden), nn.ReLU())
        self.head = nn.Linear(hidden, 2 * d)

    def forward(self, x: torch.Tensor, extra: torch.Tensor | None = None):
        h = x.reshape(x.shape[:-3] + (784,))
        if extra is not None:
            h = torch.cat([h, extra], dim=-1)
        mu, logvar = fp32_layer(self.head, self.body(h)).split(self.d, dim=-1)
        return mu, logvar


def encode_fp32(encoder: nn.Module, x: torch.Tensor, *extra) -> tuple[torch.Tensor, torch.Tensor]:
    """``(mu, tau)`` of ``encoder(x, *extra)`` in fp32 whatever precision the encoder ran in
    (under bf16 autocast the network computes in bf16; q's density, samples and KL stay fp32).
    ``.float()`` of an fp32 tensor is the tensor itself: no copy in fp32."""
    mu, tau = encoder(x, *extra)
    return mu.float(), tau.float()


def make_encoder(architecture: str, d: int, extra_inputs: int = 0) -> nn.Module:
    if architecture == "conv":
        return GaussianEncoder(d, extra_inputs)
    if architecture == "mlp":
        return MLPEncoder(d, extra_inputs=extra_inputs)
    raise ValueError(f"unknown architecture {architecture!r}; choose from 'conv', 'mlp'")


class VAEGuide(LocalPyroModule):
    """Amortised mean-field Gaussian posterior::

        (mu, tau) = encoder(x)
        z ~ N(mu, exp(tau / 2)^2)          # site "z", in plate "data"

    Same ``forward(x=None, size=1)`` signature as :class:`~probnn.models.vae.VAE`.
    """

    def __init__(self, latent_dim: int = 4, architecture: str = "conv"):
        super().__init__()
        self.config = dict(latent_dim=latent_dim, architecture=architecture)
        self.encoder = make_encoder(architecture, latent_dim)

    def forward(self, x: torch.Tensor | None = None, size: int = 1) -> torch.Tensor:
        if x is None:
            raise ValueError("the guide needs images x: q(z | x) is defined only given x")
        check_images(x)
        mu, tau = encode_fp32(self.encoder, x)
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Normal(mu, torch.exp(0.5 * tau)).to_event(1))

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and standard deviation of z given images x."""
        mu, tau = encode_fp32(self.encoder, x)
        return mu, torch.exp(0.5 * tau)
