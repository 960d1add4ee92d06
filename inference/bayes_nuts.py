"""The reference posterior of the Bayesian regression models: NUTS, its diagnostics, PSIS-LOO
and exact leave-one-out refits.

:func:`nuts_fit` samples a model of :mod:`probnn.models.bayes_regression` with Pyro's
:class:`~pyro.infer.NUTS` (Hoffman & Gelman 2014, "The No-U-Turn Sampler", JMLR 15:1593-1623;
``jit_compile=True``, diagonal mass matrix and step size adapted in the warmup) in several
chains, each a single-chain :class:`~pyro.infer.MCMC` run with its own seed, so the draws are
the same whether the chains run one after the other (the default: the report already runs two
jobs on the two cores, and a Dask worker may not start processes) or in two spawned processes
(``parallel=True``, for the command line on an idle machine).

Diagnostics (:func:`diagnostics`) are ArviZ's rank-normalised split R-hat and bulk/tail ESS
(Vehtari, Gelman, Simpson, Carpenter & Bürkner 2021, "Rank-normalization, folding, and
localization: an improved R-hat", Bayesian Analysis 16:667-718). They are reported for the
*function-space* quantities (f and sigma at every data point, the log-likelihood of every
point) as well as for the raw weights: a network's weights are identified only up to
permutations of hidden units and sign-like symmetries, so two chains in two equivalent modes
give a large R-hat on weights while describing the same functions; what the predictions and
LOO use is f and sigma, whose R-hat is the one that must be near 1.

Priors (those of :mod:`probnn.models.bayes_regression`, on standardised x and y). Every weight
of a layer with fan-in m is N(0, 1/m) and every bias N(0, 1) (Neal 1996): each layer keeps the
variance of its input, so prior functions have an sd of order one in units of sd(y), the
scale of the standardised data, whatever the width. The homoscedastic noise has
log sigma_std ~ N(-1, 1): median 0.37 sd(y), 95% between 0.05 and 2.6 sd(y), so noise below
the spread of y is expected and noise as large as all of it is still allowed. The posterior
(mean sigma 1.89 in data units, 0.84 sd(y), under NUTS) sits well inside that prior. A
hierarchical scale on the weights was not added: it makes a funnel between the scale and
549 weights that NUTS resolves only with a non-centred parameterisation and longer trees, and
the fixed fan-in scale already matches the data's scale; the cost within the 5-minute budget
decided it.

LOO. :func:`psis_loo` is ArviZ's PSIS-LOO of the NUTS draws (Vehtari, Gelman & Gabry 2017).
For every point whose Pareto k exceeds 0.7 the importance-sampling estimate is unreliable;
:func:`exact_loo` then computes ``log p(y_i | y_-i) = log E_{p(theta | y_-i)} p(y_i | theta)``
from draws of the posterior *without* point i, given by a ``refit`` function: in
:func:`nuts_loo` a NUTS run on the other n-1 points (:func:`nuts_refit_loglik`), in the tests
the closed-form posterior of a conjugate model. ArviZ's ``reloo`` does the same through a
``SamplingWrapper`` class with four methods to override; a function of the point index is all
this needs, and the conjugate test drives the same function. :func:`corrected_elpd` replaces the
flagged points' PSIS terms by the exact ones and recomputes elpd and its standard error.
"""
from __future__ import annotations

import concurrent.futures as cf
import math
import multiprocessing as mp
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

import numpy as np
import pandas as pd
import pyro
import pyro.poutine as poutine
import torch
from pyro.infer import MCMC, NUTS
from pyro.infer.autoguide.initialization import init_to_sample

from probnn.models.bayes_regression import BAYESIAN_REGRESSION_MODELS

from . import arviz_compat
from .bayes_regression import logmeanexp
from .estimators import PARETO_K_UNRELIABLE
from .serialization import serializable
from .train import one_thread

# Presets (seconds measured on this project's shared 2-core machine; see benchmarks/bayes_speed.py)
NUTS_FULL = dict(chains=2, warmup=300, draws=300, max_tree_depth=8, loo_warmup=50,
                 loo_draws=150, loo_max_refits=12)
