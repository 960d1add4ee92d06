"""Variational auto-encoders for 28x28 grey-level images (MNIST): the generative side.

Networks follow the coursework's appendix (``BernoulliImageGenerator``) and the PyTorch
example VAE (an MLP 784-400-20); the Pyro models wrap them.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import pyro
import pyro.distributions as dist

from .settings import LocalPyroModule, module_device

IMAGE_SHAPE = (1, 28, 28)
LIKELIHOODS = ("bernoulli", "continuous_bernoulli")
ARCHITECTURES = ("conv", "mlp")
MAX_LATENT_DIM = 10_000
"""The largest latent size accepted from a user or a checkpoint: far above any study here,
and a crafted 10**9 would ask for terabytes when the networks are built."""


def fp32_layer(layer: nn.Module, h: torch.Tensor) -> torch.Tensor:
    """``layer(h)`` in fp32 even under bf16 autocast: the output layers of the networks.

    Their outputs are the pixel logits and q's (mu, log-variance). Rounded to bf16 (8
    significant bits) a logit of 10 would be off by up to 0.03, and the image's
    log-likelihood sums 784 such errors; in fp32 the layer costs under 1% of the conv
    decoder's FLOPs. Without autocast this is just ``layer(h)``.
    """
    if not torch.is_autocast_enabled(h.device.type):
        return layer(h)
    with torch.autocast(h.device.type, enabled=False):
        return layer(h.float())


INFERENCE_ROWS = 1024
"""Rows per decoder call and per torch thread when no gradient is recorded (evaluation),
twice as many under bf16 autocast (the same bytes of activations). The estimators pass tens
of thousands of (image, particle) rows at once; in pieces of ~1,000 rows a thread the conv
decoder's activations (3,600 floats a row) stay in the cache: on one Zen 4 core its forward
pass ran 2.0x (fp32, 1,024 rows) and 2.4x (bf16, 2,048 rows) faster than at 10,000 rows a
call (interleaved runs on the shared machine; ``benchmarks/eval_speed.py``); with two
threads, pieces of 1,024 rows were slower (each op's two halves too small to pay for the
threads' synchronisation) and ~2,000 about even. Training keeps one call: its activations are
saved for the backward pass anyway."""


def in_pieces(f, flat: torch.Tensor, rows: int | None = None) -> torch.Tensor:
    """``f(flat)`` for a row-wise ``f``, computed ``rows`` (default :data:`INFERENCE_ROWS`)
    rows at a time when no gradient is being recorded; the same numbers as one call."""
    if rows is None:
        rows = (INFERENCE_ROWS * torch.get_num_threads()
                * (2 if torch.is_autocast_enabled(flat.device.type) else 1))
    if torch.is_grad_enabled() or len(flat) <= rows:
        return f(flat)
    return torch.cat([f(piece) for piece in flat.split(rows)])


def flat_batch(t: torch.Tensor, event_dims: int):
    """Fold all leading batch dims (data, particles, ...) into one, for layers that need 2-D/4-D."""
    batch = t.shape[:t.dim() - event_dims]
    return t.reshape((-1,) + t.shape[t.dim() - event_dims:]), batch


class BernoulliImageGenerator(nn.Module):
    """The coursework's decoder: ``z`` (..., d) -> pixel logits (..., 1, 28, 28).

    Conv weights are kept channels-last: the same layers and numbers, but oneDNN's
    channels-last kernels run these few-channel convolutions several times faster on a CPU.
    """

    def __init__(self, d: int = 4):
        super().__init__()
        self.d = d
        self.f = nn.Sequential(
            nn.Linear(d, 128), nn.LeakyReLU(inplace=True),
            nn.Linear(128, 1728), nn.LeakyReLU(inplace=True),
            nn.Unflatten(1, (12, 12, 12)),
            nn.Conv2d(12, 36, 3, 1), nn.LeakyReLU(inplace=True),
            nn.Flatten(1),
            nn.Unflatten(1, (4, 30, 30)),
            nn.Conv2d(4, 4, 3, 1), nn.LeakyReLU(inplace=True),
            nn.Conv2d(4, 1, 1, 1),
        )
        self.f.to(memory_format=torch.channels_last)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat, batch = flat_batch(z, 1)
        return in_pieces(self._logits, flat).reshape(batch + IMAGE_SHAPE)

    def _logits(self, flat: torch.Tensor) -> torch.Tensor:
        return fp32_layer(self.f[-1], self.f[:-1](flat))


class MLPImageGenerator(nn.Module):
    """The PyTorch example VAE's decoder: ``z`` (..., d) -> 400 ReLU -> 784 logits."""

    def __init__(self, d: int = 20, hidden: int = 400):
        super().__init__()
        self.d = d
        self.f = nn.Sequential(nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, 784))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        flat, batch = flat_batch(z, 1)
        return in_pieces(self._logits, flat).reshape(batch + IMAGE_SHAPE)

    def _logits(self, flat: torch.Tensor) -> torch.Tensor:
        return fp32_layer(self.f[-1], self.f[:-1](flat))


