"""Tests for probnn.analysis.vae on small synthetic images, bounds and result dicts."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from probnn.analysis import images as grids
from probnn.analysis import vae as va
from probnn.analysis.comparison import comparison_answer

DIGITS = 10
PER_DIGIT = 8


def image_axes(container) -> list:
    """The images a grid figure (or panel) shows, row by row."""
    return grids.grid_cells(container)


def planted_images(seed: int = 0):
    """Images whose ink grows with the digit class: class c has 20 + 10c ink pixels (plus a
    per-image 0-4 extra) and a random number of grey pixels, so ink is known exactly."""
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(DIGITS), PER_DIGIT)
    images = np.zeros((len(labels), 1, 28, 28))
    ink = 20 + 10 * labels + rng.integers(0, 5, len(labels))
    for i, (n, g) in enumerate(zip(ink, rng.integers(0, 30, len(labels)))):
        flat = images[i, 0].reshape(-1)  # a view: writes land in the image
        flat[:n] = 1.0
        flat[n:n + g] = 0.5
    return images, labels, ink


def test_image_grid_places_every_image_and_leaves_gaps_empty():
    images = np.random.default_rng(0).random((7, 1, 28, 28))
    fig = grids.image_grid(images, 2, 4, row_labels=["a", "b"], titles=[str(i) for i in range(7)])
    assert isinstance(fig, Figure)
    cells = image_axes(fig)
    assert len(cells) == 7
    assert [c.title for c in cells] == [str(i) for i in range(7)]
    assert [(c.row, c.col) for c in cells][3:5] == [(0, 3), (1, 0)]
    assert cells[0].row_label == "a" and cells[4].row_label == "b"
    # one canvas: image 3 sits at row 0, column 3, and the eighth cell is a transparent gap
    canvas = np.ma.filled(fig.axes[0].images[0].get_array(), np.nan)
    top = int(np.argmax(~np.isnan(canvas[:, 0])))       # first canvas row under the titles
    x3 = 3 * 30
    assert np.allclose(canvas[top:top + 28, x3:x3 + 28], images[3, 0])
    assert np.isnan(canvas[-28:, -28:]).all()
    texts = [t.get_text() for t in fig.axes[0].texts]
    assert {"a", "b"} <= set(texts) and "6" in texts
    # (N, 28, 28) tensors work too
    assert len(image_axes(grids.image_grid(torch.rand(3, 28, 28), 1, 3))) == 3
    with pytest.raises(ValueError):
        grids.image_grid(images, 2, 3)


def test_reconstruction_noise_prior_interpolation_figures_layout():
    rng = np.random.default_rng(1)
    n, r = 3, 2
    fig = va.reconstruction_figure(rng.random((n, 1, 28, 28)), rng.random((r, n, 1, 28, 28)),
                                   rng.random((r, n, 1, 28, 28)), [59289, 1, 2])
    axes = image_axes(fig)
    assert len(axes) == n * (1 + 2 * r)
    assert axes[0].row_label == "image 59289"
    assert "original" in [t.get_text() for t in fig.axes[0].texts]

    sds = [0.1, 0.2, 0.4]
    fig = va.noise_figure(rng.random((3, 1, 28, 28)), rng.random((1, 3, 1, 28, 28)),
                          rng.random((3, 1, 28, 28)), sds, [-100.0, -150.25, -300.0])
    axes = image_axes(fig)
    assert len(axes) == 9
    assert axes[0].title == "sd=0.1\n-100.0 nats" and axes[1].title.startswith("sd=0.2")

    fig = va.prior_samples_figure(rng.random((12, 1, 28, 28)), rng.random((12, 1, 28, 28)))
    assert len(image_axes(fig)) == 24
    fig = va.prior_samples_figure(rng.random((14, 1, 28, 28)), rng.random((14, 1, 28, 28)))
    assert len(image_axes(fig)) == 28  # wraps to 2 rows of each kind, gaps removed

    fig = va.interpolation_figure(rng.random((12, 1, 28, 28)), rng.random((12, 1, 28, 28)))
    axes = image_axes(fig)
    assert len(axes) == 24
    assert axes[0].title == "image 28001" and axes[11].title == "image 43876"


def test_likely_unlikely_figure_picks_the_extreme_images_in_order():
    rng = np.random.default_rng(2)
    images = rng.random((40, 1, 28, 28))
    bounds = rng.normal(-100, 20, 40)
    k = 6
    pareto = np.zeros(40)
    pareto[np.argmax(bounds)] = 0.9
    fig = va.likely_unlikely_figure(images, bounds, k=k, pareto_k=pareto)
    most, least = (image_axes(panel) for panel in fig.subfigs)
    assert len(most) == len(least) == k
    top, bottom = np.sort(bounds)[::-1][:k], np.sort(bounds)[:k]
    assert [c.title for c in most] == [f"{top[0]:.1f}*"] + [f"{b:.1f}" for b in top[1:]]
    assert [c.title for c in least] == [f"{b:.1f}" for b in bottom]
    assert np.allclose(most[0].image, images[np.argmax(bounds), 0])
    assert np.allclose(least[0].image, images[np.argmin(bounds), 0])
    # a precomputed order gives the same picks
    again = va.likely_unlikely_figure(images, bounds, np.argsort(bounds), k=k)
    assert [c.title for c in image_axes(again.subfigs[1])] == [f"{b:.1f}" for b in bottom]


def test_ink_pixels_counts_pixels_above_threshold():
    images = np.zeros((3, 1, 28, 28))
    images[0, 0, :5, :4] = 1.0            # 20 ink pixels
    images[1, 0, 10, :] = 0.6             # 28 just above 0.5
    images[1, 0, 11, :] = 0.5             # exactly 0.5 is not ink
    images[2, 0, 0, :3] = 0.4             # grey, below threshold
    assert va.ink_pixels(images).tolist() == [20, 28, 0]
    assert va.ink_pixels(torch.tensor(images[:, 0]), threshold=0.3).tolist() == [20, 56, 3]


def test_per_image_counts_are_the_same_in_chunks(monkeypatch):
    """The counts go chunk by chunk (memory of one chunk, whatever the number of images);
    chunk boundaries change nothing, for tensors and arrays, and one image is one count."""
    from probnn.analysis import likelihood
    images = np.random.default_rng(0).random((10, 1, 28, 28)).astype(np.float32)
    whole = va.ink_pixels(images), likelihood._grey_pixels(images)
    monkeypatch.setattr(likelihood, "CHUNK_IMAGES", 3)
    assert np.array_equal(va.ink_pixels(images), whole[0])
    assert np.array_equal(va.ink_pixels(torch.tensor(images)), whole[0])
    assert np.array_equal(likelihood._grey_pixels(images.reshape(10, 784)), whole[1])
    assert va.ink_pixels(images[4, 0]).tolist() == [whole[0][4]]
    assert len(va.ink_pixels(images[:0])) == 0


def test_likelihood_features_table_per_class_means():
    images, labels, ink = planted_images()
    bounds = -2.0 * ink + 5.0 * labels
    table = va.likelihood_features_table(bounds, labels, images)
    assert table.index.tolist() == list(range(DIGITS))
    assert (table["count"] == PER_DIGIT).all()
    for d in range(DIGITS):
        sel = labels == d
        assert table.at[d, "mean_bound"] == pytest.approx(bounds[sel].mean(), abs=0.006)
        assert table.at[d, "median_bound"] == pytest.approx(np.median(bounds[sel]), abs=0.006)
        assert table.at[d, "std_bound"] == pytest.approx(bounds[sel].std(ddof=1), abs=0.006)
        assert table.at[d, "mean_ink"] == pytest.approx(ink[sel].mean(), abs=0.06)


def test_correlations_and_answer_follow_the_planted_sign():
    images, labels, ink = planted_images()
    less_ink = va.likelihood_answer(-ink.astype(float), labels, images)
    more_ink = va.likelihood_answer(ink.astype(float), labels, images)

    corr = va.likelihood_feature_correlations(-ink.astype(float), images, labels)
    assert corr["ink_pearson"] == pytest.approx(-1.0)
    assert corr["ink_spearman"] == pytest.approx(-1.0)
    assert corr["ink_spearman_within_digit"] == pytest.approx(-1.0)
    assert np.isfinite(corr["grey_spearman"])

    assert "digit 0 has the highest mean" in less_ink and "digit 9 the lowest" in less_ink
    assert "negative (Spearman ρ = -1.00" in less_ink
    assert "Images with less ink get higher likelihood" in less_ink
    assert "the class ranking goes the same way" in less_ink

    assert "digit 9 has the highest mean" in more_ink and "digit 0 the lowest" in more_ink
    assert "positive (Spearman ρ = +1.00" in more_ink
    assert "Images with more ink get higher likelihood" in more_ink
    assert "less ink get higher" not in more_ink and "more ink get higher" not in less_ink


def test_likelihood_answer_names_a_planted_class_against_the_ink_trend():
    images, labels, ink = planted_images()
    bounds = -ink.astype(float)
    bounds[labels == 0] -= 500.0  # digit 0 is least likely although it has the least ink
    text = va.likelihood_answer(bounds, labels, images)
    assert "digit 1 has the highest mean" in text and "digit 0 the lowest" in text
    assert "negative" in text
    assert "goes against the overall correlation" in text


def test_likelihood_features_figure_has_box_and_scatter_panels():
    images, labels, ink = planted_images()
    fig = va.likelihood_features_figure(-ink.astype(float), labels, images)
    left, right = fig.axes[:2]
    assert [t.get_text() for t in left.get_xticklabels()] == [str(d) for d in range(DIGITS)]
    assert "-1.00" in right.get_title()


def evaluation(elbo: float, iwae100: float, iwae1000: float, kl: float, active: int) -> dict:
    return {"images": 100, "elbo": elbo - 0.3, "elbo_mc": elbo, "reconstruction": elbo - kl,
            "kl": kl, "iwae_100": iwae100, "unreliable_100": 0.0, "iwae_1000": iwae1000,
            "unreliable_1000": 0.02, "active_units": active}


@pytest.fixture
def rows() -> dict[str, dict]:
    return {
        "conv d=4": evaluation(-100.0, -97.0, -96.5, 10.0, 4),
        # the best model by IWAE has the worst ELBO: a large variational gap
        "conv d=20": evaluation(-102.0, -94.0, -93.0, 20.0, 12),
        "PyTorch example (MLP d=20)": evaluation(-101.0, -98.0, -97.9, 25.0, 15),
    }


def test_comparison_table_orders_and_rounds_columns(rows):
    rows["conv d=4"]["train_elbo"] = -95.123456
    table = va.comparison_table(rows)
    assert table.index.tolist() == list(rows)
    assert table.columns.tolist() == ["images", "elbo", "elbo_mc", "reconstruction", "kl",
                                      "iwae_100", "iwae_1000", "active_units", "unreliable_100",
                                      "unreliable_1000", "train_elbo"]
    assert table.at["conv d=4", "train_elbo"] == -95.12
    assert table.at["conv d=4", "elbo"] == -100.3
    assert table["active_units"].dtype.kind == "i"
    assert pd.isna(table.at["conv d=20", "train_elbo"])


def test_comparison_answer_names_the_best_model_and_the_gaps(rows):
    """Without per-image estimates no winner is named: the uncertainty is unknown."""
    text = comparison_answer(va.comparison_table(rows))
    assert "conv d=20 scores highest, 3.50 nats above conv d=4" in text
    assert "no model is named better" in text
    assert "conv d=20: ELBO -102.00, gap 9.00" in text
    assert "largest for conv d=20 (9.00)" in text and "no per-image estimates" in text
    assert "Ranked by ELBO instead, conv d=4 would come first" in text
    assert "rises for every model" in text
    assert "PyTorch example (MLP d=20) puts the most information" in text

    rows["conv d=4"]["iwae_1000"] = -90.0
    text = comparison_answer(va.comparison_table(rows))
    assert "conv d=4 scores highest" in text
    assert "The ELBO also ranks conv d=4 highest" in text


def test_comparison_answer_flags_a_misleading_training_elbo(rows):
    for name, train in zip(rows, (-90.0, -99.0, -98.0)):
        rows[name]["train_elbo"] = train
    text = comparison_answer(va.comparison_table(rows))
    assert "Ranked by training ELBO, conv d=4 would come first, not conv d=20" in text


def test_curve_figures():
    ks = [1, 10, 100, 1000]
    fig = va.bound_vs_k_figure(ks, [[-100, -98, -97, -96.5], [-102, -97, -95, -94]],
                               stderrs=np.full((2, 4), 0.1), labels=["a", "b"])
    ax = fig.axes[0]
    assert ax.get_xscale() == "log" and len(ax.get_legend().get_texts()) == 2
    hist = {name: pd.DataFrame({"epoch": [1, 2, 3], "elbo": [-150.0, -120.0, v]})
            for name, v in (("d=4", -110.0), ("d=20", -105.0))}
    ax = va.history_figure(hist).axes[0]
    assert len(ax.lines) == 2
    assert np.allclose(ax.lines[1].get_ydata(), [-150, -120, -105])


def test_comparison_answer_compares_k_on_the_same_images():
    from probnn.analysis.vae import comparison_table
    rows = {"a": {"images": 100, "elbo": -110.0, "elbo_mc": -110.0, "reconstruction": -100.0,
                  "kl": 10.0, "iwae_100": -100.0, "iwae_1000": -104.0, "iwae_100_subset": -104.5,
                  "active_units": 4}}
    text = comparison_answer(comparison_table(rows))
    assert "rises for every model" in text  # -104.5 -> -104.0 on the same images
