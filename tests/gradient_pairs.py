"""Small pairs with trainable model *and* guide parameters, written in the style of Pyro's
test suite (``pyro.param``, scaled / subsampled / sequential / masked and nested plates, an
auto-guide, a Beta guide), and the Monte Carlo mean gradient that ``test_foreign_gradients``
compares between probnn's objectives and Pyro's ELBOs.

Each :class:`GradPair` names the calls the gradient is summed over: ``rows``, one data point
per call (Pyro's ``RenyiELBO`` takes its log-mean-exp over the whole trace, probnn's IWAE per
data point: on one point the two are the same bound), ``whole`` (the calls probnn's
objectives and ``Trace_ELBO`` are given, the data points together where the bound adds over
them) and ``broken``: keyword arguments that switch off the feature the pair is about (the
scale, the N/B of the subsample, the mask), so that a test can show it would have seen a
tool that ignored it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
from pyro.infer.autoguide import AutoNormal
from torch.distributions import constraints

X = torch.tensor([0.3, -1.2, 2.0, 0.7])
XM = torch.tensor([[0.5, 1.0, -9.0], [-0.3, 0.2, 0.1]])  # -9: masked out


@dataclass
class GradPair:
    model: object
    guide: object
    rows: list                  # keyword-argument dicts, one data point each
    whole: list | None = None   # the same data points in fewer calls (None: ``rows``)
    broken: dict = field(default_factory=dict)  # keyword arguments that switch the feature off
    nesting: int = 1
    vectorize: bool = True      # Pyro's vectorised particles (not for a sequential plate)

    def calls(self, whole: bool = False, broken: bool = False) -> list:
        calls = (self.whole or self.rows) if whole else self.rows
        return [dict(c, **self.broken) for c in calls] if broken else calls


def model_params():
    return pyro.param("mu", torch.tensor(0.2)), pyro.param("w", torch.tensor(1.3))


def q(x):
    """q(z | x) = N(a x + c, s^2), parameters in Pyro's param store."""
    a, c = pyro.param("a", torch.tensor(0.5)), pyro.param("c", torch.tensor(0.1))
    s = pyro.param("s", torch.tensor(0.6), constraint=constraints.positive)
    return dist.Normal(a * x + c, s)


def scaled_pair():
    """``poutine.scale`` around the data plate: every term counts ``scale`` times."""
    def model(x, scale=3.0):
        mu, w = model_params()
        with poutine.scale(scale=scale), pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Normal(mu, 1.0))
            pyro.sample("x", dist.Normal(w * z, 0.5), obs=x)

    def guide(x, scale=3.0):
        with poutine.scale(scale=scale), pyro.plate("data", len(x)):
            pyro.sample("z", q(x))
    return GradPair(model, guide, [{"x": X[i:i + 1]} for i in range(2)], [{"x": X[:2]}],
                    broken={"scale": 1.0})


def subsample_pair():
    """A subsample of 1 of N = 4 points passed with the data: its terms count N/B = 4 times;
    ``broken`` scales them by B/N, as a tool that ignored the subsample's scale would."""
    def model(idx, scale=1.0):
        mu, w = model_params()
        with poutine.scale(scale=scale), pyro.plate("data", len(X), subsample=idx):
            z = pyro.sample("z", dist.Normal(mu, 1.0))
            pyro.sample("x", dist.Normal(w * z, 0.5), obs=X[idx])

    def guide(idx, scale=1.0):
        with poutine.scale(scale=scale), pyro.plate("data", len(X), subsample=idx):
            pyro.sample("z", q(X[idx]))
    return GradPair(model, guide, [{"idx": torch.tensor([i])} for i in (0, 2)],
                    broken={"scale": 1 / len(X)})


def sequential_pair():
    """A sequential ``for i in pyro.plate("data", n)`` with sites named by the point."""
    def model(x):
        mu, w = model_params()
        for i in pyro.plate("data", len(x)):
            z = pyro.sample(f"z{i}", dist.Normal(mu, 1.0))
            pyro.sample(f"x{i}", dist.Normal(w * z, 0.5), obs=x[i])

    def guide(x):
        for i in pyro.plate("data", len(x)):
            pyro.sample(f"z{i}", q(x[i]))
    return GradPair(model, guide, [{"x": X[i:i + 1]} for i in range(2)], [{"x": X[:2]}],
                    vectorize=False)


def masked_pair():
    """A pixels plate nested in the data plate, with ``poutine.mask`` dropping a pixel."""
    def model(x, use_mask=True):
        mu, w = model_params()
        mask = x > -5 if use_mask else torch.ones_like(x, dtype=torch.bool)
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(mu, 1.0))
            with pyro.plate("pixels", x.shape[1], dim=-1), poutine.mask(mask=mask):
                pyro.sample("x", dist.Normal(w * z, 1.0), obs=x)

    def guide(x, use_mask=True):
        with pyro.plate("data", x.shape[0], dim=-2):
            pyro.sample("z", q(x[:, :1]))
    return GradPair(model, guide, [{"x": XM[i:i + 1]} for i in range(2)], [{"x": XM}],
                    broken={"use_mask": False}, nesting=2)


