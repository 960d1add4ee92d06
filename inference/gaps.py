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
trained on that point's ELBO with the model held fixed until a stated convergence criterion
is met (:class:`Convergence`; a warning and ``converged=False`` otherwise). Its ELBO is then estimated
like the encoder's (:func:`~probnn.inference.estimators.elbo_mc`, analytic KL); log p(x)
comes from AIS (:mod:`probnn.inference.ais`).
"""
from __future__ import annotations

import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from torch import nn

from probnn.models.settings import LocalPyroModule

from .elbos import make_elbo
from .estimators import discover_quietly, elbo_mc
from .structure import ModelError, as_call, parameters
from .train import fit


class LocalGaussianGuide(LocalPyroModule):
    """A non-amortised mean-field Gaussian: for data point i and latent site s,
    ``z_s[i] ~ N(loc_s[i], exp(log_scale_s[i])^2)`` (event dims as the site's), in the
    model's data plate. Takes the model's arguments (and ignores them), so it stands in for
    the amortised guide of the same model."""

    def __init__(self, locs: dict, scales: dict, event_dims: dict, plate: str = "data"):
        super().__init__()
        self.names, self.plate = list(locs), plate
        self.event_dims = dict(event_dims)
        for name in self.names:
            setattr(self, f"loc_{name}", nn.Parameter(locs[name].detach().clone()))
            setattr(self, f"log_scale_{name}", nn.Parameter(scales[name].detach().log().clone()))

    def forward(self, *args, **kwargs):
        n = len(getattr(self, f"loc_{self.names[0]}"))
        with pyro.plate(self.plate, n):
            for name in self.names:
                loc, log_scale = getattr(self, f"loc_{name}"), getattr(self, f"log_scale_{name}")
                pyro.sample(name, dist.Normal(loc, log_scale.exp()).to_event(self.event_dims[name]))


def local_guide_from(guide, data, model=None) -> LocalGaussianGuide:
    """A :class:`LocalGaussianGuide` started at the encoder's output for ``data``: each
    latent site's mean and standard deviation under q(z | x) (its value and unit scale where
    the guide's site has no spread, as an auto-guide's Delta). With ``model``, the latent
    sites and data plate are the model's (:mod:`~probnn.inference.structure`)."""
    call = as_call(data)
    plate, names = "data", None
    if model is not None:
        s = discover_quietly(model, guide, call)
        if not s.vectorized or s.subsampled:
            raise ModelError(f"plate {s.plate!r} is sequential or subsampled: the per-point q* of "
                             "the inference gaps needs one vectorised plate over all data points")
        s.require_continuous("the inference gaps")
        plate, names = s.plate, list(s.latents)
    with torch.no_grad(), pyro.validation_enabled(False):
        tr = poutine.trace(guide).get_trace(*call.args, **call.kwargs)
    names = names or [n for n, st in tr.nodes.items() if st["type"] == "sample"
                      and not st["infer"].get("is_auxiliary") and not st["is_observed"]]
    locs, scales, events = {}, {}, {}
    for name in names:
        fn = tr.nodes[name]["fn"]
        ev = len(fn.event_shape)
        if isinstance(fn, dist.Delta):
            loc, scale = fn.v, torch.ones_like(fn.v)
        else:
            loc, scale = fn.mean, fn.stddev
        locs[name], scales[name], events[name] = loc.detach(), scale.detach(), ev
    return LocalGaussianGuide(locs, scales, events, plate)


@dataclass
class LocalFit:
    guide: LocalGaussianGuide
    history: object  # pandas DataFrame: step, loss (negative ELBO per data point), lr
    converged: bool = True


@dataclass(frozen=True)
class Convergence:
    """When the per-point optimisation of q* stops: the mean loss (negative ELBO per data
    point) is compared over consecutive windows of ``window`` steps; when a window improves
    on the one before by less than ``tol`` nats, the learning rate is halved; after
    ``decays`` halvings the fit has converged. ``max_steps`` caps it (then not converged)."""
    window: int = 50
    tol: float = 2e-3
    decays: int = 4
    max_steps: int = 6000


