"""Inference gaps against known answers on the linear-Gaussian model.

The posterior is Gaussian, N(mu, Sigma) with precision Lambda = I + W^T W / s^2. The best
mean-field Gaussian has mean mu and variances 1/Lambda_ii, and its gap to log p(x) is
KL = 1/2 (log det Sigma + sum_i log Lambda_ii): zero exactly when Sigma is diagonal.
"""
import numpy as np
import pyro
import torch

from probnn.inference.gaps import inference_gaps, optimise_local_guide
from test_estimators import K_LAT, NOISE, LinearGaussian, LinearGuide


def data(model, n=20):
    return torch.stack([model(None)[0] for _ in range(n)]).detach()


def test_q_star_reaches_the_known_mean_field_gap():
    pyro.set_rng_seed(0)
    model = LinearGaussian()
    guide = LinearGuide(model)  # offset and too wide: a large amortisation gap
    x = data(model)
    exact = model.exact_log_prob(x).detach().numpy()
    lam = torch.eye(K_LAT) + model.W.detach().T @ model.W.detach() / NOISE ** 2
    known = float(0.5 * (torch.logdet(torch.linalg.inv(lam)) + torch.log(lam.diagonal()).sum()))
    assert known > 0.2  # the posterior is correlated here
    g = inference_gaps(model, guide, (x,), exact, samples=2000, steps=400)
    assert abs(g.approximation_gap.mean() - known) < 0.03, (g.approximation_gap.mean(), known)
    assert g.amortisation_gap.mean() > 1.0 and np.all(g.amortisation_gap > -0.05)
    np.testing.assert_allclose(exact - g.elbo, g.approximation_gap + g.amortisation_gap, rtol=1e-6)


def test_no_approximation_gap_when_the_posterior_is_mean_field():
    pyro.set_rng_seed(1)
    model = LinearGaussian()
    with torch.no_grad():
        model.W.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))  # diagonal posterior
    guide = LinearGuide(model, offset=0.8, scale=2.0)
    x = data(model)
    exact = model.exact_log_prob(x).detach().numpy()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    g = inference_gaps(model, guide, (x,), exact, samples=2000, steps=400)
    assert abs(g.approximation_gap.mean()) < 0.02, g.approximation_gap.mean()
    assert g.amortisation_gap.mean() > 0.5
    # q* is fitted with the model held fixed, and the model is left trainable
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert all(p.requires_grad for p in model.parameters())


def test_local_guide_starts_at_the_encoder():
    pyro.set_rng_seed(2)
    model = LinearGaussian()
    guide = LinearGuide(model)
    x = data(model, 5)
    local = optimise_local_guide(model, guide, (x,), steps=0).guide
    np.testing.assert_allclose(local.loc_z.detach(), (x @ guide.A.T + guide.c).detach(), rtol=1e-6)
    np.testing.assert_allclose(local.log_scale_z.detach().exp(),
                               guide.log_s.exp().detach().expand(5, K_LAT), rtol=1e-6)
