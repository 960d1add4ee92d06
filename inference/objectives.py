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

import copy
import math

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from torch.distributions import Distribution, Transform

from .estimators import ParticleELBO, particle_terms
from .structure import ModelError, sample_sites, weight_view


def _detach(obj):
    """A shallow copy of a distribution or transform with every tensor attribute detached
    (parameters and lazily cached values alike), nested distributions and transforms
    (``base_dist``, ``transforms``, Beta's inner Dirichlet) detached the same way, and
    transform caches emptied so that inverses are recomputed from the live sample."""
    if isinstance(obj, torch.nn.Module):
        raise NotImplementedError(f"{type(obj).__name__} holds learnable modules, which "
                                  "cannot be detached")
    out = copy.copy(obj)
    for k, v in vars(obj).items():
        if k == "_cached_x_y":
            out.__dict__[k] = (None, None)
        elif isinstance(v, torch.Tensor):
            out.__dict__[k] = v.detach()
        elif isinstance(v, (Distribution, Transform)):
            out.__dict__[k] = _detach(v)
        elif isinstance(v, (list, tuple)) and any(isinstance(x, (Distribution, Transform)) for x in v):
            out.__dict__[k] = type(v)(_detach(x) if isinstance(x, (Distribution, Transform)) else x
                                      for x in v)
    return out


def detached(fn: Distribution) -> Distribution:
    """The same distribution with its parameters detached: ``detached(q).log_prob(z)`` has
    the value of ``q.log_prob(z)`` and a gradient that reaches q's parameters only through z.

    Works for any distribution built from tensors, nested distributions and parameter-free or
    tensor-parameterised transforms (Normal, LogNormal, Beta, Gamma, MultivariateNormal,
    ``Independent``/``to_event``, ``TransformedDistribution`` ...). An auto-guide's ``Delta``
    keeps its ``log_density`` live: it is the Jacobian term of the sample, a function of z,
    whose path derivative is part of the estimator."""
    if isinstance(fn, dist.Delta):
        out = copy.copy(fn)
        out.__dict__["v"] = fn.v.detach()
        return out
    return _detach(fn)


def _site_detached(site):
    try:
        return detached(site["fn"])
    except NotImplementedError as e:
        raise ModelError(f"guide site {site['name']!r}: {e}; the path-derivative objectives "
                         "(stl, dreg-iwae) need q's parameters detachable") from e


def guide_dependence(guide, call) -> tuple[str, str] | None:
    """``(site, parent)`` for the first guide sample site whose distribution depends on an
    earlier guide sample (a hierarchical guide), else None. Found from one traced pass in
    which every sample is a fresh leaf tensor; an auto-guide's Delta (a function of its own
    auxiliary sample) is not a draw and does not count. The random number streams are left
    as they were."""
    state = pyro.util.get_rng_state()
    try:
        with torch.enable_grad(), pyro.validation_enabled(False):
            tr = poutine.trace(guide).get_trace(*call.args, **call.kwargs)
            for _, site in sample_sites(tr):
                site["value"] = site["value"].detach().requires_grad_(site["fn"].has_rsample)
            tr = poutine.trace(poutine.replay(guide, trace=tr)).get_trace(*call.args, **call.kwargs)
            earlier = []
            for name, site in sample_sites(tr):
                lp = site["fn"].log_prob(site["value"].detach()).sum()
                if earlier and lp.requires_grad and not isinstance(site["fn"], dist.Delta):
                    grads = torch.autograd.grad(lp, [v for _, v in earlier], allow_unused=True)
                    parent = next((n for (n, _), g in zip(earlier, grads) if g is not None), None)
                    if parent is not None:
                        return name, parent
                if site["value"].requires_grad:
                    earlier.append((name, site["value"]))
    finally:
        pyro.util.set_rng_state(state)
    return None


def _stopped_log_weights(model, guide, call, k: int, particles):
    """``log p(x, z_k) - log q_detached(z_k)``, (k, n), and the guide's samples."""
    t = particle_terms(model, guide, call, k, particles, guide_fn=_site_detached)
    return t["log_w"], t["latents"]


