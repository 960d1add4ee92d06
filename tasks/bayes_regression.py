"""Bayesian versions of both regression models: NUTS as the reference posterior, LOO with exact
refits where PSIS is unreliable, and variational fits measured against NUTS.

::

    from probnn.tasks import bayes_regression
    result = bayes_regression.run(bayes_regression.Config.preset("quick"), Inputs())

``sampler="nuts"`` (the default, and the report's): both models sampled by NUTS, diagnostics,
PSIS-LOO with exact refits of the points with Pareto k > 0.7, and each guide of ``vi_guides``
fitted by SVI and compared with NUTS. ``sampler="vi"``: the variational fits (AutoNormal) and
their PSIS-LOO only, as before NUTS.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from probnn.inference import bayes_nuts as bn
from probnn.inference import bayes_regression as br
from probnn.inference.fit_checks import elpd_failure, svi_failure
from probnn.inference.serialization import serializable
from probnn.models.bayes_regression import DEFAULT_PRIOR_SCALE

from .inputs import Inputs
from .settings import seed_setting, setting, validate, with_preset
from .validation import (DRAWS, EPOCHS, MCMC_CHAINS, MCMC_DRAWS, POSITIVE_FLOAT, SAMPLES,
                         SAMPLES0, STEPS, STEPS0, TREE_DEPTH, ConfigError, choice)

KIND, DATA = "evaluate", "xkcd"
VERSION = 1
"""Part of a cached result's name (:mod:`probnn.jobs`): 1, failed fits are checked and marked,
the low-rank guide's learning rate is :func:`~probnn.inference.bayes_regression.guide_lr`."""

SAMPLERS = ("nuts", "vi")
GUIDE = choice(*br.GUIDES)

VI_GUIDES = ("normal", "lowrank")
"""The guides measured against NUTS: mean-field and low-rank-plus-diagonal Gaussians."""


def _preset(svi: dict, nuts: dict) -> dict:
    return {**svi, **{k: v for k, v in nuts.items() if k != "draws"}, "nuts_draws": nuts["draws"],
            "vi_guides": VI_GUIDES}


FULL = _preset(br.FULL, bn.NUTS_FULL)
QUICK = _preset(br.QUICK, bn.NUTS_QUICK)
PRESETS = {"quick": QUICK, "full": FULL}


