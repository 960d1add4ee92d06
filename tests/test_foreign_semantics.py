"""Pyro's semantics on pairs written in the style of Pyro's test suite: subsampled, scaled,
masked, nested and sequential plates, a random subsample passed with the data, no data
argument, two latent sites with a conditional prior, an auto-guide and a Beta guide, through
probnn's estimators against Pyro's Trace_ELBO / RenyiELBO(alpha=0) and exact answers."""
import math

import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import RenyiELBO, Trace_ELBO
from pyro.infer.autoguide import AutoNormal

from probnn.inference.ais import ais_log_likelihood, bdmc
from probnn.inference.elbos import make_elbo
from probnn.inference.estimators import elbo_mc, iwae_bound, posterior_means
from probnn.inference.objectives import detached
from foreign_pairs import gauss_pair, importance_se, trace_elbo, two_latent_pair


@pytest.mark.parametrize("kind,scale", [("plate", 2.0), ("sequential", 1.0), ("subsample", 1.0)])
def test_scale_subsample_and_sequential_plates_match_pyros_elbos(kind, scale):
    pyro.set_rng_seed(3)
    model, guide = gauss_pair(kind)
    x = torch.tensor([0.3, -1.2]) if kind == "subsample" else torch.tensor([0.3, -1.2, 2.0])
    data = {"x": x, "scale": scale}
    elbo = elbo_mc(model, guide, data, 4000).elbo
    iwae = iwae_bound(model, guide, data, 4000, diagnostics=False).bound
    assert len(elbo) == len(x) and len(set(np.round(elbo, 6))) == len(x)  # one value per point
    with torch.no_grad():
        ref = -Trace_ELBO(num_particles=4000, vectorize_particles=kind != "sequential",
                          max_plate_nesting=1).loss(model, guide, **data)
        renyi = -RenyiELBO(alpha=0, num_particles=4000, vectorize_particles=kind != "sequential",
                           max_plate_nesting=1).loss(model, guide, **data)
    assert abs(elbo.sum() - ref) < 0.05 * abs(ref) + 0.05, (elbo.sum(), ref)
    assert abs(iwae.sum() - renyi) < 0.05, (iwae.sum(), renyi)


def test_no_data_argument_and_a_random_subsample_passed_with_the_data():
    """z ~ N(0, 1), x | z ~ N(z, 1): log p(x) = log N(x; 0, 2); a subsample of B of N points
    counts each point N/B times, as in Pyro's ELBOs."""
    x = torch.tensor([0.1, 0.5, -0.3, 1.2])
    exact = dist.Normal(0.0, math.sqrt(2.0)).log_prob(x).numpy()

    def model(idx=None):
        idx = torch.arange(4) if idx is None else idx
        with pyro.plate("data", 4, subsample=idx):
            z = pyro.sample("z", dist.Normal(torch.zeros(len(idx)), 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x[idx])

    def guide(idx=None):
        idx = torch.arange(4) if idx is None else idx
        with pyro.plate("data", 4, subsample=idx):
            pyro.sample("z", dist.Normal(0.5 * x[idx], 0.8))

    pyro.set_rng_seed(6)
    for data, scale, rows in ((None, 1.0, [0, 1, 2, 3]), ((torch.tensor([3, 1]),), 2.0, [3, 1])):
        res = iwae_bound(model, guide, data, 2000)
        se = scale * importance_se(res.log_weights)
        assert np.all(np.abs(res.bound - scale * exact[rows]) < 4 * se + 1e-3), (res.bound, rows)


def test_masked_and_nested_plates_follow_pyro():
    def model(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            z = pyro.sample("z", dist.Normal(torch.zeros(x.shape[0], 1), 1.0))
            with pyro.plate("pixels", x.shape[1], dim=-1), poutine.mask(mask=x > -5):
                pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", x.shape[0], dim=-2):
            pyro.sample("z", dist.Normal(x.mean(1, keepdim=True), 0.5))

    x = torch.tensor([[0.5, 1.0, -9.0], [-0.3, 0.2, 0.1]])  # -9: masked out
    elbo = elbo_mc(model, guide, (x,), 4000).elbo
    ref = trace_elbo(model, guide, x)
    assert abs(elbo.sum() - ref) < 0.05, (elbo.sum(), ref)


def test_two_latents_with_a_conditional_prior_against_the_exact_likelihood():
    model, guide = two_latent_pair()
    x = torch.tensor([0.5, -1.0, 2.5])
    # x = z1 + z2 + e = 2 z1 + (z2 - z1) + e with z1 ~ N(0, 1), z2 - z1 ~ N(0, .25),
    # e ~ N(0, .25): x ~ N(0, 4 + .25 + .25) (checked by quadrature on a 2-d grid)
    exact = dist.Normal(0.0, math.sqrt(4.5)).log_prob(x).numpy()
    pyro.set_rng_seed(4)
    iwae = iwae_bound(model, guide, (x,), 5000)
    ais = ais_log_likelihood(model, guide, (x,), steps=100, chains=200, seed=0)
    # within Monte Carlo error: 4 delta-method standard errors (IWAE's O(1/K) bias is far below)
    se = importance_se(iwae.log_weights)
    assert np.all(se < 0.05) and np.all(np.abs(iwae.bound - exact) < 4 * se), (iwae.bound, exact, se)
    assert np.all(ais.se < 0.05) and np.all(np.abs(ais.log_likelihood - exact) < 4 * ais.se), (
        ais.log_likelihood, exact, ais.se)
    assert posterior_means(guide, (x,)).shape == (3, 2)
    table = bdmc(model, guide, 3, steps=(20,), data=(x,), chains=8)
    assert float(table["width"].iloc[0]) > -0.1


def test_auto_normal_stl_gradient_agrees_with_trace_elbo():
    model, _ = gauss_pair("plate")
    x = torch.tensor([0.3, -1.2, 2.0])
    guide = AutoNormal(model)
    guide(x)  # builds its parameters: locs 0, scales 0.1
    # the loss -ELBO(loc, s) = (loc^2 + s^2) / 2 + 2 ((x - loc)^2 + s^2) - log s + const has
    # d/dloc = 5 loc - 4 x, i.e. -4 x at loc = 0: both estimators are unbiased for it
    exact = -4 * x

    def mean_grad(elbo):
        pyro.set_rng_seed(5)
        g = []
        for _ in range(200):
            guide.zero_grad()
            loss = elbo.differentiable_loss(model, guide, x)
            loss.backward()
            g.append(guide.locs.z.grad.detach().clone())
        g = torch.stack(g)
        return g.mean(0), g.std(0) / math.sqrt(len(g))
    ref, ref_se = mean_grad(Trace_ELBO(num_particles=20, vectorize_particles=True, max_plate_nesting=1))
    ours, se = mean_grad(make_elbo("stl", 20))
    assert torch.all((ref - exact).abs() < 4 * ref_se), (ref, ref_se)
    assert torch.all((ours - exact).abs() < 4 * se) and torch.all(se < 0.3), (ours, se)
    assert torch.all((ours - ref).abs() < 4 * torch.hypot(se, ref_se))


def test_detached_covers_beta_and_lognormal():
    for fn in (dist.Beta(torch.tensor(2.0, requires_grad=True), torch.tensor(3.0)),
               dist.LogNormal(torch.tensor(0.5, requires_grad=True), 1.0)):
        z = fn.rsample()
        d = detached(fn)
        assert torch.allclose(d.log_prob(z), fn.log_prob(z))
        assert all(not t.requires_grad for t in vars(d).values() if isinstance(t, torch.Tensor))