"""Full run: 2 chains x (300 warmup + 300 draws) per model, tree depth at most 8 (255 leapfrog
steps); exact LOO refits: one chain of 50 warmup + 150 draws per flagged point, at most 12
points per model (the worst k first), warm-started from the full-data run (its mass matrix
kept, so the warmup only has to adapt the step size).

Measured on xkcd (seed 309, this 2-core machine at load ~7, i.e. about 2-4x slower than idle):
homoscedastic 2 x 600 iterations, 81 leapfrog steps each on average, R-hat <= 1.01 and bulk/tail
ESS >= 386/241 over f, sigma and the pointwise log-likelihood, no divergences;
heteroscedastic 97 steps per iteration, R-hat <= 1.01, ESS >= 354/379, no divergences. At
~0.85-1.05 ms per leapfrog step (idle) that is ~80 s and ~120 s per model. With
``benchmarks/bayes_speed.py --preset full`` at load 4-8: NUTS 116 s + 271 s, diagnostics
4 s, exact refits (one flagged point per model) 35 s + 44 s: 470 s, 1.57x the 5-minute
budget under that load; at the idle step costs ~250 s."""
NUTS_QUICK = dict(chains=2, warmup=40, draws=40, max_tree_depth=5, loo_warmup=20,
                  loo_draws=40, loo_max_refits=2)
"""A quick look (smoke runs, the report's draft mode): chains far too short to trust (R-hat
~1.08, ESS ~20). Measured at load ~4-8: NUTS + diagnostics + exact LOO 34-45 s (each chain
and refit also traces the jit potential: ~0.5 s, measured on 20-iteration chains); at load
~2-4, 14.3 s (0.9 and 1.2 ms per leapfrog step). Chains in two spawned processes
(``parallel=True``) were only 1.10x faster than one after the other (2 x 200 iterations,
homoscedastic: 27.6 s against 30.3 s, same draws) on this shared 2-core machine, so the
report runs them in-process."""

CHAIN_SEED_STRIDE = 7919
"""Chain c of a run seeded s is seeded s + 7919 c (mod 2**32): distinct, reproducible seeds."""


def chain_seed(seed: int, chain: int) -> int:
    return (int(seed) + CHAIN_SEED_STRIDE * int(chain)) % 2**32


class _WarmNUTS(NUTS):
    """NUTS that counts its leapfrog steps (gradient evaluations) and, given an inverse mass
    matrix, starts from it instead of the identity (Pyro's adapter resets the mass matrix in
    ``setup``; warm-started LOO refits keep the full-data run's instead of re-learning it in a
    short warmup, and adapt only the step size)."""

    def __init__(self, model, inverse_mass: Mapping | None = None, **kw):
        super().__init__(model, adapt_mass_matrix=inverse_mass is None, **kw)
        self._warm_mass = inverse_mass
        self.leapfrogs = 0

    def _initialize_model_properties(self, model_args, model_kwargs):
        super()._initialize_model_properties(model_args, model_kwargs)
        potential = self.potential_fn

        def counted(z):
            self.leapfrogs += 1
            return potential(z)
        self.potential_fn = counted

    def _initialize_adapter(self):
        super()._initialize_adapter()
        if self._warm_mass is not None:
            self._adapter.inverse_mass_matrix = {k: v.clone() for k, v in self._warm_mass.items()}
            if self._adapter.adapt_step_size:  # the step size that suits this mass matrix
                self._adapter.reset_step_size_adaptation(self._initial_params)


def build_model(kind: str, model_config: Mapping, x: torch.Tensor, y: torch.Tensor):
    """A model of ``BAYESIAN_REGRESSION_MODELS`` standardised to (x, y)."""
    return BAYESIAN_REGRESSION_MODELS[kind](**dict(model_config)).standardise_to(x, y)


