"""Training objectives with lower-variance guide gradients, which Pyro does not offer.

Both are :class:`pyro.infer.ELBO` subclasses with ``differentiable_loss`` (module-local
parameters, torch optimisers, :func:`probnn.inference.train.fit`, checkpoints and exact
resume), selected by name through :func:`probnn.inference.elbos.make_elbo`. Their *values*
are the ELBO and the IWAE bound; only the guide's gradient changes.

With ``z = z(eps; phi)`` reparameterised and ``w = p(x, z) / q_phi(z | x)``, the usual
reparameterised gradient of ``log w`` with respect to the guide's parameters phi has two
parts: the path through z, ``d log w/dz dz/dphi``, and the score ``-d log q_phi(z)/dphi`` at
fixed z. The score has expectation zero but adds variance; both objectives drop it by
evaluating ``log q`` with the guide's parameters detached (:func:`detached`), so phi is
reached through z only.

- :class:`STL_ELBO` -- "sticking the landing" (Roeder, Wu & Duvenaud 2017, "Sticking the
  Landing: Simple, Lower-Variance Gradient Estimators for Variational Inference"): the ELBO
  with the score term removed. Unbiased for the ELBO's gradient; when q equals the exact
  posterior, ``log w = log p(x)`` for every z, so the guide gradient is exactly zero for
  every draw (zero variance).
- :class:`DReG_IWAE_ELBO` -- doubly reparameterised gradients (Tucker, Lawson, Gu &
  Maddison 2019, "Doubly Reparameterized Gradient Estimators for Monte Carlo Objectives"):
  for the IWAE bound ``L_K = log (1/K) sum_k w_k`` with normalised weights
  ``w~_k = w_k / sum_j w_j``,

  .. math::
      \\nabla_\\phi L_K \\approx \\sum_k \\tilde w_k^2 \\,
          \\frac{\\partial \\log w_k}{\\partial z_k} \\frac{\\partial z_k}{\\partial \\phi},
      \\qquad
      \\nabla_\\theta L_K = \\sum_k \\tilde w_k \\nabla_\\theta \\log w_k ,

  unbiased for the same gradient as IWAE's, whose encoder signal-to-noise ratio falls as K
  grows (Rainforth et al. 2018) while DReG's does not. The model (theta) gradient is IWAE's.

Why hand-written: Pyro has neither (DReG is an open Pyro feature request; ``RenyiELBO`` and
``TraceGraph_ELBO`` have no switch that drops the score term). DReG is computed in one
forward and one backward pass: a gradient hook on each latent sample z_k multiplies the
gradient flowing back into it by ``w~_k``, which turns the surrogate ``sum_k w~_k log w_k``'s
guide gradient ``sum_k w~_k d log w_k`` into ``sum_k w~_k^2 d log w_k`` and leaves its model
gradient (which does not pass through z) unchanged.
"""
from __future__ import annotations

import math

import pyro.distributions as dist
import torch
from torch.distributions import Independent

from .estimators import ParticleELBO, particle_traces, sample_sites, shape_particles


def detached(fn: torch.distributions.Distribution) -> torch.distributions.Distribution:
    """The same distribution with its parameters detached: ``detached(q).log_prob(z)`` has
    the value of ``q.log_prob(z)`` and a gradient that reaches q's parameters only through z.

    Supports the guides' families: ``Independent`` wrappers (``.to_event``), multivariate
    normals and every distribution whose ``arg_constraints`` parameters are plain attributes
    (Normal, LogNormal, Beta, ...)."""
    if isinstance(fn, Independent):
        return Independent(detached(fn.base_dist), fn.reinterpreted_batch_ndims)
    if isinstance(fn, torch.distributions.MultivariateNormal):
        return dist.MultivariateNormal(fn.loc.detach(), scale_tril=fn.scale_tril.detach())
    params = {k: v.detach() for k in fn.arg_constraints
              if isinstance(v := vars(fn).get(k), torch.Tensor)}
    if not params:
        raise NotImplementedError(f"cannot detach the parameters of {type(fn).__name__}")
    return type(fn)(**params, validate_args=False)


def _stopped_log_weights(model, guide, args, k: int, max_plate_nesting: int):
    """``log p(x, z_k) - log q_detached(z_k)``, (k, n), and the latent samples z_k."""
    model_trace, guide_trace = particle_traces(model, guide, args, k, max_plate_nesting)
    n = len(args[0])
    log_w = 0.0
    for _, site in sample_sites(model_trace):
        log_w = log_w + shape_particles(site["fn"].log_prob(site["value"]), k, n)
    latents = []
    for name, site in sample_sites(guide_trace):
        if not site["fn"].has_rsample:
            raise ValueError(f"guide site {name!r} is not reparameterised: the path-derivative "
                             "objectives (stl, dreg-iwae) need z = z(eps; phi)")
        log_w = log_w - shape_particles(detached(site["fn"]).log_prob(site["value"]), k, n)
        latents.append(site["value"])
    return torch.as_tensor(log_w), latents


class STL_ELBO(ParticleELBO):
    """The ELBO ``-sum_i mean_k log w_ik`` (``num_particles`` samples averaged, as
    ``Trace_ELBO``) with the guide's score term removed: "sticking the landing"."""

    def differentiable_loss(self, model, guide, *args, **kwargs):
        if kwargs:
            raise ValueError("STL_ELBO passes data positionally")
        log_w, _ = _stopped_log_weights(model, guide, args, self.num_particles,
                                        self.max_plate_nesting)
        return -log_w.mean(0).sum()


class DReG_IWAE_ELBO(ParticleELBO):
    """The IWAE bound ``-sum_i log (1/K) sum_k w_ik`` (K = ``num_particles``) with the
    doubly reparameterised guide gradient and IWAE's model gradient."""

    def differentiable_loss(self, model, guide, *args, **kwargs):
        if kwargs:
            raise ValueError("DReG_IWAE_ELBO passes data positionally")
        k = self.num_particles
        log_w, latents = _stopped_log_weights(model, guide, args, k, self.max_plate_nesting)
        with torch.no_grad():
            w = torch.softmax(log_w, 0)  # normalised weights w~, (K, n)
        if torch.is_grad_enabled():
            for z in latents:
                if z.requires_grad:
                    if tuple(z.shape[:w.dim()]) != tuple(w.shape):
                        raise ValueError(f"a latent of shape {tuple(z.shape)} does not start with "
                                         f"(particles, data points) = {tuple(w.shape)}")
                    scale = w.reshape(w.shape + (1,) * (z.dim() - w.dim()))
                    z.register_hook(lambda g, scale=scale: g * scale)
        surrogate = (w * log_w).sum(0)
        value = torch.logsumexp(log_w.detach(), 0) - math.log(k)
        # value of the IWAE bound, gradient of the surrogate
        return -(value + surrogate - surrogate.detach()).sum()
