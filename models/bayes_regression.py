"""Bayesian neural-network regression: the xkcd models with priors on every network weight.

The maximum-likelihood models of :mod:`probnn.models.regression` fit one set of weights of the
:class:`~probnn.models.regression.Wiggle` MLP (``1 -> 4 -> 20 -> 20 -> 1``, LeakyReLU); here all
weights and biases of each such network are one latent vector with an independent Gaussian
prior, so the models are full Bayesian models whose posteriors a guide approximates.

The networks are evaluated by :class:`VectorisedMLP`, which takes the flat weight vector with
any leading batch dimensions and computes every layer with ``torch.matmul``: a batch of S
weight draws is scored in one pass. That is what makes ``Predictive(..., parallel=True)``,
``Trace_ELBO(num_particles=K, vectorize_particles=True)`` and a one-pass PSIS-LOO matrix
possible (``nn.Linear`` takes one weight matrix only, so draws had to loop in Python).

Sites, as in the maximum-likelihood models: ``"f"`` and ``"sigma"`` (deterministic, per point,
in data units), ``"y"`` (observed), plate ``"data"`` at ``dim=-1``; latent sites ``"f.w"``
(and ``"g.w"`` for the noise network), plus ``"log_sigma"`` in the homoscedastic model, all
drawn outside the data plate (any particle/draw plate goes at ``dim=-2``).

References: Neal (1996), *Bayesian Learning for Neural Networks*; Blundell et al. (2015),
"Weight Uncertainty in Neural Networks"; Pyro's "Bayesian regression" tutorial.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import pyro
import pyro.distributions as dist
from pyro.nn import PyroModule

from .regression import RegressionModel

WIGGLE_SIZES = (1, 4, 20, 20, 1)
"""Layer widths of :class:`~probnn.models.regression.Wiggle`."""
LEAKY_SLOPE = 0.01
"""``nn.LeakyReLU``'s default negative slope, as in Wiggle."""
DEFAULT_PRIOR_SCALE = 1.0
"""Prior standard deviation of every bias, and of every weight times sqrt(fan-in)."""
FAN_IN_SCALING = True
"""Weights of a layer with ``fan_in`` inputs get prior sd ``prior_scale / sqrt(fan_in)``
(Neal 1996): each layer then keeps the variance of its input instead of multiplying it by
fan_in * prior_scale^2, so the prior over functions stays on the scale of the (standardised)
data whatever the width."""
LOG_SIGMA_PRIOR = (-1.0, 1.0)
"""Homoscedastic noise in standardised units: log sigma_std ~ N(-1, 1), i.e. median 0.37 sd of
y, 95% prior interval (0.05, 2.6) sd of y: noise below the spread of y is likely, yet
noise as large as all of it stays plausible."""


class VectorisedMLP(PyroModule):
    """An MLP whose weights come as one flat vector, possibly with leading batch dimensions.

    ``forward(x, w)``: ``x`` (n, in), ``w`` (..., num_weights) -> (..., n, out). Layer l computes
    ``h @ W_l + b_l`` with ``W_l`` (..., fan_in, fan_out) and ``b_l`` (..., 1, fan_out) sliced
    from ``w``, so S weight draws give S networks evaluated at once. LeakyReLU between layers,
    as in :class:`~probnn.models.regression.Wiggle` (the same architecture, but not the same
    weight layout: ``nn.Linear`` stores the transpose).
    """

    def __init__(self, sizes=WIGGLE_SIZES, slope: float = LEAKY_SLOPE):
        super().__init__()
        self.sizes, self.slope = tuple(int(s) for s in sizes), float(slope)
        self.shapes = [(i, o) for i, o in zip(self.sizes[:-1], self.sizes[1:])]
        self.num_weights = sum(i * o + o for i, o in self.shapes)

    def prior_scale(self, prior_scale: float = DEFAULT_PRIOR_SCALE,
                    fan_in: bool = FAN_IN_SCALING) -> torch.Tensor:
        """Per-entry prior sd, (num_weights,): ``prior_scale / sqrt(fan_in)`` for weights
        (or ``prior_scale`` without fan-in scaling), ``prior_scale`` for biases."""
        parts = []
        for i, o in self.shapes:
            parts += [torch.full((i * o,), prior_scale / (math.sqrt(i) if fan_in else 1.0)),
                      torch.full((o,), float(prior_scale))]
        return torch.cat(parts)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        lead, start, h = w.shape[:-1], 0, x
        for layer, (i, o) in enumerate(self.shapes):
            W = w[..., start:start + i * o].reshape(*lead, i, o)
            start += i * o
            b = w[..., start:start + o].unsqueeze(-2)  # (..., 1, o)
            start += o
            h = torch.matmul(h, W) + b
            if layer < len(self.shapes) - 1:
                h = F.leaky_relu(h, self.slope)
        return h


def _draw_dims(value: torch.Tensor, event_dims: int) -> torch.Size:
    """The draw (particle/sample) dims of a latent drawn outside the data plate: its batch
    shape without the data plate's dim -1, which is 1 where a plate at dim -2 broadcast it
    (vectorised ELBO particles: (K, 1, ...)) and absent where ``Predictive`` reshaped the
    guide's draws to (S, ...)."""
    batch = value.shape[:value.dim() - event_dims]
    return batch[:-1] if len(batch) and batch[-1] == 1 else batch


