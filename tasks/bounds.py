"""How good are the bounds? For one trained VAE (or the conditional VAE, given y): ELBO,
IWAE-K and the Pareto k of IWAE's weights, AIS (a gold-standard estimate of log p(x)), the
ELBO of a per-image optimised Gaussian q* (the inference gaps), and BDMC on data simulated
from the model (how far AIS itself can be off)."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyro

from probnn.inference.ais import ais_log_likelihood, bdmc
from probnn.inference.batching import random_subset
from probnn.inference.cvae import LOG_PRIOR
from probnn.inference.estimators import PARETO_K_UNRELIABLE, iwae_bound
from probnn.inference.gaps import inference_gaps
from probnn.inference.serialization import serializable
from probnn.inference.vae import comparison_subset, vae_name
from probnn.models.cvae import ConditionalVAE

from .inputs import Inputs
from .settings import holdout_split_setting, seed_setting, setting, validate
from .validation import CHAINS, CHAINS0, POSITIVE_INT, SAMPLES, STEPS, require

KIND, DATA = "evaluate", "mnist"
VERSION = 1
"""Part of a cached result's name (:mod:`probnn.jobs`)."""


@serializable
@dataclass(frozen=True)
class Config:
    """``images`` random holdout images (the same for every model with the same seed);
    IWAE at each K of ``iwae_ks`` (Pareto k at ``pareto_k_at``); AIS with ``ais_steps``
    intermediate distributions and ``ais_chains`` chains; q* from ``local_steps`` SVI steps,
    both ELBOs from ``elbo_samples`` samples; BDMC on ``bdmc_images`` simulated images at each
    of ``bdmc_steps`` (0 images: skip). ``within``: ``(holdout_images, large_k_images)`` of
    question (e)'s comparison (:mod:`.holdout`): the images are then drawn from its large-K
    subset, so the two sections' estimates of the same images pair up."""
    images: int = setting(16, POSITIVE_INT, "random holdout images")
    iwae_ks: tuple[int, ...] = setting((1, 10, 100, 1000, 5000), None, "IWAE sample sizes",
                                       each=SAMPLES)
    pareto_k_at: int = setting(1000, SAMPLES,
                               "the K whose weights give Pareto k, one of the IWAE sample sizes")
    ais_steps: int = setting(100, STEPS, "AIS intermediate distributions")
    ais_chains: int = setting(8, CHAINS, "AIS chains per image")
    local_steps: int = setting(300, STEPS, "SVI steps fitting the per-image Gaussian q*")
    elbo_samples: int = setting(500, SAMPLES, "samples of each ELBO estimate")
    bdmc_images: int = setting(8, CHAINS0, "images simulated from the model for BDMC, 0 to skip")
    bdmc_steps: tuple[int, ...] = setting((10, 30, 100), None, "BDMC schedule lengths",
                                          each=STEPS)
    holdout_split: float | None = holdout_split_setting()
    seed: int = seed_setting()
    within: tuple | None = setting(None, None, "(holdout_images, large_k_images) of question "
                                   "(e)'s comparison, to draw the images from", cli=False)

    def __post_init__(self):
        validate(self)
        if self.within is not None:
            object.__setattr__(self, "within", tuple(self.within))
            require(len(self.within) == 2 and self.images <= min(self.within),
                    f"within = {self.within} must be (holdout_images, large_k_images), both at "
                    f"least images = {self.images}")
        # the answer compares AIS with the IWAE column whose weights gave Pareto k
        require(self.pareto_k_at in tuple(self.iwae_ks),
                f"pareto_k_at = {self.pareto_k_at} must be one of the IWAE sample sizes "
                f"iwae_ks = {tuple(self.iwae_ks)}")


