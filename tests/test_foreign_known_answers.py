"""Known answers and side effects for model/guide pairs probnn did not write: the inference
gaps with their defaults against exact gaps (a plain-Pyro linear-Gaussian with non-orthogonal
loadings, the two-latent model of ``foreign_pairs``), and plain Pyro SVI on a user's
PyroModule after every public call."""
import math
import warnings

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
from pyro.infer import SVI, Trace_ELBO
from pyro.nn import PyroModule

from probnn.inference.ais import ais_log_likelihood, bdmc
from probnn.inference.elbos import make_elbo
from probnn.inference.estimators import elbo_mc, iwae_bound
from probnn.inference.gaps import inference_gaps
from probnn.inference.train import fit
from foreign_pairs import two_latent_pair


# ----------------------------------------------------------------------------- a plain-Pyro linear-Gaussian
LG_NOISE = 0.5
LG_W = torch.tensor([[1.0, 0.6], [0.5, 1.0], [0.3, -0.4]])  # non-orthogonal columns
LG_B = torch.tensor([0.2, -0.1, 0.4])


class PlainLinearGaussian(PyroModule):
    """z ~ N(0, I_2), x ~ N(W z + b, 0.5^2 I_3): a user's PyroModule, built with Pyro's default
    settings (parameters in Pyro's param store)."""

    def __init__(self):
        super().__init__()
        self.W, self.b = nn.Parameter(LG_W.clone()), nn.Parameter(LG_B.clone())

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(x.new_zeros(x.shape[0], 2), 1.0).to_event(1))
            pyro.sample("x", dist.Normal(z @ self.W.T + self.b, LG_NOISE).to_event(1), obs=x)


class PlainLinearEncoder(PyroModule):
    """q(z | x) = N(A x + c, diag(s)^2): the exact posterior mean map shrunk by 10%, offset,
    and 1.25 times the exact marginal posterior scales."""

    def __init__(self):
        super().__init__()
        cov = torch.linalg.inv(lg_precision())
        a = 0.9 * cov @ LG_W.T / LG_NOISE ** 2
        self.A, self.c = nn.Parameter(a), nn.Parameter(-(a @ LG_B) + 0.05)
        self.log_s = nn.Parameter((1.25 * cov.diagonal().sqrt()).log())

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(x @ self.A.T + self.c, self.log_s.exp()).to_event(1))


def lg_precision():
    return torch.eye(2) + LG_W.T @ LG_W / LG_NOISE ** 2


def lg_data(n):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, 2, generator=g)
    return z @ LG_W.T + LG_B + LG_NOISE * torch.randn(n, 3, generator=g)


def test_inference_gaps_defaults_within_5_percent_of_exact_on_a_non_orthogonal_linear_gaussian():
    """The posterior is N(mu(x), Lambda^-1), Lambda = I + W^T W / s^2 (not diagonal: W's columns
    are not orthogonal). The gap of a Gaussian q = N(m, diag v) is KL(q || posterior) =
    1/2 [sum Lambda_ii v_i + (m - mu)^T Lambda (m - mu) - d - log det Lambda - sum log v_i];
    q* is (mu, 1/Lambda_ii), so approximation gap = 1/2 (sum log Lambda_ii - log det Lambda)
    and amortisation gap = KL(q || posterior) - approximation gap."""
    model, guide, x = PlainLinearGaussian(), PlainLinearEncoder(), lg_data(40)
    lam = lg_precision()
    exact = dist.MultivariateNormal(LG_B, LG_W @ LG_W.T + LG_NOISE ** 2 * torch.eye(3)).log_prob(x)
    with torch.no_grad():
        mu = (x - LG_B) @ (torch.linalg.inv(lam) @ LG_W.T / LG_NOISE ** 2).T
        d, v = x @ guide.A.T + guide.c - mu, guide.log_s.exp() ** 2
        kl_q = 0.5 * ((lam.diagonal() * v).sum() + ((d @ lam) * d).sum(1) - 2 - torch.logdet(lam)
                      - v.log().sum())
    approx = float(0.5 * (lam.diagonal().log().sum() - torch.logdet(lam)))
    amort = float(kl_q.mean()) - approx
    assert approx > 0.1 and amort > 0.1
    g = inference_gaps(model, guide, (x,), exact.numpy())
    assert g.converged
    assert abs(g.approximation_gap.mean() / approx - 1) < 0.05, (g.approximation_gap.mean(), approx)
    assert abs(g.amortisation_gap.mean() / amort - 1) < 0.05, (g.amortisation_gap.mean(), amort)


