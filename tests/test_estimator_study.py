"""The ELBO-estimator study: estimators on a model with an exact log-likelihood, the gradient
SNR on a model whose gradient distribution is known in closed form, the objective
comparison and the written outputs on a tiny VAE, and the CLI command end to end."""
import inspect
import math

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn as nn
from pyro.nn import PyroModule

from probnn.analysis import estimator_study as ea
from probnn.analysis.outputs import save
from probnn.inference import estimator_study as es
from probnn.inference.vae import build_vae

from test_estimators import LinearGaussian, LinearGuide  # the exact-likelihood model


@pytest.fixture
def exact():
    model = LinearGaussian()
    guide = LinearGuide(model)
    with torch.no_grad():
        x = torch.stack([model(None)[0] for _ in range(40)]).detach()
    return model, guide, x


# ----------------------------------------------------------------------------- bias and spread
@pytest.fixture(scope="module")
def exact_table():
    """The table for the ``exact`` fixture's model and data (built the same way), computed once."""
    pyro.set_rng_seed(0)
    model = LinearGaussian()
    guide = LinearGuide(model)
    with torch.no_grad():
        x = torch.stack([model(None)[0] for _ in range(40)]).detach()
    table = es.estimator_bias_spread(model, guide, x, ks=(1, 10, 100, 1000, 5000), elbo_mc_k=100,
                                     repeats=3, seed=4, batch_size=40, max_pairs=200_000)
    return table, float(model.exact_log_prob(x).detach().mean())


def test_iwae_rises_with_k_to_the_exact_log_likelihood(exact_table):
    table, exact_mean = exact_table
    t = table.set_index("estimator")
    iw = t[t["kind"] == "iwae"].sort_values("k")
    steps, se = np.diff(iw["mean"]), np.hypot(iw["stderr"].to_numpy()[1:], iw["stderr"].to_numpy()[:-1])
    assert np.all(steps > -3 * se - 1e-3), "E[IWAE-K] is non-decreasing in K"
    assert abs(iw.loc["IWAE (K=5000)", "mean"] - exact_mean) < 0.02
    # the guide is imperfect: the ELBO sits clearly below the tightest bound
    assert t.loc["ELBO (K=1)", "gap_to_ref"] < -3 * t.loc["ELBO (K=1)", "gap_to_ref_se"]
    assert t.loc["IWAE (K=5000)", "gap_to_ref"] == 0.0
    # ELBO, ELBO-MC and IWAE-1 all estimate the ELBO: equal means up to noise
    for other in ("ELBO-MC (K=100)", "IWAE (K=1)"):
        d = t.loc[other, "mean"] - t.loc["ELBO (K=1)", "mean"]
        assert abs(d) < 4 * math.hypot(t.loc[other, "stderr"], t.loc["ELBO (K=1)", "stderr"]) + 0.02


def test_spread_shrinks_with_k(exact_table):
    table, _ = exact_table
    t = table.set_index("estimator")
    sd = t[t["kind"] == "iwae"].sort_values("k")["per_image_sd"].to_numpy()
    assert np.all(np.diff(sd) < 0), sd
    assert t.loc["ELBO-MC (K=100)", "per_image_sd"] < 0.3 * t.loc["ELBO (K=1)", "per_image_sd"]
    assert np.allclose(table["stderr"], table["sd_of_mean"] / math.sqrt(3))
    assert (table["seconds"] > 0).all() and (table["images"] == 40).all()


def test_same_seed_same_numbers(exact):
    model, guide, x = exact
    run = lambda seed: es.estimator_bias_spread(model, guide, x[:10], ks=(1, 20), elbo_mc_k=5,
                                                repeats=2, seed=seed)
    timing = ["seconds", "ms_per_image"]
    a, b, c = run(1), run(1), run(2)
    pd.testing.assert_frame_equal(a.drop(columns=timing), b.drop(columns=timing))
    assert not np.allclose(a["mean"], c["mean"])
    with pytest.raises(ValueError, match="repeats"):
        es.estimator_bias_spread(model, guide, x, ks=(1,), repeats=1)