def masked_latent_pair():
    """``poutine.mask`` on the latent site of model and guide (its log p and log q dropped for
    the second point, whose observation still counts): DReG's factor for a masked guide site."""
    keep = torch.tensor([True, False])

    def model(x, keep, use_mask=True):
        mu, w = model_params()
        with pyro.plate("data", len(x)):
            with poutine.mask(mask=keep if use_mask else torch.ones_like(keep)):
                z = pyro.sample("z", dist.Normal(mu, 1.0))
            pyro.sample("x", dist.Normal(w * z, 0.5), obs=x)

    def guide(x, keep, use_mask=True):
        with pyro.plate("data", len(x)), poutine.mask(mask=keep if use_mask else torch.ones_like(keep)):
            pyro.sample("z", q(x))
    return GradPair(model, guide, [{"x": X[i:i + 1], "keep": keep[i:i + 1]} for i in range(2)],
                    [{"x": X[:2], "keep": keep}], broken={"use_mask": False})


def plain_model(x):
    mu, w = model_params()
    with pyro.plate("data", len(x)):
        z = pyro.sample("z", dist.Normal(mu, 1.0))
        pyro.sample("x", dist.Normal(w * z, 0.5), obs=x)


def auto_normal_pair():
    """Pyro's ``AutoNormal`` (an auxiliary unconstrained site and a Delta with its Jacobian);
    its parameters are shaped by the plate, so one point in one call."""
    return GradPair(plain_model, AutoNormal(plain_model), [{"x": X[:1]}])


def beta_pair():
    """A Beta prior and a Beta guide (reparameterised through torch's implicit gradients)."""
    xb = torch.tensor([0.3, 0.8])

    def model(x):
        w = pyro.param("w", torch.tensor(1.3))
        with pyro.plate("data", len(x)):
            z = pyro.sample("z", dist.Beta(2.0, 3.0))
            pyro.sample("x", dist.Normal(w * z, 0.3), obs=x)

    def guide(x):
        a = pyro.param("ba", torch.tensor(2.0), constraint=constraints.positive)
        b = pyro.param("bb", torch.tensor(2.5), constraint=constraints.positive)
        with pyro.plate("data", len(x)):
            pyro.sample("z", dist.Beta(a * torch.exp(x - 0.5), b))
    return GradPair(model, guide, [{"x": xb[i:i + 1]} for i in range(2)], [{"x": xb}])


def hierarchical_pair():
    """A hierarchical guide: q(z1 | x) q(z2 | z1), the second drawn given the first."""
    def model(x):
        mu, w = model_params()
        with pyro.plate("data", len(x)):
            z1 = pyro.sample("z1", dist.Normal(mu, 1.0))
            z2 = pyro.sample("z2", dist.Normal(z1, 0.5))
            pyro.sample("x", dist.Normal(w * (z1 + z2), 0.5), obs=x)

    def guide(x):
        g = pyro.param("g", torch.tensor(0.4))
        with pyro.plate("data", len(x)):
            z1 = pyro.sample("z1", q(x))
            pyro.sample("z2", dist.Normal(g * z1 + 0.2 * x, 0.4))
    return GradPair(model, guide, [{"x": X[i:i + 1]} for i in range(2)], [{"x": X[:2]}])


GRADIENT_PAIRS = {"scaled": scaled_pair, "subsample": subsample_pair,
                  "sequential": sequential_pair, "masked-nested": masked_pair,
                  "masked-latent": masked_latent_pair,
                  "auto-normal": auto_normal_pair, "beta": beta_pair}


def store_parameters(pair: GradPair) -> list[torch.Tensor]:
    """The unconstrained tensors of Pyro's param store after one pass of the pair (the param
    store cleared first)."""
    pyro.clear_param_store()
    with torch.no_grad():
        tr = poutine.trace(pair.guide).get_trace(**pair.rows[0])
        poutine.trace(poutine.replay(pair.model, trace=tr)).get_trace(**pair.rows[0])
    return [p for _, p in pyro.get_param_store().named_parameters()]


def mean_gradient(elbo, pair: GradPair, calls: list, params: list, repeats: int, seed: int):
    """Mean and standard error over ``repeats`` seeded draws of the gradient of ``elbo``'s
    loss summed over ``calls``, flattened over ``params``."""
    grads = []
    for r in range(repeats):
        pyro.set_rng_seed(seed + r)
        for p in params:
            p.grad = None
        for kwargs in calls:
            elbo.loss_and_grads(pair.model, pair.guide, **kwargs)
        grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1)
                                for p in params]))
    g = torch.stack(grads).double()
    return g.mean(0), g.std(0) / math.sqrt(repeats)


def z_scores(a, b) -> torch.Tensor:
    """|mean_a - mean_b| in standard errors of the difference, for ``(mean, se)`` pairs."""
    return (a[0] - b[0]).abs() / torch.sqrt(a[1] ** 2 + b[1] ** 2).clamp_min(1e-12)