def run_chain(model, x: torch.Tensor, y: torch.Tensor, *, warmup: int, draws: int, seed: int,
              max_tree_depth: int = 8, target_accept: float = 0.8, jit: bool = True,
              init: Mapping[str, torch.Tensor] | None = None,
              inverse_mass: Mapping | None = None) -> dict:
    """One NUTS chain on (x, y): ``warmup`` adapted iterations, then ``draws`` kept.

    Starts from a prior draw (``init_to_sample``: with fan-in scaled priors a well-scaled
    network; Pyro's default ``init_to_uniform(-2, 2)`` gives every weight a magnitude the prior
    finds unlikely) unless ``init`` (unconstrained values; all sites here are unconstrained)
    is given. Returns plain data: ``draws`` (site -> array (draws, \\*shape)), ``divergences``,
    ``step_size``, ``leapfrogs``, ``seconds`` and the adapted
    ``inverse_mass`` (Pyro's dict: tuple of site names -> tensor).
    """
    pyro.set_rng_seed(seed)
    kernel = _WarmNUTS(model, inverse_mass=inverse_mass, jit_compile=jit,
                       ignore_jit_warnings=True, max_tree_depth=max_tree_depth,
                       target_accept_prob=target_accept, full_mass=False,
                       init_strategy=init_to_sample)
    mcmc = MCMC(kernel, num_samples=draws, warmup_steps=warmup, disable_progbar=True,
                initial_params=None if init is None else {k: v.clone() for k, v in init.items()})
    t0 = time.perf_counter()
    with warnings.catch_warnings(), one_thread():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit.trace's deprecation notice
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        mcmc.run(x, y)
    seconds = time.perf_counter() - t0
    diag = mcmc.diagnostics()
    return dict(draws={k: v.detach().numpy().copy() for k, v in mcmc.get_samples().items()},
                divergences=len(diag["divergences"]["chain 0"]),
                step_size=float(kernel.step_size), leapfrogs=int(kernel.leapfrogs),
                seconds=seconds,
                inverse_mass={k: v.detach().clone() for k, v in kernel.inverse_mass_matrix.items()})


def _chain_job(kind, model_config, x, y, kw):
    """A chain in a worker process (top level, so 'spawn' can import it)."""
    torch.set_num_threads(1)
    out = run_chain(build_model(kind, model_config, x, y), x, y, **kw)
    out["inverse_mass"] = {k: v.numpy() for k, v in out["inverse_mass"].items()}
    return out


def _can_fork_workers() -> bool:
    return not mp.current_process().daemon  # a Dask/multiprocessing worker may not have children


@serializable
@dataclass
class NutsFit:
    """NUTS draws of one Bayesian regression model and how the chains went.

    ``draws``: latent site -> array (chains, draws, \\*site_shape); ``chains``: one row per chain
    (seed, divergences, step_size, leapfrogs, seconds, ms_per_leapfrog);
    ``mass_sites``/``inverse_mass``: chain 0's adapted diagonal inverse mass matrix (for
    warm-started refits). Plain data only, so it is saved field by field."""
    name: str
    model_config: dict
    x: torch.Tensor
    y: torch.Tensor
    draws: dict
    chains: pd.DataFrame
    seed: int
    settings: dict = field(default_factory=dict)
    mass_sites: tuple = ()
    inverse_mass: np.ndarray | None = None

    def model(self):
        return build_model(self.name, self.model_config, self.x, self.y)

    def flat(self) -> dict[str, torch.Tensor]:
        """Every draw of every chain, site -> tensor (chains * draws, \\*site_shape)."""
        return {k: torch.as_tensor(v).reshape((-1,) + v.shape[2:]) for k, v in self.draws.items()}

    @property
    def seconds(self) -> float:
        return float(self.chains["seconds"].sum())