class _BayesianRegression(RegressionModel):
    """Shared body: standardisation buffers; ``forward(x, y=None)`` with plate ``"data"`` at
    ``dim=-1`` is the maximum-likelihood models'
    (:class:`~probnn.models.regression.RegressionModel`).

    The networks act on standardised data, x_std = (x - x_loc) / x_scale, and model
    y_std = (y - y_loc) / y_scale; f and sigma are mapped back (f = y_loc + y_scale f_std,
    sigma = y_scale sigma_std) *before* the Normal, so ``"f"``, ``"sigma"`` and the
    log-likelihood of ``"y"`` are in the units of the original data. The buffers are set from
    the training data by ``standardise_to`` (the prior is then on functions of
    standardised data, whatever the units of x and y).
    """

    def __init__(self):
        super().__init__()
        for name, v in (("x_loc", 0.0), ("x_scale", 1.0), ("y_loc", 0.0), ("y_scale", 1.0)):
            self.register_buffer(name, torch.tensor(v))

    def standardise_to(self, x: torch.Tensor, y: torch.Tensor):
        """Set the standardisation from training data (mean and sd of x and of y); returns self."""
        for name, t in (("x", x), ("y", y)):
            getattr(self, f"{name}_loc").copy_(t.mean())
            getattr(self, f"{name}_scale").copy_(t.std())
        return self

    def _weights(self, net: str) -> torch.Tensor:
        scale = getattr(self, f"{net}_prior_sd")
        w = pyro.sample(f"{net}.w", dist.Normal(torch.zeros_like(scale), scale).to_event(1))
        return w.reshape(_draw_dims(w, 1) + w.shape[-1:])  # drop the data plate's dim -1


class BayesianHomoscedasticRegression(_BayesianRegression):
    """The homoscedastic model with priors on the weights and on the noise level::

        w_f ~ N(0, diag(s_f^2))          # site "f.w": all weights and biases of f
        log_sigma ~ N(-1, 1)             # site "log_sigma", in standardised units
        x~_i = (x_i - x_loc) / x_scale
        f(x_i) = y_loc + y_scale * MLP(x~_i; w_f)
        sigma = y_scale * exp(log_sigma)
        y_i ~ N(f(x_i), sigma^2)         # independently, i in plate "data"

    s_f: ``prior_scale / sqrt(fan_in)`` for weights, ``prior_scale`` for biases. A Gaussian on
    log sigma is scale-free, keeps sigma > 0 and lets a Gaussian guide fit it unconstrained.
    """

    def __init__(self, prior_scale: float = DEFAULT_PRIOR_SCALE,
                 log_sigma_prior: tuple[float, float] = LOG_SIGMA_PRIOR):
        super().__init__()
        if not prior_scale > 0:
            raise ValueError(f"prior_scale must be > 0, got {prior_scale}")
        self.f = VectorisedMLP()
        self.register_buffer("f_prior_sd", self.f.prior_scale(prior_scale))
        loc, scale = map(float, log_sigma_prior)
        self.register_buffer("log_sigma_loc", torch.tensor(loc))
        self.register_buffer("log_sigma_scale", torch.tensor(scale))
        self.config = dict(prior_scale=float(prior_scale), log_sigma_prior=(loc, scale))

    def mean_and_scale(self, x):
        w = self._weights("f")
        log_sigma = pyro.sample("log_sigma", dist.Normal(self.log_sigma_loc, self.log_sigma_scale))
        f = self.f((x - self.x_loc) / self.x_scale, w)
        sigma = log_sigma.exp().reshape(_draw_dims(log_sigma, 0) + (1, 1))
        return self.y_loc + self.y_scale * f, (self.y_scale * sigma).expand_as(f)


class BayesianHeteroscedasticRegression(_BayesianRegression):
    """The heteroscedastic model with priors on the weights of both networks::

        w_f ~ N(0, diag(s_f^2))                    # site "f.w", the mean network
        w_g ~ N(0, diag(s_g^2))                    # site "g.w", the noise network
        f(x_i) = y_loc + y_scale * MLP(x~_i; w_f)
        sigma(x_i) = y_scale * softplus(MLP(x~_i; w_g))
        y_i ~ N(f(x_i), sigma(x_i)^2)              # independently, i in plate "data"

    The maximum-likelihood model's dip cures (sigma floor, beta-NLL) are not offered: the prior
    and the averaging over weights are this model's answer to sigma collapsing at single points,
    and beta-NLL's weighted objective is not a likelihood.
    """

    def __init__(self, prior_scale: float = DEFAULT_PRIOR_SCALE):
        super().__init__()
        if not prior_scale > 0:
            raise ValueError(f"prior_scale must be > 0, got {prior_scale}")
        self.f, self.g = VectorisedMLP(), VectorisedMLP()
        self.register_buffer("f_prior_sd", self.f.prior_scale(prior_scale))
        self.register_buffer("g_prior_sd", self.g.prior_scale(prior_scale))
        self.config = dict(prior_scale=float(prior_scale))

    def mean_and_scale(self, x):
        wf, wg = self._weights("f"), self._weights("g")
        xs = (x - self.x_loc) / self.x_scale
        return (self.y_loc + self.y_scale * self.f(xs, wf),
                self.y_scale * F.softplus(self.g(xs, wg)))


BAYESIAN_REGRESSION_MODELS = {"homoscedastic": BayesianHomoscedasticRegression,
                              "heteroscedastic": BayesianHeteroscedasticRegression}
