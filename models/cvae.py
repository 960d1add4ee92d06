"""Label-conditioned VAE for MNIST (coursework question f): X = f(Z, y)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
import pyro
import pyro.distributions as dist

from .settings import module_device
from .vae import VAE, check_images, pixel_distribution

NUM_CLASSES = 10


def check_labels(y: torch.Tensor, n: int | None = None) -> None:
    """Labels must be integers 0..9 of shape (n,); raise a clear ValueError otherwise."""
    if not isinstance(y, torch.Tensor) or y.dim() != 1:
        raise ValueError(f"labels must be a 1-D tensor of digit classes, got "
                         f"{tuple(y.shape) if isinstance(y, torch.Tensor) else type(y).__name__}")
    if y.dtype.is_floating_point or y.dtype == torch.bool:
        raise ValueError(f"labels must be integers 0..9, got dtype {y.dtype}")
    if n is not None and len(y) != n:
        raise ValueError(f"got {len(y)} labels for {n} images")
    if len(y) and (y.min() < 0 or y.max() >= NUM_CLASSES):
        raise ValueError(f"labels must be in 0..{NUM_CLASSES - 1}, got values from "
                         f"{int(y.min())} to {int(y.max())}")


def one_hot(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One-hot labels broadcast to the batch shape of ``like`` (..., n, d), e.g. under a
    particles plate, as float (..., n, 10)."""
    h = F.one_hot(y, NUM_CLASSES).to(like.dtype)
    return h.expand(like.shape[:-1] + (NUM_CLASSES,))


class ConditionalVAE(VAE):
    """Generative model of labelled images, the label entering the decoder's input layer::

        y ~ Categorical(1/10, ..., 1/10)        # site "y"
        z ~ N(0, I_d)                           # site "z", the style
        x ~ Bernoulli(logits=f(z, onehot(y)))   # site "x"

    independently for each image in plate ``"data"``; ``f`` is the VAE's decoder body with
    ``d + 10`` inputs. Including ``y ~ Categorical`` makes the joint ``p(x, y)`` defined, so
    ``p(x) = sum_y p(x, y)`` and ``p(y | x)`` follow. ``forward(x=None, y=None, size=1)``:
    observed images and labels are scored; with ``x=None`` images are generated for the given
    labels (or for ``size`` labels drawn from the prior).
    """

    extra_inputs = NUM_CLASSES

    def forward(self, x: torch.Tensor | None = None, y: torch.Tensor | None = None,
                size: int = 1) -> torch.Tensor:
        if x is not None:
            check_images(x)
            size = x.shape[0]
        if y is not None:
            check_labels(y, size if x is not None else None)
            size = len(y)
        device = module_device(self)
        prior = dist.Normal(torch.zeros(self.latent_dim, device=device), 1.0).to_event(1)
        with pyro.plate("data", size):
            y = pyro.sample("y", dist.Categorical(logits=torch.zeros(NUM_CLASSES, device=device)),
                            obs=y)
            z = pyro.sample("z", prior)
            logits = self.logits(torch.cat([z, one_hot(y, z)], -1))
            return pyro.sample("x", pixel_distribution(logits, self.likelihood), obs=x)

    @torch.no_grad()
    def pixel_probs(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pixel means for styles ``z`` (..., n, d) and labels ``y`` (n,)."""
        d = pixel_distribution(self.logits(torch.cat([z, one_hot(y, z)], -1)), self.likelihood)
        return d.base_dist.mean if self.likelihood == "continuous_bernoulli" else d.base_dist.probs
