"""The image VAE: likelihood formula, shapes, seeds, checkpoints (tiny synthetic images)."""
import numpy as np
import pyro
import pyro.poutine as poutine
import pytest
import torch
from pyro.infer import Predictive

from probnn.inference.checkpoint import CheckpointError
from probnn.inference.train import TensorBatches
from probnn.inference.vae import (BinarizedBatches, build_vae, decode, interpolate, load_vae,
                                  reconstruct, sample_prior, train_vae, vae_name)
from probnn.models.vae import VAE


@pytest.fixture
def images():
    g = torch.Generator().manual_seed(5)
    x = torch.rand(24, 1, 28, 28, generator=g)
    x[:, :, :4] = 0.0  # exact 0 and 1 pixels as in MNIST
    x[:, :, -4:] = 1.0
    return x


def coursework_log_lik(x, logits):
    """The coursework's formula: sum x log p + (1 - x) log(1 - p), p = sigmoid(logits)."""
    p = torch.sigmoid(logits.double())
    x = x.double()
    return (x * torch.log(p) + (1 - x) * torch.log1p(-p)).sum((-1, -2, -3))


@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_model_log_prob_is_the_coursework_bernoulli_formula(images, architecture):
    model, _ = build_vae(3, architecture=architecture)
    z = torch.randn(len(images), 3)
    tr = poutine.trace(poutine.condition(model, data={"z": z})).get_trace(images)
    tr.compute_log_prob()
    logits = model.decoder(z)
    expected = coursework_log_lik(images, logits)
    torch.testing.assert_close(tr.nodes["x"]["log_prob"].double(), expected, rtol=1e-5, atol=1e-3)


def test_saturated_logits_give_finite_log_likelihood():
    from probnn.models.vae import pixel_distribution
    logits = torch.tensor([200.0, -200.0, 50.0, -50.0]).reshape(1, 1, 2, 2)
    x = torch.tensor([0.0, 1.0, 0.3, 1.0]).reshape(1, 1, 2, 2)
    lp = pixel_distribution(logits, "bernoulli").log_prob(x)
    assert torch.isfinite(lp).all()
    # x=0 under logit 200 costs 200 nats, x=1 under -200 another 200, 0.7*50, 50
    assert lp.item() == pytest.approx(-(200 + 200 + 0.7 * 50 + 50), rel=1e-4)


def test_continuous_bernoulli_is_a_normalised_density(images):
    from probnn.models.vae import pixel_distribution
    logits = torch.randn(2, 1, 28, 28)
    lp = pixel_distribution(logits, "continuous_bernoulli").log_prob(images[:2])
    ref = torch.distributions.ContinuousBernoulli(logits=logits).log_prob(images[:2]).sum((-1, -2, -3))
    torch.testing.assert_close(lp, ref)
    # one pixel: the density integrates to 1 over [0, 1]
    grid = torch.linspace(0, 1, 20001)
    dens = torch.distributions.ContinuousBernoulli(logits=torch.tensor(1.7)).log_prob(grid).exp()
    assert torch.trapezoid(dens, grid).item() == pytest.approx(1.0, abs=1e-4)


def test_shapes_and_generation(images):
    model, guide = build_vae(4)
    assert model(images).shape == images.shape
    assert model(size=5).shape == (5, 1, 28, 28)
    z = guide(images)
    assert z.shape == (len(images), 4)
    samples = Predictive(model, num_samples=3, return_sites=["x", "z"])(None, 6)
    assert samples["x"].shape == (3, 6, 1, 28, 28) and samples["z"].shape == (3, 6, 4)
    probs, bits = reconstruct(model, guide, images[:5], 3)
    assert probs.shape == bits.shape == (3, 5, 1, 28, 28)
    assert set(bits.unique().tolist()) <= {0.0, 1.0} and 0 <= probs.min() and probs.max() <= 1
    assert sample_prior(model, 12)[0].shape == (12, 1, 28, 28)
    assert interpolate(model, guide, images[0], images[1], 12)[0].shape == (12, 1, 28, 28)


def test_bad_image_shape_is_a_clear_error():
    model, guide = build_vae(4)
    with pytest.raises(ValueError, match=r"\(n, 1, 28, 28\)"):
        model(torch.rand(3, 28, 28))
    with pytest.raises(ValueError, match="needs images"):
        guide(None)


def test_binarized_batches_are_binary_and_follow_grey_levels(images):
    torch.manual_seed(0)
    batches = list(BinarizedBatches((images,), batch_size=10))
    assert [len(b[0]) for b in batches] == [10, 10, 4]
    allx = torch.cat([b[0] for b in batches])
    assert set(allx.unique().tolist()) <= {0.0, 1.0}
    assert allx.mean().item() == pytest.approx(images.mean().item(), abs=0.01)


def test_same_seed_same_training(images, tmp_path):
    a = train_vae(2, x=images, epochs=2, batch_size=8, seed=3, progress=False)
    b = train_vae(2, x=images, epochs=2, batch_size=8, seed=3, progress=False)
    c = train_vae(2, x=images, epochs=2, batch_size=8, seed=4, progress=False)
    np.testing.assert_array_equal(a.history["loss"], b.history["loss"])
    assert not np.array_equal(a.history["loss"], c.history["loss"])
    assert a.history["loss"].iloc[-1] < a.history["loss"].iloc[0]


def test_checkpoint_round_trip_and_resume(images, tmp_path):
    ckpt = tmp_path / "vae.ckpt"
    full = train_vae(2, x=images, epochs=3, batch_size=8, seed=1, progress=False)
    train_vae(2, x=images, epochs=1, batch_size=8, seed=1, progress=False, checkpoint=ckpt)
    resumed = train_vae(2, x=images, epochs=3, batch_size=8, seed=1, progress=False,
                        checkpoint=ckpt, resume=True)
    np.testing.assert_array_equal(full.history["loss"], resumed.history["loss"])
    model, guide = load_vae(ckpt)
    for name, t in full.model.state_dict().items():
        assert torch.equal(t, model.state_dict()[name]), name
    z = torch.randn(4, 2)
    torch.testing.assert_close(decode(model, z)[0], decode(full.model, z)[0])


def test_checkpoint_for_another_latent_dim_fails_clearly(images, tmp_path):
    ckpt = tmp_path / "d4.ckpt"
    train_vae(4, x=images[:8], epochs=1, batch_size=8, progress=False, checkpoint=ckpt)
    with pytest.raises(CheckpointError, match=r"latent_dim=4.*latent_dim=20|latent_dim=20.*latent_dim=4"):
        load_vae(ckpt, latent_dim=20)
    from probnn.inference.checkpoint import load_checkpoint
    m20, g20 = build_vae(20)
    with pytest.raises(CheckpointError, match="latent_dim"):
        load_checkpoint(ckpt, m20, g20)


def test_iwae_training_objective_trains(images):
    fit = train_vae(2, x=images, epochs=3, batch_size=8, elbo="iwae", num_particles=4,
                    progress=False, architecture="mlp")
    assert np.all(np.isfinite(fit.history["loss"]))
    assert fit.history["loss"].iloc[-1] < fit.history["loss"].iloc[0]


def test_vae_names():
    assert vae_name(VAE(4)) == "vae-d4"
    assert vae_name(VAE(20, architecture="mlp")) == "vae-mlp-d20"
    assert vae_name(VAE(4, likelihood="continuous_bernoulli", binarize=True)) == "vae-d4-cb-bin"
