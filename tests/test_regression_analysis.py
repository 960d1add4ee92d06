"""Tests for probnn.analysis.regression: dip finding on planted histories, outputs, bounds."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from probnn.analysis import regression as ra
from probnn.analysis.outputs import save
from probnn.inference.regression import RegressionFit, fit_regression
from probnn.models.regression import HeteroscedasticRegression

N, EPOCHS, DIP_EPOCH, DRIVER = 6, 400, 300, 2


def planted_fit(dip: bool = True) -> RegressionFit:
    """A hand-made heteroscedastic record: f close to y with sigma 0.5, except that point
    ``DRIVER`` has sigma 0.05 from epoch 200 and f jumps 1.0 away from it at ``DIP_EPOCH``."""
    x = torch.linspace(0.0, 1.0, N).unsqueeze(-1)
    y = torch.sin(3 * x)
    rng = np.random.default_rng(0)
    f = np.repeat(y[:, 0].numpy()[None], EPOCHS, 0) + 0.01 * rng.standard_normal((EPOCHS, N))
    sigma = np.full((EPOCHS, N), 0.5)
    sigma[199:, DRIVER] = 0.05
    if dip:
        f[DIP_EPOCH - 1, DRIVER] += 1.0
    fit = RegressionFit("heteroscedastic", HeteroscedasticRegression(), x, y, pd.DataFrame(),
                        f.astype(np.float32), sigma.astype(np.float32))
    loglik = fit.pointwise_loglik().mean(axis=1)
    fit.history = pd.DataFrame({"epoch": np.arange(1, EPOCHS + 1), "loss": -loglik,
                                "loglik": loglik, "seconds": np.linspace(0.01, 4.0, EPOCHS)})
    return fit


@pytest.fixture(scope="module")
def trained():
    """Both models really trained for 200 epochs on a tiny synthetic data set."""
    torch.manual_seed(0)
    x = torch.linspace(-2, 2, 12).unsqueeze(-1)
    y = x ** 2 + 0.3 * torch.randn_like(x)
    return [fit_regression(name, x, y, epochs=200, seed=1, progress=False)
            for name in ("homoscedastic", "heteroscedastic")]


def test_dip_analysis_finds_planted_dip_and_driver():
    fit = planted_fit()
    dip = ra.dip_analysis(fit)
    assert dip.found
    assert dip.low_epoch == DIP_EPOCH
    assert dip.low_loglik == pytest.approx(fit.history["loglik"].iloc[DIP_EPOCH - 1])
    assert dip.driver == DRIVER
    assert dip.baseline_epochs == (101, DIP_EPOCH - 1)  # 200 epochs back, but not before 101
    # the driver's jump costs (1.0 / 0.05)^2 / 2 = 200 nats, nearly all of the drop
    assert dip.driver_drop == pytest.approx(200, rel=0.05)
    assert dip.driver_drop / dip.total_drop > 0.95
    assert dip.high_epoch > 100 and dip.high_loglik >= fit.history["loglik"].iloc[100:].max() - 1e-9
    assert dip.low_points.index[0] == DRIVER  # sorted worst first
    assert list(dip.low_points.columns) == ["x", "y", "f", "sigma", "sq_resid", "loglik"]
    assert dip.low_points["loglik"].is_monotonic_increasing
    # the text quotes the measured numbers
    for s in (f"epoch {DIP_EPOCH}", f"{dip.low_loglik:.3f}", f"Point {DRIVER}", "penalty"):
        assert s in dip.text


def test_no_dip_is_reported_not_invented():
    rising = ra.dip_analysis(planted_fit(dip=False), after_epoch=250)
    assert not rising.found and rising.driver is None and "no dip" in rising.text
    too_short = ra.dip_analysis(planted_fit(), after_epoch=EPOCHS)
    assert not too_short.found and too_short.low_epoch is None
    assert isinstance(ra.dip_figure(planted_fit(dip=False), rising), Figure)


def test_pointwise_logliks_at_dip_sum_to_history(trained):
    fit = trained[1]
    dip = ra.dip_analysis(fit, after_epoch=20)  # a short fit has no dip, but still a lowest epoch
    row = dip.low_epoch - 1
    assert dip.low_loglik == pytest.approx(fit.history["loglik"].iloc[20:].min())
    n = fit.x.shape[0]
    assert dip.low_points["loglik"].sum() == pytest.approx(n * fit.history["loglik"].iloc[row], rel=1e-4)
    assert fit.pointwise_loglik().sum(axis=1) == pytest.approx(n * fit.history["loglik"].to_numpy(), rel=1e-4)


def test_record_free_fit_has_no_dip_but_still_summarises():
    x = torch.linspace(0, 1, 5).unsqueeze(-1)
    fit = fit_regression("heteroscedastic", x, 2 * x, epochs=3, progress=False, record=False)
    dip = ra.dip_analysis(fit)
    assert not dip.found and "record" in dip.text
    row = ra.summary_table([fit]).loc["heteroscedastic"]
    assert row["sigma_min"] <= row["sigma_median"] <= row["sigma_max"]
    assert math.isnan(row["lowest_loglik_after_100"])


def test_summary_table(trained):
    table = ra.summary_table(trained)
    assert list(table.index) == ["homoscedastic", "heteroscedastic"]
    homo = table.loc["homoscedastic"]
    assert homo["sigma_min"] == homo["sigma_max"]
    assert homo["epochs"] == 200
    assert homo["final_loglik"] == pytest.approx(trained[0].history["loglik"].iloc[-1])
    late = trained[1].history["loglik"].iloc[100:]
    assert table.loc["heteroscedastic", "lowest_loglik_after_100"] == pytest.approx(late.min())
    assert (table["sup_loglik_rich_f"] == math.inf).all()  # 12 distinct x values


def test_max_loglik_supremum_with_shared_x():
    # x=0 holds y=1 and 3: the best f(0) is 2, RSS = 2, so homoscedastic sigma^2 = 2/4
    sup = ra.max_loglik_supremum([0, 0, 1, 2], [1, 3, 0, 0])
    assert sup["homoscedastic"] == pytest.approx(-0.5 * math.log(2 * math.pi * 0.5) - 0.5)
    assert sup["heteroscedastic"] == math.inf
    both_spread = ra.max_loglik_supremum([0, 0, 1, 1], [1, 3, 0, 2])  # sigma^2 = 1 at each x
    assert both_spread["heteroscedastic"] == pytest.approx(-0.5 * math.log(2 * math.pi) - 0.5)
    assert ra.max_loglik_supremum([0, 1], [5, 7]) == {"homoscedastic": math.inf, "heteroscedastic": math.inf}
    text = ra.max_loglik_check([0, 0, 1, 2], [1, 3, 0, 0])
    assert "3 distinct x values" in text and "x=0 holds 2 points" in text


def test_figures(trained):
    fig = ra.ribbon_plot(trained[1], num=50)
    ax = fig.axes[0]
    assert "heteroscedastic" in ax.get_title()
    assert f"{trained[1].history['loglik'].iloc[-1]:.3f}" in ax.get_title()
    assert ra.loglik_curves(trained).axes[0].get_ylim() == (-10, 0)
    fit = planted_fit()
    assert len(ra.dip_figure(fit, ra.dip_analysis(fit)).axes) == 3


def test_regression_sections_save_every_file(tmp_path, trained):
    fits = [trained[0], planted_fit()]
    written = save(ra.regression_sections(fits), tmp_path / "out", "summary.txt")
    names = {p.name for p in written}
    expected = {"ribbon_homoscedastic.png", "ribbon_heteroscedastic.png", "loglik.png", "dip.png",
                "dip_low.csv", "dip_high.csv", "history_homoscedastic.csv",
                "history_heteroscedastic.csv", "record_homoscedastic.npz",
                "record_heteroscedastic.npz", "summary.csv", "summary.txt"}
    assert names == expected
    assert all(p.is_file() and p.stat().st_size > 0 for p in written)
    assert list(pd.read_csv(tmp_path / "out" / "history_homoscedastic.csv").columns) == ["epoch", "loglik", "seconds"]
    assert pd.read_csv(tmp_path / "out" / "dip_low.csv", index_col="point").index[0] == DRIVER
    text = (tmp_path / "out" / "summary.txt").read_text()
    assert "+∞" in text and ra.MAX_LOGLIK_ANSWER in text
    assert f"epoch {DIP_EPOCH}" in text and "-1.811" in text and "-0.525" in text
