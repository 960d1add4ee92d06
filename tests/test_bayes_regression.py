"""Bayesian regression models, their variational fit, PSIS-LOO comparison, outputs and command."""
import math

import numpy as np
import pytest
import torch
import pyro.poutine as poutine

from probnn.cli import main
from probnn.analysis.bayes_regression import bayes_section, loo_answer, loo_table
from probnn.analysis.outputs import save
from probnn.inference import serialization
from probnn.inference.bayes_regression import (LooComparison, fit_bayesian_regression,
                                               inference_data, loo_compare, pointwise_loglik,
                                               posterior_predictive, run_bayes_regression)
from probnn.models.bayes_regression import (BayesianHeteroscedasticRegression,
                                            BayesianHomoscedasticRegression)
from probnn.models.bayes_regression import VectorisedMLP
from probnn.models.regression import HomoscedasticRegression, Wiggle
from pyro.infer import Predictive, Trace_ELBO
from pyro.infer.autoguide import AutoNormal


def test_models_have_priors_not_parameters_and_keep_the_site_names():
    model = BayesianHeteroscedasticRegression(prior_scale=2.0)
    assert list(model.parameters()) == []  # every weight is a latent variable
    x = torch.linspace(0, 1, 5).unsqueeze(-1)
    tr = poutine.trace(model).get_trace(x)
    assert {"f", "sigma", "y", "f.w", "g.w"} <= set(tr.nodes)
    assert tr.nodes["y"]["value"].shape == (5, 1) and tr.nodes["f.w"]["value"].shape == (549,)
    assert tr.nodes["data"]["value"].shape == (5,)
    # weights: prior sd prior_scale / sqrt(fan-in); biases: prior_scale (layer 20 -> 20)
    sd = tr.nodes["f.w"]["fn"].base_dist.scale
    start = 4 + 4 + 80 + 20
    assert sd[start].item() == pytest.approx(2 / math.sqrt(20))
    assert sd[start + 400].item() == pytest.approx(2.0)
    homo = BayesianHomoscedasticRegression()
    assert "log_sigma" in poutine.trace(homo).get_trace(x).nodes
    # the maximum-likelihood model is untouched (its checkpoints still load)
    assert "sigma_pre" in dict(HomoscedasticRegression().named_parameters())


def test_vectorised_mlp_is_wiggle_with_batched_weights():
    """Same architecture as Wiggle: copying a Wiggle's weights gives the same outputs, and a
    batch of weight vectors gives each network's outputs."""
    torch.manual_seed(0)
    nets = [Wiggle() for _ in range(3)]
    mlp = VectorisedMLP()
    w = torch.stack([torch.cat([t for lin in net if isinstance(lin, torch.nn.Linear)
                                for t in (lin.weight.T.flatten(), lin.bias)]) for net in nets])
    assert w.shape == (3, mlp.num_weights)
    x = torch.linspace(-2, 2, 7).unsqueeze(-1)
    out = mlp(x, w)
    assert out.shape == (3, 7, 1)
    for s, net in enumerate(nets):
        torch.testing.assert_close(out[s], net(x))
        torch.testing.assert_close(mlp(x, w[s]), net(x))


def test_standardisation_keeps_data_units():
    """f and sigma come out in the units of y: with the networks at zero weights, f = mean(y)."""
    x = torch.linspace(10, 20, 6).unsqueeze(-1)
    y = 100 + 5 * torch.randn(6, 1)
    model = BayesianHomoscedasticRegression().standardise_to(x, y)
    zero = {"f.w": torch.zeros(549), "log_sigma": torch.tensor(0.0)}
    tr = poutine.trace(poutine.condition(model, data=zero)).get_trace(x, y)
    torch.testing.assert_close(tr.nodes["f"]["value"], y.mean().expand(6, 1))
    torch.testing.assert_close(tr.nodes["sigma"]["value"], y.std().expand(6, 1))


def test_vectorised_particles_and_parallel_predictive_run():
    x = torch.linspace(0, 1, 5).unsqueeze(-1)
    y = 2 * x
    for cls in (BayesianHomoscedasticRegression, BayesianHeteroscedasticRegression):
        model = cls().standardise_to(x, y)
        guide = AutoNormal(model)
        elbo = Trace_ELBO(num_particles=6, vectorize_particles=True, max_plate_nesting=1)
        assert math.isfinite(elbo.loss(model, guide, x, y))
        out = Predictive(model, guide=guide, num_samples=4, parallel=True)(x)
        assert out["y"].shape == out["f"].shape == out["sigma"].shape == (4, 5, 1)


