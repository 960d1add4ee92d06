"""Pyro's own examples, as written, through probnn's tools: the VAE of ``examples/vae/vae.py``
(bound-method model and guide, nets registered by ``pyro.module``) and the CVAE of
``examples/cvae`` (boolean-mask indexing that cannot take a particle dimension), against
Pyro's Trace_ELBO and RenyiELBO(alpha=0); training, checkpoints and plain SVI afterwards."""
import math
import warnings

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import SVI, RenyiELBO, Trace_ELBO

from probnn.inference.ais import ais_log_likelihood, bdmc
from probnn.inference.elbos import make_elbo
from probnn.inference.estimators import elbo_mc, iwae_bound, posterior_means
from probnn.inference.structure import ModelError, SlowPathNote, discover
from probnn.inference.train import fit
from foreign_pairs import Z, ExampleCVAE, ExampleVAE, binary, cvae_data, trace_elbo


def test_pyro_vae_example_through_the_estimators_and_ais():
    pyro.set_rng_seed(0)
    vae, x = ExampleVAE(), binary(20)
    s = discover(vae.model, vae.guide, (x,))
    assert list(s.latents) == ["latent"] and s.observed == ("obs",)
    elbo = elbo_mc(vae.model, vae.guide, (x,), 2000).elbo
    iwae = iwae_bound(vae.model, vae.guide, (x,), 500).bound
    ais = ais_log_likelihood(vae.model, vae.guide, (x,), steps=50, chains=8, seed=0).log_likelihood
    assert abs(elbo.sum() - trace_elbo(vae.model, vae.guide, x)) < 0.5
    assert np.all(iwae > elbo - 0.05) and abs(ais.mean() - iwae.mean()) < 0.05
    assert posterior_means(vae.guide, (x,)).shape == (20, Z)
    table = bdmc(vae.model, vae.guide, 8, steps=(20,), data=(x,), chains=8)
    se = float(np.hypot(table["lower_se"], table["upper_se"]).iloc[0])
    assert float(table["width"].iloc[0]) > -4 * se - 0.05, table


def test_pyro_vae_example_trains_with_every_objective_and_plain_svi_after():
    for name in ("trace", "stl", "iwae", "dreg-iwae"):
        pyro.clear_param_store()
        pyro.set_rng_seed(1)
        vae, x = ExampleVAE(), binary(40)
        before = vae.decoder.out.weight.detach().clone()
        res = fit(vae.model, vae.guide, (x,), epochs=30, lr=0.02, elbo=name, num_particles=3,
                  progress=False)
        assert res.history["loss"].iloc[-1] < res.history["loss"].iloc[0], name
        assert not torch.equal(before, vae.decoder.out.weight), name
    assert pyro.settings.get("module_local_params") is False
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 0.01}), Trace_ELBO())
    w = vae.decoder.out.weight.detach().clone()
    svi.step(x)
    assert not torch.equal(w, vae.decoder.out.weight)


def test_pyro_cvae_example_falls_back_to_a_particle_loop():
    pyro.set_rng_seed(2)
    cvae, (xs, ys) = ExampleCVAE(), cvae_data(10)
    with pytest.warns(SlowPathNote):
        iwae = iwae_bound(cvae.model, cvae.guide, (xs, ys), 200).bound
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SlowPathNote)
        elbo = elbo_mc(cvae.model, cvae.guide, (xs, ys), 1000).elbo
    ais = ais_log_likelihood(cvae.model, cvae.guide, (xs, ys), steps=30, chains=8, seed=0)
    assert np.all(iwae > elbo - 0.05)
    assert abs(ais.log_likelihood.mean() - iwae.mean()) < 0.1
    with torch.no_grad():
        ref = -Trace_ELBO(num_particles=1000).loss(cvae.model, cvae.guide, xs, ys)
    assert abs(elbo.sum() - ref) < 0.6
    with pytest.raises(ModelError, match="observed site 'y'"):
        bdmc(cvae.model, cvae.guide, 4, steps=(5,), data=(xs, ys))
    assert posterior_means(cvae.guide, (xs, ys)).shape == (10, Z)
    for name in ("trace", "meanfield", "stl", "iwae", "dreg-iwae"):  # 2 particles: the loop
        w = cvae.generation_net.out.weight.detach().clone()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SlowPathNote)
            res = fit(cvae.model, cvae.guide, (xs, ys), epochs=3, elbo=name, num_particles=2,
                      progress=False)
        assert np.isfinite(res.history["loss"]).all() and not torch.equal(
            w, cvae.generation_net.out.weight), name


