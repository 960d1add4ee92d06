"""Seed ensembles of the maximum-likelihood regression; the faithful and natural-parameter cures."""
import math

import numpy as np
import pandas as pd
import pyro.distributions as dist
import pytest
import torch

from probnn.analysis import regression as ra
from probnn.cli import main
from probnn.guides.regression import MaximumLikelihoodGuide
from probnn.inference.regression import (EnsembleFit, ModelSpec, builder, fit_ensemble,
                                         fit_family, fit_regression, load_ensemble, load_family)
from probnn.models.regression import (HeteroscedasticRegression, NaturalNormal, seed_ensemble)
from probnn.tasks import regression
from probnn.tasks.validation import ConfigError


@pytest.fixture
def xy():
    torch.manual_seed(0)
    x = torch.linspace(0, 9, 31).unsqueeze(-1)
    return x, torch.sin(x) * 3 + 0.5 * torch.randn_like(x)


@pytest.mark.parametrize("name,cure", [("homoscedastic", {}), ("heteroscedastic", {}),
                                       ("heteroscedastic", {"cure": "faithful"}),
                                       ("heteroscedastic", {"cure": "natural"}),
                                       ("heteroscedastic", {"beta": 0.5})])
def test_member_s_starts_as_the_single_run_with_seed_s_and_follows_it(xy, name, cure):
    x, y = xy
    seeds = (7, 8, 9)
    build = builder(name, **cure)
    ens = seed_ensemble(build, seeds)
    for s, seed in enumerate(seeds):  # exactly the single run's initial weights
        torch.manual_seed(seed)
        single = build()
        with torch.no_grad():
            f1, s1 = single.mean_and_scale(x)
            fe, se = ens.mean_and_scale(x)
        torch.testing.assert_close(fe[s], f1, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(se[s], s1, rtol=1e-6, atol=1e-6)
    fit = fit_ensemble(name, x, y, seeds=seeds, epochs=30, progress=False, **cure)
    for seed in (7, 9):
        one = fit_regression(name, x, y, seed=seed, epochs=30, progress=False, **cure)
        member = fit.member(seed)
        np.testing.assert_allclose(member.history["loglik"], one.history["loglik"], rtol=1e-5,
                                   atol=1e-5)
        # f is kept at the last epoch (no dip window before epoch 100), NaN elsewhere
        np.testing.assert_allclose(member.f[-1], one.f[-1], rtol=1e-4, atol=1e-5)
        assert np.isnan(member.f[:-1]).all()
        final_member = member.model.mean_and_scale(x)[0].detach()
        torch.testing.assert_close(final_member, one.model.mean_and_scale(x)[0].detach(),
                                   rtol=1e-4, atol=1e-5)
    # the seeds differ: a band, not one curve repeated
    assert np.ptp(fit.loglik()[-1]) > 1e-3


def test_an_interrupted_ensemble_resumes_exactly(xy, tmp_path):
    x, y = xy
    ckpt = tmp_path / "e.ckpt"
    kw = dict(seeds=(1, 2), progress=False, checkpoint_every=10, cure="natural")
    # interrupted after epoch 110: inside the dip record's windows (kept after epoch 100)
    fit_ensemble("heteroscedastic", x, y, epochs=110, checkpoint=ckpt, **kw)
    resumed = fit_ensemble("heteroscedastic", x, y, epochs=160, checkpoint=ckpt, resume=True, **kw)
    straight = fit_ensemble("heteroscedastic", x, y, epochs=160, **kw)
    np.testing.assert_array_equal(resumed.loglik(), straight.loglik())
    loaded = load_ensemble("heteroscedastic", x, y, ckpt, seeds=(1, 2), cure="natural")
    np.testing.assert_array_equal(loaded.loglik(), straight.loglik())
    for seed in (1, 2):
        for fit in (resumed, loaded):
            np.testing.assert_array_equal(fit.member(seed).f, straight.member(seed).f)
            np.testing.assert_array_equal(fit.member(seed).sigma, straight.member(seed).sigma)
    with pytest.raises(Exception, match="seeds"):  # another ensemble's checkpoint
        fit_ensemble("heteroscedastic", x, y, epochs=50, checkpoint=ckpt, resume=True,
                     **{**kw, "seeds": (1, 3)})


def _old_loglik(y, f, sigma):
    """What EnsembleFit.loglik() computed from f and sigma at every epoch before the dip record."""
    y = y[:, 0].numpy().astype(np.float64)
    s = sigma.astype(np.float64)
    return (-0.5 * ((y - f) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)).mean(-1)


def _full_fit(ens, s, f, sigma):
    """Member s as a RegressionFit with f and sigma at every epoch."""
    member = ens.member(ens.seeds[s])
    member.f, member.sigma = np.ascontiguousarray(f[:, s]), np.ascontiguousarray(sigma[:, s])
    return member


def _same_dip(kept, full):
    a, b = ra.dip_analysis(kept), ra.dip_analysis(full)
    assert a.text == b.text and a.found == b.found
    pd.testing.assert_frame_equal(a.low_points, b.low_points)
    pd.testing.assert_frame_equal(a.high_points, b.high_points)
    pd.testing.assert_series_equal(a.drops, b.drops)
    if a.found:  # every epoch the figure draws is kept
        epochs = kept.history["epoch"].to_numpy()
        lo, first = (int(np.searchsorted(epochs, e)) for e in (a.low_epoch, a.baseline_epochs[0]))
        rows = slice(first, min(lo + 101, len(kept.history)))
        np.testing.assert_array_equal(kept.f[rows], full.f[rows])
        np.testing.assert_array_equal(kept.sigma[rows], full.sigma[rows])
    return a


def test_the_dip_record_gives_what_every_epochs_f_and_sigma_give():
    """A planted record (4 members, 700 epochs): a dip before epoch 100 (ignored), dips that
    are later deepened, one near epoch 100 (baseline cut at 101), one near the end (window
    cut at the last epoch), ties; the dip record gives the same curves bit for bit and the
    same dip analysis as f and sigma at every epoch."""
    rng = np.random.default_rng(3)
    epochs, members, n = 700, 4, 7
    x = torch.linspace(0, 1, n).unsqueeze(-1)
    y = torch.cos(3 * x)
    f = (y[:, 0].numpy() + 0.05 * rng.standard_normal((epochs, members, n))).astype(np.float32)
    sigma = np.exp(-1 + 0.1 * rng.standard_normal((epochs, members, n))).astype(np.float32)
    for m, e, size in [(0, 50, 5), (0, 300, 2), (0, 450, 1.5), (0, 600, 1), (1, 110, 4),
                       (2, 695, 4), (2, 400, 2), (3, 250, 3), (3, 251, 3)]:
        f[e - 1, m, m + 1] += size  # a jump of f at 1-based epoch e
    f[500], sigma[500] = f[250], sigma[250]  # member 3: its deepest value twice (first wins)
    history = pd.DataFrame({"epoch": np.arange(1, epochs + 1), "objective": 0.0,
                            "seconds": np.linspace(0, 1, epochs)})
    ens = EnsembleFit.from_records("heteroscedastic", HeteroscedasticRegression(),
                                   ModelSpec("heteroscedastic"), (1, 2, 3, 4), x, y, history,
                                   f, sigma)
    np.testing.assert_array_equal(ens.loglik(), _old_loglik(y, f, sigma))
    lows = [_same_dip(ens.member(s + 1), _full_fit(ens, s, f, sigma)).low_epoch
            for s in range(members)]
    assert lows == [300, 110, 695, 251]
    assert ens.record.members(slice(2, 4)).f_sigma(1, epochs)[0][250].tolist() == f[250, 3].tolist()


def test_training_keeps_what_every_epochs_record_gives(xy):
    """fit_ensemble (dip record) against the training loop keeping f and sigma at every epoch."""
    x, y = xy
    seeds, epochs, lr = (5, 6, 7), 400, 3e-2  # a high lr: every member dips after epoch 100
    ens = fit_ensemble("heteroscedastic", x, y, seeds=seeds, epochs=epochs, lr=lr,
                       progress=False)
    from probnn.inference.train import fit
    model = seed_ensemble(builder("heteroscedastic"), seeds)
    full = fit(model, MaximumLikelihoodGuide(), (x, y), epochs=epochs, lr=lr, seed=seeds[0],
               progress=False, record=("f", "sigma"), jit=True, max_plate_nesting=2).records
    f, sigma = full["f"][..., 0], full["sigma"][..., 0]
    np.testing.assert_array_equal(ens.loglik(), _old_loglik(y, f, sigma))
    assert all(_same_dip(ens.member(seed), _full_fit(ens, s, f, sigma)).found
               for s, seed in enumerate(seeds))


def test_a_checkpoint_that_kept_every_epoch_is_not_resumed_or_read(xy, tmp_path):
    """A checkpoint written before the dip record (f and sigma at every epoch): one clear
    error, training nothing."""
    from probnn.inference.checkpoint import CheckpointError
    from probnn.inference.train import fit
    x, y = xy
    ckpt, seeds = tmp_path / "old.ckpt", (1, 2)
    fit(seed_ensemble(builder("heteroscedastic"), seeds), MaximumLikelihoodGuide(), (x, y),
        epochs=5, seed=1, progress=False, record=("f", "sigma"), jit=True, max_plate_nesting=2,
        checkpoint=ckpt, settings={"seeds": list(seeds)})
    with pytest.raises(CheckpointError, match="recorder"):
        fit_ensemble("heteroscedastic", x, y, seeds=seeds, epochs=10, checkpoint=ckpt,
                     resume=True, progress=False)
    with pytest.raises(CheckpointError, match="older version"):
        load_ensemble("heteroscedastic", x, y, ckpt, seeds=seeds)


def test_natural_normal_is_the_gaussian_in_natural_parameters():
    eta1, eta2 = torch.tensor([0.3, -2.0, 5.0]), torch.tensor([-0.7, -3.0, -0.01])
    d = NaturalNormal(eta1, eta2)
    sigma = (-2 * eta2).rsqrt()
    mu = eta1 * sigma ** 2
    torch.testing.assert_close(d.loc, mu)
    torch.testing.assert_close(d.scale, sigma)
    y = torch.tensor([1.0, 0.5, -3.0])
    torch.testing.assert_close(d.log_prob(y), dist.Normal(mu, sigma).log_prob(y))
    assert d.expand((4, 3)).log_prob(torch.zeros(4, 3)).shape == (4, 3)
    with pytest.raises(ValueError):
        NaturalNormal(eta1, -eta2, validate_args=True)


def test_natural_cure_trains_on_the_gaussian_log_likelihood(xy):
    x, y = xy
    model = HeteroscedasticRegression(cure="natural")
    loss = pyro_loss(model, x, y)
    assert model.likelihood_objective
    torch.testing.assert_close(-loss, model.log_likelihood(x, y).sum())


def pyro_loss(model, x, y):
    from pyro.infer import Trace_ELBO
    return Trace_ELBO().differentiable_loss(model, MaximumLikelihoodGuide(), x, y)


def test_faithful_cure_fits_f_by_squared_error_and_sigma_by_likelihood_with_f_fixed(xy):
    x, y = xy
    torch.manual_seed(3)
    model = HeteroscedasticRegression(cure="faithful")
    assert not model.likelihood_objective
    loss = pyro_loss(model, x, y)
    grads = torch.autograd.grad(loss, list(model.parameters()))
    f_params = list(model.f.parameters())
    g_params = list(model.g.parameters())
    # f: the gradient of 1/2 sum (y - f)^2, nothing from the likelihood
    sq = 0.5 * (y - model.f(x)).pow(2).sum()
    for got, want in zip(grads[:len(f_params)], torch.autograd.grad(sq, f_params)):
        torch.testing.assert_close(got, want)
    # g: the gradient of the negative log-likelihood at the current f
    sigma = torch.nn.functional.softplus(model.g(x))
    nll = -dist.Normal(model.f(x).detach(), sigma).log_prob(y).sum()
    for got, want in zip(grads[len(f_params):], torch.autograd.grad(nll, g_params)):
        torch.testing.assert_close(got, want)
    # the reported log-likelihood is the plain one
    f, s = model.mean_and_scale(x)
    torch.testing.assert_close(model.log_likelihood(x, y), dist.Normal(f, s).log_prob(y).sum(-1))


def planted(name: str, finals, lows, seeds=(1, 2, 3)) -> EnsembleFit:
    """An ensemble whose members' mean log-likelihood is flat at ``finals[s]`` except one
    epoch after 100 at ``lows[s]`` (sigma 1 everywhere, f chosen to give these values)."""
    x, y = torch.zeros(4, 1), torch.zeros(4, 1)
    epochs = 200
    target = np.repeat(np.asarray(finals, float)[None], epochs, 0)
    target[150] = lows
    # mean log N(0 | f, 1) = -f^2/2 - log sqrt(2 pi)  =>  f = sqrt(-2 (ll + log sqrt(2 pi)))
    f = np.sqrt(-2 * (target + 0.5 * math.log(2 * math.pi)))[..., None].repeat(4, -1)
    history = pd.DataFrame({"epoch": np.arange(1, epochs + 1), "objective": 0.0,
                            "seconds": np.linspace(0, 1, epochs)})
    model = HeteroscedasticRegression()
    return EnsembleFit.from_records(name, model, ModelSpec(name), tuple(seeds), x, y, history,
                                    f.astype(np.float32), np.ones_like(f, np.float32))


def test_seed_table_and_the_across_seeds_rule():
    runs = {"no cure": planted("heteroscedastic", [-1.0, -1.5, -2.0], [-30.0, -8.0, -3.0]),
            "always better": planted("heteroscedastic", [-1.2, -1.7, -2.2], [-4.0, -3.0, -2.5]),
            "sometimes": planted("heteroscedastic", [-0.95, -1.6, -1.9], [-40.0, -2.5, -2.5])}
    table = ra.seed_table(runs)
    r = table.loc["no cure"]
    assert r.final_loglik_median == pytest.approx(-1.5, abs=1e-4)
    assert r.lowest_after_100_min == pytest.approx(-30.0, abs=1e-3)
    assert r.lowest_after_100_max == pytest.approx(-3.0, abs=1e-4)
    assert r["seeds_below_-5"] == 2 and r.deepest_dip_seed == 1
    assert r.coursework_seed_final == pytest.approx(-1.0, abs=1e-4)
    text = ra.cures_answer(table, runs, "no cure")
    assert "always better: " in text
    always = text.split("always better: ")[1].split("sometimes:")[0]
    assert "a shallower deepest dip than no cure in all 3 seeds, so it holds across seeds" in always
    assert "a higher final log-likelihood in none of the 3 seeds" in always
    sometimes = text.split("sometimes: ")[1]
    assert "in only 2 of 3 seeds: no claim either way" in sometimes


def test_config_and_cli_reject_bad_seed_and_cure_settings(data_dir, tmp_path, capsys):
    for bad in (dict(seeds=0), dict(seeds=65), dict(seeds=64, epochs=100_000),
                dict(model="homoscedastic", cure="natural"), dict(cure="faithful", beta=0.5),
                dict(cure="other"), dict(seed=2**32 - 2, seeds=3)):
        with pytest.raises(ConfigError):
            regression.Config(**bad)
    for args in (["--seeds", "0"], ["--seeds", "x"],
                 ["--cure", "natural", "--model", "homoscedastic"],
                 ["--cure", "faithful", "--sigma-floor", "0.1"]):
        try:
            code = main(["regression", "--epochs", "5", "--data-dir", str(data_dir), "--out",
                         str(tmp_path / "o"), "--quiet", *args])
        except SystemExit as e:  # argparse's own errors
            code = e.code
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) <= 2 and "Traceback" not in err, args


