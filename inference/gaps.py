"""The inference gaps of an amortised guide (Cremer, Li & Duvenaud 2018, "Inference
suboptimality in variational autoencoders").

For a data point x, with q(z | x) the encoder's Gaussian and q*(z) the best Gaussian of the
same (mean-field) family for x alone,

.. math::
    \\log p(x) - \\mathrm{ELBO}(q) =
    \\underbrace{\\log p(x) - \\mathrm{ELBO}(q^*)}_{\\text{approximation gap}}
    + \\underbrace{\\mathrm{ELBO}(q^*) - \\mathrm{ELBO}(q)}_{\\text{amortisation gap}} .

:func:`optimise_local_guide` finds q* for every data point at once: a separate mean and
scale per data point (:class:`LocalGaussianGuide`), started at the encoder's output and
trained by SVI on that point's ELBO with the model held fixed. Its ELBO is then estimated
like the encoder's (:func:`~probnn.inference.estimators.elbo_mc`, analytic KL); log p(x)
comes from AIS (:mod:`probnn.inference.ais`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn

from probnn.models.settings import LocalPyroModule

from .batching import as_tuple
from .estimators import elbo_mc, sample_sites
from .train import fit


class LocalGaussianGuide(LocalPyroModule):
    """A non-amortised mean-field Gaussian: for data point i and latent site s,
    ``z_s[i] ~ N(loc_s[i], exp(log_scale_s[i])^2)`` (event dims as the site's), in plate
    ``"data"``. Takes the model's arguments (only their length is used), so it stands in for
    the amortised guide of the same model."""

    def __init__(self, locs: dict, scales: dict, event_dims: dict):
        super().__init__()
        self.names = list(locs)
        self.event_dims = dict(event_dims)
        for name in self.names:
            setattr(self, f"loc_{name}", nn.Parameter(locs[name].detach().clone()))
            setattr(self, f"log_scale_{name}", nn.Parameter(scales[name].detach().log().clone()))

    def forward(self, *args):
        n = len(args[0])
        with pyro.plate("data", n):
            for name in self.names:
                loc, log_scale = getattr(self, f"loc_{name}"), getattr(self, f"log_scale_{name}")
                pyro.sample(name, dist.Normal(loc, log_scale.exp()).to_event(self.event_dims[name]))


def local_guide_from(guide, data) -> LocalGaussianGuide:
    """A :class:`LocalGaussianGuide` started at the encoder's output for ``data``: each
    site's mean and standard deviation under q(z | x) (Normal families)."""
    data = as_tuple(data)
    with torch.no_grad(), pyro.validation_enabled(False):
        tr = poutine.trace(guide).get_trace(*data)
    locs, scales, events = {}, {}, {}
    for name, site in sample_sites(tr):
        fn = site["fn"]
        locs[name], scales[name] = fn.mean.detach(), fn.stddev.detach()
        events[name] = len(fn.event_shape)
    return LocalGaussianGuide(locs, scales, events)


@dataclass
class LocalFit:
    guide: LocalGaussianGuide
    history: object  # the SVI history (pandas DataFrame): loss per step


def optimise_local_guide(model, guide, data, *, steps: int = 300, lr: float = 0.02,
                         num_particles: int = 10, seed: int = 0) -> LocalFit:
    """q* for every data point: :func:`local_guide_from` the encoder, then ``steps`` Adam
    steps of full-batch SVI (Trace_ELBO with ``num_particles`` vectorised particles) on the
    local guide's parameters only; the model is unchanged (its parameters are held fixed)."""
    data = as_tuple(data)
    local = local_guide_from(guide, data)
    frozen = [p for p in model.parameters() if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        res = fit(model, local, data, epochs=steps, lr=lr, num_particles=num_particles,
                  seed=seed, progress=False)
    finally:
        for p in frozen:
            p.requires_grad_(True)
    return LocalFit(local.eval(), res.history)


@dataclass
class Gaps:
    """Per data point, nats: ``elbo`` (the encoder's q), ``elbo_local`` (q*), and with a
    log-likelihood estimate ``log_p``: ``approximation_gap = log_p - elbo_local`` and
    ``amortisation_gap = elbo_local - elbo``."""
    elbo: np.ndarray
    elbo_local: np.ndarray
    log_p: np.ndarray | None = None

    @property
    def amortisation_gap(self) -> np.ndarray:
        return self.elbo_local - self.elbo

    @property
    def approximation_gap(self) -> np.ndarray:
        if self.log_p is None:
            raise ValueError("the approximation gap needs log p(x) (e.g. from AIS)")
        return self.log_p - self.elbo_local


def inference_gaps(model, guide, data, log_p=None, *, samples: int = 1000, steps: int = 300,
                   lr: float = 0.02, num_particles: int = 10, seed: int = 0) -> Gaps:
    """The encoder's and q*'s ELBO per data point (``samples`` reconstruction samples each,
    analytic KL, the same seed for both), and the gaps against ``log_p`` when given."""
    data = as_tuple(data)
    local = optimise_local_guide(model, guide, data, steps=steps, lr=lr,
                                 num_particles=num_particles, seed=seed).guide
    pyro.set_rng_seed(seed)
    amortised = elbo_mc(model, guide, data, samples).elbo
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        best = elbo_mc(model, local, data, samples).elbo
    return Gaps(amortised, best, None if log_p is None else np.asarray(log_p))
