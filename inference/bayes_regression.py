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

import time
import warnings
from dataclasses import dataclass
from typing import Iterable, Mapping, NamedTuple, Sequence

import numpy as np
import pandas as pd
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import Predictive
from pyro.infer.autoguide.initialization import init_to_sample, init_to_value

from probnn.models.bayes_regression import BAYESIAN_REGRESSION_MODELS, DEFAULT_PRIOR_SCALE
from probnn.guides.auto import (AutoDelta, AutoDiagonalNormal, AutoLowRankMultivariateNormal,
                                AutoMultivariateNormal, AutoNormal)

from . import arviz_compat
from .checkpoint import rng_state, set_rng_state
from .regression import COURSEWORK_SEED
from .serialization import serializable
from .train import fit, one_thread

NAMES = ("homoscedastic", "heteroscedastic")
GUIDES = {"normal": AutoNormal, "diagonal": AutoDiagonalNormal,
          "lowrank": AutoLowRankMultivariateNormal, "mvn": AutoMultivariateNormal}

# Presets for run_bayes_regression and the CLI; measured timings in their docstrings.
FULL = dict(epochs=2500, draws=1000, map_steps=500)
"""The full run: both models, 500 MAP + 2,500 SVI steps each (jit, 4 vectorised particles),
1,000 posterior draws for LOO. Measured with ``probnn bayes-regression`` on this project's
2-core machine at load average ~4 (other jobs running): 17 s per model (MAP + SVI), 43 s wall
for the whole command (imports, both fits, LOO in ~1 s per model, ribbons); idle it should be
about half that."""
QUICK = dict(epochs=250, draws=100, map_steps=100)
"""A quick look (smoke runs, a report's draft mode): ELBO not converged, LOO noisy.
Measured with ``probnn bayes-regression --quick`` at load
average ~4: 16 s wall for the whole command (imports and figures included)."""

DEFAULT_LR = 0.01
DEFAULT_INIT_SCALE = 0.01
DEFAULT_PARTICLES = 4
"""Vectorised ELBO particles per step: 4 to 16 cost about the same as 1 per step here."""
DEFAULT_MAP_STEPS = 500
LR_SCALE = {"lowrank": 0.3}
"""Learning rate of a guide relative to ``lr``. The low-rank guide's factor W (latent dim x
rank, about 1,100 x 33 for the heteroscedastic model) is unconstrained, and Adam moves every
entry by about ``lr`` a step: at 0.01 the factor's coherent steps overshoot once the ELBO
nears its optimum, q's draws of the sigma network's weights send sigma(x) towards 0 at some
points, and the fit falls away from its best (measured on xkcd: from -3.8 to -25 nats per
point, or NaN parameters and a failed Cholesky factorisation of I + W^T D^-1 W) and the
elpd_loo of its draws to -1e33. At 0.003 the ELBO rises to about -3.4 by step 2,500 and stays
within -3.3 to -4.2 up to 5,000 (seeds 309 and 310); the homoscedastic fit converges too."""


def guide_lr(kind: str, lr: float = DEFAULT_LR) -> float:
    """The learning rate SVI uses for a guide of ``kind`` (see :data:`LR_SCALE`)."""
    return lr * LR_SCALE.get(kind, 1.0)


