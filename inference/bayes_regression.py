"""Bayesian neural-network regression on the xkcd data: variational fits and PSIS-LOO comparison.

:func:`fit_bayesian_regression` fits a model of :mod:`probnn.models.bayes_regression` with a
mean-field Gaussian guide (``AutoNormal``) by SVI, through the project's training loop
(:func:`~probnn.inference.train.fit`: module-local parameters, checkpoints, exact resume, jit).
:func:`pointwise_loglik` draws weights from the guide and scores every data point under
each draw, :func:`inference_data` packs that for ArviZ, and :func:`loo_compare` compares the
models by PSIS-LOO (Vehtari, Gelman & Gabry 2017, "Practical Bayesian model evaluation using
leave-one-out cross-validation and WAIC", Statistics and Computing 27:1413-1432)::

    elpd_loo = sum_i log p(y_i | y_-i),   p(y_i | y_-i) ~= sum_s w_i^s p(y_i | theta^s) / sum_s w_i^s

with raw importance ratios r_i^s = 1 / p(y_i | theta^s) smoothed by fitting a generalised
Pareto distribution to their upper tail. The fitted shape k_i is the diagnostic: k < 0.5 good,
0.5 to 0.7 usable, k > 0.7 the estimate for point i is unreliable (the point is too
influential for the posterior draws to stand in for the leave-one-out posterior).

The draws come from the variational posterior q, used as if it were the posterior: LOO then
estimates the predictive performance of q-averaged predictions, and the Pareto k's also
flag points where q without point i would be needed (Yao, Vehtari, Simpson & Gelman 2018, "Yes,
but did it work?: evaluating variational inference"). PSIS-LOO for the maximum-likelihood fits
is not defined: a single point estimate has no draws to reweight.

Nothing here plots; :mod:`probnn.analysis.bayes_regression` turns the results into figures.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple

import numpy as np
import pandas as pd
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import Predictive
from pyro.infer.autoguide import AutoDiagonalNormal, AutoNormal
from pyro.infer.autoguide.initialization import init_to_feasible, init_to_value

from probnn.models.bayes_regression import BAYESIAN_REGRESSION_MODELS, DEFAULT_PRIOR_SCALE

from .regression import COURSEWORK_SEED
from .train import fit

NAMES = ("homoscedastic", "heteroscedastic")
GUIDES = {"normal": AutoNormal, "diagonal": AutoDiagonalNormal}

# Presets for run_bayes_regression and the CLI. Timings measured on this project's machine (2
# slow CPU cores shared with other jobs), both models, fit + LOO draws; see README.md.
FULL = dict(epochs=2500, draws=1000)
"""The full run: both models, 2,500 SVI steps each (jit), 1,000 posterior draws for LOO."""
QUICK = dict(epochs=250, draws=100)
"""A quick look (smoke runs, a report's draft mode): ELBO roughly converged, LOO noisy."""

DEFAULT_LR = 0.02
DEFAULT_INIT_SCALE = 0.05


@dataclass
class BayesianRegressionFit:
    """A Bayesian regression model with its fitted guide (see :func:`fit_bayesian_regression`)."""
    name: str
    model: torch.nn.Module
    guide: torch.nn.Module
    history: pd.DataFrame  # epoch, loss (= -ELBO per point), elbo, seconds
    x: torch.Tensor
    y: torch.Tensor
    seed: int = COURSEWORK_SEED


class LooComparison(NamedTuple):
    """What :func:`loo_compare` returns; unpacks as ``table, loo = loo_compare(...)``."""
    table: pd.DataFrame
    """:func:`arviz.compare` table: rank, elpd_loo, p_loo, elpd_diff, weight, se, dse, warning."""
    loo: dict
    """Model name -> :class:`arviz.ELPDData` of ``az.loo(..., pointwise=True)``
    (``elpd_loo``, ``se``, ``p_loo``, ``loo_i``, ``pareto_k``, ``warning``)."""


def make_guide(model: torch.nn.Module, kind: str = "normal",
               init_scale: float = DEFAULT_INIT_SCALE) -> torch.nn.Module:
    """A mean-field Gaussian autoguide over all the model's latent sites.

    The means start at the model's :meth:`initial_values` (PyTorch's default initialisation of
    the networks; ``log_sigma`` at 0), the standard deviations at ``init_scale``: small, so
    the first steps fit the data as a maximum-likelihood fit would, before the KL term widens
    them. ``kind``: ``"normal"`` (:class:`~pyro.infer.autoguide.AutoNormal`, one site per
    weight tensor) or ``"diagonal"`` (:class:`~pyro.infer.autoguide.AutoDiagonalNormal`, one
    flat vector).
    """
    if kind not in GUIDES:
        raise ValueError(f"unknown guide {kind!r}; choose from {list(GUIDES)}")
    init = init_to_value(values=model.initial_values(), fallback=init_to_feasible)
    guide = GUIDES[kind](model, init_loc_fn=init, init_scale=float(init_scale))
    guide.config = dict(kind=kind, init_scale=float(init_scale))  # checked when resuming
    return guide


def fit_bayesian_regression(name: str, x: torch.Tensor, y: torch.Tensor, *,
                            epochs: int = FULL["epochs"], seed: int = COURSEWORK_SEED,
                            lr: float = DEFAULT_LR, prior_scale: float = DEFAULT_PRIOR_SCALE,
                            init_scale: float = DEFAULT_INIT_SCALE, guide: str = "normal",
                            elbo: str = "trace", num_particles: int = 1, progress: bool = True,
                            checkpoint=None, checkpoint_every: int = 1000, resume: bool = False,
                            jit: bool = True) -> BayesianRegressionFit:
    """Fit the Bayesian ``homoscedastic`` or ``heteroscedastic`` model by SVI.

    Maximises the ELBO ``E_q[log p(y | x, w)] - KL(q(w) || p(w))`` (``Trace_ELBO``: both terms
    by Monte Carlo, one draw per step unless ``num_particles``) with Adam at ``lr``, full batch,
    ``epochs`` steps, via :func:`~probnn.inference.train.fit`. Seeded with ``seed`` before the
    networks are built (their initialisation is the guide's starting mean) and before training,
    so the same seed gives the same fit. ``jit`` compiles the loss (about 2x faster here).
    The history's ``loss`` is the negative ELBO per data point, KL included.
    """
    if name not in BAYESIAN_REGRESSION_MODELS:
        raise ValueError(f"unknown regression model {name!r}; choose from {list(NAMES)}")
    torch.manual_seed(seed)
    model = BAYESIAN_REGRESSION_MODELS[name](prior_scale)
    q = make_guide(model, guide, init_scale)
    # Autoguides create their parameters on the first call; the optimiser in fit() and a
    # checkpoint being resumed both need them to exist already. (fit reseeds afterwards.)
    with torch.no_grad():
        q(x, y)
    result = fit(model, q, (x, y), epochs=epochs, elbo=elbo, num_particles=num_particles, lr=lr,
                 seed=seed, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                 resume=resume, progress=progress, desc=f"bayes-{name}", jit=jit)
    return BayesianRegressionFit(name, model, q, result.history, x, y, seed)


# ----------------------------------------------------------------------------- posterior draws
@dataclass
class PosteriorDraws:
    """Draws of the weights from the guide, and the model evaluated at the data under each."""
    latents: dict[str, np.ndarray]  # site -> (draws, *site_shape)
    f: np.ndarray                   # (draws, n) f(x_i)
    sigma: np.ndarray               # (draws, n) sigma(x_i)
    loglik: np.ndarray              # (draws, n) log N(y_i | f(x_i), sigma(x_i)^2), float64


def pointwise_loglik(fit: BayesianRegressionFit, draws: int, seed: int = 0) -> PosteriorDraws:
    """Draw ``draws`` weight sets w^s ~ q and score each data point under each.

    For each draw: trace the guide, replay the model on the guide's values
    (``poutine.replay``) with the observed y, and read the observation site's unscaled
    pointwise log-probability (``Trace.compute_log_prob``), log p(y_i | x_i, w^s). Seeded, so
    the same seed gives the same draws.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    model, guide, x, y = fit.model, fit.guide, fit.x, fit.y
    names = [n for n, _ in guide.prototype_trace.iter_stochastic_nodes()]
    latents = {n: [] for n in names}
    f, sigma, ll = [], [], []
    pyro.set_rng_seed(seed)
    with torch.no_grad(), pyro.validation_enabled(False):  # validated while training
        for _ in range(draws):
            guide_tr = poutine.trace(guide).get_trace(x, y)
            tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, y)
            tr.compute_log_prob(site_filter=lambda name, site: name == "y")
            ll.append(tr.nodes["y"]["unscaled_log_prob"])
            f.append(tr.nodes["f"]["value"][:, 0])
            sigma.append(tr.nodes["sigma"]["value"][:, 0])
            for n in names:
                latents[n].append(tr.nodes[n]["value"])
    loglik = torch.stack(ll).double().numpy()
    if not np.isfinite(loglik).all():
        raise FloatingPointError(f"{fit.name}: non-finite pointwise log-likelihoods "
                                 f"({int((~np.isfinite(loglik)).sum())} of {loglik.size})")
    return PosteriorDraws({n: torch.stack(v).numpy() for n, v in latents.items()},
                          torch.stack(f).numpy(), torch.stack(sigma).numpy(), loglik)


def inference_data(fit: BayesianRegressionFit, draws: int, seed: int = 0):
    """An :class:`arviz.InferenceData` of ``draws`` guide draws: posterior (every weight, f and
    sigma at the data), log_likelihood ``y`` (1 chain x draws x n) and observed_data ``y``.

    One chain: the draws are independent, so ArviZ's relative efficiency is 1, as it should be.
    """
    d = pointwise_loglik(fit, draws, seed)
    posterior = {n: v[None] for n, v in d.latents.items()}
    posterior.update(f=d.f[None], sigma=d.sigma[None])
    point = ["point"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # arviz's announcement of its refactor
        import arviz as az
        return az.from_dict(posterior=posterior, log_likelihood={"y": d.loglik[None]},
                            observed_data={"y": fit.y[:, 0].numpy()},
                            dims={"y": point, "f": point, "sigma": point},
                            coords={"point": np.arange(len(fit.y))})


def _named(fits) -> dict[str, BayesianRegressionFit]:
    if isinstance(fits, Mapping):
        return dict(fits)
    return {f.name: f for f in fits}


def loo_compare(fits: Iterable[BayesianRegressionFit] | Mapping[str, BayesianRegressionFit],
                draws: int = FULL["draws"], seed: int = 0) -> LooComparison:
    """PSIS-LOO of each fit and their :func:`arviz.compare` table (ranked by elpd_loo).

    Each fit gets ``draws`` guide draws seeded with ``seed``. Returns ``(table, loo)``: the
    comparison table (``elpd_diff`` and its standard error ``dse`` are against the top model,
    computed from the pointwise differences, which is why dse is smaller than either se) and
    each model's pointwise :class:`arviz.ELPDData` including Pareto k per point.
    """
    named = _named(fits)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        import arviz as az
        idata = {n: inference_data(f, draws, seed) for n, f in named.items()}
        # arviz warns when k > 0.7; the counts are reported by the analysis instead
        warnings.simplefilter("ignore", UserWarning)
        loo = {n: az.loo(d, pointwise=True) for n, d in idata.items()}
        table = az.compare(idata, ic="loo") if len(idata) > 1 else None
    if table is None:
        n = next(iter(loo))
        table = pd.DataFrame({"rank": [0], "elpd_loo": [loo[n].elpd_loo], "p_loo": [loo[n].p_loo],
                              "elpd_diff": [0.0], "weight": [1.0], "se": [loo[n].se],
                              "dse": [0.0], "warning": [loo[n].warning], "scale": ["log"]},
                             index=[n])
    return LooComparison(table, loo)


def posterior_predictive(fit: BayesianRegressionFit, x: torch.Tensor, draws: int,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Posterior-predictive draws at inputs ``x`` (n, 1): ``f``, ``sigma`` and ``y``, each
    (draws, n), from ``pyro.infer.Predictive(model, guide=guide)``. Seeded."""
    pyro.set_rng_seed(seed)
    predictive = Predictive(fit.model, guide=fit.guide, num_samples=draws,
                            return_sites=("f", "sigma", "y"))
    with torch.no_grad():
        out = predictive(x)
    return {k: v.reshape(draws, -1).numpy() for k, v in out.items()}


def run_bayes_regression(x: torch.Tensor, y: torch.Tensor, *, epochs: int = FULL["epochs"],
                         draws: int = FULL["draws"], seed: int = COURSEWORK_SEED,
                         progress: bool = True, **fit_kw
                         ) -> tuple[list[BayesianRegressionFit], LooComparison]:
    """Fit both Bayesian models (one after the other, same seed) and compare them by PSIS-LOO.

    ``run_bayes_regression(x, y, **FULL)`` or ``**QUICK``; ``fit_kw`` go to
    :func:`fit_bayesian_regression` (``lr``, ``prior_scale``, ``init_scale``, ...).
    Returns ``(fits, compare)`` for :func:`probnn.analysis.bayes_regression.write_bayes_outputs`.
    """
    fits = [fit_bayesian_regression(n, x, y, epochs=epochs, seed=seed, progress=progress, **fit_kw)
            for n in NAMES]
    return fits, loo_compare(fits, draws=draws, seed=seed)