def make_decoder(architecture: str, d: int, extra_inputs: int = 0) -> nn.Module:
    if architecture == "conv":
        return BernoulliImageGenerator(d + extra_inputs)
    if architecture == "mlp":
        return MLPImageGenerator(d + extra_inputs)
    raise ValueError(f"unknown architecture {architecture!r}; choose from {ARCHITECTURES}")


def pixel_distribution(logits: torch.Tensor, likelihood: str) -> dist.TorchDistribution:
    """The distribution of an image given its pixel logits, with the 3 image dims as event dims.

    ``bernoulli`` scores grey levels x in [0, 1] with the Bernoulli cross-entropy
    ``x log p + (1 - x) log(1 - p)`` computed from logits (stable at saturated pixels). That is
    what the coursework does; it is a proper likelihood only for binary images, so its values
    compare with the coursework's, not with the literature's binarised-MNIST numbers.
    ``continuous_bernoulli`` is a normalised density on [0, 1] (Loaiza-Ganem & Cunningham 2019).
    """
    if likelihood == "bernoulli":
        # validate_args=False: grey levels are outside {0, 1}, on purpose (see above)
        return PixelBernoulli(logits=logits, validate_args=False).to_event(3)
    if likelihood == "continuous_bernoulli":
        return dist.ContinuousBernoulli(logits=logits).to_event(3)
    raise ValueError(f"unknown likelihood {likelihood!r}; choose from {LIKELIHOODS}")


class PixelBernoulli(dist.Bernoulli):
    """:class:`pyro.distributions.Bernoulli` whose ``log_prob`` works through a large batch in
    pieces of leading rows (about :data:`INFERENCE_ROWS` images' worth) when no gradient is
    recorded. ``binary_cross_entropy_with_logits`` makes several passes over its tensors; over
    the estimators' 10,000 x 784 pixels at once each pass goes to memory, in pieces it stays
    in the cache (the same kernel on the same elements: the same numbers)."""

    def log_prob(self, value):
        if torch.is_grad_enabled() or self._validate_args:
            return super().log_prob(value)
        logits, value = torch.broadcast_tensors(self.logits, value)
        if logits.dim() <= 4:
            return super().log_prob(value)
        per_slice = logits[0].numel() // (logits.shape[-1] * logits.shape[-2] * logits.shape[-3])
        step = max(1, INFERENCE_ROWS * torch.get_num_threads() // max(per_slice, 1))
        if step >= len(logits):
            return super().log_prob(value)
        return torch.cat([-F.binary_cross_entropy_with_logits(lo, va, reduction="none")
                          for lo, va in zip(logits.split(step), value.split(step))])


def check_images(x: torch.Tensor) -> None:
    if x.dim() != 4 or tuple(x.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"images must have shape (n, 1, 28, 28), got {tuple(x.shape)}")


class VAE(LocalPyroModule):
    """Latent-variable model of images::

        z ~ N(0, I_d)                      # site "z", shape (n, d)
        x ~ Bernoulli(logits=f(z))         # site "x", the 1x28x28 pixels as one event

    independently for each image in plate ``"data"``. ``f`` is the coursework's conv decoder
    (``architecture="conv"``) or the PyTorch example's MLP (``"mlp"``). See
    :func:`pixel_distribution` for ``likelihood``. ``forward(x=None, size=1)``: with images
    ``x`` (n, 1, 28, 28) the model scores them; with ``x=None`` it generates ``size`` images,
    so ``pyro.infer.Predictive`` can sample. ``binarize`` records that the model was trained on
    dynamically binarised images (the literature's convention); the data pipeline applies it.
    """

    extra_inputs = 0  # decoder inputs besides z (the conditional VAE's one-hot label)

    def __init__(self, latent_dim: int = 4, likelihood: str = "bernoulli",
                 architecture: str = "conv", binarize: bool = False):
        super().__init__()
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"unknown likelihood {likelihood!r}; choose from {LIKELIHOODS}")
        self.config = dict(latent_dim=latent_dim, likelihood=likelihood,
                           architecture=architecture, binarize=binarize)
        self.latent_dim, self.likelihood = latent_dim, likelihood
        self.decoder = make_decoder(architecture, latent_dim, self.extra_inputs)

    def forward(self, x: torch.Tensor | None = None, size: int = 1) -> torch.Tensor:
        if x is not None:
            check_images(x)
            size = x.shape[0]
        prior = dist.Normal(torch.zeros(self.latent_dim, device=module_device(self)), 1.0).to_event(1)
        with pyro.plate("data", size):
            z = pyro.sample("z", prior)
            return pyro.sample("x", pixel_distribution(self.logits(z), self.likelihood), obs=x)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        """The decoder's pixel logits for ``z``, in fp32 whatever precision the decoder ran in
        (under bf16 autocast the networks compute in bf16; the likelihood and its sums stay
        fp32). ``.float()`` of an fp32 tensor is the tensor itself: no copy in fp32."""
        return self.decoder(z).float()

    @torch.no_grad()
    def pixel_probs(self, z: torch.Tensor) -> torch.Tensor:
        """Pixel means given ``z``: sigmoid of the logits (Bernoulli), or the mean of the
        continuous Bernoulli."""
        d = pixel_distribution(self.logits(z), self.likelihood)
        return d.base_dist.mean if self.likelihood == "continuous_bernoulli" else d.base_dist.probs
