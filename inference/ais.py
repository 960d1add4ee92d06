"""Annealed importance sampling (AIS) of log p(x) per data point, and its reverse (BDMC).

For each data point x, AIS anneals from a start distribution pi_0(z) -- the guide q(z | x)
by default, or the prior p(z) -- to the posterior p(z | x) along the geometric path

.. math::
    f_t(z) = \\pi_0(z)^{1 - \\beta_t} \\, p(x, z)^{\\beta_t},
    \\qquad 0 = \\beta_0 < \\beta_1 < \\dots < \\beta_T = 1,

moving each of C chains with a Hamiltonian Monte Carlo step that leaves f_t invariant and
accumulating ``log w += (beta_t - beta_{t-1}) (log p(x, z) - log pi_0(z))`` (Neal 2001,
"Annealed importance sampling"). Each ``w`` is an unbiased estimate of p(x), so
``log mean_c w_c`` is a stochastic lower bound of log p(x) that approaches it as T grows.
With T = 1 it is importance sampling from pi_0 with C samples.

Run backwards from an exact posterior sample (available for data simulated from the model:
z ~ p(z), x ~ p(x | z)), the same schedule gives an unbiased estimate of 1/p(x), hence a
stochastic *upper* bound; the width of the forward/reverse sandwich bounds the error of the
schedule (bidirectional Monte Carlo: Grosse, Ghahramani & Adams 2015; Grosse, Ancha & Roy
2016; used for decoder-based models by Wu, Burda, Salakhutdinov & Grosse 2017).

Written here because Pyro has no AIS: its HMC/NUTS kernels run one chain of one model and
adapt one step size, while this needs thousands of independent (data point, chain) pairs in
one batched pass with a step size per data point. The model's and guide's log-densities come
from Pyro traces (``poutine.condition`` on the latent values), so any model/guide pair here
whose latent sites are continuous and local to its data plate (``"data"``, or the one plate
holding every site: :func:`~probnn.inference.structure.discover`) works; chains are extra
rows of that plate (each data point repeated C times).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pyro
import pyro.poutine as poutine
import torch

from .estimators import discover_quietly
from .structure import Call, ModelError, as_call, per_datum, sample_sites, site_log_prob


def sigmoid_schedule(steps: int, sharpness: float = 4.0) -> torch.Tensor:
    """``steps + 1`` inverse temperatures from 0 to 1, denser at both ends (Grosse et al.
    2015's sigmoidal schedule); ``steps = 1`` gives ``[0, 1]``."""
    if steps < 1:
        raise ValueError(f"AIS needs at least one step, got {steps}")
    if steps == 1:
        return torch.tensor([0.0, 1.0], dtype=torch.float64, device="cpu")
    # on the CPU whatever the model's device: the temperatures are read as Python numbers
    s = torch.sigmoid(sharpness * torch.linspace(-1.0, 1.0, steps + 1, dtype=torch.float64,
                                                 device="cpu"))
    return (s - s[0]) / (s[-1] - s[0])


@dataclass
class AISResult:
    """Per-data-point AIS estimates (forward: lower bounds of log p(x); reverse: upper)."""
    log_likelihood: np.ndarray  # (N,) log (1/C) sum_c w_c (reverse: -log (1/C) sum_c w_c)
    log_weights: np.ndarray     # (N, C) log w_c of every chain
    se: np.ndarray              # (N,) delta-method standard error of log_likelihood
    ess: np.ndarray             # (N,) effective sample size of the chains' weights, 1..C
    acceptance: np.ndarray      # (N,) mean HMC acceptance rate over the transitions
    step_size: np.ndarray       # (N,) step size at the end of the run
    steps: int
    chains: int
    evaluations: int            # log p(x, z) evaluations per data point (chains included)
    samples: dict               # site -> (N, C, ...) the chains' final latent values


class _Densities:
    """log p(x, z) and log pi_0(z) per row for latent values z (a dict of site tensors)."""

    def __init__(self, model, guide, call: Call, start: str):
        self.model, self.guide, self.call, self.start = model, guide, call, start
        self.structure = s = discover_quietly(model, guide, call)
        s.require_continuous("AIS with HMC")
        if s.guide_only and start == "guide":
            raise ModelError(f"guide site {s.guide_only[0]!r} is not a model latent: AIS moves "
                             "the model's latents and needs q's density at them; use "
                             "start='prior', or a guide that samples the latents directly")
        self.names = list(s.latents)
        if not self.names:
            raise ModelError("the model has no latent sites")

    def _log_prob(self, fn, z: dict, latent_only: bool = False) -> torch.Tensor:
        tr = poutine.trace(poutine.condition(fn, data=z)).get_trace(*self.call.args, **self.call.kwargs)
        total = 0.0
        for name, site in sample_sites(tr):
            if latent_only and name not in z:
                continue
            total = total + per_datum(site_log_prob(site), site, self.structure, None)
        return total

    def log_joint(self, z: dict) -> torch.Tensor:
        return self._log_prob(self.model, z)

    def log_start(self, z: dict) -> torch.Tensor:
        if self.start == "prior":
            return self._log_prob(self.model, z, latent_only=True)
        return self._log_prob(self.guide, z)

    def sample_start(self) -> dict:
        with torch.no_grad():
            fn = self.guide if self.start == "guide" else self.model
            tr = poutine.trace(fn).get_trace(*self.call.args, **self.call.kwargs)
        return {name: tr.nodes[name]["value"].detach() for name in self.names}


def _hmc(dens: _Densities, z: dict, beta: float, eps: torch.Tensor, leapfrog: int):
    """One HMC transition of every row targeting pi_0^(1-beta) p(x, .)^beta; returns the new
    z and the acceptance probability per row."""
    def energy_and_grad(zz: dict):
        zz = {k: v.detach().requires_grad_(True) for k, v in zz.items()}
        with pyro.validation_enabled(False):
            log_f = (1 - beta) * dens.log_start(zz) + beta * dens.log_joint(zz)
        grads = torch.autograd.grad(log_f.sum(), list(zz.values()))
        return -log_f.detach(), {k: -g for k, g in zip(zz, grads)}

    def shaped(e, v):  # a per-row step size broadcast over the site's event dims
        return e.reshape(e.shape + (1,) * (v.dim() - 1))

    u0, g = energy_and_grad(z)
    p0 = {k: torch.randn_like(v) for k, v in z.items()}
    p = {k: p0[k] - 0.5 * shaped(eps, v) * g[k] for k, v in z.items()}
    zn = dict(z)
    for i in range(leapfrog):
        zn = {k: zn[k] + shaped(eps, v) * p[k] for k, v in z.items()}
        u1, g = energy_and_grad(zn)
        scale = 1.0 if i < leapfrog - 1 else 0.5
        p = {k: p[k] - scale * shaped(eps, v) * g[k] for k, v in z.items()}

    def kinetic(pp):
        return sum(v.reshape(len(eps), -1).square().sum(-1) for v in pp.values()) / 2

    log_accept = (u0 + kinetic(p0)) - (u1 + kinetic(p))
    accept = torch.exp(torch.clamp(torch.nan_to_num(log_accept, nan=-math.inf), max=0.0))
    take = torch.rand_like(accept) < accept
    out = {k: torch.where(shaped(take, v), zn[k], v) for k, v in z.items()}
    return out, accept


def ais_log_likelihood(model, guide, data, *, steps: int = 200, chains: int = 16,
                       leapfrog: int = 5, start: str = "guide", step_size: float = 0.1,
                       target_accept: float = 0.65, adapt_rate: float = 0.1,
                       schedule: torch.Tensor | None = None, reverse_from: dict | None = None,
                       batch_size: int = 100, seed: int | None = None) -> AISResult:
    """AIS estimate of ``log p(x_i)`` for every data point (see the module docstring).

    ``data``: the model's arguments (``(x,)``, or ``(x, y)`` for the conditional VAE).
    ``steps`` intermediate distributions (``schedule``: their ``steps + 1`` inverse
    temperatures, default :func:`sigmoid_schedule`), ``chains`` chains per data point, one
    HMC transition of ``leapfrog`` leapfrog steps per intermediate distribution. Each data
    point has its own step size, started at ``step_size`` and moved after every transition
    towards ``target_accept`` (``log eps += adapt_rate * (mean acceptance - target)`` over
    that point's chains). ``start``: ``"guide"`` (q(z | x)) or ``"prior"``. ``se``: the
    delta-method standard error over chains, ``sqrt(var_c(w) / C) / mean_c(w)``.

    ``reverse_from``: latent values (site -> tensor with one row per data point) drawn from
    the exact posterior, e.g. the z that generated simulated data: the chains then run the
    schedule backwards from there and the result is a stochastic *upper* bound (BDMC).

    Data points are processed ``batch_size`` at a time (``batch_size * chains`` rows per
    pass). Seeded with ``seed`` when given. Cost (``AISResult.evaluations``): per data point
    ``chains * (steps + (steps - 1) * (leapfrog + 1))`` evaluations of log p(x, z), most of
    them with a gradient.
    """
    if start not in ("guide", "prior"):
        raise ValueError(f"start must be 'guide' or 'prior', got {start!r}")
    if chains < 1 or leapfrog < 1:
        raise ValueError(f"chains and leapfrog must be >= 1, got {chains}, {leapfrog}")
    betas = sigmoid_schedule(steps) if schedule is None else torch.as_tensor(schedule, dtype=torch.float64)
    if betas[0] != 0 or betas[-1] != 1 or (betas.diff() < 0).any():
        raise ValueError("the schedule must rise from 0 to 1")
    if seed is not None:
        pyro.set_rng_seed(seed)
    data = as_call(data)
    n = data.rows()
    if n is None:
        raise ModelError("AIS runs chains as extra data rows: the data need a tensor argument "
                         "with one row per data point")
    parts = []
    for i in range(0, n, batch_size):
        batch = data.map_rows(n, lambda t, i=i: t[i:i + batch_size])
        init = None if reverse_from is None else {k: v[i:i + batch_size] for k, v in reverse_from.items()}
        parts.append(_run(model, guide, batch, betas, chains, leapfrog, start, step_size,
                          target_accept, adapt_rate, init))
    lw = np.concatenate([p[0] for p in parts])
    acc = np.concatenate([p[1] for p in parts])
    eps = np.concatenate([p[2] for p in parts])
    samples = {k: torch.cat([p[3][k] for p in parts]) for k in parts[0][3]}
    t = len(betas) - 1
    sign = -1.0 if reverse_from is not None else 1.0
    lse = torch.logsumexp(torch.from_numpy(lw), 1).numpy() - math.log(chains)
    w = np.exp(lw - lw.max(1, keepdims=True))
    wn = w / w.sum(1, keepdims=True)
    ess = 1.0 / (wn ** 2).sum(1)
    se = (np.sqrt(((chains * wn - 1) ** 2).sum(1) / (chains * (chains - 1)))
          if chains > 1 else np.full(n, np.nan))
    if not np.all(np.isfinite(lse)):
        bad = np.flatnonzero(~np.isfinite(lse))[:5]
        raise FloatingPointError(f"non-finite AIS estimate for data points {bad.tolist()}")
    return AISResult(sign * lse, lw, se, ess, acc, eps, t, chains,
                     chains * (t + (t - 1) * (leapfrog + 1)), samples)


def _run(model, guide, batch, betas, chains, leapfrog, start, step_size, target, rate, init):
    n = batch.rows()
    rows = batch.map_rows(n, lambda t: t.repeat_interleave(chains, 0))  # row = point * chains + c
    dens = _Densities(model, guide, rows, start)
    if init is None:
        z = dens.sample_start()
    else:
        z = {k: v.repeat_interleave(chains, 0).detach() for k, v in init.items()}
    device = next(batch.tensors()).device
    eps = torch.full((n,), float(step_size), dtype=torch.get_default_dtype(), device=device)
    log_w = torch.zeros(n * chains, dtype=torch.float64, device=device)
    acc_sum, moves = torch.zeros(n, device=device), 0
    order = range(1, len(betas)) if init is None else range(len(betas) - 1, 0, -1)
    for t in order:
        b_new, b_old = (betas[t], betas[t - 1]) if init is None else (betas[t - 1], betas[t])
        with torch.no_grad(), pyro.validation_enabled(False):
            f = dens.log_joint(z) - dens.log_start(z)
        log_w += (b_new - b_old) * f.to(torch.float64)
        last = t == len(betas) - 1 if init is None else t == 1
        if last:
            break  # the final transition would not change any weight
        z, a = _hmc(dens, z, float(b_new), eps.repeat_interleave(chains), leapfrog)
        a = a.reshape(n, chains).mean(1)
        acc_sum += a
        moves += 1
        eps = eps * torch.exp(rate * (a - target))
    acceptance = (acc_sum / max(moves, 1)).cpu().numpy() if moves else np.full(n, np.nan)
    final = {k: v.detach().reshape((n, chains) + v.shape[1:]) for k, v in z.items()}
    return log_w.reshape(n, chains).cpu().numpy(), acceptance, eps.cpu().numpy(), final


def simulate(model, n: int, conditional: bool = False) -> tuple[tuple, dict]:
    """``n`` draws from the model itself, z ~ p(z), x ~ p(x | z) (and y ~ p(y) for the
    conditional VAE): ``(data, latents)``, the model's arguments and the latent values that
    generated them (an exact posterior sample for each data point)."""
    with torch.no_grad():
        tr = poutine.trace(model).get_trace(*((None, None, n) if conditional else (None, n)))
    data = (tr.nodes["x"]["value"],) + ((tr.nodes["y"]["value"],) if conditional else ())
    latents = {name: site["value"].detach() for name, site in sample_sites(tr)
               if name not in ("x", "y")}
    return data, latents


@torch.no_grad()
def simulate_like(model, guide, data) -> tuple[Call, dict]:
    """Data simulated from the model in the shape of ``data``: the model run with its
    observations released (``poutine.uncondition``), so z ~ p(z), x ~ p(x | z) for every data
    point; each observed site's draw is put in place of the argument it observed (the tensor
    argument holding the same values, in any shape). Returns ``(call, latents)``: the model's
    arguments with the simulated data and the latent values that generated them.

    A :class:`~probnn.inference.structure.ModelError` when an observed site's value is not one of the arguments (e.g. it
    is computed from them, as a masked part of an image), since the simulated value could not
    be handed to the guide."""
    call = as_call(data)
    s = discover_quietly(model, guide, call)
    observed = poutine.trace(model).get_trace(*call.args, **call.kwargs)
    sim = poutine.trace(poutine.uncondition(model)).get_trace(*call.args, **call.kwargs)
    args, kwargs = list(call.args), dict(call.kwargs)
    slots = [(args, i) for i in range(len(args))] + [(kwargs, k) for k in kwargs]
    for name in s.observed:
        v = observed.nodes[name]["value"]
        for holder, key in slots:
            a = holder[key]
            if isinstance(a, torch.Tensor) and a.numel() == v.numel() and \
                    torch.equal(a.reshape(v.shape).to(v.dtype), v):
                holder[key] = sim.nodes[name]["value"].reshape(a.shape).to(a.dtype)
                break
        else:
            raise ModelError(f"observed site {name!r} is not one of the model's arguments (its "
                             "value is computed from them), so data simulated for it cannot be "
                             "passed to the guide: bdmc needs each observation to be an argument")
    latents = {name: sim.nodes[name]["value"].detach() for name in s.latents}
    return Call(tuple(args), kwargs), latents


def bdmc(model, guide, n: int = 8, steps=(10, 30, 100), *, data=None, chains: int = 4,
         conditional: bool = False, seed: int = 0, **ais_kw):
    """Bidirectional Monte Carlo on ``n`` data points simulated from the model: for each
    number of intermediate distributions in ``steps``, forward AIS (a stochastic lower bound
    of log p(x)) and reverse AIS from the simulating z (an upper bound), as means over the
    points. Returns a DataFrame: steps, lower, upper, width (= upper - lower, which bounds the
    forward estimate's error on such data), lower_se, upper_se, evaluations.

    ``data``: any model's arguments; its first ``n`` data points are the template that
    :func:`simulate_like` fills with simulated data (any model/guide pair whose observations
    are arguments). Without it, the project's models simulate themselves (:func:`simulate`;
    ``conditional`` for the conditional VAE)."""
    import pandas as pd
    pyro.set_rng_seed(seed)
    if data is None:
        data, latents = simulate(model, n, conditional)
    else:
        call = as_call(data)
        rows = call.rows()
        template = call.map_rows(rows, lambda t: t[:n]) if rows else call
        data, latents = simulate_like(model, guide, template)
        n = data.rows()
    rows = []
    for i, t in enumerate(steps):
        # derived seeds wrap, so a seed near 2**32 - 1 stays one numpy accepts
        lo = ais_log_likelihood(model, guide, data, steps=t, chains=chains,
                                seed=(seed + 2 * i + 1) % 2**32, **ais_kw)
        hi = ais_log_likelihood(model, guide, data, steps=t, chains=chains,
                                seed=(seed + 2 * i + 2) % 2**32, reverse_from=latents, **ais_kw)
        rows.append(dict(steps=t, lower=float(lo.log_likelihood.mean()),
                         upper=float(hi.log_likelihood.mean()),
                         width=float(hi.log_likelihood.mean() - lo.log_likelihood.mean()),
                         lower_se=float(np.sqrt((lo.se ** 2).mean() / n)),
                         upper_se=float(np.sqrt((hi.se ** 2).mean() / n)),
                         evaluations=lo.evaluations, images=n, chains=chains))
    return pd.DataFrame(rows)
