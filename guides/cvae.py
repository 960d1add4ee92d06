"""The guide q(z | x, y) of the label-conditioned VAE."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import pyro
import pyro.distributions as dist

from probnn.models.cvae import NUM_CLASSES, check_labels
from probnn.models.settings import LocalPyroModule
from probnn.models.vae import check_images

from .vae import encode_fp32, make_encoder


class ConditionalVAEGuide(LocalPyroModule):
    """Amortised Gaussian posterior over the style given image and label::

        h = conv_features(x)                       # the VAE encoder's conv layers
        (mu, tau) = dense([h, onehot(y)])          # label joined at the first dense layer
        z ~ N(mu, exp(tau / 2)^2)                  # site "z", in plate "data"

    Where and why the label joins: after the convolutions, at the first fully connected
    layer. The conv layers find strokes wherever they are, which does not depend on the
    digit; the dense layer maps those features to the posterior, and there knowing y lets q
    explain the digit's identity away and put only its style into z, matching the model,
    where y and z enter the decoder side by side.

    Given x and Y = y, the perfect sampling distribution for Z (coursework question f) is
    the posterior p(z | x, y) = p(x | z, y) p(z) / p(x | y): it makes the importance weights
    constant, so one sample gives log p(x | y) exactly. This guide approximates it.
    """

    def __init__(self, latent_dim: int = 4, architecture: str = "conv"):
        super().__init__()
        self.config = dict(latent_dim=latent_dim, architecture=architecture)
        self.encoder = make_encoder(architecture, latent_dim, extra_inputs=NUM_CLASSES)

    def forward(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                size: int = 1) -> torch.Tensor:
        if x is None or y is None:
            raise ValueError("the guide needs images x and labels y: q(z | x, y)")
        check_images(x)
        check_labels(y, x.shape[0])
        mu, tau = encode_fp32(self.encoder, x, F.one_hot(y, NUM_CLASSES).to(x.dtype))
        with pyro.plate("data", x.shape[0]):
            return pyro.sample("z", dist.Normal(mu, torch.exp(0.5 * tau)).to_event(1))