@pytest.fixture(scope="module")
def tiny_fit():
    """One short fit shared by the tests that only read it (y = 2x + noise, 40 points)."""
    g = torch.Generator().manual_seed(1234)
    x = torch.linspace(-2.0, 2.0, 40).unsqueeze(-1)
    y = 2.0 * x + 0.3 * torch.randn(40, 1, generator=g)
    return fit_bayesian_regression("heteroscedastic", x, y, epochs=10, map_steps=10, seed=3,
                                   progress=False, jit=False)


def test_pointwise_loglik_is_the_normal_density_of_the_sampled_f_and_sigma(tiny_fit):
    d = pointwise_loglik(tiny_fit, draws=20, seed=1)
    n = len(tiny_fit.x)
    assert d.loglik.shape == d.f.shape == d.sigma.shape == (20, n)
    y = tiny_fit.y[:, 0].double().numpy()
    s = d.sigma.astype(np.float64)
    hand = -0.5 * ((y - d.f) / s) ** 2 - np.log(s) - 0.5 * math.log(2 * math.pi)
    np.testing.assert_allclose(d.loglik, hand, rtol=1e-4, atol=1e-4)
    assert d.latents["f.w"].shape == (20, 549) and d.latents["g.w"].shape == (20, 549)
    # same seed, same draws; another seed, other draws
    np.testing.assert_array_equal(pointwise_loglik(tiny_fit, 20, seed=1).loglik, d.loglik)
    assert not np.array_equal(pointwise_loglik(tiny_fit, 20, seed=2).loglik, d.loglik)


