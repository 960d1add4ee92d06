"""Bayesian regression models, their variational fit, PSIS-LOO comparison, outputs and command."""
import math
import warnings

import numpy as np
import pytest
import torch
import pyro.poutine as poutine

from probnn.cli import main
from probnn.inference.bayes_regression import (fit_bayesian_regression, inference_data,
                                               loo_compare, pointwise_loglik,
                                               posterior_predictive, run_bayes_regression)
from probnn.models.bayes_regression import (BayesianHeteroscedasticRegression,
                                            BayesianHomoscedasticRegression)
from probnn.models.regression import HomoscedasticRegression


def test_models_have_priors_not_parameters_and_keep_the_site_names():
    model = BayesianHeteroscedasticRegression(prior_scale=2.0)
    assert list(model.state_dict()) == []  # every weight is a latent variable now
    x = torch.linspace(0, 1, 5).unsqueeze(-1)
    tr = poutine.trace(model).get_trace(x)
    assert {"f", "sigma", "y", "f.0.weight", "g.6.bias"} <= set(tr.nodes)
    assert tr.nodes["y"]["value"].shape == (5, 1) and tr.nodes["f.4.weight"]["value"].shape == (20, 20)
    # weights: prior sd prior_scale / sqrt(fan-in); biases: prior_scale
    assert tr.nodes["f.4.weight"]["fn"].base_dist.scale.flatten()[0].item() == pytest.approx(2 / math.sqrt(20))
    assert tr.nodes["f.4.bias"]["fn"].base_dist.scale.flatten()[0].item() == pytest.approx(2.0)
    homo = BayesianHomoscedasticRegression()
    assert "log_sigma" in poutine.trace(homo).get_trace(x).nodes
    # the maximum-likelihood model is untouched (its checkpoints still load)
    assert "sigma_pre" in dict(HomoscedasticRegression().named_parameters())


@pytest.fixture(scope="module")
def tiny_fit():
    """One short fit shared by the tests that only read it (y = 2x + noise, 40 points)."""
    g = torch.Generator().manual_seed(1234)
    x = torch.linspace(-2.0, 2.0, 40).unsqueeze(-1)
    y = 2.0 * x + 0.3 * torch.randn(40, 1, generator=g)
    return fit_bayesian_regression("heteroscedastic", x, y, epochs=10, seed=3, progress=False,
                                   jit=False)


def test_pointwise_loglik_is_the_normal_density_of_the_sampled_f_and_sigma(tiny_fit):
    d = pointwise_loglik(tiny_fit, draws=20, seed=1)
    n = len(tiny_fit.x)
    assert d.loglik.shape == d.f.shape == d.sigma.shape == (20, n)
    y = tiny_fit.y[:, 0].double().numpy()
    s = d.sigma.astype(np.float64)
    hand = -0.5 * ((y - d.f) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(d.loglik, hand, rtol=1e-4, atol=1e-4)
    assert d.latents["f.0.weight"].shape == (20, 4, 1)
    # same seed, same draws; another seed, other draws
    np.testing.assert_array_equal(pointwise_loglik(tiny_fit, 20, seed=1).loglik, d.loglik)
    assert not np.array_equal(pointwise_loglik(tiny_fit, 20, seed=2).loglik, d.loglik)


def test_posterior_predictive_shapes(tiny_fit):
    grid = torch.linspace(-3, 3, 7).unsqueeze(-1)
    pp = posterior_predictive(tiny_fit, grid, draws=9, seed=0)
    assert {k: v.shape for k, v in pp.items()} == {k: (9, 7) for k in ("f", "sigma", "y")}
    assert (pp["sigma"] > 0).all()


def test_inference_data_gives_finite_loo(tiny_fit):
    import arviz as az
    idata = inference_data(tiny_fit, draws=40, seed=0)
    assert idata.log_likelihood["y"].shape == (1, 40, len(tiny_fit.x))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # few draws: arviz warns about its k estimates
        loo = az.loo(idata, pointwise=True)
    assert np.isfinite(loo.elpd_loo) and loo.pareto_k.shape == (len(tiny_fit.x),)


def test_same_seed_same_fit_and_comparison(tiny_regression):
    x, y = tiny_regression
    runs = [run_bayes_regression(x, y, epochs=5, draws=10, seed=4, progress=False, jit=False)
            for _ in range(2)]
    (fits_a, cmp_a), (fits_b, cmp_b) = runs
    for a, b in zip(fits_a, fits_b):
        np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    np.testing.assert_array_equal(cmp_a.table["elpd_loo"], cmp_b.table["elpd_loo"])
    table, loo = cmp_a  # unpacks as (table, loo)
    assert set(table.index) == set(loo) == {"homoscedastic", "heteroscedastic"}
    assert all(np.isfinite(v.elpd_loo) for v in loo.values())


@pytest.mark.slow
def test_loo_prefers_the_heteroscedastic_model_when_the_noise_grows_with_x():
    g = torch.Generator().manual_seed(7)
    x = torch.linspace(0, 4, 200).unsqueeze(-1)
    y = torch.sin(x) + (0.05 + 0.5 * x) * torch.randn(200, 1, generator=g)
    fits = [fit_bayesian_regression(n, x, y, epochs=1500, seed=0, progress=False)
            for n in ("homoscedastic", "heteroscedastic")]
    table, _ = loo_compare(fits, draws=300, seed=0)
    assert table.index[0] == "heteroscedastic"
    assert table.loc["homoscedastic", "elpd_diff"] > 2 * table.loc["homoscedastic", "dse"]


def test_bayes_regression_command_end_to_end(data_dir, tmp_path):
    out = tmp_path / "bayes"
    assert main(["bayes-regression", "--epochs", "5", "--draws", "10", "--seed", "2",
                 "--data-dir", str(data_dir), "--out", str(out), "--quiet"]) == 0
    for name in ["bayes-ribbon_homoscedastic.png", "bayes-ribbon_heteroscedastic.png",
                 "bayes-pareto-k.png", "bayes-loo.csv", "bayes-summary.md",
                 "bayes-pointwise_heteroscedastic.csv", "bayes-history_homoscedastic.csv"]:
        assert (out / name).is_file(), name
    text = (out / "bayes-summary.md").read_text()
    assert "elpd_loo" in text and "Pareto k" in text and "± " in text
