"""Choosing an ELBO by name."""
from __future__ import annotations

import functools

import pyro.infer as infer

from .estimators import IWAE_ELBO
from .objectives import STL_ELBO, DReG_IWAE_ELBO
from .structure import BROADCAST_FAILURES, note_slow_path

ELBO_NAMES = ("trace", "meanfield", "stl", "iwae", "dreg-iwae")
"""Every objective :func:`make_elbo` builds, by name."""
BOUND_NAMES = ("iwae", "dreg-iwae")
"""The importance-weighted ones: their K is the bound's sample size, not particles averaged."""


def make_elbo(name: str = "trace", num_particles: int = 1, max_plate_nesting: int = 1,
              vectorize_particles: bool = True) -> infer.ELBO:
    """Build a Pyro ELBO by name.

    ``trace``
        :class:`~pyro.infer.Trace_ELBO` (Monte Carlo KL; the default)
    ``meanfield``
        :class:`~pyro.infer.TraceMeanField_ELBO` (analytic KL where available)
    ``stl``
        the ELBO with the guide's score term dropped ("sticking the landing"); see
        :class:`probnn.inference.objectives.STL_ELBO`
    ``iwae``
        importance-weighted bound with ``num_particles`` samples; see
        :class:`probnn.inference.estimators.IWAE_ELBO`
    ``dreg-iwae``
        the same bound with doubly reparameterised guide gradients; see
        :class:`probnn.inference.objectives.DReG_IWAE_ELBO`

    ``stl`` and ``dreg-iwae`` need reparameterised guide sites.
    """
    kw = dict(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
              vectorize_particles=vectorize_particles and num_particles > 1)
    if name == "trace":
        return Trace_ELBO(**kw)
    if name == "meanfield":
        return TraceMeanField_ELBO(**kw)
    custom = {"iwae": IWAE_ELBO, "stl": STL_ELBO, "dreg-iwae": DReG_IWAE_ELBO}
    if name in custom:
        return custom[name](num_particles=num_particles, max_plate_nesting=max_plate_nesting)
    raise ValueError(f"unknown ELBO {name!r}; choose one of {', '.join(ELBO_NAMES)}")


def _loop_if_not_broadcast(method):
    """``method`` of a Pyro ELBO with vectorised particles, falling back once (with a
    :class:`~probnn.inference.structure.SlowPathNote`) to Pyro's loop over particles when the
    model fails under the leading particle dimension."""
    @functools.wraps(method)
    def run(self, model, guide, *args, **kwargs):
        if self.vectorize_particles:
            try:
                return method(self, model, guide, *args, **kwargs)
            except BROADCAST_FAILURES as e:
                note_slow_path(e)
                self.vectorize_particles = False
        return method(self, model, guide, *args, **kwargs)
    return run


class Trace_ELBO(infer.Trace_ELBO):
    """Pyro's ``Trace_ELBO``; vectorised particles fall back to its particle loop for a model
    that does not broadcast (the numbers of a model that does are Pyro's, unchanged)."""
    loss = _loop_if_not_broadcast(infer.Trace_ELBO.loss)
    loss_and_grads = _loop_if_not_broadcast(infer.Trace_ELBO.loss_and_grads)
    differentiable_loss = _loop_if_not_broadcast(infer.Trace_ELBO.differentiable_loss)


class TraceMeanField_ELBO(infer.TraceMeanField_ELBO):
    """Pyro's ``TraceMeanField_ELBO`` with the same fallback as :class:`Trace_ELBO`."""
    loss = _loop_if_not_broadcast(infer.TraceMeanField_ELBO.loss)
    loss_and_grads = _loop_if_not_broadcast(infer.TraceMeanField_ELBO.loss_and_grads)
    differentiable_loss = _loop_if_not_broadcast(infer.TraceMeanField_ELBO.differentiable_loss)