def test_vectorised_draws_equal_one_at_a_time_draws(tiny_fit):
    """The one-pass matrix: row s equals the model replayed alone on draw s's weights."""
    d = pointwise_loglik(tiny_fit, draws=8, seed=5)
    x, y = tiny_fit.x, tiny_fit.y
    for s in (0, 3, 7):
        values = {n: torch.as_tensor(v[s]) for n, v in d.latents.items()}
        tr = poutine.trace(poutine.condition(tiny_fit.model, data=values)).get_trace(x, y)
        tr.compute_log_prob()
        np.testing.assert_allclose(d.loglik[s], tr.nodes["y"]["unscaled_log_prob"].double().numpy(),
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(d.f[s], tr.nodes["f"]["value"][:, 0].numpy(), rtol=1e-5, atol=1e-5)


def test_fits_round_trip_through_the_cache_format(tiny_regression, tmp_path):
    """The report caches (fits, compare) without pickle (probnn.inference.serialization) and
    writes the outputs in another process: the loaded fits give the same draws and the
    outputs."""
    x, y = tiny_regression
    fits, compare = run_bayes_regression(x, y, epochs=5, map_steps=5, draws=10, seed=4,
                                         progress=False, jit=False)
    loaded, cmp2 = serialization.load(serialization.save((fits, compare), tmp_path / "fits.pt"))
    for a, b in zip(fits, loaded):
        np.testing.assert_array_equal(pointwise_loglik(a, 6, seed=1).loglik,
                                      pointwise_loglik(b, 6, seed=1).loglik)
    section = bayes_section(loaded, cmp2, {"homoscedastic": -1.72, "heteroscedastic": -0.5},
                            draws=20, seed=0)
    written = save(section, tmp_path / "out", "bayes-summary.md")
    assert all(p.exists() for p in written)
    assert "maximum-likelihood fits of this run" in (tmp_path / "out" / "bayes-summary.md").read_text()


def test_non_finite_pareto_k_is_counted_and_reported():
    """A k of inf (or NaN) counts among k > 0.7 and is named in the answer; nothing crashes."""
    from probnn.inference import arviz_compat as az
    rng = np.random.default_rng(0)
    loo, idata = {}, {}
    for name, shift in (("homoscedastic", 0.0), ("heteroscedastic", 0.3)):
        ll = rng.normal(-1.5 - shift, 0.1, size=(1, 200, 10))
        idata[name] = az.from_dict({"a": rng.normal(size=(1, 200))}, {"y": ll},
                                   {"y": np.zeros(10)}, {}, {})
    loo = {n: az.loo(d) for n, d in idata.items()}
    table = az.compare(idata)
    loo["heteroscedastic"].pareto_k[2] = np.inf
    loo["heteroscedastic"].pareto_k[5] = np.nan
    t = loo_table(LooComparison(table, loo))
    assert t.loc["heteroscedastic", "k_over_0.7"] == 2 and t.loc["heteroscedastic", "k_nonfinite"] == 2
    assert t.loc["heteroscedastic", "k_max"] == np.inf
    text = loo_answer(LooComparison(table, loo))
    assert "2 with a non-finite k" in text
    assert "maximum-likelihood" not in text  # no ML numbers given: no ML comparison claimed


def test_posterior_predictive_shapes(tiny_fit):
    grid = torch.linspace(-3, 3, 7).unsqueeze(-1)
    pp = posterior_predictive(tiny_fit, grid, draws=9, seed=0)
    assert {k: v.shape for k, v in pp.items()} == {k: (9, 7) for k in ("f", "sigma", "y")}
    assert (pp["sigma"] > 0).all()


def test_inference_data_gives_finite_loo(tiny_fit):
    from probnn.inference import arviz_compat as az
    idata = inference_data(tiny_fit, draws=40, seed=0)
    assert az.group(idata, "log_likelihood")["y"].shape == (1, 40, len(tiny_fit.x))
    loo = az.loo(idata)
    assert np.isfinite(loo.elpd_loo) and loo.pareto_k.shape == (len(tiny_fit.x),)


def test_same_seed_same_fit_and_comparison(tiny_regression):
    x, y = tiny_regression
    runs = [run_bayes_regression(x, y, epochs=5, map_steps=5, draws=10, seed=4, progress=False,
                                 jit=False)
            for _ in range(2)]
    (fits_a, cmp_a), (fits_b, cmp_b) = runs
    for a, b in zip(fits_a, fits_b):
        np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    np.testing.assert_array_equal(cmp_a.table["elpd_loo"], cmp_b.table["elpd_loo"])
    table, loo = cmp_a  # unpacks as (table, loo)
    assert set(table.index) == set(loo) == {"homoscedastic", "heteroscedastic"}
    assert all(np.isfinite(v.elpd_loo) for v in loo.values())


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason=(
    "known limitation, measured 2026-11-22: with the mean-field guide over 2 x 549 weights LOO "
    "ranks the homoscedastic model first here; on xkcd both Bayesian fits underfit too "
    "(in-sample lppd/n -2.3 against -1.7 by maximum likelihood); strict, so a fix shows as XPASS"))
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
    assert main(["bayes-regression", "--sampler", "vi", "--epochs", "5", "--map-steps", "5",
                 "--draws", "10", "--seed", "2",
                 "--data-dir", str(data_dir), "--out", str(out), "--quiet"]) == 0
    for name in ["bayes-ribbon_homoscedastic.png", "bayes-ribbon_heteroscedastic.png",
                 "bayes-pareto-k.png", "bayes-loo.csv", "bayes-summary.md",
                 "bayes-pointwise_heteroscedastic.csv", "bayes-history_homoscedastic.csv"]:
        assert (out / name).is_file(), name
    text = (out / "bayes-summary.md").read_text()
    assert "elpd_loo" in text and "Pareto k" in text and "± " in text


TINY_NUTS = ["--chains", "2", "--warmup", "6", "--nuts-draws", "6", "--max-tree-depth", "2",
             "--loo-warmup", "3", "--loo-draws", "4", "--loo-max-refits", "1",
             "--vi-guides", "normal", "--epochs", "5", "--map-steps", "5", "--draws", "10"]