@serializable
@dataclass
class BayesianRegressionFit:
    """A Bayesian regression model with its fitted guide (see :func:`fit_bayesian_regression`).

    Saved (the report caches it) by :meth:`to_state` and rebuilt by :meth:`from_state`, since
    modules are never pickled (:mod:`probnn.inference.serialization`)."""
    name: str
    model: torch.nn.Module
    guide: torch.nn.Module
    history: pd.DataFrame  # epoch, loss (= -ELBO per point), elbo, seconds
    x: torch.Tensor
    y: torch.Tensor
    seed: int = COURSEWORK_SEED
    map_history: pd.DataFrame | None = None  # the MAP pre-fit: loss = -log joint per point

    def to_state(self) -> dict:
        """Plain data that :meth:`from_state` rebuilds this fit from: the model's kind (a key of
        ``BAYESIAN_REGRESSION_MODELS``) and settings, the guide's settings (those
        :func:`make_guide` records), both ``state_dict()``\\ s, the data and the histories."""
        kind = next((k for k, c in BAYESIAN_REGRESSION_MODELS.items() if type(self.model) is c), None)
        guide_config = dict(getattr(self.guide, "config", None) or {})
        if kind is None or type(self.guide) is not GUIDES.get(guide_config.get("kind")):
            raise TypeError(f"cannot save the fit {self.name!r}: only a model of "
                            f"BAYESIAN_REGRESSION_MODELS with a guide from make_guide can be "
                            f"rebuilt, not a {type(self.model).__name__} with a "
                            f"{type(self.guide).__name__}")
        return {"name": self.name, "model": kind, "model_config": dict(self.model.config),
                "model_state": self.model.state_dict(), "guide_config": guide_config,
                "guide_state": self.guide.state_dict(),
                "training": (self.model.training, self.guide.training),
                "history": self.history, "x": self.x, "y": self.y, "seed": self.seed,
                "map_history": self.map_history}

    @classmethod
    def from_state(cls, state: dict) -> "BayesianRegressionFit":
        """The fit :meth:`to_state` described, built as :func:`fit_bayesian_regression` builds
        it (model class, :func:`make_guide`, the guide's first call) with the saved weights
        loaded; the global RNG states are left as they were."""
        model_cls = BAYESIAN_REGRESSION_MODELS.get(state["model"])
        if model_cls is None:
            raise ValueError(f"unknown Bayesian regression model {state['model']!r}")
        x, y = state["x"], state["y"]
        if not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
            raise TypeError("the fit's data x and y must be tensors")
        model = model_cls(**state["model_config"])
        model.load_state_dict(state["model_state"])
        before = rng_state()
        try:
            guide = make_guide(model, **state["guide_config"])
            with torch.no_grad():
                guide(x, y)  # autoguides create their parameters on the first call
        finally:
            set_rng_state(before)  # that call drew initial values: undo it
        guide.load_state_dict(state["guide_state"])
        model_training, guide_training = state["training"]
        model.train(bool(model_training)), guide.train(bool(guide_training))
        return cls(state["name"], model, guide, state["history"], x, y, state["seed"],
                   state["map_history"])


@serializable
class LooComparison(NamedTuple):
    """What :func:`loo_compare` returns; unpacks as ``table, loo = loo_compare(...)``."""
    table: pd.DataFrame
    """ArviZ's comparison table (:func:`probnn.inference.arviz_compat.compare`): rank, elpd_loo, p_loo, elpd_diff, weight, se, dse, warning,
    plus ``lppd_per_point`` (in-sample log pointwise predictive density / n), ``mean_loglik``
    (mean over draws and points of log p(y_i | w)), ``sigma_mean`` (posterior mean of sigma,
    averaged over the points) and ``loglik_nonfinite`` (non-finite entries of the matrix)."""
    loo: dict
    """Model name -> :class:`~probnn.inference.arviz_compat.PsisLoo` (``elpd_loo``, ``se``,
    ``p_loo``, ``loo_i``, ``pareto_k``, ``warning``)."""


def map_fit(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, *, steps: int,
            seed: int, lr: float = 0.01, progress: bool = False, jit: bool = True
            ) -> tuple[dict[str, torch.Tensor], pd.DataFrame]:
    """Maximum a posteriori weights: ``argmax_w log p(y | x, w) + log p(w)``.

    SVI with an ``AutoDelta`` guide (a point mass: the ELBO is then the log joint) started at a
    prior draw (``init_to_sample``; with fan-in scaled priors that is a well-scaled,
    symmetry-breaking start like PyTorch's default initialisation). Returns the MAP values per
    latent site and the history (loss = -log joint per point).
    """
    pyro.set_rng_seed(seed)
    delta = AutoDelta(model, init_loc_fn=init_to_sample)
    with torch.no_grad():
        delta(x, y)
    result = fit(model, delta, (x, y), epochs=steps, lr=lr, seed=seed, progress=progress,
                 desc="map", jit=jit)
    with torch.no_grad():
        values = {k: v.detach().clone() for k, v in delta.median(x, y).items()}
    return values, result.history