def test_regression_command_trains_seeds_and_a_cure(data_dir, tmp_path, capsys):
    out = tmp_path / "reg"
    assert main(["regression", "--model", "heteroscedastic", "--cure", "natural", "--seeds", "3",
                 "--seed", "4", "--epochs", "150", "--data-dir", str(data_dir), "--out", str(out),
                 "--quiet"]) == 0
    seeds = pd.read_csv(out / "seeds.csv", index_col=0)
    assert seeds.loc["heteroscedastic", "seeds"] == 3
    assert seeds.loc["heteroscedastic", "deepest_dip_seed"] in (4, 5, 6)
    assert (out / "seeds-loglik.png").is_file()
    # the history is the coursework seed's (the first member's)
    hist = pd.read_csv(out / "history_heteroscedastic.csv")
    assert hist["loglik"].iloc[-1] == pytest.approx(seeds.loc["heteroscedastic",
                                                              "coursework_seed_final"], abs=1e-4)


def test_cures_in_one_batch_follow_their_own_ensembles(xy, tmp_path):
    x, y = xy
    specs = [builder("heteroscedastic"), builder("heteroscedastic", sigma_floor=0.1),
             builder("heteroscedastic", beta=0.5), builder("heteroscedastic", cure="faithful"),
             builder("heteroscedastic", cure="natural")]
    seeds = (3, 4)
    fits = fit_family(x, y, specs=specs, seeds=seeds, epochs=40, progress=False,
                      checkpoint=tmp_path / "f.ckpt", checkpoint_every=20)
    for spec, fit in zip(specs, fits):
        alone = fit_ensemble("heteroscedastic", x, y, seeds=seeds, epochs=40, progress=False,
                             **spec.kwargs())
        np.testing.assert_allclose(fit.loglik(), alone.loglik(), rtol=1e-5, atol=1e-5)
        assert fit.build == spec and ra.cure_label(fit) == ra.cure_label(alone)
        torch.testing.assert_close(fit.member(4).model.mean_and_scale(x)[1].detach(),
                                   alone.member(4).model.mean_and_scale(x)[1].detach(),
                                   rtol=1e-4, atol=1e-5)
    loaded = load_family(x, y, tmp_path / "f.ckpt", specs=specs, seeds=seeds)
    for a, b in zip(loaded, fits):
        np.testing.assert_array_equal(a.loglik(), b.loglik())


def test_a_config_with_cures_trains_them_in_its_batch(data_dir):
    from probnn.tasks.inputs import Inputs
    config = regression.Config(epochs=20, seeds=2, cures=("beta=0.5", "natural"))
    run = regression.run(config, Inputs(data_dir))
    assert [ra.cure_label(e) for e in (run, *run.others)] == [
        "no cure", "β-NLL β=0.5", "natural parameters (Immer 2023)"]
    assert all(e.seeds == (309, 310) and e.loglik().shape == (20, 2) for e in (run, *run.others))
    for bad in (("x",), ("beta=2",), ("natural", "natural"), ("none",)):
        with pytest.raises(ConfigError):
            regression.Config(cures=bad)
    with pytest.raises(ConfigError):
        regression.Config(model="homoscedastic", cures=("natural",))
