"""Comparisons over the same images, failed fits marked failed, and the report's invariant
checks: each check fires on a planted result that breaks it and stays quiet on the quick
report's own results."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from probnn.analysis import invariants as inv
from probnn.analysis.comparison import comparison_answer, model_gaps
from probnn.analysis.outputs import Section, Table
from probnn.analysis.vae import comparison_table
from probnn.inference.fit_checks import constant_model_loglik, elpd_failure, svi_failure
from probnn.inference.paired import PerImage, paired_difference


def per_image(index, **values) -> PerImage:
    return PerImage(np.asarray(index), {k: np.asarray(v, dtype=float) for k, v in values.items()})


# ----------------------------------------------------------------------------- pairing
def test_a_difference_is_taken_only_over_the_common_images():
    a = per_image([0, 1, 2, 3], v=[1.0, 2.0, 3.0, 100.0])
    b = per_image([1, 2, 3, 4], v=[1.0, 2.0, 99.0, -50.0])
    d = paired_difference(a, "v", b, "v")
    assert d.n == 3                              # images 1, 2, 3
    assert d.mean == pytest.approx((1 + 1 + 1) / 3)
    assert d.se == pytest.approx(0.0)
    assert paired_difference(a, "v", per_image([7, 8], v=[0, 0]), "v").n == 0


def test_paired_se_is_the_spread_of_the_differences():
    rng = np.random.default_rng(0)
    base = rng.normal(-100, 10, 50)              # images differ by far more than the methods
    a = per_image(range(50), v=base + 3 + rng.normal(0, 0.1, 50))
    b = per_image(range(50), v=base)
    d = paired_difference(a, "v", b, "v")
    assert d.mean == pytest.approx(3, abs=0.1) and d.se < 0.05 and d.beyond()


def _rows():
    """Two models scored on 2,000 images, the K=1000 bound on a 200-image subset that sits
    5 nats above the average image (as in the full report)."""
    row = {"images": 2000, "elbo": -130.0, "elbo_mc": -129.8, "reconstruction": -110.0,
           "kl": 19.8, "iwae_100": -127.1, "large_k_images": 200, "iwae_100_subset": -122.2,
           "iwae_1000": -121.9}
    return {"vae-d4": dict(row), "vae-d20": {**row, "iwae_1000": -121.8}}


def test_a_gap_over_different_images_is_never_stated():
    """The subset mismatch: iwae_1000 over 200 images minus elbo_mc over 2,000 is no gap."""
    table = comparison_table(_rows())
    assert model_gaps(table, 1000) == {}
    text = comparison_answer(table)
    assert "7.9" not in text and "not measured on the images" in text
    assert "no model is named better" in text  # no per-image estimates: no winner


def test_the_gap_is_the_paired_one_on_the_subset():
    rows = _rows()
    for r in rows.values():
        r.update(elbo_mc_subset=-124.8, gap_1000=2.9, gap_1000_se=0.2)
    text = comparison_answer(comparison_table(rows))
    assert "vae-d4: gap 2.90 ± 0.20" in text and "gap of record" in text


def _subset(gap_shift: float, n: int = 40, seed: int = 0, noise: float = 0.3) -> dict:
    rng = np.random.default_rng(seed)
    img = rng.normal(-120, 8, n)
    elbo = img - 3 - gap_shift + rng.normal(0, noise, n)
    return {"subset": per_image(np.arange(n) * 5, elbo_mc=elbo, iwae_100=img - 0.3,
                                iwae_1000=img + rng.normal(0, noise, n)),
            "all": per_image(np.arange(n) * 5, elbo_mc=elbo, iwae_100=img - 0.3)}


def test_a_winner_is_named_only_beyond_the_uncertainty():
    pa, pb = _subset(0.0, seed=1), _subset(0.0, seed=1)
    pb["subset"].values["iwae_1000"] = pa["subset"].values["iwae_1000"] - 0.05 + \
        np.random.default_rng(2).normal(0, 1.0, 40)
    table = pd.DataFrame({"images": [40, 40], "elbo_mc": [-123.0, -123.0],
                          "large_k_images": [40, 40],
                          "iwae_1000": [pa["subset"].values["iwae_1000"].mean(),
                                        pb["subset"].values["iwae_1000"].mean()]},
                         index=["a", "b"])
    text = comparison_answer(table, {"a": pa, "b": pb})
    assert "not distinguishable" in text and "the best model is" not in text
    pb["subset"].values["iwae_1000"] = pa["subset"].values["iwae_1000"] - 2.0
    table.loc["b", "iwae_1000"] = pb["subset"].values["iwae_1000"].mean()
    text = comparison_answer(table, {"a": pa, "b": pb})
    assert "the best model is a: 2.00" in text


# ----------------------------------------------------------------------------- failed fits
def _history(elbo) -> pd.DataFrame:
    return pd.DataFrame({"epoch": np.arange(1, len(elbo) + 1), "elbo": elbo})


def test_a_converged_fit_passes_and_a_diverged_one_fails():
    steps = np.arange(2500)
    rng = np.random.default_rng(0)
    good = -3.4 - 110 * np.exp(-steps / 300) + rng.normal(0, 0.2, 2500)
    assert svi_failure(_history(good)) == ""
    # the low-rank guide at lr 0.01: up to its best, then falling away
    bad = np.where(steps < 1700, good, -3.8 - (steps - 1700) * 0.03)
    assert svi_failure(_history(bad)).startswith("diverged")
    assert svi_failure(_history(np.full(100, -5.0) - steps[:100] * 0.01)).startswith("ELBO not")
    nan = good.copy()
    nan[1000] = np.nan
    assert svi_failure(_history(nan)).startswith("non-finite")


def test_an_elpd_beyond_what_the_data_allow_is_absurd():
    y = np.random.default_rng(0).normal(0, 5, 31)
    base = constant_model_loglik(y)
    assert elpd_failure(base + 0.5, y) == ""
    assert elpd_failure(-1.36e33 / 31, y).startswith("absurd")
    assert elpd_failure(math.nan, y).startswith("non-finite")


# ----------------------------------------------------------------------------- the checks
class _Bounds:
    def __init__(self, name, df, bdmc=None):
        self.name, self.per_image = name, df
        self.bdmc = bdmc if bdmc is not None else pd.DataFrame()


def _bounds(index, iwae, ais, elbo) -> pd.DataFrame:
    return pd.DataFrame({"index": index, "elbo": elbo, "iwae_1000": iwae, "ais": ais,
                         "ais_se": np.full(len(index), 0.05)})


def test_iwae_above_ais_fires():
    rng = np.random.default_rng(0)
    ais = rng.normal(-120, 5, 16)
    ok = _Bounds("m", _bounds(np.arange(16), ais - 1 + rng.normal(0, 0.1, 16), ais, ais - 4))
    assert inv.bounds_orders(ok) == []
    bad = _Bounds("m", _bounds(np.arange(16), ais + 1 + rng.normal(0, 0.1, 16), ais, ais - 4))
    (msg,) = inv.bounds_orders(bad)
    assert "iwae_1000 exceeds ais" in msg


def test_bdmc_lower_above_upper_fires():
    rng = np.random.default_rng(0)
    ais = rng.normal(-120, 5, 4)
    df = _bounds(np.arange(4), ais - 1, ais, ais - 4)
    bdmc = pd.DataFrame({"steps": [10, 100], "lower": [-100.0, -99.0], "upper": [-99.5, -99.8],
                         "lower_se": [0.1, 0.1], "upper_se": [0.1, 0.1]})
    (msg,) = inv.bounds_orders(_Bounds("m", df, bdmc))
    assert "BDMC lower bound -99.00 above the upper -99.80 at 100 steps" in msg


def test_elbo_above_iwae_on_the_same_images_fires():
    pi = _subset(0.0)
    assert inv.holdout_orders("m", pi) == []
    pi["subset"].values["elbo_mc"] = pi["subset"].values["iwae_1000"] + 1.0
    assert any("elbo_mc exceeds" in m for m in inv.holdout_orders("m", pi))


def test_two_sections_that_disagree_on_the_same_images_fire():
    pi = _subset(0.0)
    sub = pi["subset"]
    idx = sub.index[:16]
    noise = np.random.default_rng(4).normal(0, 0.1, 16)
    same = _Bounds("m", _bounds(idx, sub.values["iwae_1000"][:16] + noise,
                                sub.values["iwae_1000"][:16] + 0.5, sub.values["elbo_mc"][:16]))
    holdout = type("R", (), {"name": "m", "per_image": pi})()
    sec = [Section("vae-e", "e", answers=["fine"])]
    assert inv.check_report(sec, [holdout], [same]) == []
    off = _Bounds("m", _bounds(idx, sub.values["iwae_1000"][:16] + 3 +
                               np.random.default_rng(3).normal(0, 0.1, 16),
                               sub.values["iwae_1000"][:16] + 4, sub.values["elbo_mc"][:16]))
    assert any("iwae_1000 of (e) and iwae_1000 of the bounds section differ" in m
               for m in inv.check_report(sec, [holdout], [off]))


def test_non_finite_printed_numbers_fire():
    t = Table("t", pd.DataFrame({"elpd": [1.0, np.inf]}, index=["a", "b"]))
    s = Section("bayes", "b", answers=["elpd_loo/n nan for the low-rank guide"], tables=[t])
    msgs = inv.printed_numbers_finite([s])
    assert len(msgs) == 2 and "infinite value (b, elpd)" in msgs[0] and "'nan'" in msgs[1]
    fine = Section("x", "x", answers=["an infinite sum, a NaN-free table"],
                   tables=[Table("t", pd.DataFrame({"v": [1.0, np.nan]}))])
    assert inv.printed_numbers_finite([fine]) == []


def test_a_winner_named_inside_the_uncertainty_fires():
    pa, pb = _subset(0.0, seed=1), _subset(0.0, seed=1)
    noise = np.random.default_rng(5).normal(0, 2.0, 40)
    pb["subset"].values["iwae_1000"] = pa["subset"].values["iwae_1000"] - 0.1 + noise - noise.mean()
    table = pd.DataFrame({"iwae_1000": [-120.0, -120.1]}, index=["a", "b"])
    msgs = inv.winner_named_beyond_uncertainty("… the best model is a: 0.10 nats above b …",
                                               {"a": pa, "b": pb}, table, "iwae_1000")
    assert msgs and "within 2 standard errors" in msgs[0]


def test_a_diverged_variational_fit_is_marked_failed_and_not_drawn(data_dir, monkeypatch):
    """A fit that returns (no exception) with an ELBO that fell away from its best: failed in
    the table, no number, no dashed band in the NUTS figure, named in the answer."""
    from probnn.analysis.bayes_regression import result_section
    from probnn.inference import bayes_regression as br
    from probnn.tasks import bayes_regression as tb
    from probnn.tasks.inputs import Inputs
    real = br.fit_bayesian_regression

    def diverging(name, x, y, *, guide="normal", **kw):
        fit = real(name, x, y, guide=guide, **kw)
        if guide == "lowrank":
            n = len(fit.history)
            fit.history = fit.history.assign(elbo=np.r_[np.linspace(-100, -3, n - 2), -40, -45])
        return fit
    monkeypatch.setattr(br, "fit_bayesian_regression", diverging)
    config = tb.Config.preset("quick", chains=2, warmup=5, nuts_draws=5, max_tree_depth=2,
                              loo_warmup=3, loo_draws=4, loo_max_refits=0, draws=10)
    r = tb.run(config, Inputs(data_dir))
    t = r.vi_vs_nuts
    low = t[t["method"] == "lowrank"]
    assert low["failed"].all() and low["error"].str.startswith("diverged").all()
    assert low["elpd_loo"].isna().all() and low["sigma_mean"].isna().all()
    assert not t.loc[t["method"] != "lowrank", "failed"].any(), t["error"].tolist()
    assert all(f.guide.config["kind"] != "lowrank" for f in r.vi)
    section = result_section(r)
    labels = [line.get_label() for p in section.plots if "ribbon" in p.name
              for ax in p.figure.axes for line in ax.lines]
    assert any(l.startswith("AutoNormal") for l in labels)
    assert not any(l.startswith("AutoLowRank") for l in labels)
    text = "\n".join(section.answers)
    assert "AutoLowRankMultivariateNormal failed to fit (diverged" in text
    vi_table = Section("vi", "vi", tables=[t for t in section.tables
                                           if t.name == "bayes-vi-vs-nuts"])
    assert inv.printed_numbers_finite([vi_table]) == []


def test_per_image_estimates_carry_the_holdout_indices_the_bounds_draw_from():
    """comparison_estimates' subset is comparison_subset's, and bounds.images_of draws within it;
    the row's gap is the paired difference of the per-image estimates."""
    import torch

    from probnn.inference.vae import build_vae, comparison_estimates, comparison_subset
    from probnn.tasks import bounds
    torch.manual_seed(0)
    x = torch.rand(60, 1, 28, 28)
    model, guide = build_vae(2, architecture="mlp")
    row, pi = comparison_estimates(model, guide, x, None, k=4, large_k=8, large_k_images=10,
                                   holdout_images=30, seed=7)
    assert len(pi["all"]) == 30 and len(pi["subset"]) == 10
    np.testing.assert_array_equal(pi["subset"].index, comparison_subset(60, 30, 10, 7).numpy())
    assert set(pi["subset"].index) <= set(pi["all"].index)
    gap = paired_difference(pi["subset"], "iwae_8", pi["subset"], "elbo_mc")
    assert row["gap_8"] == pytest.approx(gap.mean) and row["gap_8_se"] == pytest.approx(gap.se)
    assert row["elbo_mc_subset"] == pytest.approx(pi["subset"].values["elbo_mc"].mean())
    picked = bounds.images_of(60, bounds.Config(images=4, within=(30, 10), seed=7))
    assert set(picked.numpy()) <= set(pi["subset"].index)