class STL_ELBO(ParticleELBO):
    """The ELBO ``-sum_i mean_k log w_ik`` (``num_particles`` samples averaged, as
    ``Trace_ELBO``) with the guide's score term removed: "sticking the landing"."""

    tool = "the STL objective"

    def differentiable_loss(self, model, guide, *args, **kwargs):
        call, particles = self.particles(model, guide, args, kwargs)
        log_w, _ = _stopped_log_weights(model, guide, call, self.num_particles, particles)
        return -log_w.mean(0).sum()


def dreg_factor(w: torch.Tensor, site) -> torch.Tensor:
    """The factor DReG's hook puts on the gradient reaching a guide sample from the path
    term ``w~ d log w/dz dz/dphi``: ``1 - c + c w~`` with ``c`` the site's scale times mask
    (``w~`` where the site counts once). Removing a score term ``c d log q/dphi`` (whose
    weighted expectation the reparameterisation turns into ``c (w~ - w~^2) d log w/dz
    dz/dphi``) leaves ``w~ (1 - c + c w~)`` there: a subsample plate's N/B or a
    ``poutine.scale`` enters the estimator, and a masked-out site keeps its path term."""
    c = scale_and_mask(torch.ones((), dtype=w.dtype, device=w.device), site["scale"], site["mask"])
    if isinstance(c, torch.Tensor) and c.dim():
        c = c.reshape(c.shape + (1,) * len(site["fn"].event_shape))
    elif float(c) == 1.0:
        return w
    return 1 - c + c * w


class DReG_IWAE_ELBO(ParticleELBO):
    """The IWAE bound ``-sum_i log (1/K) sum_k w_ik`` (K = ``num_particles``) with the
    doubly reparameterised guide gradient and IWAE's model gradient.

    The weights' hook goes on each guide sample whose value is drawn by ``rsample`` (for an
    auto-guide, the auxiliary unconstrained sample, not the Delta site computed from it). A
    guide whose later latents are drawn *given* earlier ones (a hierarchical guide) is refused
    with a :class:`~probnn.inference.structure.ModelError` naming the two sites, before any
    computation: the weight would be applied twice along that path and the detached parameters
    would cut a path whose weighted expectation is not zero (STL, K = 1, and IWAE handle such
    guides)."""

    tool = "the DReG objective"

    def __init__(self, num_particles: int = 1, max_plate_nesting: int = 1):
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting)
        self._checked: set = set()  # ids of the Particles whose guide passed the check

    def particles(self, model, guide, args, kwargs):
        """The base class's particles, and once per pair and argument shapes (before any
        computation) the refusal of a hierarchical guide."""
        call, p = super().particles(model, guide, args, kwargs)
        if id(p) not in self._checked:
            found = guide_dependence(guide, call)
            if found:
                raise ModelError(f"guide site {found[0]!r} is drawn given guide site {found[1]!r} "
                                 "(a hierarchical guide): the DReG objective needs every guide "
                                 "site drawn from the data and parameters alone; use 'iwae' (the "
                                 "same bound and gradient expectation) or 'stl'")
            self._checked.add(id(p))
        return call, p

    def differentiable_loss(self, model, guide, *args, **kwargs):
        call, particles = self.particles(model, guide, args, kwargs)
        k, s = self.num_particles, particles.structure
        log_w, latents = _stopped_log_weights(model, guide, call, k, particles)
        with torch.no_grad():
            w = torch.softmax(log_w, 0)  # normalised weights w~, (K, n)
        if torch.is_grad_enabled():
            skip_delta = bool(s.guide_only)
            for site, kk, j in latents:
                z = site["value"]
                if not z.requires_grad or (skip_delta and isinstance(site["fn"], dist.Delta)):
                    continue
                view = weight_view(w if kk is not None else w[j], site, s, particles=kk is not None)
                z.register_hook(lambda g, scale=dreg_factor(view, site): g * scale)
        surrogate = (w * log_w).sum(0)
        value = torch.logsumexp(log_w.detach(), 0) - math.log(k)
        # value of the IWAE bound, gradient of the surrogate
        return -(value + surrogate - surrogate.detach()).sum()

