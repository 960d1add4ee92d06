"""The ELBO-estimator study: how biased and how noisy are the log-likelihood estimators, how
noisy are the training objectives' gradients, and which objective trains the best model.

Three parts, each a function returning a :class:`pandas.DataFrame`, and
:func:`run_estimator_study` running all three on one trained model:

1. :func:`estimator_bias_spread` -- mean, Monte Carlo spread and wall time of the ELBO,
   ELBO-MC and IWAE-K estimators of ``log p(x)`` on holdout images.
2. :func:`gradient_snr` -- signal-to-noise ratio of the gradients of Trace_ELBO,
   TraceMeanField_ELBO and the IWAE objective, for encoder and decoder parameters apart
   (Rainforth et al. 2018).
3. :func:`objective_comparison` -- train one VAE per objective from the same initialisation
   and compare them on the same holdout IWAE bound.

Notebook use::

    from probnn.datasets import mnist_splits
    from probnn.inference.vae import load_vae
    from probnn.inference.estimator_study import run_estimator_study
    from probnn.tasks import estimators

    model, guide = load_vae("runs/vae/vae-d4.ckpt")
    (train_x, _, _), (holdout_x, _, _) = mnist_splits(None)
    sizes = estimators.Config.preset("quick").sizes()
    study = run_estimator_study(model, guide, holdout_x, train_x, name="vae-d4", **sizes)
    study.bias_spread, study.snr, study.objectives          # three tables
    # figures and the written answer: probnn.analysis.estimator_study.estimator_section(study)

Every function takes a ``seed``; the same seed gives the same numbers (timing columns aside).
Nothing here plots (see :mod:`probnn.analysis.estimator_study`).

Sizes. This machine (2 slow, shared CPU cores) scores about 4,000-13,000 image-particle pairs
per second with the coursework's conv VAE (75-250 us a pair with the load; the decoder
dominates), and a training step on 100 images costs about 0.13 s with Trace_ELBO and 1.9 s
with IWAE K=50.
Named sizes (``quick``, ``standard``, ``thorough``) are the study task's presets,
:data:`probnn.tasks.estimators.PRESETS`, with what each costs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd
import pyro
import torch
from tqdm.auto import tqdm

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.models.cvae import ConditionalVAE
from probnn.models.vae import VAE

from .elbos import BOUND_NAMES, ELBO_NAMES, make_elbo
from .estimators import elbo_mc, iwae_and_elbo_mc, iwae_bound
from .batching import as_tuple
from .serialization import serializable
from .structure import ModelError, parameters
from .train import LossModule
from .vae import train_vae

SNR_FAMILIES = ELBO_NAMES
"""Training objectives whose gradients are compared (every ELBO of
:func:`~probnn.inference.elbos.make_elbo`): ``trace`` (Trace_ELBO), ``meanfield``
(TraceMeanField_ELBO, analytic KL), ``stl`` (the ELBO without the guide's score term),
``iwae`` (the importance-weighted bound, ``IWAE_ELBO``) and ``dreg-iwae`` (the same bound
with doubly reparameterised guide gradients)."""


def objective_grid(families=SNR_FAMILIES, ks=(1, 5, 50)) -> tuple[str, ...]:
    """Objective names for every family at every K: ``trace``, ``trace-5``, ..., ``iwae-1``,
    ``iwae-5``, ... (the bounds keep ``-1`` to tell them from the ELBOs they equal at K=1)."""
    return tuple(f if k == 1 and f not in BOUND_NAMES else f"{f}-{k}"
                 for f in families for k in ks)


OBJECTIVES = objective_grid()
"""The gradient-SNR grid: the five families at K = 1, 5, 50."""
ESTIMATOR_KS = (1, 10, 100, 1000, 5000)

# Costs scale as (the networks' cost hardly depends on the latent size):
# bias/spread ~ holdout_images * repeats * (sum(ks) + elbo_mc_k + 1) image-particle pairs;
# SNR ~ snr_objectives * snr_samples * snr_images * (1 + K) forward+backward passes;
# training ~ train_images * epochs * sum over objectives of (1 + K) (IWAE-50 dominates).
TRAIN_OBJECTIVES = ("trace", "meanfield", "stl", "iwae-5", "dreg-iwae-5", "iwae-50",
                    "dreg-iwae-50")
"""Objectives trained by the presets: ``iwae-1`` is left out because it is Trace_ELBO itself
(the same loss from the same draws), so from the same seed it trains the identical model."""


# ----------------------------------------------------------------------------- helpers
def _seed_for(*keys: int) -> int:
    """A seed derived from ``keys`` (e.g. study seed, repeat, estimator): distinct keys give
    independent streams, and a part's numbers do not depend on which other parts ran."""
    return int(np.random.SeedSequence([int(k) % 2**32 for k in keys]).generate_state(1)[0])


def parse_objective(spec: str) -> tuple[str, int]:
    """An objective's ELBO name and particle count K: ``"trace"`` -> ("trace", 1),
    ``"iwae-5"`` -> ("iwae", 5), ``"dreg-iwae-50"`` -> ("dreg-iwae", 50), ``"stl-5"`` ->
    ("stl", 5). ``trace-K``, ``meanfield-K`` and ``stl-K`` average K single-sample ELBOs."""
    head, _, tail = spec.rpartition("-")
    name, k = (head, tail) if tail.isdigit() else (spec, "1")
    if name not in ELBO_NAMES:
        raise ValueError(f"unknown objective {spec!r}: use one of {', '.join(ELBO_NAMES)}, "
                         "with -K for K particles (e.g. iwae-5, dreg-iwae-50)")
    if int(k) < 1:
        raise ValueError(f"objective {spec!r}: K must be >= 1")
    return name, int(k)


def _data(x, extra_args) -> tuple:
    return as_tuple(x) + tuple(extra_args)


def _head(data: tuple, n: int | None) -> tuple:
    return data if not n else tuple(t[:n] for t in data)


# ----------------------------------------------------------------------------- 1. bias and spread
def estimator_bias_spread(model, guide, x: torch.Tensor, ks: Sequence[int] = ESTIMATOR_KS,
                          elbo_mc_k: int | None = 100, repeats: int = 3, seed: int = 0, *,
                          extra_args: tuple = (), batch_size: int = 100, max_pairs: int = 20_000,
                          progress: bool = False) -> pd.DataFrame:
    """Mean, Monte Carlo spread and cost of estimators of ``log p(x)`` on the images ``x``.

    Estimators (per image, then averaged over the n images):

    - ``ELBO (K=1)``: :func:`~probnn.inference.estimators.elbo_mc` with one sample,
      ``log p(x | z) - KL(q(z|x) || p(z))``, z ~ q (analytic KL, as TraceMeanField_ELBO).
    - ``ELBO-MC (K=elbo_mc_k)``: the same averaged over K samples (coursework question d).
      Both are unbiased for the ELBO ``L = log p(x) - KL(q(z|x) || p(z|x))``; K only
      shrinks their spread.
    - ``IWAE (K)`` for each K in ``ks``: ``log (1/K) sum_k p(x, z_k) / q(z_k|x)``
      (:func:`~probnn.inference.estimators.iwae_bound`). ``E[IWAE_K] <= E[IWAE_2K] <=
      log p(x)`` (Burda et al. 2016); IWAE (K=1) is the single-sample ELBO with a Monte Carlo
      KL, so its mean is the ELBO too.

    The whole estimate is repeated ``repeats`` times with independent seeds (derived from
    ``seed``, the repeat and the estimator). With ``e[r, i]`` the estimate for image i in
    repeat r and ``m[r] = mean_i e[r, i]``, the columns are

    - ``mean``: mean of e over images and repeats (nats per image);
    - ``sd_of_mean``: sd over repeats of m (ddof 1): the Monte Carlo error of one run's
      mean-over-images; ``stderr = sd_of_mean / sqrt(R)``: the error of ``mean``;
    - ``per_image_sd``: mean over images of the sd over repeats of e[:, i]: the spread of a
      single image's estimate;
    - ``gap_to_ref``, ``gap_to_ref_se``: ``mean`` minus the mean of the largest-K IWAE bound
      (the reference, the tightest estimate here) and its standard error. Since
      ``log p(x) >= E[IWAE_Kmax]``, ``-gap_to_ref`` is (in expectation) a lower bound on the
      estimator's bias below ``log p(x)``;
    - ``seconds``: mean wall time of one run over the n images; ``ms_per_image``.

    ``x`` (plus ``extra_args``, e.g. labels for the conditional VAE) are the model's
    arguments; ``batch_size`` and ``max_pairs`` bound memory as in ``iwae_bound``.
    """
    if repeats < 2:
        raise ValueError(f"repeats must be >= 2 to measure a spread, got {repeats}")
    data = _data(x, extra_args)
    n = len(data[0])
    plan = [("ELBO (K=1)", "elbo", 1)]
    if elbo_mc_k:
        plan.append((f"ELBO-MC (K={elbo_mc_k})", "elbo_mc", int(elbo_mc_k)))
    plan += [(f"IWAE (K={k})", "iwae", int(k)) for k in sorted(set(ks))]
    codes = {"elbo": 0, "elbo_mc": 1, "iwae": 2}
    est = {label: np.empty((repeats, n)) for label, _, _ in plan}
    secs = {label: [] for label, _, _ in plan}
    bar = tqdm(total=repeats * len(plan), disable=not progress, desc="estimators", leave=False)
    for r in range(repeats):
        for label, kind, k in plan:
            bar.set_postfix_str(f"repeat {r + 1} {label}", refresh=False)
            pyro.set_rng_seed(_seed_for(seed, r, codes[kind], k))
            t0 = time.perf_counter()
            if kind == "iwae":
                values = iwae_bound(model, guide, data, k, batch_size=batch_size,
                                    max_pairs=max_pairs, diagnostics=False).bound
            else:
                values = elbo_mc(model, guide, data, k, batch_size=batch_size,
                                 max_pairs=max_pairs).elbo
            secs[label].append(time.perf_counter() - t0)
            if not np.all(np.isfinite(values)):
                raise FloatingPointError(f"{label}: non-finite estimate in repeat {r + 1}")
            est[label][r] = values
            bar.update(1)
    bar.close()

    ref_label = next((label for label, kind, _ in reversed(plan) if kind == "iwae"), None)
    rows = []
    for label, kind, k in plan:
        e = est[label]
        m = e.mean(1)  # (R,) the mean over images of each repeat
        sd_of_mean = float(m.std(ddof=1))
        if ref_label is None:
            gap = gap_se = math.nan
        else:  # repeats are independent across estimators, so the difference's sd is honest
            diff = m - est[ref_label].mean(1)
            gap, gap_se = float(diff.mean()), float(diff.std(ddof=1)) / math.sqrt(repeats)
        rows.append(dict(
            estimator=label, kind=kind, k=k, images=n, repeats=repeats,
            mean=float(e.mean()), stderr=sd_of_mean / math.sqrt(repeats), sd_of_mean=sd_of_mean,
            per_image_sd=float(e.std(0, ddof=1).mean()), gap_to_ref=gap, gap_to_ref_se=gap_se,
            seconds=float(np.mean(secs[label])),
            ms_per_image=1000.0 * float(np.mean(secs[label])) / n))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- 2. gradient SNR
@dataclass
class _Moments:
    """Welford's running mean and sum of squared deviations, in float64 (stable even when
    |mean| >> sd, where E[g^2] - E[g]^2 would cancel)."""
    count: int = 0
    mean: torch.Tensor | None = None
    m2: torch.Tensor | None = None

    def add(self, g: torch.Tensor) -> None:
        g = g.detach().to(torch.float64)
        self.count += 1
        if self.mean is None:
            self.mean, self.m2 = g.clone(), torch.zeros_like(g)
            return
        delta = g - self.mean
        self.mean += delta / self.count
        self.m2 += delta * (g - self.mean)

    def sd(self) -> torch.Tensor:
        return (self.m2 / (self.count - 1)).sqrt()


def snr_from_moments(mean: np.ndarray, sd: np.ndarray) -> np.ndarray:
    """Per-parameter ``|mean| / sd``: ``inf`` where the gradient is deterministic and nonzero
    (sd = 0), ``nan`` where it is identically zero (a parameter the loss does not use)."""
    mean, sd = np.abs(np.asarray(mean, np.float64)), np.asarray(sd, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(sd > 0, mean / np.where(sd > 0, sd, 1.0),
                        np.where(mean > 0, np.inf, np.nan))


def gradient_snr(model, guide, x: torch.Tensor, objectives: Sequence[str] = OBJECTIVES,
                 samples: int = 20, seed: int = 0, *, extra_args: tuple = (),
                 max_plate_nesting: int = 1, bootstrap: int = 100,
                 bootstrap_parameters: int = 20_000, progress: bool = False) -> pd.DataFrame:
    """Signal-to-noise ratio of each training objective's gradient, at the current parameters.

    For a fixed minibatch ``x`` of n images, an objective's loss is the negative bound
    averaged over the images, ``l(theta, eps) = -(1/n) sum_i Lhat(x_i; theta, eps)``, a random
    function of the reparameterisation noise eps. Its gradient ``Delta = grad_theta l`` is an
    unbiased estimate of the gradient of the objective's expectation. With S independent
    draws ``Delta^(1..S)`` (independent seeds), for every scalar parameter theta_j

    .. math::
        \\mathrm{SNR}_j = \\frac{|\\hat\\mu_j|}{\\hat\\sigma_j}, \\qquad
        \\hat\\mu_j = \\frac1S \\sum_s \\Delta^{(s)}_j, \\quad
        \\hat\\sigma_j^2 = \\frac1{S-1} \\sum_s (\\Delta^{(s)}_j - \\hat\\mu_j)^2 ,

    the estimate of ``|E[Delta_j]| / sd[Delta_j]`` of Rainforth, Kosiorek, Le, Maddison, Igl,
    Wood & Teh (2018), "Tighter Variational Bounds are Not Necessarily Better", ICML. For the
    IWAE bound with K particles they show the decoder (model, theta) gradient's SNR grows as
    O(sqrt(K)) while the encoder (guide, phi) gradient's SNR shrinks as O(1/sqrt(K)): the
    encoder's true gradient vanishes as O(1/K) faster than its noise does.

    Objectives are names from :func:`parse_objective`: ``trace`` (Trace_ELBO, Monte Carlo
    KL), ``meanfield`` (TraceMeanField_ELBO, analytic KL), ``iwae-K`` (``IWAE_ELBO`` with K
    particles), each built by :func:`~probnn.inference.elbos.make_elbo` and differentiated as
    in training (:class:`~probnn.inference.train.LossModule`). Parameters are not changed.
    Every objective starts from the same seed, so ``trace`` and ``iwae-1`` (the same single-sample
    estimator) agree exactly and differences between objectives are not seed noise.

    Returns one row per objective and side (``encoder`` = guide parameters, ``decoder`` =
    model parameters): ``parameters`` (scalars with a nonzero gradient; ``unused`` counts the
    others), ``snr_mean``, ``snr_median``, ``snr_q10``, ``snr_q90`` over those parameters,
    ``mean_abs_grad`` (mean ``|mu_j|``), ``mean_grad_sd`` (mean sigma_j), ``samples``, ``images``
    and ``seconds`` (for all S gradients of the objective). With S samples a parameter whose
    true SNR is 0 still shows about ``sqrt(2 / (pi S))``, so compare objectives at equal S.

    ``snr_median_se``: the standard error of ``snr_median`` from the draws' noise, estimated by
    ``bootstrap`` resamples (with replacement) of the S draws on a fixed random subset of
    ``bootstrap_parameters`` parameters per side (all of them when fewer): the spread of the
    resampled medians. 0 resamples: NaN.
    """
    if samples < 2:
        raise ValueError(f"samples must be >= 2 to estimate a spread, got {samples}")
    data = _data(x, extra_args)
    n = len(data[0])
    guide_side = parameters(lambda *a, **k: None, guide, data)
    seen = {id(p) for p in guide_side}
    sides = {"encoder": guide_side,
             "decoder": [p for p in parameters(model, lambda *a, **k: None, data)
                         if id(p) not in seen]}
    sides = {s: ps for s, ps in sides.items() if ps}
    if not sides:
        raise ModelError("gradient_snr needs trainable parameters: neither the model nor the "
                         "guide has any")
    flat = [p for ps in sides.values() for p in ps]
    pick = torch.Generator().manual_seed(_seed_for(seed, 2))
    # drawn on the CPU (the generator's device), then moved to the gradients' device once
    subset = {side: torch.randperm(sum(p.numel() for p in ps), generator=pick, device="cpu")
              [:bootstrap_parameters].to(flat[0].device) for side, ps in sides.items()}
    rows = []
    bar = tqdm(total=len(objectives) * samples, disable=not progress, desc="gradient SNR", leave=False)
    for spec in objectives:
        name, k = parse_objective(spec)
        loss_fn = LossModule(make_elbo(name, k, max_plate_nesting), model, guide)
        moments = {s: _Moments() for s in sides}
        kept = {s: [] for s in sides}  # the subset's draws, for the bootstrap
        # The same seed for every objective (common random numbers): objectives are compared
        # on the same noise, and trace and iwae-1 (the same estimator) give the same numbers.
        pyro.set_rng_seed(_seed_for(seed, 1))
        t0 = time.perf_counter()
        for s in range(samples):
            loss = loss_fn(*data) / n
            grads = torch.autograd.grad(loss, flat, allow_unused=True)
            i = 0
            for side, ps in sides.items():
                g = torch.cat([(gr if gr is not None else torch.zeros_like(p)).reshape(-1)
                               for p, gr in zip(ps, grads[i:i + len(ps)])])
                i += len(ps)
                if not torch.isfinite(g).all():
                    raise FloatingPointError(f"{spec}: non-finite {side} gradient in sample {s + 1}")
                moments[side].add(g)
                if bootstrap:
                    kept[side].append(g[subset[side]].to(torch.float64))
            bar.update(1)
        seconds = time.perf_counter() - t0
        for side, mom in moments.items():
            mu, sd = mom.mean.cpu().numpy(), mom.sd().cpu().numpy()
            snr = snr_from_moments(mu, sd)
            used = ~np.isnan(snr)
            v = snr[used]
            rows.append(dict(
                objective=spec, elbo=name, k=k, side=side, parameters=int(used.sum()),
                unused=int((~used).sum()),
                snr_mean=float(v.mean()) if len(v) else math.nan,
                snr_median=float(np.median(v)) if len(v) else math.nan,
                snr_q10=float(np.quantile(v, 0.1)) if len(v) else math.nan,
                snr_q90=float(np.quantile(v, 0.9)) if len(v) else math.nan,
                mean_abs_grad=float(np.abs(mu[used]).mean()) if len(v) else math.nan,
                mean_grad_sd=float(sd[used].mean()) if len(v) else math.nan,
                snr_median_se=_bootstrap_median_se(kept[side], bootstrap, _seed_for(seed, 3)),
                samples=samples, images=n, seconds=seconds))
    bar.close()
    return pd.DataFrame(rows)


def _bootstrap_median_se(draws: list[torch.Tensor], resamples: int, seed: int) -> float:
    """The sd of the median per-parameter SNR over ``resamples`` bootstrap resamples of the
    draws (rows), parameters with no gradient left out as in the full estimate. A resample is
    a row of multinomial counts, so all of them are two matrix products."""
    if not resamples or len(draws) < 2:
        return math.nan
    d = torch.stack(draws).cpu()  # (S, m), float64; resampled on the CPU (its generator's)
    s = len(d)
    g = torch.Generator().manual_seed(seed)
    picks = torch.randint(s, (resamples, s), generator=g, device="cpu")
    counts = torch.zeros(resamples, s, dtype=d.dtype, device="cpu").scatter_add_(
        1, picks, torch.ones(resamples, s, dtype=d.dtype, device="cpu"))
    mean = counts @ d / s
    var = ((counts @ d.square()) - s * mean.square()).clamp_min(0) / (s - 1)
    medians = []
    for mu, v in zip(mean.numpy(), var.sqrt().numpy()):
        snr = snr_from_moments(mu, v)
        snr = snr[~np.isnan(snr)]
        if len(snr):
            medians.append(float(np.median(snr)))
    # a resample of one repeated draw has no spread (every SNR infinite): not an estimate
    medians = [m for m in medians if math.isfinite(m)]
    return float(np.std(medians, ddof=1)) if len(medians) > 1 else math.nan


# ----------------------------------------------------------------------------- 3. objectives
def _holdout_bounds(model, guide, x, eval_k: int, seed: int, batch_size: int = 100):
    """Per-image IWAE-``eval_k`` bound and ELBO-MC from the same samples, drawn with the same
    seed for every model scored (common random numbers), and the seconds taken."""
    pyro.set_rng_seed(_seed_for(seed, 7))
    t0 = time.perf_counter()
    bound, terms = iwae_and_elbo_mc(model, guide, (x,), eval_k, batch_size=batch_size)
    if not np.all(np.isfinite(terms.elbo)):
        raise FloatingPointError("non-finite holdout ELBO")
    return bound, terms.elbo, time.perf_counter() - t0


def objective_comparison(x_train: torch.Tensor, x_holdout: torch.Tensor,
                         objectives: Sequence[str] = TRAIN_OBJECTIVES, epochs: int = 1,
                         latent_dim: int = 4, eval_k: int = 5000, seed: int = COURSEWORK_SEED,
                         *, architecture: str = "conv", likelihood: str = "bernoulli",
                         binarize: bool = False, train_images: int | None = None,
                         eval_images: int | None = None, batch_size: int = 100,
                         lr: float = 1e-3, eval_batch_size: int = 100, seeds: int = 1,
                         progress: bool = False) -> pd.DataFrame:
    """Train one VAE per objective and seed, and score all of them with the same holdout
    estimator.

    For each of ``seeds`` seeds (``seed``, ``seed + 1``, ...) every model starts from the same
    initialisation and sees the same mini-batches in the same order
    (:func:`~probnn.inference.vae.train_vae` with that seed); only the objective differs.
    Each is then evaluated on the same ``eval_images`` holdout images with the same draws:
    ``holdout_iwae`` is the IWAE bound with ``eval_k`` samples (the common yardstick, close
    to log p(x) for large K) and ``holdout_elbo`` the ELBO-MC from the same samples
    (:func:`~probnn.inference.estimators.iwae_and_elbo_mc`), both mean nats per image. A new
    seed changes the initialisation, the batches and the evaluation draws: the spread over
    seeds is the run-to-run variation that a ranking must beat (:func:`summarise_objectives`).

    One row per objective and seed: objective, seed, elbo, k, epochs, train_images,
    train_seconds (training only; wall time, so on a shared machine it moves with the load),
    train_objective (last epoch's mean training objective, nats per image: an ELBO for
    trace/meanfield/stl, the IWAE-K bound for (dreg-)iwae-K), holdout_elbo, holdout_iwae,
    holdout_iwae_se (standard error over images), eval_k, eval_images, eval_seconds,
    delta_vs_best and delta_vs_best_se (the holdout IWAE bound minus the seed's best model's,
    per image, with its paired standard error over images), and elbo_delta_vs_best(_se),
    the same for the holdout ELBO against the seed's model best by ELBO.
    """
    if seeds < 1:
        raise ValueError(f"seeds must be >= 1, got {seeds}")
    xt = x_train[:train_images] if train_images else x_train
    xh = x_holdout[:eval_images] if eval_images else x_holdout
    if objectives:
        # One untimed step first, so the first objective's time does not carry one-off costs
        # (allocations, oneDNN kernel selection for these shapes). Training reseeds after it.
        name, k = parse_objective(objectives[0])
        train_vae(latent_dim, x=xt[:batch_size], epochs=1, batch_size=batch_size, seed=seed,
                  elbo=name, num_particles=k, likelihood=likelihood, architecture=architecture,
                  binarize=binarize, progress=False, device=xt.device)
    tables = []
    bar = tqdm(total=seeds * len(objectives), disable=not progress, desc="objectives",
               leave=False)
    for s in ((seed + j) % 2**32 for j in range(seeds)):  # seeds numpy accepts, near 2**32 too
        rows, per_image, per_image_elbo = [], {}, {}
        for spec in objectives:
            name, k = parse_objective(spec)
            fit = train_vae(latent_dim, x=xt, epochs=epochs, batch_size=batch_size, lr=lr,
                            seed=s, elbo=name, num_particles=k, likelihood=likelihood,
                            architecture=architecture, binarize=binarize, progress=progress,
                            device=xt.device)  # where the task put the data (Inputs.device)
            bound, elbo, eval_seconds = _holdout_bounds(fit.model, fit.guide, xh, eval_k, s,
                                                        eval_batch_size)
            per_image[spec], per_image_elbo[spec] = bound, elbo
            last = fit.history.iloc[-1]
            rows.append(dict(objective=spec, seed=s, elbo=name, k=k, epochs=epochs,
                             train_images=len(xt), train_seconds=float(last["seconds"]),
                             train_objective=float(last["elbo"]),
                             holdout_elbo=float(elbo.mean()), holdout_iwae=float(bound.mean()),
                             holdout_iwae_se=float(bound.std(ddof=1) / math.sqrt(len(bound)))
                             if len(bound) > 1 else math.nan,
                             eval_k=eval_k, eval_images=len(xh), eval_seconds=eval_seconds))
            bar.update(1)
        df = pd.DataFrame(rows)
        if len(df):
            for col, values, prefix in (("holdout_iwae", per_image, "delta_vs_best"),
                                        ("holdout_elbo", per_image_elbo, "elbo_delta_vs_best")):
                best = df.loc[df[col].idxmax(), "objective"]
                diffs = [values[o] - values[best] for o in df["objective"]]
                df[prefix] = [float(d.mean()) for d in diffs]
                df[f"{prefix}_se"] = [float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1
                                      else math.nan for d in diffs]
        tables.append(df)
    bar.close()
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def summarise_objectives(table: pd.DataFrame) -> pd.DataFrame:
    """One row per objective of :func:`objective_comparison`'s table, over its seeds.

    ``holdout_iwae`` (and ``holdout_elbo``, ``train_objective``, ``train_seconds``): the mean
    over seeds; ``holdout_iwae_seed_sd``, ``_min``, ``_max``: their spread, and
    ``holdout_iwae_seed_se`` the standard error of the mean over seeds. ``best``: the
    objective with the highest mean; ``delta_vs_best``: this objective's bound minus the
    best's, paired within each seed (same start, batches and evaluation draws), averaged over
    seeds, with ``delta_vs_best_se`` its standard error over seeds (NaN for one seed) and
    ``delta_vs_best_df`` = seeds - 1 for a t-interval.
    """
    if "seed" not in table:  # a table from before seeds were a column: one seed
        table = table.assign(seed=0)
    pivot = table.pivot(index="seed", columns="objective", values="holdout_iwae")
    order = list(dict.fromkeys(table["objective"]))
    means = pivot.mean()
    best = means.idxmax()
    n = len(pivot)
    rows = []
    for o in order:
        g = table[table["objective"] == o]
        d = pivot[o] - pivot[best]
        rows.append(dict(
            objective=o, seeds=n, holdout_iwae=float(means[o]),
            holdout_iwae_seed_sd=float(pivot[o].std(ddof=1)) if n > 1 else math.nan,
            holdout_iwae_seed_se=float(pivot[o].std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            holdout_iwae_min=float(pivot[o].min()), holdout_iwae_max=float(pivot[o].max()),
            delta_vs_best=float(d.mean()),
            delta_vs_best_se=float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
            delta_vs_best_df=n - 1, holdout_elbo=float(g["holdout_elbo"].mean()),
            train_objective=float(g["train_objective"].mean()),
            train_seconds=float(g["train_seconds"].mean()), eval_k=int(g["eval_k"].iloc[0]),
            eval_images=int(g["eval_images"].iloc[0]), epochs=int(g["epochs"].iloc[0]),
            train_images=int(g["train_images"].iloc[0]), best=best))
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- all three
@serializable
@dataclass
class EstimatorStudy:
    """The three tables of the estimator study of one model (see :func:`run_estimator_study`)."""
    name: str
    bias_spread: pd.DataFrame
    snr: pd.DataFrame
    objectives: pd.DataFrame | None
    config: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    """Wall time of each part: ``bias_spread``, ``snr``, ``objectives``."""
    reference: dict | None = None
    """The studied checkpoint scored like the trained objectives (``holdout_elbo``,
    ``holdout_iwae``, ``eval_k``, ``eval_images``): how far short of it they stop."""


def run_estimator_study(model, guide, x_holdout: torch.Tensor, x_train: torch.Tensor | None = None,
                        *, name: str = "vae", holdout_images: int | None = 6,
                        ks: Sequence[int] = ESTIMATOR_KS, elbo_mc_k: int | None = 100,
                        repeats: int = 3, snr_objectives: Sequence[str] = OBJECTIVES,
                        snr_samples: int = 10, snr_images: int = 8, snr_bootstrap: int = 100,
                        train_objectives: Sequence[str] | None = TRAIN_OBJECTIVES,
                        train_images: int | None = 800, epochs: int = 1, batch_size: int = 40,
                        eval_k: int = 200, eval_images: int | None = 20, seeds: int = 3,
                        seed: int = COURSEWORK_SEED,
                        estimator_batch_size: int = 100, progress: bool = True) -> EstimatorStudy:
    """All three parts of the study for a trained VAE (defaults: moderate sizes, minutes a
    conv model).

    1. :func:`estimator_bias_spread` on the first ``holdout_images`` holdout images;
    2. :func:`gradient_snr` at the model's current parameters on a fixed minibatch of the
       first ``snr_images`` training images (holdout images if ``x_train`` is None);
    3. unless ``train_objectives`` is empty or None: :func:`objective_comparison` training a
       fresh VAE of the same configuration (latent dim, architecture, likelihood) per
       objective and each of ``seeds`` seeds on the first ``train_images`` training images for
       ``epochs`` epochs, scored by the IWAE-``eval_k`` bound on the first ``eval_images``
       holdout images; the studied model itself is scored the same way
       (``EstimatorStudy.reference``, with the first seed's draws).

    ``run_estimator_study(model, guide, holdout_x, train_x, **sizes)`` with
    ``sizes = probnn.tasks.estimators.Config.preset(name).sizes()`` uses a preset's sizes.
    Same ``seed``, same numbers (timings aside).
    """
    config = dict(holdout_images=holdout_images, ks=tuple(ks), elbo_mc_k=elbo_mc_k,
                  repeats=repeats, snr_objectives=tuple(snr_objectives), snr_samples=snr_samples,
                  snr_images=snr_images, snr_bootstrap=snr_bootstrap,
                  train_objectives=tuple(train_objectives) if train_objectives else (),
                  train_images=train_images, epochs=epochs, batch_size=batch_size,
                  eval_k=eval_k, eval_images=eval_images, seeds=seeds, seed=seed)
    seconds = {}
    t0 = time.perf_counter()
    bias = estimator_bias_spread(model, guide, _head((x_holdout,), holdout_images)[0], ks,
                                 elbo_mc_k, repeats, seed, batch_size=estimator_batch_size,
                                 progress=progress)
    seconds["bias_spread"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    snr_x = x_train if x_train is not None else x_holdout
    snr = gradient_snr(model, guide, snr_x[:snr_images], snr_objectives, snr_samples, seed,
                       bootstrap=snr_bootstrap, progress=progress)
    seconds["snr"] = time.perf_counter() - t0
    comparison = reference = None
    if train_objectives:
        if x_train is None:
            raise ValueError("training the objectives needs x_train")
        cfg = getattr(model, "config", None)
        if not isinstance(model, VAE) or isinstance(model, ConditionalVAE):
            raise ValueError("the objective comparison trains unconditional VAEs: pass one "
                             "(or train_objectives=None)")
        t0 = time.perf_counter()
        comparison = objective_comparison(
            x_train, x_holdout, train_objectives, epochs, cfg["latent_dim"], eval_k, seed,
            architecture=cfg.get("architecture", "conv"), likelihood=cfg.get("likelihood", "bernoulli"),
            binarize=cfg.get("binarize", False),
            train_images=train_images, eval_images=eval_images, batch_size=batch_size,
            eval_batch_size=estimator_batch_size, seeds=seeds, progress=progress)
        xh = x_holdout[:eval_images] if eval_images else x_holdout
        bound, elbo, _ = _holdout_bounds(model, guide, xh, eval_k, seed, estimator_batch_size)
        reference = dict(holdout_elbo=float(elbo.mean()), holdout_iwae=float(bound.mean()),
                         eval_k=eval_k, eval_images=len(xh))
        seconds["objectives"] = time.perf_counter() - t0
    return EstimatorStudy(name, bias, snr, comparison, config, seconds, reference)