@serializable
@dataclass(frozen=True)
class Config:
    """``sampler``: ``nuts`` or ``vi``. NUTS: ``chains`` x (``warmup`` + ``nuts_draws``) per
    model, trees at most ``max_tree_depth`` deep; exact LOO refits of at most
    ``loo_max_refits`` flagged points per model, each ``loo_warmup`` + ``loo_draws``. SVI
    (each guide of ``vi_guides`` under NUTS, AutoNormal alone under ``vi``): ``epochs`` after
    ``map_steps`` MAP steps, ``draws`` guide draws for PSIS-LOO (defaults: the FULL preset).
    ``models``: the models fitted, one after the other; each model's numbers do not depend on
    the others (the report runs a job per model and :func:`merge` joins them)."""
    epochs: int = setting(FULL["epochs"], EPOCHS, "SVI steps per model")
    draws: int = setting(FULL["draws"], DRAWS, "guide draws for PSIS-LOO and ribbons, 2 at least")
    map_steps: int = setting(FULL["map_steps"], STEPS0, "MAP steps before SVI, whose weights "
                             "start the guide; 0: none")
    lr: float = setting(br.DEFAULT_LR, POSITIVE_FLOAT, "SVI learning rate")
    num_particles: int = setting(br.DEFAULT_PARTICLES, SAMPLES,
                                 "vectorised ELBO particles per SVI step", flag="--particles")
    prior_scale: float = setting(DEFAULT_PRIOR_SCALE, POSITIVE_FLOAT, "prior sd of the biases, "
                                 "and of the weights times sqrt(fan-in)")
    seed: int = seed_setting()
    sampler: str = setting("nuts", choice(*SAMPLERS), "nuts: NUTS reference posterior, exact "
                           "LOO refits and the guides measured against it; vi: the AutoNormal "
                           "fits and PSIS-LOO only")
    chains: int = setting(FULL["chains"], MCMC_CHAINS, "NUTS chains per model")
    warmup: int = setting(FULL["warmup"], STEPS, "NUTS warmup iterations per chain")
    nuts_draws: int = setting(FULL["nuts_draws"], MCMC_DRAWS, "NUTS draws kept per chain")
    max_tree_depth: int = setting(FULL["max_tree_depth"], TREE_DEPTH, "NUTS tree depth limit")
    loo_warmup: int = setting(FULL["loo_warmup"], STEPS, "warmup of each exact-LOO refit")
    loo_draws: int = setting(FULL["loo_draws"], MCMC_DRAWS, "draws of each exact-LOO refit")
    loo_max_refits: int = setting(FULL["loo_max_refits"], SAMPLES0, "refit at most this many "
                                  "flagged points per model, worst k first; 0: PSIS only")
    vi_guides: tuple = setting(FULL["vi_guides"], None, "guides fitted by SVI and compared "
                               "with NUTS", each=GUIDE, empty=True)
    parallel_chains: bool = setting(False, None, "run the chains in spawned processes (same "
                                    "draws)")
    models: tuple = setting(br.NAMES, None, "the models to fit, each on its own (their LOO "
                            "comparison needs both)", each=choice(*br.NAMES))

    def __post_init__(self):
        validate(self)
        if len(set(self.models)) != len(self.models):
            raise ConfigError(f"models names a model twice: {', '.join(self.models)}")
        if self.sampler == "vi" and len(self.models) != len(br.NAMES):
            raise ConfigError("sampler 'vi' compares both models by PSIS-LOO: models must be "
                              f"{' and '.join(br.NAMES)}")

    @classmethod
    def preset(cls, name: str, **overrides) -> "Config":
        """``quick`` or ``full``: the SVI settings of
        :data:`~probnn.inference.bayes_regression.QUICK`/``FULL`` and the NUTS settings of
        :data:`~probnn.inference.bayes_nuts.NUTS_QUICK`/``NUTS_FULL``."""
        return with_preset(cls, PRESETS, name, **overrides)


@serializable
@dataclass
class Result:
    """``fits``/``compare``: the AutoNormal SVI fits and their PSIS-LOO (the ``vi`` sampler's
    answer). Under NUTS also: ``nuts`` (one :class:`~probnn.inference.bayes_nuts.NutsFit` per
    model), ``loo`` (their :class:`~probnn.inference.bayes_nuts.LooResult`), ``diagnostics``
    (one row per model), ``vi`` (every guide's fit) and ``vi_vs_nuts`` (one row per model and
    method), ``timings`` (seconds per stage)."""
    fits: list
    compare: object
    config: Config = field(default_factory=Config)
    nuts: list = field(default_factory=list)
    loo: list = field(default_factory=list)
    diagnostics: pd.DataFrame | None = None
    vi: list = field(default_factory=list)
    vi_vs_nuts: pd.DataFrame | None = None
    timings: pd.DataFrame | None = None


