"""Choosing an ELBO by name."""
from __future__ import annotations

import pyro.infer as infer

from .estimators import IWAE_ELBO
from .objectives import STL_ELBO, DReG_IWAE_ELBO

ELBO_NAMES = ("trace", "meanfield", "stl", "iwae", "dreg-iwae")


def make_elbo(name: str = "trace", num_particles: int = 1, max_plate_nesting: int = 1,
              vectorize_particles: bool = True) -> infer.ELBO:
    """Build a Pyro ELBO by name.

    ``trace``         :class:`~pyro.infer.Trace_ELBO` (Monte Carlo KL; the default)
    ``meanfield``     :class:`~pyro.infer.TraceMeanField_ELBO` (analytic KL where available)
    ``stl``           the ELBO with the guide's score term dropped ("sticking the
                      landing"); see :class:`probnn.inference.objectives.STL_ELBO`
    ``iwae``          importance-weighted bound with ``num_particles`` samples; see
                      :class:`probnn.inference.estimators.IWAE_ELBO`
    ``dreg-iwae``     the same bound with doubly reparameterised guide gradients; see
                      :class:`probnn.inference.objectives.DReG_IWAE_ELBO`

    ``stl`` and ``dreg-iwae`` need reparameterised guide sites.
    """
    kw = dict(num_particles=num_particles, max_plate_nesting=max_plate_nesting,
              vectorize_particles=vectorize_particles and num_particles > 1)
    if name == "trace":
        return infer.Trace_ELBO(**kw)
    if name == "meanfield":
        return infer.TraceMeanField_ELBO(**kw)
    custom = {"iwae": IWAE_ELBO, "stl": STL_ELBO, "dreg-iwae": DReG_IWAE_ELBO}
    if name in custom:
        return custom[name](num_particles=num_particles, max_plate_nesting=max_plate_nesting)
    raise ValueError(f"unknown ELBO {name!r}; choose one of {', '.join(ELBO_NAMES)}")