# ----------------------------------------------------------------------------- gradient SNR
S_GUIDE = 0.7


class ShiftModel(PyroModule):
    """z ~ N(0, 1); x ~ N(z + b, 1), with b a parameter; ``unused`` never enters the loss."""

    def __init__(self):
        super().__init__()
        self.b = nn.Parameter(torch.tensor(0.3))
        self.unused = nn.Parameter(torch.tensor(1.0))

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            z = pyro.sample("z", dist.Normal(0.0, 1.0))
            pyro.sample("x", dist.Normal(z + self.b, 1.0), obs=x)


class ShiftGuide(PyroModule):
    """q(z | x) = N(m, 0.7^2), with m a parameter."""

    def __init__(self):
        super().__init__()
        self.m = nn.Parameter(torch.tensor(-0.2))

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(self.m, S_GUIDE))


def test_snr_matches_the_closed_form():
    """With z = m + s*eps, the single-sample loss (1/n) sum_i [(x_i - z_i - b)^2/2 + z_i^2/2
    - log q(z_i)] has d/db = -(xbar - m - b) - s*mean(eps), d/dm = 2m - xbar + b + 2s*mean(eps)
    (log q(z) is constant in m along the path): Gaussian, with known mean and sd."""
    model, guide = ShiftModel(), ShiftGuide()
    x = torch.linspace(-1.0, 2.0, 8)
    n, xbar, m, b = len(x), float(x.mean()), -0.2, 0.3
    want_b = abs(xbar - m - b) / (S_GUIDE / math.sqrt(n))
    want_m = abs(2 * m - xbar + b) / (2 * S_GUIDE / math.sqrt(n))
    t = es.gradient_snr(model, guide, x, objectives=("trace", "iwae-1"), samples=500, seed=0)
    t = t.set_index(["objective", "side"])
    assert t.loc[("trace", "decoder"), "parameters"] == 1 and t.loc[("trace", "decoder"), "unused"] == 1
    # relative error of an SNR estimate from S=500 draws is ~4% here: allow ~3.5 of them
    assert t.loc[("trace", "decoder"), "snr_median"] == pytest.approx(want_b, rel=0.15)
    assert t.loc[("trace", "encoder"), "snr_median"] == pytest.approx(want_m, rel=0.15)
    assert t.loc[("trace", "decoder"), "mean_grad_sd"] == pytest.approx(S_GUIDE / math.sqrt(n), rel=0.12)
    assert t.loc[("trace", "encoder"), "mean_grad_sd"] == pytest.approx(2 * S_GUIDE / math.sqrt(n), rel=0.12)
    # one Gaussian gradient: the SNR estimate from S draws has sd sqrt((1 + rho^2 / 2) / S)
    want_se = math.sqrt((1 + want_b ** 2 / 2) / 500)
    assert t.loc[("trace", "decoder"), "snr_median_se"] == pytest.approx(want_se, rel=0.3)
    # the same estimator from the same draws: the same numbers
    for side in ("encoder", "decoder"):
        assert t.loc[("iwae-1", side), "snr_median"] == pytest.approx(
            t.loc[("trace", side), "snr_median"], rel=1e-4)
    assert model.b.item() == pytest.approx(0.3) and model.b.grad is None  # parameters untouched


def test_snr_of_deterministic_and_unused_gradients():
    snr = es.snr_from_moments([2.0, 0.0, -1.0, 0.0], [0.0, 0.0, 0.5, 1.0])
    assert snr[0] == math.inf and math.isnan(snr[1]) and snr[2] == 2.0 and snr[3] == 0.0


def test_snr_reproducible_and_checked(exact):
    model, guide, x = exact
    a = es.gradient_snr(model, guide, x[:10], objectives=("meanfield", "iwae-3"), samples=5, seed=3)
    b = es.gradient_snr(model, guide, x[:10], objectives=("meanfield", "iwae-3"), samples=5, seed=3)
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"))
    assert list(a["side"]) == ["encoder", "decoder"] * 2
    with pytest.raises(ValueError, match="unknown objective"):
        es.gradient_snr(model, guide, x, objectives=("renyi",), samples=3)
    assert es.parse_objective("iwae-50") == ("iwae", 50) and es.parse_objective("trace") == ("trace", 1)