def make_guide(model: torch.nn.Module, kind: str = "normal",
               init_scale: float = DEFAULT_INIT_SCALE,
               init_values: Mapping[str, torch.Tensor] | None = None) -> torch.nn.Module:
    """A mean-field Gaussian autoguide over all the model's latent sites.

    The means start at ``init_values`` (the MAP weights from :func:`map_fit`) or else at a
    prior draw, the standard deviations at ``init_scale``: small, so SVI starts from a fit of the
    data and the KL term widens the weights only as far as the data allow. Measured on xkcd
    (homoscedastic, 2,500 steps): the MAP start reaches a better ELBO (-2.69 against -2.84 nats
    per point from a prior draw) but both still underfit (posterior mean sigma 2.6-2.7 against
    1.35-1.48 by maximum likelihood): the mean-field optimum itself underfits 31 points with
    549 weights (the KL of pinning weights costs more than the fit gains), and neither 16
    particles, 8,000 steps, a full-rank or low-rank guide within 2,500 steps, nor prior scales
    0.5 or 3 changed that. ``kind``:
    ``"normal"`` (:class:`~pyro.infer.autoguide.AutoNormal`) or ``"diagonal"``
    (:class:`~pyro.infer.autoguide.AutoDiagonalNormal`, one flat vector).
    """
    if kind not in GUIDES:
        raise ValueError(f"unknown guide {kind!r}; choose from {list(GUIDES)}")
    init = (init_to_value(values=dict(init_values), fallback=init_to_sample)
            if init_values else init_to_sample)
    guide = GUIDES[kind](model, init_loc_fn=init, init_scale=float(init_scale))
    guide.config = dict(kind=kind, init_scale=float(init_scale))  # checked when resuming
    return guide


def fit_bayesian_regression(name: str, x: torch.Tensor, y: torch.Tensor, *,
                            epochs: int = FULL["epochs"], seed: int = COURSEWORK_SEED,
                            lr: float = DEFAULT_LR, prior_scale: float = DEFAULT_PRIOR_SCALE,
                            init_scale: float = DEFAULT_INIT_SCALE, guide: str = "normal",
                            elbo: str = "trace", num_particles: int = DEFAULT_PARTICLES,
                            map_steps: int = DEFAULT_MAP_STEPS, map_lr: float = 0.01,
                            progress: bool = True, checkpoint=None, checkpoint_every: int = 1000,
                            resume: bool = False, jit: bool = True) -> BayesianRegressionFit:
    """Fit the Bayesian ``homoscedastic`` or ``heteroscedastic`` model by SVI.

    1. The model is standardised to the data (the model's ``standardise_to``: mean and sd of x and y).
    2. ``map_steps`` steps of MAP (:func:`map_fit`, Adam at ``map_lr``) give the start.
    3. SVI maximises the ELBO ``E_q[log p(y | x, w)] - KL(q(w) || p(w))`` (``Trace_ELBO``, both
       terms by Monte Carlo with ``num_particles`` vectorised draws per step) with Adam at
       ``lr``, full batch, ``epochs`` steps, via :func:`~probnn.inference.train.fit`; the
       guide starts at the MAP weights with sd ``init_scale``.

    Seeded with ``seed`` (the MAP start and both fits), so the same seed gives the same fit.
    ``jit`` compiles the losses. The history's ``loss`` is the negative ELBO per data point,
    KL included; ``seconds`` includes the MAP pre-fit.
    """
    if name not in BAYESIAN_REGRESSION_MODELS:
        raise ValueError(f"unknown regression model {name!r}; choose from {list(NAMES)}")
    with one_thread():
        return _fit(name, x, y, epochs=epochs, seed=seed, lr=lr, prior_scale=prior_scale,
                    init_scale=init_scale, guide=guide, elbo=elbo, num_particles=num_particles,
                    map_steps=map_steps, map_lr=map_lr, progress=progress, checkpoint=checkpoint,
                    checkpoint_every=checkpoint_every, resume=resume, jit=jit)


def _fit(name, x, y, *, epochs, seed, lr, prior_scale, init_scale, guide, elbo, num_particles,
         map_steps, map_lr, progress, checkpoint, checkpoint_every, resume, jit):
    torch.manual_seed(seed)
    model = BAYESIAN_REGRESSION_MODELS[name](prior_scale).standardise_to(x, y)
    t0 = time.perf_counter()
    init, map_history = (map_fit(model, x, y, steps=map_steps, seed=seed, lr=map_lr, jit=jit)
                         if map_steps > 0 else (None, None))
    map_seconds = time.perf_counter() - t0
    pyro.set_rng_seed(seed)
    q = make_guide(model, guide, init_scale, init)
    # Autoguides create their parameters on the first call; the optimiser in fit() and a
    # checkpoint being resumed both need them to exist already. (fit reseeds afterwards.)
    with torch.no_grad():
        q(x, y)
    result = fit(model, q, (x, y), epochs=epochs, elbo=elbo, num_particles=num_particles, lr=lr,
                 seed=seed, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                 resume=resume, progress=progress, desc=f"bayes-{name}", jit=jit)
    history = result.history.assign(seconds=result.history["seconds"] + map_seconds)
    return BayesianRegressionFit(name, model, q, history, x, y, seed, map_history)