def nuts_fit(name: str, x: torch.Tensor, y: torch.Tensor, *, chains: int = NUTS_FULL["chains"],
             warmup: int = NUTS_FULL["warmup"], draws: int = NUTS_FULL["draws"],
             max_tree_depth: int = NUTS_FULL["max_tree_depth"], target_accept: float = 0.8,
             seed: int = 0, model_config: Mapping | None = None, parallel: bool = False,
             jit: bool = True) -> NutsFit:
    """Sample model ``name`` on (x, y) with ``chains`` NUTS chains (chain c seeded
    :func:`chain_seed`\\ (seed, c)); ``parallel``: the chains in spawned processes, same draws."""
    if name not in BAYESIAN_REGRESSION_MODELS:
        raise ValueError(f"unknown regression model {name!r}")
    config = dict(model_config or {})
    kws = [dict(warmup=warmup, draws=draws, seed=chain_seed(seed, c),
                max_tree_depth=max_tree_depth, target_accept=target_accept, jit=jit)
           for c in range(chains)]
    if parallel and chains > 1 and _can_fork_workers():
        ctx = mp.get_context("spawn")
        with cf.ProcessPoolExecutor(min(chains, 2), mp_context=ctx) as pool:
            outs = list(pool.map(_chain_job, *zip(*[(name, config, x, y, kw) for kw in kws])))
    else:
        model = build_model(name, config, x, y)
        outs = [run_chain(model, x, y, **kw) for kw in kws]
        for o in outs:
            o["inverse_mass"] = {k: v.numpy() for k, v in o["inverse_mass"].items()}
    sites = list(outs[0]["draws"])
    table = pd.DataFrame([{"chain": c, "seed": kw["seed"], **{k: o[k] for k in (
        "divergences", "step_size", "leapfrogs", "seconds")}}
        for c, (o, kw) in enumerate(zip(outs, kws))])
    table["ms_per_leapfrog"] = 1000 * table["seconds"] / table["leapfrogs"].clip(lower=1)
    (mass_sites, mass), = outs[0]["inverse_mass"].items()
    return NutsFit(name, config, x, y,
                   {s: np.stack([o["draws"][s] for o in outs]) for s in sites}, table, int(seed),
                   dict(chains=chains, warmup=warmup, draws=draws, max_tree_depth=max_tree_depth,
                        target_accept=target_accept),
                   tuple(mass_sites), np.asarray(mass))


# ----------------------------------------------------------------------------- draws -> numbers
def evaluate_draws(model, latents: Mapping[str, torch.Tensor], x: torch.Tensor,
                   y: torch.Tensor | None = None) -> dict[str, np.ndarray]:
    """The model at inputs x under each of S weight draws, in one vectorised pass: ``f``,
    ``sigma`` and, when ``y`` is None, ``y`` (a posterior-predictive draw), each (S, n);
    with ``y`` given, ``loglik`` (S, n) = log N(y_i | f_s(x_i), sigma_s(x_i)^2)
    (float64). The draws are conditioned inside a plate ``"draws"`` at dim -2, as the guide's
    draws in :func:`probnn.inference.bayes_regression.pointwise_loglik`."""
    S = len(next(iter(latents.values())))
    data = {k: torch.as_tensor(v).reshape((S, 1) + tuple(v.shape[1:])) for k, v in latents.items()}
    with torch.no_grad(), pyro.validation_enabled(False), one_thread(), \
            pyro.plate("draws", S, dim=-2):
        tr = poutine.trace(poutine.condition(model, data=data)).get_trace(x, y)
        if y is not None:
            tr.compute_log_prob(site_filter=lambda name, site: name == "y")
    out = {k: tr.nodes[k]["value"].reshape(S, -1).numpy() for k in ("f", "sigma")}
    if y is None:
        out["y"] = tr.nodes["y"]["value"].reshape(S, -1).numpy()
    else:
        out["loglik"] = tr.nodes["y"]["unscaled_log_prob"].double().reshape(S, -1).numpy()
    return out


def inference_data(fit: NutsFit):
    """ArviZ data (arviz 0.2x ``InferenceData`` or ArviZ 1.x ``DataTree``, see
    :mod:`probnn.inference.arviz_compat`): posterior (latents, f and sigma at the data, by
    chain), the pointwise log-likelihood ``y`` (chains, draws, n) and the observed y."""
    C, D = next(iter(fit.draws.values())).shape[:2]
    ev = evaluate_draws(fit.model(), fit.flat(), fit.x, fit.y)
    n = len(fit.y)
    post = {k: v for k, v in fit.draws.items()}
    post.update(f=ev["f"].reshape(C, D, n), sigma=ev["sigma"].reshape(C, D, n))
    dims = {"y": ["point"], "f": ["point"], "sigma": ["point"]}
    return arviz_compat.from_dict(post, {"y": ev["loglik"].reshape(C, D, n)},
                                  {"y": fit.y[:, 0].numpy()}, dims, {"point": np.arange(n)})