# ----------------------------------------------------------------------------- objectives, outputs
@pytest.fixture
def images():
    g = torch.Generator().manual_seed(5)
    return (torch.rand(60, 1, 28, 28, generator=g) > 0.8).float()


def test_objective_comparison_same_start_same_yardstick(images):
    t = es.objective_comparison(images[:40], images[40:], ("trace", "iwae-1", "iwae-4"), epochs=1,
                                latent_dim=2, eval_k=10, seed=3, architecture="mlp", batch_size=10)
    t = t.set_index("objective")
    # iwae-1 is Trace_ELBO's loss: same seed, same draws, the same model
    assert t.loc["iwae-1", "holdout_iwae"] == pytest.approx(t.loc["trace", "holdout_iwae"], abs=1e-3)
    assert (t["delta_vs_best"] <= 0).all() and t["delta_vs_best"].max() == 0.0
    assert (t["elbo_delta_vs_best"] <= 0).all() and t["elbo_delta_vs_best"].max() == 0.0
    assert (t["holdout_iwae"] > t["holdout_elbo"] - 1.0).all()
    assert (t["eval_images"] == 20).all() and (t["train_images"] == 40).all()


def test_run_study_and_write_outputs(images, tmp_path):
    torch.manual_seed(0)
    model, guide = build_vae(latent_dim=2, architecture="mlp")
    study = es.run_estimator_study(model, guide, images[40:], images[:40], name="tiny",
                                   holdout_images=4, ks=(1, 10), elbo_mc_k=5, repeats=2,
                                   snr_objectives=("trace", "iwae-5"), snr_samples=3,
                                   snr_images=4, train_objectives=("trace", "iwae-2"),
                                   train_images=20, batch_size=10, eval_k=5, eval_images=6,
                                   seed=1, progress=False)
    assert set(study.seconds) == {"bias_spread", "snr", "objectives"}
    assert study.reference["eval_images"] == 6
    written = save(ea.estimator_section(study), tmp_path, "tiny-estimators.md")
    names = {p.name for p in written}
    for suffix in ("bias-spread.csv", "snr.csv", "objectives.csv", "bound-vs-k.png", "spread.png",
                   "snr.png", "objectives.png"):
        assert f"tiny-estimators-{suffix}" in names
    text = (tmp_path / "tiny-estimators.md").read_text()
    assert "gradient signal-to-noise ratio" in text and "Sizes: holdout_images=4" in text
    assert "Every objective trained from 3 seeds" in text  # the study's default: 3 seeds


def test_every_preset_s_sizes_are_parameters_of_the_study():
    """The named sizes live once, in the study task's presets; each is a set of this
    function's parameters."""
    from probnn.tasks import estimators
    params = inspect.signature(es.run_estimator_study).parameters
    for name in estimators.PRESETS:
        assert set(estimators.Config.preset(name).sizes()) <= set(params), name
    assert not hasattr(es, "PRESETS") and not hasattr(es, "ISSUE")


# ----------------------------------------------------------------------------- written answers
def _table(means, sds, ks=(1, 10, 100, 1000), elbo=-100.0):
    rows = [dict(estimator="ELBO (K=1)", kind="elbo", k=1, mean=elbo, stderr=0.3, sd_of_mean=0.5,
                 per_image_sd=2.0, ms_per_image=1.0),
            dict(estimator="ELBO-MC (K=100)", kind="elbo_mc", k=100, mean=elbo + 0.1, stderr=0.03,
                 sd_of_mean=0.05, per_image_sd=0.2, ms_per_image=5.0)]
    rows += [dict(estimator=f"IWAE (K={k})", kind="iwae", k=k, mean=m, stderr=s / 2,
                  sd_of_mean=s, per_image_sd=s * 3, ms_per_image=0.5 * k) for k, m, s in zip(ks, means, sds)]
    t = pd.DataFrame(rows).assign(images=10, repeats=4)
    ref = t[t["kind"] == "iwae"].iloc[-1]
    return t.assign(gap_to_ref=t["mean"] - ref["mean"], gap_to_ref_se=0.1)


