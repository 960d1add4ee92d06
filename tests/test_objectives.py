"""STL and DReG against known answers on the linear-Gaussian model (exact posterior known).

- Their values are the ELBO and the IWAE bound of the same draws.
- DReG's expected guide gradient is IWAE's (both unbiased for the same bound's gradient), and
  its model gradient is IWAE's exactly (same draws).
- At the exact posterior, log w = log p(x) for every z: STL's (and DReG's) guide gradient is
  exactly zero for every draw, while Trace_ELBO's keeps its score-term noise.
- Training with each objective reduces the loss, resumes exactly, and runs on the
  conditional VAE.
"""
import numpy as np
import pyro
import pytest
import torch

from probnn.inference.elbos import make_elbo
from probnn.inference.estimators import log_importance_weights
from probnn.inference.objectives import detached
from probnn.inference.train import LossModule, fit
from test_estimators import LinearGaussian, LinearGuide


def grads(objective: str, model, guide, x, k: int, seed: int):
    """(guide gradient, model gradient) of ``objective``'s loss, flattened."""
    pyro.set_rng_seed(seed)
    loss = LossModule(make_elbo(objective, k), model, guide)(x)
    g = torch.autograd.grad(loss, list(guide.parameters()) + list(model.parameters()))
    n_guide = len(list(guide.parameters()))
    flat = lambda gs: torch.cat([t.reshape(-1) for t in gs])  # noqa: E731
    return flat(g[:n_guide]), flat(g[n_guide:]), loss.detach()


@pytest.fixture
def lg():
    model = LinearGaussian()
    guide = LinearGuide(model)
    x = torch.stack([model(None)[0] for _ in range(4)]).detach()
    return model, guide, x


def test_values_are_the_elbo_and_the_iwae_bound_of_the_same_draws(lg):
    model, guide, x = lg
    pyro.set_rng_seed(3)
    log_w = log_importance_weights(model, guide, x, num_particles=5)
    for name, value in (("stl", -log_w.mean(0).sum()),
                        ("dreg-iwae", -(torch.logsumexp(log_w, 0) - np.log(5)).sum())):
        _, _, loss = grads(name, model, guide, x, 5, seed=3)
        assert torch.allclose(loss, value, rtol=1e-6), name
    # and each objective's value equals its score-function twin's from the same seed
    for a, b in (("dreg-iwae", "iwae"),):
        assert torch.allclose(grads(a, model, guide, x, 5, 8)[2], grads(b, model, guide, x, 5, 8)[2])


def test_dreg_model_gradient_is_iwae_and_guide_gradient_unbiased_for_it(lg):
    model, guide, x = lg
    # model gradient: identical draws give the identical IWAE gradient
    _, dec_d, _ = grads("dreg-iwae", model, guide, x, 5, seed=11)
    _, dec_i, _ = grads("iwae", model, guide, x, 5, seed=11)
    assert torch.allclose(dec_d, dec_i, rtol=1e-5, atol=1e-6)
    # guide gradient: equal in expectation. Each evaluation averages 50 independent copies of
    # the 4 points (each row draws its own z), 60 evaluations: 3,000 draws per objective.
    rows = x.repeat(50, 1)
    draws = {o: torch.stack([grads(o, model, guide, rows, 5, seed=100 + s)[0]
                             for s in range(60)]) for o in ("dreg-iwae", "iwae")}
    mean = {o: d.mean(0) for o, d in draws.items()}
    se = {o: d.std(0) / np.sqrt(len(d)) for o, d in draws.items()}
    z = (mean["dreg-iwae"] - mean["iwae"]) / torch.sqrt(se["dreg-iwae"] ** 2 + se["iwae"] ** 2)
    assert z.abs().max() < 4.5, z  # 4.5 sd over 8 parameters: a false alarm about 1 in 10^4
    assert mean["iwae"].abs().max() > 10 * se["iwae"].max()  # a real signal was compared
    # and DReG is the quieter of the two here (its reason to exist)
    assert (se["dreg-iwae"] < se["iwae"]).float().mean() >= 0.75


def exact_posterior_pair():
    """A linear-Gaussian model whose posterior is diagonal (W has orthogonal columns) and a
    guide set to that exact posterior."""
    model = LinearGaussian()
    with torch.no_grad():
        model.W.copy_(torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]]))
    return model, LinearGuide(model, offset=0.0, scale=1.0)


def test_stl_guide_gradient_is_zero_at_the_exact_posterior():
    model, guide = exact_posterior_pair()
    x = torch.stack([model(None)[0] for _ in range(6)]).detach()
    pyro.set_rng_seed(0)
    log_w = log_importance_weights(model, guide, x, num_particles=200)
    exact = model.exact_log_prob(x)
    assert torch.allclose(log_w, exact.expand_as(log_w), atol=1e-4)  # the guide is exact
    for objective, k in (("stl", 1), ("stl", 5), ("dreg-iwae", 5)):
        g = torch.stack([grads(objective, model, guide, x, k, seed=s)[0] for s in range(20)])
        assert g.abs().max() < 1e-4, (objective, k, g.abs().max())  # zero for every draw
    trace = torch.stack([grads("trace", model, guide, x, 1, seed=s)[0] for s in range(20)])
    assert trace.std(0).max() > 0.1  # the score term's noise that STL removes


def test_detached_keeps_the_value_and_cuts_the_parameter_path():
    loc = torch.tensor([0.5, -1.0], requires_grad=True)
    scale = torch.tensor([1.0, 2.0], requires_grad=True)
    q = pyro.distributions.Normal(loc, scale).to_event(1)
    z = q.rsample()
    assert torch.equal(detached(q).log_prob(z), q.log_prob(z))
    g_loc, g_scale = torch.autograd.grad(detached(q).log_prob(z), (loc, scale))
    # only through z = loc + scale * eps: d/dz log q(z) * dz/dloc = -(z - loc) / scale^2
    eps = ((z - loc) / scale).detach()
    assert torch.allclose(g_loc, -eps / scale)
    assert torch.allclose(g_scale, -eps ** 2 / scale)


@pytest.mark.parametrize("objective", ["stl", "dreg-iwae"])
def test_training_reduces_the_loss_and_resumes_exactly(objective, lg, tmp_path):
    model, guide, _ = lg
    x = torch.stack([model(None)[0] for _ in range(64)]).detach()

    def run(epochs, **kw):
        torch.manual_seed(0)
        m = LinearGaussian()
        g = LinearGuide(m, offset=2.0, scale=3.0)  # start far from the posterior
        return fit(m, g, (x,), epochs=epochs, elbo=objective, num_particles=5, lr=0.02,
                   batch_size=16, seed=1, progress=False, **kw)

    straight = run(40)
    loss = straight.history["loss"].to_numpy()
    assert loss[-5:].mean() < loss[:5].mean() - 0.1
    run(25, checkpoint=tmp_path / "a.ckpt")
    resumed = run(40, checkpoint=tmp_path / "a.ckpt", resume=True)
    np.testing.assert_array_equal(resumed.history["loss"], loss)


def test_the_conditional_vae_trains_with_both():
    from probnn.inference.vae import train_vae
    g = torch.Generator().manual_seed(0)
    x = (torch.rand(40, 1, 28, 28, generator=g) > 0.7).float()
    y = torch.arange(40) % 10
    for objective in ("stl", "dreg-iwae"):
        fit = train_vae(2, x=x, y=y, conditional=True, architecture="mlp", elbo=objective,
                        num_particles=3, epochs=2, batch_size=20, progress=False)
        assert np.isfinite(fit.history["loss"]).all() and len(fit.history) == 2