def run(config: Config, inputs: Inputs, *, progress: bool = False) -> Result:
    x, y = inputs.xkcd()
    svi = dict(epochs=config.epochs, seed=config.seed, progress=progress,
               map_steps=config.map_steps, lr=config.lr, num_particles=config.num_particles,
               prior_scale=config.prior_scale)
    if config.sampler == "vi":
        with br.one_thread():
            fits, compare = br.run_bayes_regression(x, y, draws=config.draws,
                                                    names=config.models, **svi)
        return Result(fits, compare, config)
    timings, nuts, loos, diag, vi, rows, refs = [], [], [], [], [], {}, {}
    grid = bn.ribbon_grid(x)
    for name in config.models:  # NUTS first: a failing guide below cannot cost the reference
        t0 = time.perf_counter()
        fit = bn.nuts_fit(name, x, y, chains=config.chains, warmup=config.warmup,
                          draws=config.nuts_draws, max_tree_depth=config.max_tree_depth,
                          seed=config.seed, model_config={"prior_scale": config.prior_scale},
                          parallel=config.parallel_chains)
        t1 = time.perf_counter()
        idata = bn.inference_data(fit)
        d = bn.diagnostics(fit, idata)
        t2 = time.perf_counter()
        loo = bn.nuts_loo(fit, idata, warmup=config.loo_warmup, draws=config.loo_draws,
                          max_refits=config.loo_max_refits)
        t3 = time.perf_counter()
        nuts.append(fit), loos.append(loo), diag.append({"model": name, **d})
        timings += [dict(model=name, stage="nuts", seconds=t1 - t0),
                    dict(model=name, stage="diagnostics", seconds=t2 - t1),
                    dict(model=name, stage="exact-loo", seconds=t3 - t2)]
        refs[name] = bn.ribbons(fit.model(), fit.flat(), grid, seed=config.seed)
        rows[name] = [_method_row(name, "nuts", idata_loglik=_nuts_loglik(idata),
                                  sigma=_sigma_draws(idata), rib=refs[name], ref=refs[name],
                                  loo=loo.psis, seconds=t1 - t0)]
    for name in config.models:
        for guide in config.vi_guides:
            row, f = _vi_fit(name, guide, x, y, config, svi, grid, refs[name])
            rows[name].append(row)
            timings.append(dict(model=name, stage=f"vi-{guide}", seconds=row["seconds"]))
            if f is not None:
                vi.append(f)
    rows = [r for name in config.models for r in rows[name]]
    fits = [f for f in vi if f.guide.config["kind"] == "normal"]
    table = pd.DataFrame(rows)
    table["error"] = table["error"].fillna("")
    table["failed"] = table["error"] != ""
    return Result(fits, _compare(fits, config), config, nuts, loos, pd.DataFrame(diag), vi,
                  table, pd.DataFrame(timings))


def _compare(fits, config: Config):
    """The PSIS-LOO comparison of both models' AutoNormal fits; None without both."""
    return br.loo_compare(fits, draws=config.draws, seed=config.seed) if len(fits) == 2 else None


def merge(results: Sequence[Result]) -> Result:
    """One result from results of the same settings for different ``models`` (the report runs
    one job per model, so that both cores work): each part in model order, and the two
    models' LOO comparison, which needs both. Equal to :func:`run` with all the models."""
    if len(results) == 1:
        return results[0]
    parts = sorted(results, key=lambda r: br.NAMES.index(r.config.models[0]))
    models = tuple(m for r in parts for m in r.config.models)
    config = dataclasses.replace(parts[0].config, models=models)
    if any(dataclasses.replace(r.config, models=models) != config for r in parts):
        raise ValueError("merge: the results were computed with different settings")
    fits = [f for r in parts for f in r.fits]

    def frame(name):
        frames = [getattr(r, name) for r in parts if getattr(r, name) is not None]
        return pd.concat(frames, ignore_index=True) if frames else None
    if config.sampler == "vi":
        return Result(fits, _compare(fits, config), config)
    timings = frame("timings")  # as run() orders them: every model's NUTS stages, then SVI
    timings = timings.iloc[np.argsort(timings["stage"].str.startswith("vi-").to_numpy(),
                                      kind="stable")].reset_index(drop=True)
    return Result(fits, _compare(fits, config), config, [f for r in parts for f in r.nuts],
                  [lo for r in parts for lo in r.loo], frame("diagnostics"),
                  [f for r in parts for f in r.vi], frame("vi_vs_nuts"), timings)