def test_estimator_answer_follows_the_numbers():
    text = ea.estimator_answer(_table([-100.5, -97.0, -96.0, -95.98], [1.0, 0.4, 0.1, 0.05]))
    assert "ELBO (K=1) is 4.02 ± 0.10 nats below it" in text
    assert "within noise of zero, so the bound has flattened" in text
    assert "spread of one image's estimate falls" in text
    text = ea.estimator_answer(_table([-100.5, -97.0, -96.0, -94.0], [1.0, 0.4, 0.1, 0.05]))
    assert "still rising" in text
    text = ea.estimator_answer(_table([-100.5, -97.0, -99.0, -98.9], [0.1, 0.1, 0.1, 0.1]))
    assert "falls beyond noise between K=10 and 100" in text


def _snr_table(enc, dec):
    rows = []
    for (obj, k), e, d in zip((("trace", 1), ("iwae-1", 1), ("iwae-50", 50)), enc, dec):
        for side, v in (("encoder", e), ("decoder", d)):
            rows.append(dict(objective=obj, elbo=obj.split("-")[0], k=k, side=side, snr_median=v,
                             snr_mean=v, snr_q10=v / 3, snr_q90=v * 3, mean_abs_grad=v / 100,
                             mean_grad_sd=0.01, samples=16, images=10, parameters=5, seconds=1.0))
    return pd.DataFrame(rows)


def test_snr_answer_states_what_rainforth_predicts_only_when_seen():
    text = ea.snr_answer(_snr_table([0.8, 0.8, 0.4], [1.0, 1.0, 4.0]))
    assert "Both move as Rainforth et al. (2018) predict" in text and "agree, as they must" in text
    text = ea.snr_answer(_snr_table([0.8, 0.8, 0.9], [1.0, 1.0, 4.0]))
    assert "the encoder's SNR does not fall here" in text
    fig = ea.snr_figure(_snr_table([0.8, 0.8, 0.4], [1.0, 1.0, 4.0]))
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log"]


def test_objectives_answer_uses_paired_errors():
    t = pd.DataFrame(dict(objective=["trace", "iwae-5"], holdout_iwae=[-110.0, -109.9],
                          holdout_elbo=[-112.0, -113.0], delta_vs_best=[-0.1, 0.0],
                          delta_vs_best_se=[0.2, 0.0], holdout_iwae_se=[1.0, 1.0],
                          train_seconds=[10.0, 20.0], eval_k=100, eval_images=50, epochs=1,
                          train_images=500))
    text = ea.objectives_answer(t, dict(holdout_iwae=-90.0))
    assert "best model comes from iwae-5" in text and "within noise" in text
    assert "By the holdout ELBO instead, trace would come first" in text
    assert "far from converged" in text
    paired = t.assign(elbo_delta_vs_best=[0.0, -1.0], elbo_delta_vs_best_se=[0.0, 0.8])
    assert "a difference within noise" in ea.objectives_answer(paired)
    paired = t.assign(elbo_delta_vs_best=[0.0, -1.0], elbo_delta_vs_best_se=[0.0, 0.1])
    assert "ranks the models differently" in ea.objectives_answer(paired)


def test_bound_vs_k_figure_draws_references():
    from probnn.analysis.vae import bound_vs_k_figure
    fig = bound_vs_k_figure([1, 10, 100], [-100, -98, -97.5], [0.2, 0.1, 0.05], labels=["IWAE"],
                            references={"ELBO": (-101.0, 0.3), "ELBO-MC": -101.1})
    ax = fig.axes[0]
    assert sorted(t.get_text() for t in ax.get_legend().get_texts()) == ["ELBO", "ELBO-MC", "IWAE"]
    assert [line.get_ydata()[0] for line in ax.get_lines()[-2:]] == [-101.0, -101.1]


