"""Bayesian neural-network regression: the xkcd models with priors on every network weight.

The maximum-likelihood models of :mod:`probnn.models.regression` fit one set of weights; here
each weight and bias of the same :class:`~probnn.models.regression.Wiggle` networks is a
latent variable with an independent Gaussian prior (a ``PyroSample``), so the models are full
Bayesian models whose posteriors a guide (e.g. ``AutoNormal``) approximates. Site names, plate
and ``forward(x, y=None)`` are those of the maximum-likelihood models: ``"f"`` and ``"sigma"``
(deterministic, per point), ``"y"`` (observed), plate ``"data"``; the weights are the sample
sites ``"f.0.weight"``, ``"f.0.bias"``, ... (``"g.*"`` for the noise network) and, in the
homoscedastic model, ``"log_sigma"``.

References: Neal (1996), *Bayesian Learning for Neural Networks*; Blundell et al. (2015),
"Weight Uncertainty in Neural Networks"; Pyro's "Bayesian regression" tutorial.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import pyro.distributions as dist
from pyro.nn import PyroModule, PyroSample
from pyro.nn.module import to_pyro_module_

from .regression import HeteroscedasticRegression, HomoscedasticRegression

DEFAULT_PRIOR_SCALE = 1.0
"""Prior standard deviation of every bias, and of every weight times sqrt(fan-in)."""
FAN_IN_SCALING = True
"""Weights of a layer with ``fan_in`` inputs get prior sd ``prior_scale / sqrt(fan_in)``
(Neal 1996): each layer then keeps the variance of its input instead of multiplying it by
fan_in * prior_scale^2, so the prior over functions f stays on the scale of the data whatever
the width. Without it (``prior_scale`` for every weight, as in Pyro's examples) the prior sd
of f at the xkcd inputs (x up to 9) is of order 10-100 for prior_scale 1. Measured on xkcd
(AutoNormal, 2,000-3,000 steps): plain N(0, 1) weights gave p_loo ~ 48 and Pareto k > 0.7 at
every point; plain N(0, 0.5) a posterior-mean sigma ~ 2.9; fan-in scaling with prior_scale 1
sigma ~ 2.5 (maximum likelihood: 1.48). Mean-field posteriors of networks underfit small data
sets (the KL term widens every weight the data do not pin down, which adds noise to f)."""
LOG_SIGMA_PRIOR = (0.0, 1.0)
"""Homoscedastic noise: log sigma ~ N(0, 1), i.e. sigma ~ LogNormal(0, 1): median 1, 95% prior
interval (0.14, 7.1), wide on the scale of the xkcd y values (0.75 to 9.3)."""


def make_bayesian_(module: nn.Module, prior_scale: float = DEFAULT_PRIOR_SCALE,
                   fan_in: bool = FAN_IN_SCALING) -> PyroModule:
    """Turn ``module`` **in place** into a Bayesian network and return it.

    Every parameter ``p`` of ``module`` and its submodules becomes a latent variable::

        p ~ Normal(0, prior_scale), independently per entry   # one site per tensor

    through ``PyroSample(dist.Normal(0, prior_scale).expand(p.shape).to_event(p.dim()))``, after
    :func:`pyro.nn.module.to_pyro_module_` has made the modules ``PyroModule``\\ s (the recipe of
    ``to_pyro_module_``'s documentation). Each module keeps its parameters' values at the time
    of conversion (PyTorch's default initialisation for a fresh network) in
    ``_initial_values``, so a guide can start its means there (see
    :meth:`BayesianRegressionMixin.initial_values`).
    """
    if not prior_scale > 0:
        raise ValueError(f"prior_scale must be > 0, got {prior_scale}")
    to_pyro_module_(module)
    for m in module.modules():
        initial = {}
        for name, p in list(m.named_parameters(recurse=False)):
            initial[name] = p.detach().clone()
            delattr(m, name)  # the parameter goes; the attribute becomes a sample site
            scale = float(prior_scale)
            if fan_in and p.dim() == 2:  # a weight matrix (out, in): Neal's 1/sqrt(fan-in)
                scale /= math.sqrt(p.shape[1])
            setattr(m, name, PyroSample(dist.Normal(0.0, scale)
                                        .expand(p.shape).to_event(p.dim())))
        m._initial_values = initial
    return module


class BayesianRegressionMixin:
    """What the two Bayesian models share: prior scale in ``config``, no plain parameters."""

    def initial_values(self) -> dict[str, torch.Tensor]:
        """Site name -> the value its network parameter had before it got a prior.

        For ``init_to_value``: starting a guide's means at PyTorch's default initialisation
        (uniform in +-1/sqrt(fan_in)) gives the same well-scaled, symmetry-breaking start as the
        maximum-likelihood fit. Zero means (``init_to_feasible``) would leave all hidden units
        identical, and prior draws would put f on a scale of tens to hundreds.
        """
        out = {}
        for m in self.modules():
            prefix = getattr(m, "_pyro_name", "")
            for name, value in getattr(m, "_initial_values", {}).items():
                out[f"{prefix}.{name}" if prefix else name] = value
        return out


class BayesianHomoscedasticRegression(BayesianRegressionMixin, HomoscedasticRegression):
    """The homoscedastic model with priors on the weights and on the noise level::

        w_f ~ N(0, prior_scale^2 I)      # every weight and bias of f = Wiggle()
        log_sigma ~ N(0, 1)              # sigma ~ LogNormal(0, 1), one noise level
        y_i ~ N(f(x_i; w_f), sigma^2)    # independently, i in plate "data"

    sigma gets a log-normal prior (site ``"log_sigma"``, sigma = exp(log_sigma)) rather than
    a prior on the maximum-likelihood model's pre-softplus parameter: a Gaussian on log sigma is
    scale-free, keeps sigma > 0 and lets a Gaussian guide in that unconstrained space fit it.
    The deterministic per-point site ``"sigma"`` repeats sigma for every point, as before.
    """

    def __init__(self, prior_scale: float = DEFAULT_PRIOR_SCALE,
                 log_sigma_prior: tuple[float, float] = LOG_SIGMA_PRIOR):
        super().__init__()  # builds f = Wiggle() and the point estimate sigma_pre
        del self.sigma_pre  # replaced by the latent log_sigma below
        make_bayesian_(self.f, prior_scale)
        self.f = self.f  # re-assign, so the converted network gets its site names ("f.0.weight")
        loc, scale = map(float, log_sigma_prior)
        self.log_sigma = PyroSample(dist.Normal(loc, scale))
        self.config = dict(prior_scale=float(prior_scale), log_sigma_prior=(loc, scale))

    def mean_and_scale(self, x):
        f = self.f(x)
        return f, self.log_sigma.exp().expand_as(f)


class BayesianHeteroscedasticRegression(BayesianRegressionMixin, HeteroscedasticRegression):
    """The heteroscedastic model with priors on the weights of both networks::

        w_f ~ N(0, prior_scale^2 I)              # f = Wiggle(), the mean
        w_g ~ N(0, prior_scale^2 I)              # g = Wiggle(), the noise
        sigma(x) = softplus(g(x; w_g))
        y_i ~ N(f(x_i; w_f), sigma(x_i)^2)       # independently, i in plate "data"

    The maximum-likelihood model's dip cures (sigma floor, beta-NLL) are not offered: the prior
    and the averaging over weights are this model's answer to sigma collapsing at single points,
    and beta-NLL's weighted objective is not a likelihood.
    """

    def __init__(self, prior_scale: float = DEFAULT_PRIOR_SCALE):
        super().__init__()  # builds f = Wiggle() and g = Wiggle(); sigma_floor 0, beta 0
        make_bayesian_(self.f, prior_scale)
        make_bayesian_(self.g, prior_scale)
        self.f, self.g = self.f, self.g  # site names "f.*" and "g.*"
        self.config = dict(prior_scale=float(prior_scale))


BAYESIAN_REGRESSION_MODELS = {"homoscedastic": BayesianHomoscedasticRegression,
                              "heteroscedastic": BayesianHeteroscedasticRegression}