def diagnostics(fit: NutsFit, idata=None) -> dict:
    """R-hat (max) and bulk/tail ESS (min) over the function-space quantities (f, sigma and the
    log-likelihood at every data point) and, separately, over the raw weights; divergences,
    step size (mean over chains), draws, seconds and ms per leapfrog step."""
    idata = inference_data(fit) if idata is None else idata
    def worst(ds, fn):  # the extreme value over every variable and element of a Dataset
        return float(fn([np.nanmax(v.values) if fn is max else np.nanmin(v.values)
                         for v in ds.data_vars.values()]))
    # rhat / ess rather than a summary: the summary's MCSEs cost as much again
    az = arviz_compat
    groups = (az.group(idata, "posterior", ["f", "sigma"]), az.group(idata, "log_likelihood"))
    rhat = max(worst(az.rhat(g), max) for g in groups)
    bulk = min(worst(az.ess(g, method="bulk"), min) for g in groups)
    tail = min(worst(az.ess(g, method="tail"), min) for g in groups)
    weights = az.group(idata, "posterior", list(fit.draws))
    w_rhat, w_bulk = worst(az.rhat(weights), max), worst(az.ess(weights, method="bulk"), min)
    c = fit.chains
    return {"rhat_max": rhat, "ess_bulk_min": bulk, "ess_tail_min": tail,
            "weights_rhat_max": w_rhat, "weights_ess_bulk_min": w_bulk,
            "divergences": int(c["divergences"].sum()), "step_size": float(c["step_size"].mean()),
            "chains": len(c),
            "draws": int(len(c) * fit.settings.get("draws", 0)),
            "leapfrogs_per_draw": float(c["leapfrogs"].sum() / max(1, len(c) * (
                fit.settings.get("draws", 0) + fit.settings.get("warmup", 0)))),
            "ms_per_leapfrog": float(1000 * c["seconds"].sum() / max(1, c["leapfrogs"].sum())),
            "seconds": fit.seconds}


def psis_loo(idata) -> arviz_compat.PsisLoo:
    """ArviZ's PSIS-LOO with pointwise terms and Pareto k (its k > 0.7 warning silenced: the
    caller counts and refits those points)."""
    return arviz_compat.loo(idata)


# ----------------------------------------------------------------------------- exact LOO
def exact_loo(refit_loglik: Callable[[int], np.ndarray], points: Iterable[int]) -> pd.DataFrame:
    """Exact leave-one-out terms for ``points``::

        elpd_i = log p(y_i | y_-i) = log (1/S) sum_s p(y_i | theta_s),  theta_s ~ p(theta | y_-i)

    ``refit_loglik(i)`` returns the S values log p(y_i | theta_s) for draws from the posterior
    fitted without point i (a fresh sampler run, or exact draws for a conjugate model). The
    Monte Carlo standard error of elpd_i is the delta method's sd(p_s) / (sqrt(ESS) mean p_s),
    with ArviZ's ESS of the p_s (S for independent draws). Returns one row per point:
    ``point, exact_elpd_i, exact_mc_se, draws, seconds``."""
    rows = []
    for i in points:
        t0 = time.perf_counter()
        ll = np.asarray(refit_loglik(int(i)), dtype=np.float64).reshape(-1)
        seconds = time.perf_counter() - t0
        elpd = float(logmeanexp(ll))
        w = np.exp(ll - ll.max())
        ess = arviz_compat.ess_of_draws(w) if len(w) > 3 and w.std() > 0 else float(len(w))
        se = float(w.std() / (math.sqrt(max(ess, 1.0)) * w.mean()))
        rows.append(dict(point=int(i), exact_elpd_i=elpd, exact_mc_se=se, draws=len(ll),
                         seconds=seconds))
    return pd.DataFrame(rows, columns=["point", "exact_elpd_i", "exact_mc_se", "draws", "seconds"])