# ----------------------------------------------------------------------------- posterior draws
@dataclass
class PosteriorDraws:
    """Draws of the weights from the guide, and the model evaluated at the data under each."""
    latents: dict[str, np.ndarray]  # site -> (draws, \\*site_shape)
    f: np.ndarray                   # (draws, n) f(x_i)
    sigma: np.ndarray               # (draws, n) sigma(x_i)
    loglik: np.ndarray              # (draws, n) log N(y_i | f(x_i), sigma(x_i)^2), float64


def _latent_sites(guide) -> list[str]:
    return [n for n, _ in guide.prototype_trace.iter_stochastic_nodes()]


def pointwise_loglik(fit: BayesianRegressionFit, draws: int, seed: int = 0) -> PosteriorDraws:
    """Draw ``draws`` weight sets w^s ~ q and score each data point under each, in one pass.

    The guide is traced inside a plate ``"draws"`` of size ``draws`` at dim -2 (outside the
    model's data plate at dim -1), so every latent comes as (draws, 1, \\*site_shape); the model
    is replayed on those values (``poutine.replay``) inside the same plate with the observed y,
    and the observation site's unscaled pointwise log-probability
    (``Trace.compute_log_prob``) is the (draws, n) matrix log p(y_i | x_i, w^s). Seeded, so the
    same seed gives the same draws. Non-finite entries are kept (PSIS-LOO then reports them)
    with a warning.
    """
    if draws < 1:
        raise ValueError(f"draws must be >= 1, got {draws}")
    model, guide, x, y = fit.model, fit.guide, fit.x, fit.y
    names = _latent_sites(guide)
    pyro.set_rng_seed(seed)
    with torch.no_grad(), pyro.validation_enabled(False), one_thread(), \
            pyro.plate("draws", draws, dim=-2):
        guide_tr = poutine.trace(guide).get_trace(x, y)
        tr = poutine.trace(poutine.replay(model, trace=guide_tr)).get_trace(x, y)
        tr.compute_log_prob(site_filter=lambda name, site: name == "y")
    loglik = tr.nodes["y"]["unscaled_log_prob"].double().reshape(draws, -1).numpy()
    bad = int((~np.isfinite(loglik)).sum())
    if bad:
        warnings.warn(f"{fit.name}: {bad} of {loglik.size} pointwise log-likelihoods are not "
                      "finite; PSIS-LOO will flag the points concerned", RuntimeWarning)
    latents = {n: tr.nodes[n]["value"].reshape(
        (draws,) + guide.prototype_trace.nodes[n]["value"].shape).numpy() for n in names}
    return PosteriorDraws(latents, tr.nodes["f"]["value"].reshape(draws, -1).numpy(),
                          tr.nodes["sigma"]["value"].reshape(draws, -1).numpy(), loglik)


def inference_data(fit: BayesianRegressionFit, draws: int, seed: int = 0):
    """ArviZ data (:func:`probnn.inference.arviz_compat.from_dict`) of ``draws`` guide draws: posterior (every latent, f and
    sigma at the data), log_likelihood ``y`` (1 chain x draws x n) and observed_data ``y``.

    One chain: the draws are independent, so ArviZ's relative efficiency is 1, as it should be.
    """
    return as_inference_data(fit, pointwise_loglik(fit, draws, seed))


def as_inference_data(fit: BayesianRegressionFit, d: PosteriorDraws):
    """:func:`inference_data` of draws already made by :func:`pointwise_loglik`."""
    posterior = {n: v[None] for n, v in d.latents.items()}
    posterior.update(f=d.f[None], sigma=d.sigma[None])
    point = ["point"]
    return arviz_compat.from_dict(posterior, {"y": d.loglik[None]}, {"y": fit.y[:, 0].numpy()},
                                  {"y": point, "f": point, "sigma": point},
                                  {"point": np.arange(len(fit.y))})


def _named(fits) -> dict[str, BayesianRegressionFit]:
    if isinstance(fits, Mapping):
        return dict(fits)
    return {f.name: f for f in fits}


