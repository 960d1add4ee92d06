"""NUTS and exact leave-one-out against known answers: conjugate Bayesian linear regression,
whose posterior and leave-one-out predictive densities are closed-form."""
import math

import numpy as np
import pytest
import torch
import pyro
import pyro.distributions as dist

from probnn.inference import bayes_nuts as bn

NOISE, TAU = 0.5, 1.0


def conjugate_model(X, y=None):
    """beta ~ N(0, tau^2 I); y_i ~ N(x_i . beta, s^2), s known."""
    beta = pyro.sample("beta", dist.Normal(torch.zeros(X.shape[-1]), TAU).to_event(1))
    with pyro.plate("data", X.shape[0], dim=-1):
        return pyro.sample("y", dist.Normal((X * beta.unsqueeze(-2)).sum(-1), NOISE), obs=y)


def posterior(X, y):
    """Exact posterior N(mu, Sigma): Sigma = (X'X / s^2 + I / tau^2)^-1, mu = Sigma X'y / s^2."""
    X, y = X.double(), y.double()
    prec = X.T @ X / NOISE**2 + torch.eye(X.shape[1], dtype=torch.float64) / TAU**2
    cov = torch.linalg.inv(prec)
    return cov @ X.T @ y / NOISE**2, cov


def closed_form_loo(X, y, i):
    """log p(y_i | y_-i) = log N(y_i | x_i mu_-i, s^2 + x_i Sigma_-i x_i')."""
    keep = torch.arange(len(y)) != i
    mu, cov = posterior(X[keep], y[keep])
    x = X[i].double()
    var = NOISE**2 + x @ cov @ x
    return float(torch.distributions.Normal(x @ mu, var.sqrt()).log_prob(y[i].double()))


def loglik_at(X, y):
    def at(latents, i):
        beta = latents["beta"].double()
        return torch.distributions.Normal(beta @ X[i].double(), NOISE).log_prob(
            y[i].double()).numpy()
    return at


@pytest.fixture(scope="module")
def data():
    g = torch.Generator().manual_seed(0)
    X = torch.cat([torch.ones(20, 1), torch.randn(20, 2, generator=g)], 1)
    y = X @ torch.tensor([0.5, -1.0, 2.0]) + NOISE * torch.randn(20, generator=g)
    y[3] += 3.0  # an outlier: an influential point for the LOO tests
    return X, y


def test_nuts_recovers_the_conjugate_posterior(data):
    """Posterior mean and variance of every coefficient within 4 Monte Carlo standard errors
    (ArviZ's ESS-based MCSE of the mean, sd / sqrt(ESS); sd(var) ~ var sqrt(2 / ESS))."""
    from probnn.inference import arviz_compat as az
    X, y = data
    mu, cov = posterior(X, y)
    draws = np.stack([bn.run_chain(conjugate_model, X, y, warmup=200, draws=400,
                                   seed=bn.chain_seed(5, c), max_tree_depth=5)["draws"]["beta"]
                      for c in range(2)])  # (chains, draws, 3)
    assert draws.shape == (2, 400, 3)
    idata = az.from_dict({"beta": draws}, {"y": np.zeros((2, 400, 1))}, {"y": np.zeros(1)}, {}, {})
    post = az.group(idata, "posterior")
    assert float(az.rhat(post)["beta"].max()) < 1.02
    ess = az.ess(post)["beta"].to_numpy()
    mean, var = draws.reshape(-1, 3).mean(0), draws.reshape(-1, 3).var(0)
    mcse = draws.reshape(-1, 3).std(0) / np.sqrt(ess)
    assert np.all(np.abs(mean - mu.numpy()) < 4 * mcse), (mean, mu)
    true_var = np.diag(cov.numpy())
    assert np.all(np.abs(var - true_var) < 4 * true_var * np.sqrt(2 / ess)), (var, true_var)


def test_exact_loo_with_exact_draws_is_the_closed_form(data):
    X, y = data
    g = torch.Generator().manual_seed(1)

    def refit(i):
        keep = torch.arange(len(y)) != i
        mu, cov = posterior(X[keep], y[keep])
        L = torch.linalg.cholesky(cov)
        beta = mu + torch.randn(4000, 3, generator=g, dtype=torch.float64) @ L.T
        return loglik_at(X, y)({"beta": beta}, i)

    table = bn.exact_loo(refit, [0, 3, 7])
    for row in table.itertuples():
        exact = closed_form_loo(X, y, row.point)
        assert row.draws == 4000 and 0 < row.exact_mc_se < 0.3
        assert abs(row.exact_elpd_i - exact) < 4 * row.exact_mc_se + 1e-3, (row, exact)


def test_exact_loo_by_nuts_refits_is_the_closed_form(data):
    """The warm-started NUTS refit (the machinery nuts_loo uses) on the conjugate model."""
    X, y = data
    full = bn.run_chain(conjugate_model, X, y, warmup=150, draws=200, seed=3, max_tree_depth=5)
    start = {k: torch.as_tensor(v[-1]) for k, v in full["draws"].items()}
    refit = bn.nuts_refit(conjugate_model, X, y, loglik_at(X, y), warmup=60, draws=300, seed=3,
                          max_tree_depth=5, start=start, inverse_mass=full["inverse_mass"])
    table = bn.exact_loo(refit, [3, 8])
    for row in table.itertuples():
        exact = closed_form_loo(X, y, row.point)
        assert abs(row.exact_elpd_i - exact) < 4 * row.exact_mc_se + 0.02, (row, exact)
        assert refit.stats[row.point]["divergences"] == 0


def test_corrected_elpd_and_differences():
    e = bn.corrected_elpd(np.array([-1.0, -2.0, -3.0]),
                          __import__("pandas").DataFrame({"point": [1], "exact_elpd_i": [-5.0]}))
    np.testing.assert_array_equal(e, [-1.0, -5.0, -3.0])
    d, se = bn.elpd_difference(np.array([-1.0, -2.0, -3.0]), np.array([-1.0, -1.0, -1.0]))
    assert d == -3.0 and se == pytest.approx(math.sqrt(3 * np.var([0.0, -1.0, -2.0])))
    assert bn.band_overlap(np.zeros(2), np.ones(2), np.zeros(2), np.ones(2)) == 1.0
    assert bn.band_overlap(np.zeros(1), np.ones(1), np.full(1, 0.5), np.full(1, 1.5)) == \
        pytest.approx(1 / 3)
    assert bn.band_overlap(np.zeros(1), np.ones(1), np.full(1, 2.0), np.full(1, 3.0)) == 0.0