def test_plain_pyro_svi_still_trains_a_users_module_after_every_public_call(tmp_path):
    """Every public tool, then Pyro's own SVI on the user's PyroModule: the process's settings
    are as before and the module's weights still move."""
    from probnn.inference.checkpoint import load_checkpoint
    from probnn.inference.estimator_study import estimator_bias_spread, gradient_snr
    from probnn.inference.estimators import active_units, log_importance_weights
    from probnn.inference.bayes_regression import make_guide
    from probnn.inference.vae import build_vae
    from probnn.models.bayes_regression import BAYESIAN_REGRESSION_MODELS
    x = lg_data(8)
    settings = pyro.settings.get()  # every Pyro setting
    local = pyro.settings.get("module_local_params")

    def plain_svi_trains():
        assert pyro.settings.get("module_local_params") == local
        pyro.clear_param_store()
        model, guide = PlainLinearGaussian(), PlainLinearEncoder()
        svi = SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
        before = model.W.detach().clone(), guide.A.detach().clone()
        for _ in range(2):
            svi.step(x)
        return not torch.equal(before[0], model.W) and not torch.equal(before[1], guide.A)

    model, guide = PlainLinearGaussian(), PlainLinearEncoder()
    calls = {
        "iwae_bound": lambda: iwae_bound(model, guide, (x,), 10),
        "elbo_mc": lambda: elbo_mc(model, guide, (x,), 10),
        "log_importance_weights": lambda: log_importance_weights(model, guide, x, num_particles=4),
        "posterior_means/active_units": lambda: active_units(guide, (x,)),
        "ais_log_likelihood": lambda: ais_log_likelihood(model, guide, (x,), steps=3, chains=2),
        "bdmc": lambda: bdmc(model, guide, 4, steps=(3,), data=(x,), chains=2),
        "inference_gaps": lambda: inference_gaps(model, guide, (x,), steps=3, samples=10),
        "gradient_snr": lambda: gradient_snr(model, guide, x, ("trace", "iwae-2"), samples=3,
                                             bootstrap=0),
        "estimator_bias_spread": lambda: estimator_bias_spread(model, guide, x, ks=(2,),
                                                               elbo_mc_k=2, repeats=2),
        "fit+checkpoint": lambda: fit(model, guide, (x,), epochs=2, elbo="dreg-iwae",
                                      num_particles=2, progress=False,
                                      checkpoint=tmp_path / "lg.ckpt"),
        "load_checkpoint": lambda: load_checkpoint(tmp_path / "lg.ckpt", model, guide),
        "make_elbo in SVI": lambda: SVI(model, guide, pyro.optim.Adam({"lr": 0.01}),
                                        make_elbo("stl", 2)).step(x),
        "build_vae": lambda: build_vae(2, architecture="mlp"),
        "bayes_regression guide": lambda: make_guide(BAYESIAN_REGRESSION_MODELS["homoscedastic"]())(
            torch.zeros(3, 1), torch.zeros(3, 1)),
    }
    for name, call in calls.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            call()
        assert plain_svi_trains(), name
    assert pyro.settings.get() == settings


def test_inference_gaps_of_the_two_latent_model_against_the_exact_posterior():
    """log p(z1, z2, x) has precision [[1 + 4 + 4, 4 - 4], [4 - 4, 4 + 4]] = diag(9, 8) and
    Lambda mu = (4x, 4x): the posterior is N(4x/9, 1/9) x N(x/2, 1/8), mean-field itself, so
    the approximation gap is 0 and the amortisation gap is KL(q || posterior), in closed form."""
    model, guide = two_latent_pair()
    x = torch.tensor([0.5, -1.0, 2.5])
    exact = dist.Normal(0.0, math.sqrt(4.5)).log_prob(x).numpy()
    post = [dist.Normal(4 * x / 9, 1 / 3), dist.Normal(x / 2, math.sqrt(1 / 8))]
    q = [dist.Normal(0.3 * x, 0.7), dist.Normal(0.3 * x, 0.5)]
    amort = sum(torch.distributions.kl_divergence(a, b) for a, b in zip(q, post)).numpy()
    g = inference_gaps(model, guide, (x,), exact, samples=20_000)
    assert g.converged
    assert abs(g.approximation_gap.mean()) < 0.05, g.approximation_gap
    assert abs(g.amortisation_gap.mean() / amort.mean() - 1) < 0.05, (g.amortisation_gap, amort, g.approximation_gap)