def logmeanexp(a: np.ndarray, axis: int = 0) -> np.ndarray:
    """log(mean(exp(a))) along ``axis``, stably: over posterior draws (axis 0) of pointwise
    log-likelihoods, the pointwise log predictive density log((1/S) sum_s p(y_i | w^s))."""
    m = np.max(a, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):
        return (m + np.log(np.mean(np.exp(a - m), axis=axis, keepdims=True))).squeeze(axis)


def loo_compare(fits: Iterable[BayesianRegressionFit] | Mapping[str, BayesianRegressionFit],
                draws: int = FULL["draws"], seed: int = 0) -> LooComparison:
    """PSIS-LOO of each fit and ArviZ's comparison table (ranked by elpd_loo).

    Each fit gets ``draws`` guide draws seeded with ``seed``. Returns ``(table, loo)``: the
    comparison table (``elpd_diff`` and its standard error ``dse`` are against the top model,
    computed from the pointwise differences, which is why dse is smaller than either se) with
    the extra columns of :class:`LooComparison`, and each model's pointwise
    :class:`~probnn.inference.arviz_compat.PsisLoo` including Pareto k per point. A non-finite Pareto k or elpd is
    kept as it is (the analysis counts and reports it), never dropped.
    """
    named = _named(fits)
    extra = {}
    idata = {}
    for n, f in named.items():
        d = pointwise_loglik(f, draws, seed)
        idata[n] = as_inference_data(f, d)
        extra[n] = dict(lppd_per_point=float(logmeanexp(d.loglik).mean()),
                        mean_loglik=float(d.loglik.mean()),
                        sigma_mean=float(d.sigma.astype(np.float64).mean()),
                        loglik_nonfinite=int((~np.isfinite(d.loglik)).sum()))
    # arviz warns when k > 0.7 (and on inf/NaN); the analysis reports the counts instead
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        loo = {n: arviz_compat.loo(d) for n, d in idata.items()}
        table = arviz_compat.compare(idata) if len(idata) > 1 else None
    if table is None:
        n = next(iter(loo))
        table = pd.DataFrame({"rank": [0], "elpd_loo": [loo[n].elpd_loo], "p_loo": [loo[n].p_loo],
                              "elpd_diff": [0.0], "weight": [1.0], "se": [loo[n].se],
                              "dse": [0.0], "warning": [loo[n].warning], "scale": ["log"]},
                             index=[n])
    for n, cols in extra.items():
        for c, v in cols.items():
            table.loc[n, c] = v
    return LooComparison(table, loo)


def posterior_predictive(fit: BayesianRegressionFit, x: torch.Tensor, draws: int,
                         seed: int = 0) -> dict[str, np.ndarray]:
    """Posterior-predictive draws at inputs ``x`` (n, 1): ``f``, ``sigma`` and ``y``, each
    (draws, n), from ``pyro.infer.Predictive(model, guide=guide, parallel=True)`` (all draws
    in one vectorised pass). Seeded."""
    pyro.set_rng_seed(seed)
    predictive = Predictive(fit.model, guide=fit.guide, num_samples=draws, parallel=True,
                            return_sites=("f", "sigma", "y"))
    with torch.no_grad(), pyro.validation_enabled(False), one_thread():
        out = predictive(x)
    return {k: v.reshape(draws, -1).numpy() for k, v in out.items()}


def run_bayes_regression(x: torch.Tensor, y: torch.Tensor, *, epochs: int = FULL["epochs"],
                         draws: int = FULL["draws"], seed: int = COURSEWORK_SEED,
                         progress: bool = True, names: Sequence[str] = NAMES, **fit_kw
                         ) -> tuple[list[BayesianRegressionFit], LooComparison | None]:
    """Fit the Bayesian models ``names`` (default both; one after the other, same seed) and
    compare them by PSIS-LOO (None for one model).

    ``run_bayes_regression(x, y, **FULL)`` or ``**QUICK``; ``fit_kw`` go to
    :func:`fit_bayesian_regression` (``lr``, ``prior_scale``, ``init_scale``, ...).
    Returns ``(fits, compare)`` for :func:`probnn.analysis.bayes_regression.bayes_section`.
    """
    fits = [fit_bayesian_regression(n, x, y, epochs=epochs, seed=seed, progress=progress, **fit_kw)
            for n in names]
    return fits, (loo_compare(fits, draws=draws, seed=seed) if len(fits) > 1 else None)
