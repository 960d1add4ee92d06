"""AIS and BDMC against the linear-Gaussian model's exact log p(x).

The guide is deliberately narrow and offset (a third of the posterior's scale, shifted by
one): importance sampling from it has heavy-tailed weights, which is where AIS should beat
IWAE at the same number of likelihood evaluations.
"""
import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch

from probnn.inference.ais import ais_log_likelihood, sigmoid_schedule
from probnn.inference.estimators import iwae_bound
from test_estimators import LinearGaussian, LinearGuide


def setup(offset: float, scale: float, n: int = 30, seed: int = 0):
    pyro.set_rng_seed(seed)
    model = LinearGaussian()
    guide = LinearGuide(model, offset=offset, scale=scale)
    x = torch.stack([model(None)[0] for _ in range(n)]).detach()
    return model, guide, x, model.exact_log_prob(x).detach().numpy()


@pytest.fixture
def narrow():
    """A guide a third of the posterior's scale, offset by one: heavy-tailed weights."""
    return setup(1.0, 0.3)


def test_ais_is_within_005_nats_of_the_exact_value_with_a_modest_schedule():
    model, guide, x, exact = setup(0.6, 1.5)  # the imperfect guide of test_estimators
    res = ais_log_likelihood(model, guide, (x,), steps=200, chains=8, seed=1)
    gap = exact - res.log_likelihood
    assert abs(gap.mean()) < 0.05, gap.mean()
    assert 0.4 < res.acceptance.mean() < 0.9  # the step sizes adapted towards 0.65
    # the per-point standard errors describe the chains' spread: about the observed one
    assert 0.5 < gap.std() / res.se.mean() < 2.0
    assert np.all((res.ess >= 1) & (res.ess <= 8))


def test_ais_is_tighter_than_iwae_at_the_same_number_of_evaluations(narrow):
    model, guide, x, exact = narrow
    res = ais_log_likelihood(model, guide, (x,), steps=200, chains=8, seed=1)
    iwae = iwae_bound(model, guide, (x,), res.evaluations, diagnostics=False).bound
    ais_gap, iwae_gap = (exact - res.log_likelihood).mean(), (exact - iwae).mean()
    assert ais_gap < 0.3 and iwae_gap > ais_gap + 1.0, (ais_gap, iwae_gap)


def test_one_step_is_importance_sampling_from_the_start(narrow):
    model, guide, x, _ = narrow
    res = ais_log_likelihood(model, guide, (x[:5],), steps=1, chains=4, seed=2)
    z = res.samples["z"].reshape(20, -1)
    rows = x[:5].repeat_interleave(4, 0)
    lp = poutine.trace(poutine.condition(model, data={"z": z})).get_trace(rows)
    lq = poutine.trace(poutine.condition(guide, data={"z": z})).get_trace(rows)
    lp.compute_log_prob()
    lq.compute_log_prob()
    log_w = (lp.nodes["z"]["log_prob"] + lp.nodes["x"]["log_prob"] - lq.nodes["z"]["log_prob"])
    np.testing.assert_allclose(res.log_weights, log_w.reshape(5, 4).detach().numpy(), rtol=1e-6)
    lme = torch.logsumexp(log_w.reshape(5, 4), 1) - np.log(4)
    np.testing.assert_allclose(res.log_likelihood, lme.detach().numpy(), rtol=1e-6)
    assert res.evaluations == 4


def test_bdmc_brackets_the_exact_value_and_narrows_with_more_steps():
    pyro.set_rng_seed(3)
    model = LinearGaussian()
    guide = LinearGuide(model, offset=1.0, scale=0.3)
    tr = poutine.trace(model).get_trace(None)  # one simulated (z, x) per call
    sims = [poutine.trace(model).get_trace(None) for _ in range(40)]
    z = torch.cat([t.nodes["z"]["value"] for t in sims]).detach()
    x = torch.cat([t.nodes["x"]["value"] for t in sims]).detach()
    assert tr.nodes["z"]["value"].shape == (1, 2)
    exact = model.exact_log_prob(x).detach().numpy().mean()
    widths = {}
    for steps in (10, 100):
        lo = ais_log_likelihood(model, guide, (x,), steps=steps, chains=4, seed=4)
        hi = ais_log_likelihood(model, guide, (x,), steps=steps, chains=4, seed=5,
                                reverse_from={"z": z})
        se = np.sqrt(np.mean(lo.se ** 2 + hi.se ** 2) / len(x))
        assert lo.log_likelihood.mean() <= exact + 3 * se
        assert hi.log_likelihood.mean() >= exact - 3 * se
        widths[steps] = hi.log_likelihood.mean() - lo.log_likelihood.mean()
    assert widths[100] < widths[10] / 4, widths  # the sandwich certifies the longer schedule


def test_prior_start_and_schedule_checks():
    model, guide, x, exact = setup(0.6, 1.5)
    res = ais_log_likelihood(model, guide, (x[:10],), steps=300, chains=4, start="prior", seed=6)
    assert abs((exact[:10] - res.log_likelihood).mean()) < 0.15
    s = sigmoid_schedule(50)
    assert s[0] == 0 and s[-1] == 1 and (s.diff() > 0).all()
    with pytest.raises(ValueError, match="rise from 0 to 1"):
        ais_log_likelihood(model, guide, (x,), schedule=torch.tensor([0.0, 0.7, 0.5, 1.0]))


def test_bdmc_on_a_vae_narrows_and_simulates_labels_for_the_cvae():
    from probnn.inference.ais import bdmc, simulate
    from probnn.inference.vae import build_vae
    torch.manual_seed(0)
    model, guide = build_vae(2, architecture="mlp")
    table = bdmc(model, guide, n=3, steps=(2, 20), chains=2, seed=1)
    assert list(table["steps"]) == [2, 20] and (table["evaluations"] > 0).all()
    assert table["width"].iloc[1] < table["width"].iloc[0]
    cmodel, _ = build_vae(2, architecture="mlp", conditional=True)
    data, latents = simulate(cmodel, 5, conditional=True)
    assert data[0].shape == (5, 1, 28, 28) and data[1].shape == (5,) and latents["z"].shape == (5, 2)