def optimise_local_guide(model, guide, data, *, steps: int | None = None, lr: float = 0.02,
                         num_particles: int = 10, seed: int = 0,
                         convergence: Convergence = Convergence()) -> LocalFit:
    """q* for every data point: :func:`local_guide_from` the encoder, then Adam on the local
    guide's parameters only, full batch, minimising the STL objective (the ELBO's value with
    its lower-variance unbiased path gradient, which matters as q* nears its optimum) with
    ``num_particles`` particles, until :class:`Convergence` says so; with ``steps``, exactly
    that many full-batch Trace_ELBO steps of :func:`~probnn.inference.train.fit` instead.
    The model's parameters are held fixed (:func:`held_fixed`) and left trainable."""
    call = as_call(data)
    local = local_guide_from(guide, call, model)
    with held_fixed(parameters(model, guide, call)):
        if steps is not None:  # a fixed count: plain Trace_ELBO SVI steps
            res = fit(model, local, call.args, epochs=steps, lr=lr, num_particles=num_particles,
                      seed=seed, progress=False)
            return LocalFit(local.eval(), res.history, True)
        return _to_convergence(model, local, call, lr, num_particles, seed, convergence)


@contextmanager
def held_fixed(params):
    """The trainable ``params`` frozen for the block (``requires_grad`` off, and Pyro's note
    that ``pyro.module`` skips such parameters silenced), trainable again afterwards."""
    frozen = [p for p in params if p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*not registered in the param store "
                                    "because requires_grad=False")
            yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _to_convergence(model, local, call, lr, num_particles, seed, convergence) -> LocalFit:
    """Adam on ``local``'s parameters, STL loss per data point, until ``convergence``."""
    pyro.set_rng_seed(seed)
    elbo = make_elbo("stl", num_particles)
    opt = torch.optim.Adam(local.parameters(), lr=lr)
    n = len(getattr(local, f"loc_{local.names[0]}"))
    rows, windows, decays, converged = [], [], 0, False
    limit = convergence.max_steps
    for step in range(limit):
        loss = elbo.differentiable_loss(model, local, *call.args, **call.kwargs) / n
        opt.zero_grad()
        loss.backward()
        opt.step()
        rows.append({"step": step + 1, "loss": loss.item(), "lr": opt.param_groups[0]["lr"]})
        if (step + 1) % convergence.window == 0:
            windows.append(np.mean([r["loss"] for r in rows[-convergence.window:]]))
            if len(windows) > 1 and windows[-2] - windows[-1] < convergence.tol:
                decays += 1
                if decays > convergence.decays:
                    converged = True
                    break
                for g in opt.param_groups:
                    g["lr"] /= 2
    if not converged:
        warnings.warn(f"q* did not converge in {limit} steps (the loss still fell by at least "
                      f"{convergence.tol} nats per point per {convergence.window} steps): the "
                      "amortisation gap may be under-estimated", RuntimeWarning, stacklevel=3)
    import pandas as pd
    return LocalFit(local.eval(), pd.DataFrame(rows), converged)


@dataclass
class Gaps:
    """Per data point, nats: ``elbo`` (the encoder's q), ``elbo_local`` (q*), and with a
    log-likelihood estimate ``log_p``: ``approximation_gap = log_p - elbo_local`` and
    ``amortisation_gap = elbo_local - elbo``. ``converged``: whether q*'s optimisation met
    its convergence criterion."""
    elbo: np.ndarray
    elbo_local: np.ndarray
    log_p: np.ndarray | None = None
    converged: bool = True

    @property
    def amortisation_gap(self) -> np.ndarray:
        return self.elbo_local - self.elbo

    @property
    def approximation_gap(self) -> np.ndarray:
        if self.log_p is None:
            raise ValueError("the approximation gap needs log p(x) (e.g. from AIS)")
        return self.log_p - self.elbo_local


def inference_gaps(model, guide, data, log_p=None, *, samples: int = 1000, steps: int | None = None,
                   lr: float = 0.02, num_particles: int = 10, seed: int = 0,
                   convergence: Convergence = Convergence()) -> Gaps:
    """The encoder's and q*'s ELBO per data point (``samples`` reconstruction samples each,
    analytic KL, the same seed for both), and the gaps against ``log_p`` when given. q* is
    optimised to ``convergence`` (:func:`optimise_local_guide`; ``steps`` fixes the count)."""
    call = as_call(data)
    fit = optimise_local_guide(model, guide, call, steps=steps, lr=lr,
                               num_particles=num_particles, seed=seed, convergence=convergence)
    pyro.set_rng_seed(seed)
    amortised = elbo_mc(model, guide, call, samples).elbo
    pyro.set_rng_seed(seed)
    with torch.no_grad():
        best = elbo_mc(model, fit.guide, call, samples).elbo
    return Gaps(amortised, best, None if log_p is None else np.asarray(log_p), fit.converged)