def nuts_refit(model, x: torch.Tensor, y: torch.Tensor,
               loglik_at: Callable[[Mapping[str, torch.Tensor], int], np.ndarray], *,
               warmup: int, draws: int, seed: int, max_tree_depth: int = 8,
               start: Mapping[str, torch.Tensor] | None = None,
               inverse_mass: Mapping | None = None) -> Callable[[int], np.ndarray]:
    """``refit(i)`` for :func:`exact_loo` with any model ``model(x, y)`` whose data are the
    rows of x and y: one NUTS chain (:func:`run_chain`, seeded ``chain_seed(seed, 1000 + i)``)
    on the data without row i, started at ``start`` with the diagonal ``inverse_mass`` kept
    (warm start: only the step size is adapted in the short warmup), then
    ``loglik_at(draws, i)``: log p(y_i | theta_s) for the refit's draws (site -> (S, ...)).
    ``refit.stats[i]``: the refit chain's divergences, step size and leapfrog steps."""
    def refit(i: int) -> np.ndarray:
        keep = torch.arange(len(x)) != i
        out = run_chain(model, x[keep], y[keep], warmup=warmup, draws=draws,
                        seed=chain_seed(seed, 1000 + i), max_tree_depth=max_tree_depth,
                        init=start, inverse_mass=inverse_mass)
        refit.stats[i] = {k: out[k] for k in ("divergences", "step_size", "leapfrogs")}
        return loglik_at({k: torch.as_tensor(v) for k, v in out["draws"].items()}, i)
    refit.stats = {}
    return refit


def nuts_refit_loglik(fit: NutsFit, *, warmup: int, draws: int, seed: int | None = None
                      ) -> Callable[[int], np.ndarray]:
    """:func:`nuts_refit` for a :class:`NutsFit`: the model standardised as for the full data
    (the same prior: the refit differs from the full model only by the missing likelihood
    term), started at chain 0's last draw with chain 0's adapted mass matrix."""
    model = fit.model()
    start = {k: torch.as_tensor(v[0, -1]).clone() for k, v in fit.draws.items()}
    mass = None if fit.inverse_mass is None else {
        tuple(fit.mass_sites): torch.as_tensor(fit.inverse_mass).clone()}

    def loglik_at(latents, i):
        return evaluate_draws(model, latents, fit.x[i:i + 1], fit.y[i:i + 1])["loglik"][:, 0]
    return nuts_refit(model, fit.x, fit.y, loglik_at, warmup=warmup, draws=draws,
                      seed=fit.seed if seed is None else seed,
                      max_tree_depth=int(fit.settings.get("max_tree_depth", 8)), start=start,
                      inverse_mass=mass)


@serializable
@dataclass
class LooResult:
    """PSIS-LOO of one model's NUTS draws and the exact refits of its flagged points.

    ``pointwise``: one row per data point: x, y, psis_elpd_i, pareto_k, exact_elpd_i (NaN where
    not refitted), exact_mc_se, elpd_i (the exact term where refitted, else PSIS)."""
    name: str
    psis: arviz_compat.PsisLoo
    pointwise: pd.DataFrame
    flagged: int          # points with k > 0.7 (or not finite)
    refitted: int         # of those, refitted exactly
    refit_seconds: float

    def summary(self) -> dict:
        p = self.pointwise
        n = len(p)
        e = p["elpd_i"].to_numpy()
        return {"psis_elpd": float(p["psis_elpd_i"].sum()),
                "psis_se": float(math.sqrt(n * np.var(p["psis_elpd_i"].to_numpy()))),
                "p_loo": float(self.psis.p_loo), "k_over_0.7": self.flagged,
                "k_max": float(p["pareto_k"].max()), "refitted": self.refitted,
                "elpd": float(e.sum()), "se": float(math.sqrt(n * np.var(e))),
                "exact_mc_se": float(math.sqrt((p["exact_mc_se"].fillna(0) ** 2).sum())),
                "refit_seconds": self.refit_seconds}