@serializable
@dataclass
class Result:
    name: str
    per_image: pd.DataFrame
    """One row per holdout image (``index`` into the holdout set): ``elbo``, ``elbo_local``
    (q*), ``iwae_<K>``, ``pareto_k``, ``ais``, ``ais_se``, ``ais_ess``, ``ais_acceptance``.
    Conditional VAE: bounds of log p(x | y)."""
    bdmc: pd.DataFrame
    """:func:`~probnn.inference.ais.bdmc`'s table (empty when skipped)."""
    row: dict
    """Means over the images: ``elbo``, ``elbo_local``, ``iwae_<K>``, ``ais``, ``ais_se``
    (the AIS estimate's own Monte Carlo error of that mean), ``approximation_gap``,
    ``amortisation_gap``, ``unreliable`` (share of images with Pareto k > 0.7), and the BDMC
    sandwich at the longest schedule: ``bdmc_lower``, ``bdmc_upper``, ``bdmc_width``."""
    config: Config
    conditional: bool = False
    """Whether the bounds are of log p(x | y) (the conditional VAE) rather than log p(x)."""


def images_of(n: int, config: Config):
    """Sorted indices into the holdout set (``n`` images) of the images to score."""
    if config.within is None:
        return random_subset(n, config.images, config.seed)
    pool = comparison_subset(n, *config.within, config.seed)
    return pool[random_subset(len(pool), config.images, config.seed + 2)]


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> Result:
    """For the VAE or conditional VAE of ``inputs.checkpoints[0]``."""
    inputs.check_sizes(config.holdout_split, holdout={"images": config.images})
    model, guide = inputs.vae(0, conditional=None)
    conditional = isinstance(model, ConditionalVAE)
    _, (hx, hy, _) = inputs.mnist(config.holdout_split)
    idx = images_of(len(hx), config)
    data = (hx[idx],) + ((hy[idx],) if conditional else ())
    shift = -LOG_PRIOR if conditional else 0.0  # bounds of log p(x, y) -> of log p(x | y)
    cols: dict = {"index": idx.numpy()}
    for k in config.iwae_ks:
        pyro.set_rng_seed((config.seed + k) % 2**32)  # seeds stay within numpy's 0..2**32-1
        res = iwae_bound(model, guide, data, k, batch_size=max(1, min(100, 20_000 // k)),
                         diagnostics=k == config.pareto_k_at)
        cols[f"iwae_{k}"] = res.bound + shift
        if k == config.pareto_k_at:
            cols["pareto_k"] = res.pareto_k
    ais = ais_log_likelihood(model, guide, data, steps=config.ais_steps, chains=config.ais_chains,
                             seed=config.seed)
    cols.update(ais=ais.log_likelihood + shift, ais_se=ais.se, ais_ess=ais.ess,
                ais_acceptance=ais.acceptance)
    gaps = inference_gaps(model, guide, data, ais.log_likelihood, samples=config.elbo_samples,
                          steps=config.local_steps, seed=config.seed)
    cols.update(elbo=gaps.elbo + shift, elbo_local=gaps.elbo_local + shift)
    per_image = pd.DataFrame(cols)
    table = (bdmc(model, guide, config.bdmc_images, config.bdmc_steps, conditional=conditional,
                  seed=config.seed) if config.bdmc_images else pd.DataFrame())
    if len(table) and shift:
        table[["lower", "upper"]] += shift
    n = len(per_image)
    row = {"images": n, "elbo": float(per_image["elbo"].mean()),
           "elbo_local": float(per_image["elbo_local"].mean()),
           **{f"iwae_{k}": float(per_image[f"iwae_{k}"].mean()) for k in config.iwae_ks},
           "ais": float(per_image["ais"].mean()),
           "ais_se": float(np.sqrt((per_image["ais_se"] ** 2).mean() / n)),
           "approximation_gap": float(gaps.approximation_gap.mean()),
           "amortisation_gap": float(gaps.amortisation_gap.mean()),
           "unreliable": float((per_image["pareto_k"] > PARETO_K_UNRELIABLE).mean())
           if "pareto_k" in per_image else math.nan}
    if len(table):
        last = table.iloc[-1]
        row.update(bdmc_lower=float(last["lower"]), bdmc_upper=float(last["upper"]),
                   bdmc_width=float(last["width"]), bdmc_steps=int(last["steps"]))
    return Result(vae_name(model), per_image, table, row, config, conditional)
