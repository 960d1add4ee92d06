"""Model/guide pairs written as Pyro's own examples and test suite write them, shared by the
``test_foreign_*`` modules, which run them through probnn's tools against Pyro's own ELBOs
(Trace_ELBO, RenyiELBO(alpha=0)) and exact answers.

Styles: plain ``nn.Module`` nets registered by ``pyro.module`` in bound methods (Pyro's
``examples/vae/vae.py``), boolean-mask indexing that cannot take a particle dimension (its
``examples/cvae``), subsampled / scaled / sequential plates, two latent sites with a
conditional prior.
"""
import numpy as np
import pyro
import pyro.distributions as dist
import pyro.poutine as poutine
import torch
import torch.nn as nn
from pyro.infer import Trace_ELBO

P, H, Z = 6, 8, 2


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.loc, self.scale = nn.Linear(P, H), nn.Linear(H, Z), nn.Linear(H, Z)

    def forward(self, x):
        h = torch.tanh(self.fc(x.reshape(-1, P)))
        return self.loc(h), torch.exp(self.scale(h))


class Decoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc, self.out = nn.Linear(Z, H), nn.Linear(H, P)

    def forward(self, z):
        return torch.sigmoid(self.out(torch.tanh(self.fc(z))))


class ExampleVAE(nn.Module):
    """Pyro's examples/vae/vae.py, shrunk: bound-method model and guide, pyro.module nets,
    sites "latent" and "obs"."""

    def __init__(self):
        super().__init__()
        self.encoder, self.decoder = Encoder(), Decoder()

    def model(self, x):
        pyro.module("decoder", self.decoder)
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("latent", dist.Normal(x.new_zeros(x.shape[0], Z), 1.0).to_event(1))
            pyro.sample("obs", dist.Bernoulli(self.decoder(z), validate_args=False).to_event(1),
                        obs=x.reshape(-1, P))

    def guide(self, x):
        pyro.module("encoder", self.encoder)
        with pyro.plate("data", x.shape[0]):
            loc, scale = self.encoder(x)
            pyro.sample("latent", dist.Normal(loc, scale).to_event(1))


class ExampleCVAE(nn.Module):
    """Pyro's examples/cvae style: the observed part selected by boolean-mask indexing
    reshaped by the batch size (cannot take a leading particle dimension)."""

    def __init__(self):
        super().__init__()
        self.prior_net, self.recognition_net, self.generation_net = Encoder(), Encoder(), Decoder()

    def model(self, xs, ys):
        pyro.module("generation_net", self)
        b = xs.shape[0]
        with pyro.plate("data"):
            loc, scale = self.prior_net(xs)
            zs = pyro.sample("z", dist.Normal(loc, scale).to_event(1))
            out = self.generation_net(zs)
            mask_loc = out[(xs == -1).view(-1, P)].view(b, -1)
            mask_ys = ys[xs == -1].view(b, -1)
            pyro.sample("y", dist.Bernoulli(mask_loc, validate_args=False).to_event(1), obs=mask_ys)

    def guide(self, xs, ys):
        with pyro.plate("data"):
            loc, scale = self.recognition_net(ys)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))


def binary(n, seed=0):
    return torch.bernoulli(torch.full((n, P), 0.4), generator=torch.Generator().manual_seed(seed))


def cvae_data(n):
    ys = binary(n)
    xs = ys.clone()
    xs[:, P // 2:] = -1.0  # the bottom half is to be predicted
    return xs, ys


def trace_elbo(model, guide, *args, k=4000):
    with torch.no_grad():
        return -Trace_ELBO(num_particles=k, vectorize_particles=True, max_plate_nesting=2
                           ).loss(model, guide, *args)


def gauss_pair(kind):
    """A one-dimensional Gaussian pair whose data plate is ``kind``."""
    def model(x, scale=1.0):
        def body(i=None):
            xi = x if i is None else x[i]
            z = pyro.sample(f"z{'' if i is None else i}", dist.Normal(torch.zeros_like(xi), 1.0))
            pyro.sample(f"x{'' if i is None else i}", dist.Normal(z, 0.5), obs=xi)
        with poutine.scale(scale=scale):
            if kind == "sequential":
                for i in pyro.plate("data", len(x)):
                    body(i)
            elif kind == "subsample":
                with pyro.plate("data", 4, subsample=torch.tensor([0, 2])):
                    body()
            else:
                with pyro.plate("data", len(x)):
                    body()

    def guide(x, scale=1.0):
        q = lambda xi: dist.Normal(0.8 * xi, 0.6)  # noqa: E731
        with poutine.scale(scale=scale):
            if kind == "sequential":
                for i in pyro.plate("data", len(x)):
                    pyro.sample(f"z{i}", q(x[i]))
            elif kind == "subsample":
                with pyro.plate("data", 4, subsample=torch.tensor([0, 2])):
                    pyro.sample("z", q(x))
            else:
                with pyro.plate("data", len(x)):
                    pyro.sample("z", q(x))
    return model, guide


def two_latent_pair():
    """Two latent sites, the second with a conditional prior p(z2 | z1)."""
    def model(x):
        with pyro.plate("data", len(x)):
            z1 = pyro.sample("z1", dist.Normal(torch.zeros_like(x), 1.0))
            z2 = pyro.sample("z2", dist.Normal(z1, 0.5))
            pyro.sample("x", dist.Normal(z1 + z2, 0.5), obs=x)

    def guide(x):
        with pyro.plate("data", len(x)):
            pyro.sample("z1", dist.Normal(0.3 * x, 0.7))
            pyro.sample("z2", dist.Normal(0.3 * x, 0.5))
    return model, guide


def importance_se(log_weights):
    """Delta-method standard error of log mean_k w_k from normalised log-weights (N, K)."""
    wn = np.exp(log_weights)
    k = wn.shape[1]
    return np.sqrt(((k * wn - 1) ** 2).sum(1) / (k * (k - 1)))