def corrected_elpd(psis_elpd_i: np.ndarray, exact: pd.DataFrame) -> np.ndarray:
    """The pointwise elpd with the exact terms in place of the PSIS ones where refitted."""
    e = np.asarray(psis_elpd_i, dtype=np.float64).copy()
    e[exact["point"].to_numpy(dtype=int)] = exact["exact_elpd_i"].to_numpy()
    return e


def nuts_loo(fit: NutsFit, idata=None, *, warmup: int = NUTS_FULL["loo_warmup"],
             draws: int = NUTS_FULL["loo_draws"], max_refits: int = NUTS_FULL["loo_max_refits"]
             ) -> LooResult:
    """PSIS-LOO of the NUTS draws, then exact refits (:func:`nuts_refit_loglik`) for the points
    with k > 0.7, the worst first, at most ``max_refits`` of them."""
    idata = inference_data(fit) if idata is None else idata
    loo = psis_loo(idata)
    k = np.asarray(loo.pareto_k, dtype=float)
    bad = np.flatnonzero(~(k <= PARETO_K_UNRELIABLE))
    order = bad[np.argsort(-np.nan_to_num(k[bad], nan=np.inf))][:max_refits]
    t0 = time.perf_counter()
    exact = exact_loo(nuts_refit_loglik(fit, warmup=warmup, draws=draws), sorted(order.tolist()))
    seconds = time.perf_counter() - t0
    psis_i = np.asarray(loo.loo_i, dtype=float)
    p = pd.DataFrame({"x": fit.x[:, 0].numpy(), "y": fit.y[:, 0].numpy(),
                      "psis_elpd_i": psis_i, "pareto_k": k}).rename_axis("point")
    p["exact_elpd_i"] = np.nan
    p["exact_mc_se"] = np.nan
    p.loc[exact["point"].to_numpy(dtype=int), "exact_elpd_i"] = exact["exact_elpd_i"].to_numpy()
    p.loc[exact["point"].to_numpy(dtype=int), "exact_mc_se"] = exact["exact_mc_se"].to_numpy()
    p["elpd_i"] = corrected_elpd(psis_i, exact)
    return LooResult(fit.name, loo, p, int(len(bad)), int(len(order)), seconds)


def elpd_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """sum(a_i - b_i) and its standard error sqrt(n var(a_i - b_i)) (Vehtari et al. 2017)."""
    d = np.asarray(a, dtype=float) - np.asarray(b, dtype=float)
    return float(d.sum()), float(math.sqrt(len(d) * np.var(d)))


# ----------------------------------------------------------------------------- VI against NUTS
def band_overlap(lo_a, hi_a, lo_b, hi_b) -> float:
    """Mean over the grid of ``|A ∩ B| / |A ∪ B|`` for intervals A = [lo_a, hi_a], B = [lo_b, hi_b]
    (1: the same band; 0: disjoint bands)."""
    inter = np.clip(np.minimum(hi_a, hi_b) - np.maximum(lo_a, lo_b), 0, None)
    union = np.maximum(hi_a, hi_b) - np.minimum(lo_a, lo_b)
    return float(np.mean(inter / np.where(union > 0, union, 1.0)))


def ribbon_grid(x: torch.Tensor, num: int = 200) -> torch.Tensor:
    """The grid the ribbons are drawn on: min(x) - 0.1 to max(x) + 0.1."""
    return torch.linspace(float(x.min()) - 0.1, float(x.max()) + 0.1, num).unsqueeze(-1)


def ribbons(model, latents: Mapping[str, torch.Tensor], grid: torch.Tensor, seed: int = 0
            ) -> dict[str, np.ndarray]:
    """Posterior-predictive summaries at ``grid`` from weight draws: mean of f, 2.5%/97.5%
    quantiles of f and of a new y (seeded noise)."""
    pyro.set_rng_seed(seed)
    ev = evaluate_draws(model, latents, grid)
    f_lo, f_hi = np.quantile(ev["f"], [0.025, 0.975], axis=0)
    y_lo, y_hi = np.quantile(ev["y"], [0.025, 0.975], axis=0)
    return dict(x=grid[:, 0].numpy(), mean=ev["f"].mean(0), f_lo=f_lo, f_hi=f_hi, y_lo=y_lo,
                y_hi=y_hi)