def test_bayes_regression_nuts_command_end_to_end(data_dir, tmp_path):
    """The default sampler: NUTS ribbons, diagnostics, LOO with exact refits, VI against NUTS."""
    out = tmp_path / "nuts"
    assert main(["bayes-regression", *TINY_NUTS, "--seed", "2", "--data-dir", str(data_dir),
                 "--out", str(out), "--quiet"]) == 0
    for name in ["bayes-ribbon_homoscedastic.png", "bayes-ribbon_heteroscedastic.png",
                 "bayes-pareto-k.png", "bayes-loo.csv", "bayes-loo-difference.csv",
                 "bayes-diagnostics.csv", "bayes-vi-vs-nuts.csv", "bayes-timings.csv",
                 "bayes-summary.md", "bayes-pointwise_heteroscedastic.csv"]:
        assert (out / name).is_file(), name
    import pandas as pd
    loo = pd.read_csv(out / "bayes-loo.csv", index_col=0)
    assert list(loo.index) == ["homoscedastic", "heteroscedastic"]
    assert (loo["refitted"] <= loo["k_over_0.7"]).all() and (loo["refitted"] <= 1).all()
    vi = pd.read_csv(out / "bayes-vi-vs-nuts.csv")
    assert set(vi["method"]) == {"nuts", "normal"}
    assert (vi.loc[vi["method"] == "nuts", "f_band_overlap"] == 1.0).all()
    text = (out / "bayes-summary.md").read_text()
    assert "R-hat" in text and "exact refits" in text and "± " in text


def test_nuts_task_is_reproducible_and_bad_sizes_fail_in_one_line(data_dir, capsys):
    from probnn.tasks import bayes_regression as tb
    from probnn.tasks.inputs import Inputs
    from probnn.tasks.validation import ConfigError
    config = tb.Config.preset("quick", chains=2, warmup=5, nuts_draws=5, max_tree_depth=2,
                              loo_warmup=3, loo_draws=4, loo_max_refits=1, vi_guides=())
    a, b = (tb.run(config, Inputs(data_dir)) for _ in range(2))
    for fa, fb in zip(a.nuts, b.nuts):
        for k in fa.draws:
            np.testing.assert_array_equal(fa.draws[k], fb.draws[k])
    import pandas as pd
    pd.testing.assert_frame_equal(a.loo[1].pointwise, b.loo[1].pointwise)
    with pytest.raises(ConfigError, match="max_tree_depth"):
        tb.Config(max_tree_depth=40)
    with pytest.raises(ConfigError, match="chains"):
        tb.Config(chains=1000)
    with pytest.raises(ConfigError, match="vi_guides"):
        tb.Config(vi_guides=("flow",))
    with pytest.raises(SystemExit) as exit_:
        main(["bayes-regression", "--max-tree-depth", "13"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--max-tree-depth" in err and "Traceback" not in err


def test_a_diverging_guide_is_reported_not_fatal(data_dir, monkeypatch):
    """An SVI fit that fails (the low-rank guide's covariance can lose positive definiteness)
    leaves the NUTS reference and the other guides intact and is named in the answer."""
    from probnn.analysis.bayes_regression import result_section
    from probnn.inference import bayes_regression as br
    from probnn.tasks import bayes_regression as tb
    from probnn.tasks.inputs import Inputs
    real = br.fit_bayesian_regression

    def flaky(name, x, y, *, guide="normal", **kw):
        if guide == "lowrank":
            raise RuntimeError("linalg.cholesky: not positive-definite")
        return real(name, x, y, guide=guide, **kw)
    monkeypatch.setattr(br, "fit_bayesian_regression", flaky)
    config = tb.Config.preset("quick", chains=2, warmup=5, nuts_draws=5, max_tree_depth=2,
                              loo_warmup=3, loo_draws=4, loo_max_refits=0, epochs=5,
                              map_steps=2, draws=10)
    r = tb.run(config, Inputs(data_dir))
    t = r.vi_vs_nuts
    assert list(t["method"]) == ["nuts", "normal", "lowrank"] * 2
    failed = t[t["method"] == "lowrank"]
    assert failed["error"].str.contains("cholesky").all() and failed["elpd_loo"].isna().all()
    # the other fits are untouched by it (at 5 SVI steps they may fail the fit checks of
    # probnn.inference.fit_checks on their own: an elpd far below the constant model's)
    assert not t.loc[t["method"] != "lowrank", "error"].str.contains("cholesky").any()
    assert (t.loc[t["method"] == "nuts", "error"] == "").all()
    text = "\n".join(result_section(r).answers)
    assert "AutoLowRankMultivariateNormal failed to fit" in text