# ----------------------------------------------------------------------------- command line
def test_estimators_command(data_dir, tmp_path):
    from probnn.cli import main
    out = tmp_path / "vae"
    assert main(["vae", "train", "--architecture", "mlp", "--latent-dim", "2", "--epochs", "1",
                 "--train-images", "100", "--data-dir", str(data_dir), "--out", str(out),
                 "--quiet"]) == 0
    args = ["estimators", "--checkpoint", str(out / "vae-mlp-d2.ckpt"), "--holdout-images", "3",
            "--repeats", "2", "--ks", "1", "10", "--elbo-mc-k", "5", "--snr-samples", "3",
            "--snr-images", "4", "--snr-objectives", "trace", "iwae-2", "--train-objectives",
            "trace", "iwae-2", "--train-images", "20", "--epochs", "1", "--batch-size", "10",
            "--eval-k", "5", "--eval-images", "5", "--data-dir", str(data_dir), "--quiet"]
    assert main(args + ["--out", str(tmp_path / "est")]) == 0
    table = pd.read_csv(tmp_path / "est" / "vae-mlp-d2-estimators-bias-spread.csv")
    assert list(table["k"]) == [1, 5, 1, 10]
    assert (tmp_path / "est" / "vae-mlp-d2-estimators-objectives.csv").is_file()
    assert main(args + ["--no-train", "--out", str(tmp_path / "est2")]) == 0
    assert not (tmp_path / "est2" / "vae-mlp-d2-estimators-objectives.csv").exists()
    assert (tmp_path / "est2" / "vae-mlp-d2-estimators.md").is_file()


def _grid(enc: dict, dec: float = 2.0) -> pd.DataFrame:
    """An SNR table: family -> {K: encoder median}; every decoder at ``dec``."""
    rows = []
    for family, by_k in enc.items():
        for k, e in by_k.items():
            name = family if k == 1 and family in ("trace", "stl") else f"{family}-{k}"
            for side, v in (("encoder", e), ("decoder", dec)):
                rows.append(dict(objective=name, elbo=family, k=k, side=side, snr_median=v,
                                 snr_mean=v, snr_q10=v / 3, snr_q90=v * 3, mean_abs_grad=v / 100,
                                 mean_grad_sd=0.01, samples=16, images=10, parameters=5,
                                 seconds=1.0))
    return pd.DataFrame(rows)


def test_dreg_answer_follows_the_numbers():
    iwae = {1: 0.8, 5: 0.5, 50: 0.3}
    cases = {"removes the decline": {1: 0.7, 5: 0.8, 50: 0.9},
             "slows the decline but does not remove it": {1: 0.7, 5: 0.6, 50: 0.5},
             "does not remove the decline": {1: 0.7, 5: 0.4, 50: 0.2}}
    for phrase, dreg in cases.items():
        text = ea.dreg_answer(_grid({"iwae": iwae, "dreg-iwae": dreg}))
        assert phrase in text, (phrase, text)
        assert "match IWAE's" in text
    rising = ea.dreg_answer(_grid({"iwae": {1: 0.3, 50: 0.6}, "dreg-iwae": {1: 0.3, 50: 0.9}}))
    assert "no decline for DReG to remove" in rising
    assert ea.dreg_answer(_grid({"iwae": iwae})) == ""  # nothing to compare
    fig = ea.snr_figure(_grid({"trace": {1: 1.0, 5: 2.0}, "iwae": iwae,
                               "dreg-iwae": cases["removes the decline"]}))
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    assert {t.get_text() for t in ax.get_legend().get_texts()} >= {"trace", "iwae", "dreg-iwae"}


