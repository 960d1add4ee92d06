"""Neural-network regression with Gaussian noise: the xkcd 2048 models of the coursework."""
from __future__ import annotations

import contextlib
import math
from typing import Callable, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
from torch.distributions import constraints
from torch.distributions.utils import broadcast_all

from .settings import LocalPyroModule


class Wiggle(nn.Sequential):
    """The coursework's small MLP ``1 -> 4 -> 20 -> 20 -> 1`` with LeakyReLU activations."""

    def __init__(self):
        super().__init__(
            nn.Linear(1, 4), nn.LeakyReLU(),
            nn.Linear(4, 20), nn.LeakyReLU(),
            nn.Linear(20, 20), nn.LeakyReLU(),
            nn.Linear(20, 1),
        )


class SeedWiggle(nn.Module):
    """``S`` independent :class:`Wiggle` networks evaluated at once: layer ``l`` holds weights of
    shape (S, out, in) and biases (S, out); ``forward`` maps x (n, 1) to (S, n, 1) with one
    batched matrix product per layer (``torch.baddbmm``) instead of S small ones.

    Built with :meth:`stack` from S ordinary Wiggles, so member s holds exactly the weights of
    the s-th network; :meth:`member` gives one back as a plain :class:`Wiggle`.
    """

    def __init__(self, seeds: int, device: str | torch.device = "cpu"):
        super().__init__()
        self.layers = nn.ParameterList()
        for out, inp in ((4, 1), (20, 4), (20, 20), (1, 20)):
            self.layers.append(nn.Parameter(torch.zeros(seeds, out, inp, device=device)))
            self.layers.append(nn.Parameter(torch.zeros(seeds, out, device=device)))

    @classmethod
    def stack(cls, nets: Sequence[Wiggle]) -> "SeedWiggle":
        out = cls(len(nets), device=next(nets[0].parameters()).device)
        linears = [[m for m in net if isinstance(m, nn.Linear)] for net in nets]
        with torch.no_grad():
            for i in range(4):
                out.layers[2 * i].copy_(torch.stack([ls[i].weight for ls in linears]))
                out.layers[2 * i + 1].copy_(torch.stack([ls[i].bias for ls in linears]))
        return out

    def member(self, s: int) -> Wiggle:
        net = Wiggle()
        linears = [m for m in net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for i, lin in enumerate(linears):
                lin.weight.copy_(self.layers[2 * i][s])
                lin.bias.copy_(self.layers[2 * i + 1][s])
        return net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seeds = self.layers[0].shape[0]
        h = x.expand(seeds, *x.shape[-2:]) if x.dim() == 2 else x
        for i in range(4):
            w, b = self.layers[2 * i], self.layers[2 * i + 1]
            h = torch.baddbmm(b.unsqueeze(1), h, w.transpose(1, 2))
            if i < 3:
                h = F.leaky_relu(h)
        return h


class NaturalNormal(dist.Normal):
    """The Gaussian in its natural parameters ``eta1 = mu / sigma^2``, ``eta2 = -1 / (2 sigma^2)``
    (``eta2 < 0``), with the log-density written in them (Immer et al., 2023, eq. 4)::

        log N(y | eta) = eta1 y + eta2 y^2 + eta1^2 / (4 eta2) + 1/2 log(-2 eta2) - 1/2 log 2pi

    ``loc`` and ``scale`` (for sampling and reporting) are ``-eta1 / (2 eta2)`` and
    ``(-2 eta2)^(-1/2)``. Torch has no such distribution; Pyro's Normal takes (mu, sigma).
    """
    arg_constraints = {"eta1": constraints.real, "eta2": constraints.less_than(0.0)}

    def __init__(self, eta1, eta2, validate_args=None):
        self.eta1, self.eta2 = broadcast_all(eta1, eta2)
        scale = (-2 * self.eta2).rsqrt()
        super().__init__(self.eta1 * scale ** 2, scale, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(NaturalNormal, _instance)
        batch_shape = torch.Size(batch_shape)
        new.eta1, new.eta2 = self.eta1.expand(batch_shape), self.eta2.expand(batch_shape)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value):
        if self._validate_args:
            self._validate_sample(value)
        e1, e2 = self.eta1, self.eta2
        return (e1 * value + e2 * value ** 2 + e1 ** 2 / (4 * e2) + 0.5 * torch.log(-2 * e2)
                - 0.5 * math.log(2 * math.pi))


class RegressionModel(LocalPyroModule):
    """Base class of the regression models (maximum-likelihood and Bayesian): subclasses give
    :meth:`mean_and_scale`; this class gives ``forward(x, y=None)`` with observations in plate
    ``"data"`` and :meth:`RegressionModel.log_likelihood`.

    Sites: ``"f"`` and ``"sigma"`` (deterministic, shape (n, 1)) and ``"y"`` (observed or
    generated, shape (n, 1)). With ``y=None`` the model generates, so ``Predictive`` can sample.
    """

    config: dict = {}
    seeds: tuple[int, ...] | None = None
    """Set by :func:`seed_ensemble`: the seeds of an ensemble's members (plate ``"seeds"``)."""
    likelihood_objective: bool = True
    """False when training maximises something other than the log-likelihood (a cure)."""

    def mean_and_scale(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def observation(self, x: torch.Tensor):
        """``(f, sigma, distribution of y)`` at ``x``: ``Normal(f, sigma)`` here."""
        f, sigma = self.mean_and_scale(x)
        return f, sigma, dist.Normal(f, sigma)

    def extra_objective(self, f: torch.Tensor, y: torch.Tensor | None) -> None:
        """Terms of the training objective besides the observation site: none here."""

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2 or x.shape[-1] != 1:
            raise ValueError(f"x must have shape (n, 1), got {tuple(x.shape)}")
        if y is not None and y.shape != x.shape:
            raise ValueError(f"y must have the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")
        # latents, if any, are drawn here, outside the plate
        f, sigma, likelihood = self.observation(x)
        seeds = (pyro.plate("seeds", len(self.seeds), dim=-2) if self.seeds is not None
                 else contextlib.nullcontext())
        with seeds, pyro.plate("data", x.shape[0], dim=-1):
            pyro.deterministic("f", f, event_dim=1)
            pyro.deterministic("sigma", sigma, event_dim=1)
            self.extra_objective(f, y)
            with poutine.scale(scale=self.observation_weight(sigma)):
                return pyro.sample("y", likelihood.to_event(1), obs=y)

    def observation_weight(self, sigma: torch.Tensor):
        """Per-point weight of the log-likelihood in the training objective: 1 here."""
        return 1.0

    def log_likelihood(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Pointwise ``log N(y_i | f(x_i), sigma(x_i)^2)``, shape (n,).

        In the Bayesian models (:mod:`probnn.models.bayes_regression`) :meth:`mean_and_scale`
        samples the weights, so this is the log-likelihood under one draw of them (from the
        prior, or the values a handler such as ``poutine.replay`` supplies), shape (..., n)
        for vectorised draws.
        """
        f, sigma = self.mean_and_scale(x)
        return dist.Normal(f, sigma).log_prob(y).sum(-1)


class HomoscedasticRegression(RegressionModel):
    """Regression with one noise level for all inputs::

        f = Wiggle()                  # 1 -> 4 -> 20 -> 20 -> 1
        sigma = softplus(sigma_pre)   # sigma_pre a parameter, initialised to 1.0
        y_i ~ N(f(x_i), sigma^2)      # independently, i in plate "data"

    Fitted by maximum likelihood: SVI with an empty guide.
    """

    def __init__(self):
        super().__init__()
        self.f = Wiggle()
        self.sigma_pre = nn.Parameter(torch.tensor(1.0))

    def mean_and_scale(self, x):
        f = self.f(x)
        return f, F.softplus(self.sigma_pre).expand_as(f)


class HeteroscedasticRegression(RegressionModel):
    """Regression whose noise level depends on the input::

        f = Wiggle(); g = Wiggle()
        sigma(x) = sigma_floor + softplus(g(x))
        y_i ~ N(f(x_i), sigma(x_i)^2)   # independently, i in plate "data"

    Cures for the training dips (sigma shrinking at one point until a small move of f costs
    hundreds of nats), each changing only how the model is trained or parameterised:

    * ``sigma_floor`` > 0 bounds sigma away from 0;
    * ``beta`` > 0 trains with the beta-NLL loss of Seitzer et al. (2022), "On the Pitfalls of
      Heteroscedastic Uncertainty Estimation with Probabilistic Neural Networks": each point's
      log-likelihood is weighted by stop-gradient(sigma_i^(2 beta)) through ``poutine.scale``,
      so points the model is very sure of no longer dominate the gradient (beta = 0: maximum
      likelihood; beta = 1: the mean's gradient of a squared error);
    * ``cure="faithful"``: Stirn et al. (2023), "Faithful Heteroscedastic Regression with
      Neural Networks" (AISTATS): f is fitted by the squared error 1/2 (y - f)^2 (a
      ``pyro.factor``), as the homoscedastic model fits it, and the likelihood site sees
      stop-gradient(f), so only the variance network g learns from the log-likelihood. Their
      networks share a trunk that gets gradients from the mean's loss only; f and g here share
      nothing, so stopping f's gradient is the whole of it;
    * ``cure="natural"``: Immer et al. (2023), "Effective Bayesian Heteroscedastic Regression
      with Deep Neural Networks" (NeurIPS): the networks output the natural parameters
      ``eta1 = f(x) = mu / sigma^2`` and ``eta2 = -softplus(g(x)) = -1 / (2 sigma^2)`` and the
      likelihood is written in them (:class:`NaturalNormal`); mu = eta1 sigma^2.

    With ``beta`` > 0 or ``faithful`` the ELBO is that objective, not the log-likelihood
    (``likelihood_objective`` is False); :meth:`RegressionModel.log_likelihood` stays the plain one.
    """

    CURES = ("none", "faithful", "natural")

    def __init__(self, sigma_floor: float = 0.0, beta: float = 0.0, cure: str = "none"):
        super().__init__()
        self.check(sigma_floor, beta, cure)
        self.config = dict(sigma_floor=sigma_floor, beta=beta) if sigma_floor or beta else {}
        if cure != "none":
            self.config = dict(cure=cure)
        self.sigma_floor, self.beta, self.cure = float(sigma_floor), float(beta), cure
        self.likelihood_objective = not (beta or cure == "faithful")
        self.f = Wiggle()
        self.g = Wiggle()

    @staticmethod
    def cured(sigma_floor: float = 0.0, beta: float = 0.0, cure: str = "none") -> bool:
        """Whether these settings change the plain heteroscedastic model (a cure for the
        dips: a sigma floor, the beta-NLL loss, the faithful or the natural likelihood)."""
        return bool(sigma_floor or beta or cure != "none")

    @classmethod
    def check(cls, sigma_floor: float = 0.0, beta: float = 0.0, cure: str = "none") -> None:
        """Raise ``ValueError`` unless these cures make a model (building none)."""
        if sigma_floor < 0 or beta < 0:
            raise ValueError(f"sigma_floor and beta must be >= 0, got {sigma_floor}, {beta}")
        if cure not in cls.CURES:
            raise ValueError(f"unknown cure {cure!r}; choose from {list(cls.CURES)}")
        if cure != "none" and (sigma_floor or beta):
            raise ValueError(f"the {cure} cure does not combine with sigma_floor or beta")

    def observation(self, x):
        if self.cure == "natural":
            d = NaturalNormal(self.f(x), -F.softplus(self.g(x)))
            return d.loc, d.scale, d
        f, sigma = self.f(x), self.sigma_floor + F.softplus(self.g(x))
        return f, sigma, dist.Normal(f.detach() if self.cure == "faithful" else f, sigma)

    def mean_and_scale(self, x):
        f, sigma, _ = self.observation(x)
        return f, sigma

    def extra_objective(self, f, y):
        if self.cure == "faithful" and y is not None:
            pyro.factor("mean_fit", -0.5 * (y - f).pow(2).squeeze(-1))

    def observation_weight(self, sigma: torch.Tensor):
        if not self.beta:
            return 1.0
        return sigma.detach().pow(2 * self.beta).squeeze(-1)


REGRESSION_MODELS = {"homoscedastic": HomoscedasticRegression,
                     "heteroscedastic": HeteroscedasticRegression}


def seed_ensemble(build: Callable[[], RegressionModel], seeds: Sequence[int]) -> RegressionModel:
    """``build()``'s model for every seed at once: member s has exactly the initial weights of
    ``torch.manual_seed(seeds[s]); build()`` (built so, then stacked), evaluated batched.

    The model's networks become :class:`SeedWiggle`\\ s and its own parameters (the
    homoscedastic ``sigma_pre``) get a leading dimension of shape (S, 1, 1); f and sigma have
    shape (S, n, 1) and the observations sit in plate ``"seeds"`` (dim -2) outside plate
    ``"data"``. The members share nothing, so the summed loss gives each its own gradient and
    an elementwise optimiser (Adam) takes each member's own step.
    """
    seeds = tuple(int(s) for s in seeds)
    if not seeds:
        raise ValueError("seed_ensemble needs at least one seed")
    members = []
    for s in seeds:
        torch.manual_seed(s)
        members.append(build())
    model = members[0]
    for name, child in list(model.named_children()):
        if isinstance(child, Wiggle):
            setattr(model, name, SeedWiggle.stack([getattr(m, name) for m in members]))
    for name, p in list(model.named_parameters(recurse=False)):
        stacked = torch.stack([getattr(m, name).detach() for m in members])
        setattr(model, name, nn.Parameter(stacked.reshape(len(seeds), *[1] * max(2 - p.dim(), 0),
                                                          *p.shape)))
    model.seeds = seeds
    return model


def ensemble_member(model: RegressionModel, build: Callable[[], RegressionModel],
                    s: int) -> RegressionModel:
    """Member ``s`` (an index) of a :func:`seed_ensemble` as an ordinary model of ``build()``."""
    single = build()
    for name, child in list(model.named_children()):
        if isinstance(child, SeedWiggle):
            setattr(single, name, child.member(s))
    with torch.no_grad():
        for name, p in model.named_parameters(recurse=False):
            getattr(single, name).copy_(p[s].reshape(getattr(single, name).shape))
    return single.eval()


class MixedGaussian(dist.Normal):
    """Per element either ``Normal(loc, scale)`` or the same Gaussian written in its natural
    parameters (``natural`` True: the log-density of :class:`NaturalNormal` at ``eta1``,
    ``eta2``; ``loc`` and ``scale`` are then its mean and scale). For a
    :class:`HeteroscedasticFamily`, whose members use either likelihood in one batch."""

    def __init__(self, loc, scale, eta1, eta2, natural, validate_args=None):
        self.eta1, self.eta2, self.natural = eta1, eta2, natural
        super().__init__(loc, scale, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None):
        new = self._get_checked_instance(MixedGaussian, _instance)
        batch_shape = torch.Size(batch_shape)
        new.eta1, new.eta2 = self.eta1.expand(batch_shape), self.eta2.expand(batch_shape)
        new.natural = self.natural.expand(batch_shape)
        return super().expand(batch_shape, _instance=new)

    def log_prob(self, value):
        e1, e2 = self.eta1, self.eta2
        natural = (e1 * value + e2 * value ** 2 + e1 ** 2 / (4 * e2) + 0.5 * torch.log(-2 * e2)
                   - 0.5 * math.log(2 * math.pi))
        return torch.where(self.natural, natural, super().log_prob(value))


class HeteroscedasticFamily(RegressionModel):
    """Several cures of :class:`HeteroscedasticRegression` (``cures``: its keyword arguments),
    each from every seed, trained as one batch: member ``v * S + s`` is cure v from seed s,
    with exactly the initial weights of ``torch.manual_seed(seeds[s]);
    HeteroscedasticRegression(**cures[v])``. The cures become per-member settings (floor,
    beta, faithful and natural masks) applied with ``torch.where``, each branch evaluated on
    safe values for the members that do not use it (so no inf or NaN reaches a gradient), so
    every member computes what its own model computes. The members share nothing: the summed
    loss gives each its own gradient (see :func:`seed_ensemble`).
    """

    def __init__(self, cures: Sequence[dict], seeds: Sequence[int]):
        super().__init__()
        members = []
        for cure in cures:
            for s in seeds:
                torch.manual_seed(s)
                members.append(HeteroscedasticRegression(**cure))
        self.f = SeedWiggle.stack([m.f for m in members])
        self.g = SeedWiggle.stack([m.g for m in members])

        def setting(get):
            return torch.tensor([get(m) for m in members]).reshape(-1, 1, 1)
        self.register_buffer("floor", setting(lambda m: m.sigma_floor))
        self.register_buffer("beta2", setting(lambda m: 2 * m.beta))
        self.register_buffer("faithful", setting(lambda m: m.cure == "faithful"))
        self.register_buffer("natural", setting(lambda m: m.cure == "natural"))
        self.cures = [dict(c) for c in cures]
        self.seeds = tuple(int(s) for s in seeds) * len(cures)
        self.likelihood_objective = all(m.likelihood_objective for m in members)

    def observation(self, x):
        f, sp = self.f(x), F.softplus(self.g(x))
        nat, one = self.natural, torch.ones_like(sp)
        sp_nat = torch.where(nat, sp, one)
        sigma_nat = (2 * sp_nat).rsqrt()
        mu = torch.where(nat, f * sigma_nat ** 2, f)
        sigma = torch.where(nat, sigma_nat, self.floor + torch.where(nat, one, sp))
        loc = torch.where(self.faithful, mu.detach(), mu)
        return mu, sigma, MixedGaussian(loc, sigma, f, -sp_nat, nat)

    def mean_and_scale(self, x):
        f, sigma, _ = self.observation(x)
        return f, sigma

    def extra_objective(self, f, y):
        if y is not None and bool(self.faithful.any()):
            pyro.factor("mean_fit", -0.5 * ((y - f).pow(2) * self.faithful).squeeze(-1))

    def observation_weight(self, sigma: torch.Tensor):
        if not bool((self.beta2 > 0).any()):
            return 1.0
        return sigma.detach().pow(self.beta2).squeeze(-1)

    def cure_ensemble(self, v: int) -> RegressionModel:
        """Cure ``v``'s members as a :func:`seed_ensemble` of its model (a copy)."""
        n = len(self.seeds) // len(self.cures)
        with torch.random.fork_rng():  # building draws initial weights: leave the RNG alone
            model = seed_ensemble(lambda: HeteroscedasticRegression(**self.cures[v]),
                                  self.seeds[:n])
        with torch.no_grad():
            for name in ("f", "g"):
                for mine, theirs in zip(getattr(model, name).layers, getattr(self, name).layers):
                    mine.copy_(theirs[v * n:(v + 1) * n])
        return model
