"""Clear refusals: a pair outside what a tool supports gets one probnn ModelError naming the
site and the requirement (a global, discrete or enumerated latent, a non-reparameterised guide
for a pathwise objective, no data plate, a plate named like probnn's own, nothing to train)."""
import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import config_enumerate

from probnn.inference.estimators import elbo_mc, iwae_bound
from probnn.inference.structure import ModelError
from probnn.inference.train import fit
from foreign_pairs import two_latent_pair


def test_clear_refusals():
    x = torch.zeros(3)

    def global_model(x):
        mu = pyro.sample("mu", dist.Normal(0.0, 1.0))
        with pyro.plate("data", 3):
            pyro.sample("x", dist.Normal(mu, 1.0), obs=x)

    def global_guide(x):
        pyro.sample("mu", dist.Normal(0.0, 1.0))

    with pytest.raises(ModelError, match="site 'mu' is outside plate 'data'"):
        iwae_bound(global_model, global_guide, (x,), 10)

    def discrete_model(x):
        with pyro.plate("data", 3):
            c = pyro.sample("c", dist.Bernoulli(0.5))
            pyro.sample("x", dist.Normal(c, 1.0), obs=x)

    def discrete_guide(x):
        with pyro.plate("data", 3):
            pyro.sample("c", dist.Bernoulli(0.5))

    with pytest.raises(ModelError, match="latent site 'c' is discrete"):
        elbo_mc(discrete_model, discrete_guide, (x,), 10)

    def model(x):
        with pyro.plate("data", 3):
            z = pyro.sample("z", dist.Gamma(2.0, 1.0))
            pyro.sample("x", dist.Normal(z, 1.0), obs=x)

    def guide(x):
        with pyro.plate("data", 3):
            a = pyro.param("a", torch.tensor(2.0))
            pyro.sample("z", dist.Gamma(a, 1.0).expand([3]).has_rsample_(False))
    with pytest.raises(ModelError, match="guide site 'z' is not reparameterised"):
        fit(model, guide, (x,), epochs=1, elbo="iwae", progress=False)

    @config_enumerate
    def enumerated_guide(x):
        with pyro.plate("data", 3):
            pyro.sample("c", dist.Bernoulli(0.5))

    with pytest.raises(ModelError, match="latent site 'c' is enumerated"):
        iwae_bound(discrete_model, enumerated_guide, (x,), 10)

    def plateless_model(x):
        z = pyro.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))
        pyro.sample("x", dist.Normal(z, 1.0).to_event(1), obs=x)

    def plateless_guide(x):
        pyro.sample("z", dist.Normal(torch.zeros(3), 1.0).to_event(1))

    with pytest.raises(ModelError, match="no plate 'data' found"):
        elbo_mc(plateless_model, plateless_guide, (x,), 10)

    def particles_model(x):
        with pyro.plate("particles", 3):
            pyro.sample("x", dist.Normal(0.0, 1.0), obs=x)
    with pytest.raises(ModelError, match="plate named 'particles'"):
        iwae_bound(particles_model, lambda x: None, (x,), 10)

    # nothing to train: a model and guide without parameters
    model, guide = two_latent_pair()
    with pytest.raises(ModelError, match="no trainable parameters"):
        fit(model, guide, (torch.randn(4),), epochs=1, progress=False)
    from probnn.inference.estimator_study import gradient_snr
    with pytest.raises(ModelError, match="gradient_snr needs trainable parameters"):
        gradient_snr(model, guide, torch.randn(4), samples=2)