def test_no_process_wide_setting_changes_and_checkpoints_stay_trainable(tmp_path):
    from probnn.inference.checkpoint import load_checkpoint
    pyro.clear_param_store()
    vae, x = ExampleVAE(), binary(10)
    before = pyro.settings.get("module_local_params")
    fit(vae.model, vae.guide, (x,), epochs=2, progress=False, checkpoint=tmp_path / "c.ckpt")
    iwae_bound(vae.model, vae.guide, (x,), 10)
    assert pyro.settings.get("module_local_params") == before
    pyro.clear_param_store()
    fresh = ExampleVAE()
    load_checkpoint(tmp_path / "c.ckpt", fresh.model, fresh.guide)
    torch.testing.assert_close(fresh.decoder.out.weight, vae.decoder.out.weight)
    svi = SVI(fresh.model, fresh.guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    w = fresh.decoder.out.weight.detach().clone()
    for _ in range(3):
        svi.step(x)
    assert not torch.equal(w, fresh.decoder.out.weight)  # the module itself is what trains


def test_gradient_snr_on_pyros_vae_example_finds_both_sides():
    """The encoder and decoder of a bound-method pair registered by pyro.module are told apart;
    trace and iwae-1 (the same single-sample estimator from the same seed) agree exactly, and
    DReG runs on the example's (data, event) latent."""
    from probnn.inference.estimator_study import gradient_snr
    pyro.clear_param_store()
    vae, x = ExampleVAE(), binary(6)
    table = gradient_snr(vae.model, vae.guide, x, ("trace", "iwae-1", "dreg-iwae-3"), samples=4,
                         bootstrap=0).set_index(["objective", "side"])
    counts = {"encoder": sum(p.numel() for p in vae.encoder.parameters()),
              "decoder": sum(p.numel() for p in vae.decoder.parameters())}
    for side, n in counts.items():
        row = table.loc[("trace", side)]
        assert row["parameters"] + row["unused"] == n, side
        assert row["snr_median"] == table.loc[("iwae-1", side), "snr_median"], side
        assert np.isfinite(table.loc[("dreg-iwae-3", side), "snr_median"]), side


def _mean_gradient(elbo, vae, rows, repeats, seed):
    """Mean and standard error over ``repeats`` seeded draws of the gradient of ``elbo``'s
    loss summed over ``rows`` (one call per row, so a per-datum and a whole-trace bound agree),
    flattened over every parameter of ``vae``."""
    grads = []
    for r in range(repeats):
        pyro.set_rng_seed(seed + r)
        for p in vae.parameters():
            p.grad = None
        for row in rows:
            elbo.loss_and_grads(vae.model, vae.guide, row[None])
        grads.append(torch.cat([p.grad.reshape(-1) for p in vae.parameters()]))
    g = torch.stack(grads).double()
    return g.mean(0), g.std(0) / math.sqrt(repeats)


def test_iwae_and_dreg_mean_gradients_agree_with_pyros_renyi_elbo():
    """On Pyro's VAE example, the IWAE objective's and DReG's mean gradients (every encoder and
    decoder weight) are Pyro's RenyiELBO(alpha=0) gradient, within 4.5 standard errors of the
    difference. RenyiELBO takes its log-mean-exp over the whole trace, the IWAE bound per data
    point: on one row at a time the two are the same bound. DReG changes only the guide's
    estimator, not its expectation."""
    pyro.clear_param_store()
    torch.manual_seed(3)
    vae, x = ExampleVAE(), binary(3, seed=2)
    k, repeats = 5, 300
    ref, ref_se = _mean_gradient(RenyiELBO(alpha=0, num_particles=k, vectorize_particles=True,
                                           max_plate_nesting=1), vae, x, repeats, 10_000)
    for name in ("iwae", "dreg-iwae"):
        got, se = _mean_gradient(make_elbo(name, num_particles=k), vae, x, repeats, 0)
        z = (got - ref).abs() / torch.sqrt(se ** 2 + ref_se ** 2).clamp_min(1e-12)
        assert float(z.max()) < 4.5, (name, float(z.max()))
        # and not trivially: the gradients are not all zero and are measured to a few percent
        assert float(ref.abs().max()) > 0.05 and float((ref_se / ref.abs().clamp_min(1e-3)).median()) < 1