def test_stl_answer_follows_the_numbers():
    tr = {1: 1.0, 5: 2.0}
    assert "raises the encoder's SNR at every K" in ea.stl_answer(
        _grid({"trace": tr, "stl": {1: 1.5, 5: 2.5}}))
    assert "lowers the encoder's SNR" in ea.stl_answer(_grid({"trace": tr, "stl": {1: 0.5, 5: 1.5}}))
    assert "raises it beyond noise at K = [1], lowers it at K = none" in ea.stl_answer(
        _grid({"trace": tr, "stl": {1: 1.5, 5: 2.0}}))


def test_snr_verdicts_need_the_ratio_beyond_two_standard_errors():
    iwae, dreg = {1: 0.8, 50: 0.3}, {1: 0.7, 50: 0.6}
    t = _grid({"iwae": iwae, "dreg-iwae": dreg})
    sure = t.assign(snr_median_se=0.01)
    assert "DReG slows the decline but does not remove it" in ea.dreg_answer(sure)
    assert "0.86× ± 0.02" in ea.dreg_answer(sure)
    noisy = t.assign(snr_median_se=np.where(t["elbo"] == "dreg-iwae", 0.2, 0.01))
    assert "DReG removes the decline here" in ea.dreg_answer(noisy)
    assert "beyond the noise of the estimate" in ea.dreg_answer(noisy)
    both = t.assign(snr_median_se=0.3)
    assert "no decline for DReG to remove" in ea.dreg_answer(both)
    tr = _grid({"trace": {1: 1.0, 5: 2.0}, "stl": {1: 1.1, 5: 2.2}})
    assert "the rest is within noise" in ea.stl_answer(tr.assign(snr_median_se=0.2))


def _seed_table(values: dict) -> pd.DataFrame:
    """objective -> holdout IWAE per seed (seeds 1, 2, 3)."""
    rows = []
    for obj, per_seed in values.items():
        for seed, v in zip((1, 2, 3), per_seed):
            rows.append(dict(objective=obj, seed=seed, holdout_iwae=v, holdout_elbo=v - 2,
                             holdout_iwae_se=0.5, train_objective=v - 3,
                             train_seconds=10.0 * (1 + len(obj)), eval_k=100, eval_images=50,
                             epochs=1, train_images=500, delta_vs_best=0.0, delta_vs_best_se=0.1))
    return pd.DataFrame(rows)


def test_objectives_over_seeds_name_a_winner_only_beyond_the_seed_spread():
    base = np.array([-100.0, -104.0, -97.0])  # seeds differ by far more than objectives
    table = _seed_table({"iwae-5": base, "dreg-iwae-5": base + [0.2, -0.3, 0.4],
                         "trace": base - [5.0, 5.1, 4.9]})
    summary = es.summarise_objectives(table).set_index("objective")
    d = -np.array([5.0, 5.1, 4.9]) - [0.2, -0.3, 0.4]  # trace minus the best, dreg-iwae-5
    assert summary.loc["trace", "delta_vs_best"] == pytest.approx(d.mean())
    assert summary.loc["trace", "delta_vs_best_se"] == pytest.approx(d.std(ddof=1) / np.sqrt(3))
    assert summary.loc["iwae-5", "holdout_iwae_seed_sd"] == pytest.approx(np.std(base, ddof=1))
    text = ea.objectives_answer(table)
    assert "dreg-iwae-5 has the highest mean" in text
    assert "It beats trace" in text and "but not iwae-5" in text
    assert "dreg-iwae-5 against iwae-5: +0.10 ± 0.21 nats paired over seeds, within the seed spread" in text
    assert "Seed 1 alone would rank dreg-iwae-5 first" in text
    # nobody beyond the spread: no winner is named
    level = _seed_table({"a": base, "b": base + [0.5, -0.6, 0.4]})
    assert "no objective is better than the others beyond the seed spread" in ea.objectives_answer(level)
    # a clear winner against all
    clear = _seed_table({"a": base, "b": base - [3.0, 3.1, 2.9], "c": base - [6.0, 6.2, 5.9]})
    assert "a is the best objective here, beyond the seed spread against every other" in (
        ea.objectives_answer(clear))
    assert ea.objectives_figure(table).axes[0].get_legend() is not None