def _vi_fit(name, guide, x, y, config, svi, grid, ref):
    """One guide's SVI fit and its row of the VI-against-NUTS table, or the row of a failed
    fit (its numbers left out, the reason in ``error``) and None: a fit that raised, diverged
    or did not improve its ELBO (:func:`~probnn.inference.fit_checks.svi_failure`), or whose
    elpd is not finite or absurd (:func:`~probnn.inference.fit_checks.elpd_failure`)."""
    t0 = time.perf_counter()
    try:
        with br.one_thread():
            f = br.fit_bayesian_regression(name, x, y, guide=guide,
                                           **{**svi, "lr": br.guide_lr(guide, config.lr)})
    except (RuntimeError, ValueError) as e:
        # e.g. the low-rank guide's covariance losing positive definiteness
        lines = [l.strip() for l in str(e).splitlines() if l.strip()]
        # a TorchScript failure's message starts with a banner; its cause is the last line
        return _failed(name, guide, f"{type(e).__name__}: {(lines or [''])[-1][:200]}",
                       time.perf_counter() - t0), None
    seconds = time.perf_counter() - t0
    elbo = dict(elbo_start=float(f.history["elbo"].iloc[0]),
                elbo_end=float(f.history["elbo"].iloc[-1]))
    if why := svi_failure(f.history):
        return _failed(name, guide, why, seconds, **elbo), None
    d_vi = br.pointwise_loglik(f, config.draws, config.seed)
    psis = bn.psis_loo(br.as_inference_data(f, d_vi))
    if why := elpd_failure(float(psis.elpd_loo) / len(y), y.numpy()):
        return _failed(name, guide, why, seconds, **elbo), None
    with br.one_thread():
        pp = br.posterior_predictive(f, grid, config.draws, config.seed)
    return {**_method_row(name, guide, idata_loglik=d_vi.loglik,
                          sigma=d_vi.sigma.astype(np.float64), rib=_ribbon_of(grid, pp), ref=ref,
                          loo=psis, seconds=seconds), **elbo}, f


def _failed(name, guide, why: str, seconds: float, **elbo) -> dict:
    """The row of a failed fit: no estimate, only the reason (and its ELBO, where it has one)."""
    return {"model": name, "method": guide, **elbo, "error": why, "seconds": seconds}


def _nuts_loglik(idata) -> np.ndarray:
    ll = idata.log_likelihood["y"].values
    return ll.reshape(-1, ll.shape[-1])


def _sigma_draws(idata) -> np.ndarray:
    s = idata.posterior["sigma"].values
    return s.reshape(-1, s.shape[-1]).astype(np.float64)


def _ribbon_of(grid, pp) -> dict:
    f_lo, f_hi = np.quantile(pp["f"], [0.025, 0.975], axis=0)
    y_lo, y_hi = np.quantile(pp["y"], [0.025, 0.975], axis=0)
    return dict(x=grid[:, 0].numpy(), mean=pp["f"].mean(0), f_lo=f_lo, f_hi=f_hi, y_lo=y_lo,
                y_hi=y_hi)


def _method_row(name, method, *, idata_loglik, sigma, rib, ref, loo, seconds) -> dict:
    """One row of the VI-against-NUTS table. ``sigma_*``: the posterior of sigma averaged over
    the data points (for the homoscedastic model, sigma itself): mean and 95% interval.
    ``f_band_overlap``/``y_band_overlap``: :func:`~probnn.inference.bayes_nuts.band_overlap` of
    the method's 95% band of f (of a new y) with NUTS's over the ribbon grid (1: the same band)."""
    k = np.asarray(loo.pareto_k, dtype=float)
    s = np.asarray(sigma).mean(-1)
    n = idata_loglik.shape[-1]
    return {"model": name, "method": method,
            "lppd_per_point": float(br.logmeanexp(np.asarray(idata_loglik, dtype=float)).mean()),
            "elpd_loo": float(loo.elpd_loo), "se": float(loo.se),
            "elpd_loo_per_point": float(loo.elpd_loo) / n,
            "k_over_0.7": int((~(k <= 0.7)).sum()),
            "sigma_mean": float(s.mean()), "sigma_lo": float(np.quantile(s, 0.025)),
            "sigma_hi": float(np.quantile(s, 0.975)),
            "f_band_overlap": bn.band_overlap(rib["f_lo"], rib["f_hi"], ref["f_lo"], ref["f_hi"]),
            "y_band_overlap": bn.band_overlap(rib["y_lo"], rib["y_hi"], ref["y_lo"], ref["y_hi"]),
            "error": "", "seconds": float(seconds)}
