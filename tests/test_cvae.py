"""The label-conditioned VAE: label handling, marginal likelihood, classifier, checkpoints."""
import math

import numpy as np
import pytest
import torch
from pyro.infer import Predictive

from probnn.inference.cvae import (CVAEEvaluation, CVAEResults, class_posterior,
                                   conditional_from_joint, cvae_results, digit_samples,
                                   evaluate_cvae, label_log_joint, marginal_log_likelihood,
                                   style_sets, style_transfer)
from probnn.inference.evaluation import holdout_bounds
from probnn.inference.vae import build_vae, load_vae, train_vae
from probnn.models.cvae import ConditionalVAE


@pytest.fixture
def labelled():
    g = torch.Generator().manual_seed(2)
    return torch.rand(20, 1, 28, 28, generator=g), torch.arange(20) % 10


@pytest.mark.parametrize("bad, match", [
    (torch.tensor([0.0, 1.0]), "integers"),
    (torch.tensor([3, 10]), r"0\.\.9"),
    (torch.tensor([-1, 2]), r"0\.\.9"),
    (torch.tensor([[1, 2]]), "1-D"),
])
def test_bad_labels_are_clear_errors(bad, match):
    model, guide = build_vae(2, conditional=True, architecture="mlp")
    with pytest.raises(ValueError, match=match):
        model(None, bad)


def test_label_count_must_match_images(labelled):
    x, y = labelled
    model, guide = build_vae(2, conditional=True, architecture="mlp")
    with pytest.raises(ValueError, match="3 labels for 20 images"):
        model(x, y[:3])
    with pytest.raises(ValueError, match="3 labels for 20 images"):
        guide(x, y[:3])


def test_generation_follows_the_given_labels():
    model, _ = build_vae(2, conditional=True, architecture="mlp")
    y = torch.tensor([7, 7, 1])
    out = Predictive(model, num_samples=4, return_sites=["y", "x"])(None, y)
    assert out["x"].shape == (4, 3, 1, 28, 28)
    assert torch.equal(out["y"], y.expand(4, 3))
    free = Predictive(model, num_samples=1, return_sites=["y"])(None, None, 500)["y"]
    assert free.shape == (1, 500) and len(free.unique()) == 10  # y ~ uniform over the digits


def test_style_helpers_shapes(labelled):
    x, y = labelled
    model, guide = build_vae(3, conditional=True)
    assert style_sets(model, 4)[0].shape == (4, 10, 1, 28, 28)
    assert digit_samples(model, 10)[1].shape == (10, 10, 1, 28, 28)
    probs, samples = style_transfer(model, guide, x[:2], y[:2])
    assert probs.shape == (2, 10, 1, 28, 28)
    # the same style for every label: within a row only the label changes the decoder input
    z_row = probs[0]
    assert not torch.allclose(z_row[0], z_row[1])


def test_marginal_is_logsumexp_of_conditionals():
    rng = np.random.default_rng(0)
    cond = rng.normal(-100, 5, size=(7, 10))
    expected = np.array([math.log(sum(math.exp(c - 100) for c in row) / 10) + 100 for row in cond])
    np.testing.assert_allclose(marginal_log_likelihood(cond), expected, rtol=1e-12)
    joint = cond + math.log(0.1)
    np.testing.assert_allclose(conditional_from_joint(joint), cond)


def test_class_posterior_is_a_distribution():
    cond = np.array([[-100.0] * 10, [-100.0] * 9 + [-90.0]])
    post = class_posterior(cond)
    np.testing.assert_allclose(post.sum(1), 1.0)
    assert (post >= 0).all()
    np.testing.assert_allclose(post[0], 0.1)
    assert post[1].argmax() == 9 and post[1, 9] > 0.999


def test_label_log_joint_and_evaluation(labelled):
    x, y = labelled
    model, guide = build_vae(2, conditional=True, architecture="mlp")
    lj = label_log_joint(model, guide, x[:6], 8)
    assert lj.shape == (6, 10) and np.isfinite(lj).all()
    res = evaluate_cvae(model, guide, x, y, k=8, large_k=16, large_k_images=5, classify_images=6)
    row = res.row
    assert res.confusion.sum() == 6 and 0 <= row["accuracy"] <= 1
    np.testing.assert_allclose(res.class_posterior.sum(1), 1.0)
    # log p(x) >= log p(x, y) = log p(x | y) - log 10 for every y: holds for the estimates too
    assert row["marginal_iwae_8"] >= row["iwae_8_classified"] - math.log(10) - 1e-6
    assert 0 <= row["active_units"] <= 2


def test_cvae_results_are_typed(labelled):
    x, y = labelled
    model, guide = build_vae(2, conditional=True, architecture="mlp")
    res = cvae_results(model, guide, x, y, k=4, large_k=None, classify_images=5)
    assert isinstance(res, CVAEResults) and isinstance(res.evaluation, CVAEEvaluation)
    assert res.styles[0].shape == (4, 10, 1, 28, 28) and res.digits[1].shape == (10, 10, 1, 28, 28)
    originals, labels, probs = res.transfer
    assert labels.tolist() == [3, 7] and probs.shape == (2, 10, 1, 28, 28)
    ev = res.evaluation
    assert ev.confusion.shape == (10, 10) and ev.confusion.sum() == 5
    assert ev.class_posterior.shape == (5, 10) and ev.labels.shape == (5,)
    assert ev.row["images"] == 20 and "iwae_4" in ev.row


def test_cvae_bounds_are_the_shared_holdout_bounds_shifted(labelled):
    """evaluate_cvae's bounds are holdout_bounds' on (x, y) plus log 10 (log p(x, y) ->
    log p(x | y)); kl and the unreliable fractions are not shifted."""
    x, y = labelled
    model, guide = build_vae(2, conditional=True, architecture="mlp")
    row = evaluate_cvae(model, guide, x, y, k=8, large_k=16, large_k_images=5,
                        classify_images=6, seed=5).row
    joint = holdout_bounds(model, guide, (x, y), k=8, large_k=16, large_k_images=5, seed=5)
    for key in ("elbo", "elbo_mc", "reconstruction", "iwae_8", "iwae_8_subset", "iwae_16"):
        assert row[key] == pytest.approx(joint[key] + math.log(10), abs=1e-9), key
    for key in ("kl", "unreliable_16", "images", "large_k_images"):
        assert row[key] == joint[key], key


def test_seeds_and_checkpoints(labelled, tmp_path):
    x, y = labelled
    kw = dict(x=x, y=y, conditional=True, epochs=2, batch_size=8, architecture="mlp", progress=False)
    a = train_vae(2, seed=1, **kw)
    b = train_vae(2, seed=1, **kw)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    ckpt = tmp_path / "c.ckpt"
    train_vae(2, seed=1, checkpoint=ckpt, **{**kw, "epochs": 1})
    c = train_vae(2, seed=1, checkpoint=ckpt, resume=True, **kw)
    np.testing.assert_array_equal(a.history["loss"], c.history["loss"])
    model, guide = load_vae(ckpt)
    assert isinstance(model, ConditionalVAE)


def test_conditional_training_needs_labels(labelled):
    x, _ = labelled
    with pytest.raises(ValueError, match="pass y"):
        train_vae(2, x=x, conditional=True, epochs=1, progress=False)
