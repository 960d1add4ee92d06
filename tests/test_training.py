"""The SVI training loop: objective, determinism, checkpoints and exact resume, errors, records."""
from __future__ import annotations

import copy
import math

import numpy as np
import pandas as pd
import pyro
import pyro.distributions as dist
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from pyro.nn import PyroModule

import probnn.inference.train as train_mod
from probnn.guides.regression import MaximumLikelihoodGuide
from probnn.inference.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from probnn.inference.elbos import make_elbo
from probnn.inference.regression import fit_regression
from probnn.inference.train import LossModule, TensorBatches, TrainingInterrupted, fit
from probnn.models.regression import HeteroscedasticRegression, HomoscedasticRegression

LOG_2PI = math.log(2 * math.pi)
REGRESSION = [HomoscedasticRegression, HeteroscedasticRegression]


# ----------------------------------------------------------------------------- helpers
def history(result) -> pd.DataFrame:
    """The history without the wall-clock column (the only one allowed to differ between runs)."""
    return result.history.drop(columns="seconds")


def assert_same_history(a, b):
    pd.testing.assert_frame_equal(history(a), history(b), check_exact=True)


def assert_same_state(m1: nn.Module, m2: nn.Module):
    s1, s2 = m1.state_dict(), m2.state_dict()
    assert list(s1) == list(s2)
    for k in s1:
        assert torch.equal(s1[k], s2[k]), k


def states_differ(m1: nn.Module, m2: nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))


def make_regression(cls, init_seed: int):
    torch.manual_seed(init_seed)
    return cls(), MaximumLikelihoodGuide()


def gaussian_loglik(y, f, sigma):
    """log N(y | f, sigma^2), elementwise, written out by hand."""
    return -0.5 * ((y - f) / sigma) ** 2 - torch.log(sigma) - 0.5 * LOG_2PI


def by_hand_f_sigma(model, x):
    """f(x) and sigma(x) computed from the model's networks, without ``mean_and_scale``."""
    f = model.f(x)
    if isinstance(model, HomoscedasticRegression):
        sigma = torch.log1p(torch.exp(model.sigma_pre)) * torch.ones_like(f)
    else:
        sigma = torch.log1p(torch.exp(model.g(x)))
    return f, sigma


class LatentModel(PyroModule):
    """Linear-Gaussian latent model: z ~ N(0, I), x ~ N(W z + b, sigma^2 I), in plate "data"."""

    def __init__(self, x_dim: int = 3, z_dim: int = 2):
        super().__init__()
        self.config = {"x_dim": x_dim, "z_dim": z_dim}
        self.z_dim = z_dim
        self.decoder = nn.Linear(z_dim, x_dim)
        self.sigma_pre = nn.Parameter(torch.tensor(0.5))

    def forward(self, x):
        n = x.shape[0]
        with pyro.plate("data", n):
            z = pyro.sample("z", dist.Normal(x.new_zeros(n, self.z_dim), 1.0).to_event(1))
            return pyro.sample("x", dist.Normal(self.decoder(z), F.softplus(self.sigma_pre)).to_event(1),
                               obs=x)


class LatentGuide(PyroModule):
    """q(z | x) = N(A x + c, softplus(s)^2), in plate "data"."""

    def __init__(self, x_dim: int = 3, z_dim: int = 2):
        super().__init__()
        self.config = {"x_dim": x_dim, "z_dim": z_dim}
        self.encoder = nn.Linear(x_dim, z_dim)
        self.s = nn.Parameter(torch.zeros(z_dim))

    def forward(self, x):
        with pyro.plate("data", x.shape[0]):
            pyro.sample("z", dist.Normal(self.encoder(x), F.softplus(self.s)).to_event(1))


def make_latent(init_seed: int, z_dim: int = 2):
    torch.manual_seed(init_seed)
    return LatentModel(z_dim=z_dim), LatentGuide(z_dim=z_dim)


@pytest.fixture
def latent_data():
    g = torch.Generator().manual_seed(7)
    z = torch.randn(50, 2, generator=g)
    w = torch.tensor([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.7]])
    return (z @ w.T + 0.1 * torch.randn(50, 3, generator=g),)


class _InterruptAfter(train_mod._SigintFlag):
    """A Ctrl-C flag that reports a hit once it has been checked ``steps`` times (once per step)."""

    def __init__(self, steps: int):
        self.steps, self.reads = steps, 0
        super().__init__()

    @property
    def hit(self):
        self.reads += 1
        return self.reads >= self.steps

    @hit.setter
    def hit(self, value):  # the base class initialises the flag to False
        pass


def interrupt_after(monkeypatch, steps: int):
    monkeypatch.setattr(train_mod, "_SigintFlag", lambda: _InterruptAfter(steps))


# ----------------------------------------------------------------------------- (a) objective
@pytest.mark.parametrize("cls", REGRESSION)
def test_ml_elbo_is_gaussian_log_likelihood(cls):
    model, guide = make_regression(cls, 3)
    x = 2 * torch.randn(25, 1)
    y = 3 * torch.randn(25, 1)
    with torch.no_grad():
        f, sigma = by_hand_f_sigma(model, x)
        pointwise = gaussian_loglik(y, f, sigma)[:, 0]
        total = pointwise.sum()
        for name in ("trace", "meanfield"):
            loss = make_elbo(name).differentiable_loss(model, guide, x, y)
            assert loss.item() == pytest.approx(-total.item(), rel=1e-5, abs=1e-4), name
        loss = LossModule(pyro.infer.Trace_ELBO(), model, guide)(x, y)
        assert loss.item() == pytest.approx(-total.item(), rel=1e-5, abs=1e-4)
        ll = model.log_likelihood(x, y)
    assert ll.shape == (25,)
    torch.testing.assert_close(ll, pointwise, rtol=1e-5, atol=1e-5)
    # and the first epoch's loss in fit is the same thing per data point, at the initial weights
    result = fit(model, guide, (x, y), epochs=1, progress=False)
    assert result.history["loss"].iloc[0] == pytest.approx(-total.item() / 25, rel=1e-5)
    assert result.history["elbo"].iloc[0] == pytest.approx(total.item() / 25, rel=1e-5)


def test_regression_model_shapes_and_validation():
    model = HeteroscedasticRegression()
    x = torch.randn(7, 1)
    assert model(x).shape == (7, 1)  # generates y when not observed
    with pytest.raises(ValueError, match=r"x must have shape \(n, 1\)"):
        model(torch.randn(7))
    with pytest.raises(ValueError, match="y must have the shape of x"):
        model(x, torch.randn(7))


# ----------------------------------------------------------------------------- (b) learning
def test_fit_reduces_loss(tiny_regression):
    x, y = tiny_regression
    model, guide = make_regression(HomoscedasticRegression, 0)
    result = fit(model, guide, (x, y), epochs=300, lr=1e-2, seed=0, progress=False)
    h = result.history
    assert list(h.columns) == ["epoch", "loss", "elbo", "seconds"]
    assert h["epoch"].tolist() == list(range(1, 301))
    np.testing.assert_array_equal(h["elbo"].to_numpy(), -h["loss"].to_numpy())
    assert h["seconds"].is_monotonic_increasing
    first, last = h["loss"].iloc[0], h["loss"].iloc[-1]
    assert last < first - 1.0, (first, last)
    # the fit is decent: noise sd 0.3 means the best mean NLL is about 0.5*log(2*pi*0.09)+0.5 ~ -0.28;
    # a line y = mean(y) gives ~1.6
    assert last < 0.8, last
    assert not model.training and not guide.training  # fit leaves modules in eval mode
    with torch.no_grad():
        f = model.f(x)
    assert torch.mean((f - 2 * x) ** 2).item() < 0.5


# ----------------------------------------------------------------------------- (c) determinism
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_same_seed_same_run(tiny_regression, jit):
    x, y = tiny_regression
    runs = []
    for _ in range(2):
        model, guide = make_regression(HeteroscedasticRegression, 5)
        runs.append((model, fit(model, guide, (x, y), epochs=25, lr=1e-2, seed=11, progress=False, jit=jit)))
    (m1, r1), (m2, r2) = runs
    assert_same_history(r1, r2)
    assert_same_state(m1, m2)
    fresh, _ = make_regression(HeteroscedasticRegression, 5)
    assert states_differ(m1, fresh)  # training did change the weights


def test_seed_controls_latent_sampling(latent_data):
    results = {}
    for seed in (0, 0, 1):
        model, guide = make_latent(2)
        results.setdefault(seed, []).append(
            (model, fit(model, guide, latent_data, epochs=3, batch_size=16, lr=1e-2, seed=seed,
                        progress=False)))
    (m0, r0), (m0b, r0b) = results[0]
    (m1, r1), = results[1]
    assert_same_history(r0, r0b)
    assert_same_state(m0, m0b)
    assert not np.array_equal(r0.history["loss"].to_numpy(), r1.history["loss"].to_numpy())
    assert states_differ(m0, m1)


# ----------------------------------------------------------------------------- (d) exact resume
def test_resume_full_batch_equals_uninterrupted(tiny_regression, tmp_path):
    x, y = tiny_regression
    n_epochs, kw = 20, dict(lr=1e-2, seed=0, progress=False, record=("f", "sigma"))
    model_a, guide_a = make_regression(HeteroscedasticRegression, 1)
    run_a = fit(model_a, guide_a, (x, y), epochs=n_epochs, **kw)

    ckpt = tmp_path / "run.ckpt"
    model_b, guide_b = make_regression(HeteroscedasticRegression, 1)
    half = fit(model_b, guide_b, (x, y), epochs=n_epochs // 2, checkpoint=ckpt, checkpoint_every=3, **kw)
    assert ckpt.is_file() and half.checkpoint == ckpt and len(half.history) == n_epochs // 2
    assert not (tmp_path / "run.ckpt.tmp").exists()
    # fresh modules with other initial weights: everything must come from the checkpoint
    model_c, guide_c = make_regression(HeteroscedasticRegression, 99)
    run_c = fit(model_c, guide_c, (x, y), epochs=n_epochs, checkpoint=ckpt, resume=True, **kw)
    assert run_c.resumed_from_epoch == n_epochs // 2
    assert_same_history(run_a, run_c)
    assert_same_state(model_a, model_c)
    for site in ("f", "sigma"):
        assert run_c.records[site].shape == (n_epochs, len(x), 1)
        np.testing.assert_array_equal(run_a.records[site], run_c.records[site])
    # resuming a finished run trains no further
    model_d, guide_d = make_regression(HeteroscedasticRegression, 98)
    run_d = fit(model_d, guide_d, (x, y), epochs=n_epochs, checkpoint=ckpt, resume=True, **kw)
    assert run_d.resumed_from_epoch == n_epochs
    assert_same_history(run_a, run_d)
    assert_same_state(model_a, model_d)


def test_resume_without_checkpoint_file_starts_fresh(tiny_regression, tmp_path):
    x, y = tiny_regression
    model_a, guide_a = make_regression(HomoscedasticRegression, 1)
    run_a = fit(model_a, guide_a, (x, y), epochs=5, lr=1e-2, seed=0, progress=False)
    model_b, guide_b = make_regression(HomoscedasticRegression, 1)
    run_b = fit(model_b, guide_b, (x, y), epochs=5, lr=1e-2, seed=0, progress=False,
                checkpoint=tmp_path / "new.ckpt", resume=True)
    assert run_b.resumed_from_epoch == 0
    assert_same_history(run_a, run_b)
    assert_same_state(model_a, model_b)
    assert (tmp_path / "new.ckpt").is_file()


LATENT_KW = dict(epochs=4, batch_size=16, lr=2e-2, seed=0, progress=False)  # 50 points: 4 batches/epoch


@pytest.fixture
def uninterrupted_latent(latent_data):
    model, guide = make_latent(1)
    return model, fit(model, guide, latent_data, **LATENT_KW)


@pytest.mark.parametrize("steps, epoch, batch", [(6, 1, 2), (8, 1, 4), (1, 0, 1), (13, 3, 1)],
                         ids=["mid-epoch", "end-of-epoch", "first-step", "last-epoch"])
def test_interrupt_and_resume_minibatch_equals_uninterrupted(
        latent_data, uninterrupted_latent, tmp_path, monkeypatch, steps, epoch, batch):
    model_a, run_a = uninterrupted_latent
    ckpt = tmp_path / "latent.ckpt"
    model_b, guide_b = make_latent(1)
    with monkeypatch.context() as mp:
        interrupt_after(mp, steps)
        with pytest.raises(TrainingInterrupted) as info:
            fit(model_b, guide_b, latent_data, checkpoint=ckpt, **LATENT_KW)
    err = info.value
    assert isinstance(err, KeyboardInterrupt)
    assert err.checkpoint == ckpt and ckpt.is_file()
    assert (err.epoch, err.batch) == (epoch, batch)
    assert f"epoch {epoch + 1} after batch {batch}" in str(err) and "resume=True" in str(err)

    model_c, guide_c = make_latent(42)  # other initial weights
    run_c = fit(model_c, guide_c, latent_data, checkpoint=ckpt, resume=True, **LATENT_KW)
    assert run_c.resumed_from_epoch == epoch
    assert len(run_c.history) == LATENT_KW["epochs"]
    assert_same_history(run_a, run_c)
    assert_same_state(model_a, model_c)


def test_repeated_interrupts_resume_exactly(latent_data, uninterrupted_latent, tmp_path, monkeypatch):
    """Interrupt in epoch 2, again one step later in the same epoch, then in epoch 4; finish."""
    model_a, run_a = uninterrupted_latent
    ckpt = tmp_path / "latent.ckpt"
    positions = []
    for i, steps in enumerate((5, 1, 7)):
        model, guide = make_latent(1 if i == 0 else 10 + i)  # the first run starts like run A
        with monkeypatch.context() as mp:
            interrupt_after(mp, steps)
            with pytest.raises(TrainingInterrupted) as info:
                fit(model, guide, latent_data, checkpoint=ckpt, resume=True, **LATENT_KW)
        positions.append((info.value.epoch, info.value.batch))
    assert positions == [(1, 1), (1, 2), (3, 1)]
    model_c, guide_c = make_latent(20)
    run_c = fit(model_c, guide_c, latent_data, checkpoint=ckpt, resume=True, **LATENT_KW)
    assert_same_history(run_a, run_c)
    assert_same_state(model_a, model_c)


def test_interrupt_full_batch_keeps_records_and_callback_columns(tiny_regression, tmp_path, monkeypatch):
    x, y = tiny_regression
    kw = dict(epochs=8, lr=1e-2, seed=0, progress=False, record=("f", "sigma"),
              callback=lambda epoch, loss: {"twice": 2 * loss, "ep": epoch})
    model_a, guide_a = make_regression(HomoscedasticRegression, 1)
    run_a = fit(model_a, guide_a, (x, y), **kw)
    assert run_a.history["ep"].tolist() == list(range(1, 9))
    ckpt = tmp_path / "fb.ckpt"
    model_b, guide_b = make_regression(HomoscedasticRegression, 1)
    with monkeypatch.context() as mp:
        interrupt_after(mp, 3)
        with pytest.raises(TrainingInterrupted) as info:
            fit(model_b, guide_b, (x, y), checkpoint=ckpt, **kw)
    assert (info.value.epoch, info.value.batch) == (2, 1)  # the 3rd epoch's only step was taken
    model_c, guide_c = make_regression(HomoscedasticRegression, 5)
    run_c = fit(model_c, guide_c, (x, y), checkpoint=ckpt, resume=True, **kw)
    assert_same_history(run_a, run_c)
    assert_same_state(model_a, model_c)
    for site in ("f", "sigma"):
        np.testing.assert_array_equal(run_a.records[site], run_c.records[site])


def test_interrupt_without_checkpoint_path(latent_data, monkeypatch):
    model, guide = make_latent(1)
    interrupt_after(monkeypatch, 2)
    with pytest.raises(TrainingInterrupted, match="nothing was saved") as info:
        fit(model, guide, latent_data, **LATENT_KW)
    assert info.value.checkpoint is None


def test_tensor_batches():
    x = torch.arange(10.0).unsqueeze(-1)
    y = torch.arange(10)
    tb = TensorBatches((x, y), 4)
    assert len(tb) == 3
    torch.manual_seed(0)
    batches = list(tb)
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    seen = torch.cat([b[1] for b in batches])
    assert sorted(seen.tolist()) == list(range(10)) and seen.tolist() != list(range(10))
    for bx, by in batches:
        assert torch.equal(bx[:, 0].long(), by)  # rows stay aligned across tensors
    torch.manual_seed(0)
    assert all(torch.equal(a[1], b[1]) for a, b in zip(batches, tb))  # order from the global RNG
    ordered = torch.cat([b[1] for b in TensorBatches((x, y), 4, shuffle=False)])
    assert ordered.tolist() == list(range(10))
    with pytest.raises(ValueError, match="same length"):
        TensorBatches((x, y[:5]), 4)
    with pytest.raises(ValueError, match="batch_size"):
        TensorBatches((x,), 0)


# ----------------------------------------------------------------------------- (e) bad checkpoints
def test_checkpoint_of_other_model_class(tiny_regression, tmp_path):
    x, y = tiny_regression
    ckpt = tmp_path / "homo.ckpt"
    model, guide = make_regression(HomoscedasticRegression, 0)
    fit(model, guide, (x, y), epochs=2, progress=False, checkpoint=ckpt)
    other, other_guide = make_regression(HeteroscedasticRegression, 0)
    before = copy.deepcopy(other.state_dict())
    with pytest.raises(CheckpointError) as info:
        fit(other, other_guide, (x, y), epochs=4, progress=False, checkpoint=ckpt, resume=True)
    msg = str(info.value)
    assert "HomoscedasticRegression" in msg and "HeteroscedasticRegression" in msg and str(ckpt) in msg
    assert all(torch.equal(before[k], v) for k, v in other.state_dict().items())
    with pytest.raises(CheckpointError, match="HomoscedasticRegression.*HeteroscedasticRegression"):
        load_checkpoint(ckpt, other, other_guide)


def test_checkpoint_of_other_model_config(latent_data, tmp_path):
    ckpt = tmp_path / "z2.ckpt"
    model, guide = make_latent(0, z_dim=2)
    fit(model, guide, latent_data, epochs=1, progress=False, checkpoint=ckpt)
    model3, guide3 = make_latent(0, z_dim=3)
    with pytest.raises(CheckpointError) as info:
        fit(model3, guide3, latent_data, epochs=2, progress=False, checkpoint=ckpt, resume=True)
    msg = str(info.value)
    assert "z_dim=2" in msg and "z_dim=3" in msg and "LatentModel" in msg


def test_resume_with_other_settings(tiny_regression, tmp_path):
    x, y = tiny_regression
    ckpt = tmp_path / "run.ckpt"
    model, guide = make_regression(HomoscedasticRegression, 0)
    fit(model, guide, (x, y), epochs=2, lr=1e-3, progress=False, checkpoint=ckpt)
    with pytest.raises(CheckpointError, match=r"lr is 0\.001 in the checkpoint but 0\.01 now"):
        fit(model, guide, (x, y), epochs=4, lr=1e-2, progress=False, checkpoint=ckpt, resume=True)
    with pytest.raises(CheckpointError, match="batch_size"):
        fit(model, guide, (x, y), epochs=4, lr=1e-3, batch_size=8, progress=False, checkpoint=ckpt,
            resume=True)


def test_resume_checks_the_data_and_the_seed(tiny_regression, tmp_path):
    """Resuming on fewer points, other values or another seed names what differs (it was a bare
    StopIteration, or silently trained on other data)."""
    x, y = tiny_regression
    ckpt = tmp_path / "run.ckpt"
    model, guide = make_regression(HomoscedasticRegression, 0)
    fit(model, guide, (x, y), epochs=2, batch_size=8, seed=3, progress=False, checkpoint=ckpt)
    kw = dict(epochs=4, batch_size=8, progress=False, checkpoint=ckpt, resume=True)
    with pytest.raises(CheckpointError, match="trained on 40 data points, this run has 20"):
        fit(model, guide, (x[:20], y[:20]), seed=3, **kw)
    with pytest.raises(CheckpointError, match="training data differ"):
        fit(model, guide, (x, y + 1), seed=3, **kw)
    with pytest.raises(CheckpointError, match="seed is 3 in the checkpoint but 4 now"):
        fit(model, guide, (x, y), seed=4, **kw)
    with pytest.raises(CheckpointError, match=r"does not record train_images \(now 10\)"):
        fit(model, guide, (x, y), seed=3, settings={"train_images": 10}, **kw)
    assert len(fit(model, guide, (x, y), seed=3, **kw).history) == 4


@pytest.mark.parametrize("corrupt", ["truncated", "garbage", "empty", "foreign-torch-file"])
def test_unreadable_checkpoint(tiny_regression, tmp_path, corrupt):
    x, y = tiny_regression
    ckpt = tmp_path / "run.ckpt"
    model, guide = make_regression(HomoscedasticRegression, 0)
    save_checkpoint(ckpt, model=model, guide=guide)
    data = ckpt.read_bytes()
    if corrupt == "truncated":
        ckpt.write_bytes(data[: len(data) // 2])
    elif corrupt == "garbage":
        ckpt.write_bytes(np.random.default_rng(0).bytes(4096))
    elif corrupt == "empty":
        ckpt.write_bytes(b"")
    else:
        torch.save({"weights": torch.zeros(3)}, ckpt)
    with pytest.raises(CheckpointError, match="checkpoint") as info:
        fit(model, guide, (x, y), epochs=2, progress=False, checkpoint=ckpt, resume=True)
    assert str(ckpt) in str(info.value)
    with pytest.raises(CheckpointError):
        load_checkpoint(ckpt, model, guide)


def test_load_missing_checkpoint(tmp_path):
    model, guide = make_regression(HomoscedasticRegression, 0)
    with pytest.raises(CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nope.ckpt", model, guide)


# ----------------------------------------------------------------------------- (f) NaN
@pytest.mark.filterwarnings("ignore:Encountered NaN")
def test_nan_in_first_batch_is_a_clear_error(tiny_regression):
    x, y = tiny_regression
    y = y.clone()
    y[3] = float("nan")
    model, guide = make_regression(HomoscedasticRegression, 0)
    before = copy.deepcopy(model.state_dict())
    # the first step runs with Pyro's validation on, which rejects the NaN observation
    with pytest.raises((ValueError, FloatingPointError), match=r"nan|site 'y'"):
        fit(model, guide, (x, y), epochs=2, progress=False)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.filterwarnings("ignore:Encountered NaN")
@pytest.mark.parametrize("jit", [False, True], ids=["eager", "jit"])
def test_nan_loss_later_raises_floating_point_error(tiny_regression, jit):
    """Validation is off after the first step, so a NaN there shows up as a NaN loss."""
    x, y = tiny_regression
    y = y.clone()
    y[-1] = float("nan")  # in the second of two unshuffled batches
    model, guide = make_regression(HomoscedasticRegression, 0)
    ref_model, ref_guide = copy.deepcopy(model), copy.deepcopy(guide)
    with pytest.raises(FloatingPointError, match=r"loss is nan in epoch 1, batch 2"):
        fit(model, guide, TensorBatches((x, y), 20, shuffle=False), epochs=3, lr=1e-2, seed=0,
            progress=False, jit=jit)
    # the parameters are those after the first (clean) step
    fit(ref_model, ref_guide, TensorBatches((x[:20], y[:20]), 20, shuffle=False), epochs=1, lr=1e-2,
        seed=0, progress=False, jit=jit)
    assert_same_state(model, ref_model)


# ----------------------------------------------------------------------------- (g) records
def test_records_match_history(tiny_regression):
    x, y = tiny_regression
    epochs = 15
    model, guide = make_regression(HeteroscedasticRegression, 4)
    result = fit(model, guide, (x, y), epochs=epochs, lr=1e-2, seed=0, progress=False,
                 record=("f", "sigma"))
    f, sigma = result.records["f"], result.records["sigma"]
    assert f.shape == (epochs, len(x), 1) and sigma.shape == (epochs, len(x), 1)
    assert (sigma > 0).all()
    assert not np.array_equal(f[0], f[-1])  # the records follow training
    yy = y.numpy().astype(np.float64)[None]
    pointwise = (-0.5 * ((yy - f) / sigma) ** 2 - np.log(sigma) - 0.5 * LOG_2PI)[..., 0]
    np.testing.assert_allclose(pointwise.mean(axis=1), result.history["elbo"].to_numpy(), atol=1e-4, rtol=0)
    # the last record is at the parameters before the last step, not after it
    with torch.no_grad():
        f_now, _ = by_hand_f_sigma(model, x)
    assert not np.allclose(f[-1], f_now.numpy(), atol=1e-7, rtol=0)


def test_record_errors(tiny_regression):
    x, y = tiny_regression
    model, guide = make_regression(HomoscedasticRegression, 0)
    with pytest.raises(ValueError, match="full-batch"):
        fit(model, guide, (x, y), epochs=1, batch_size=8, progress=False, record=("f",))
    with pytest.raises(KeyError, match="nope"):
        fit(model, guide, (x, y), epochs=1, progress=False, record=("nope",))


def test_fit_regression_records(tiny_regression):
    x, y = tiny_regression
    res = fit_regression("heteroscedastic", x, y, epochs=10, seed=3, lr=1e-2, progress=False, jit=False)
    assert res.f.shape == (10, len(x)) and res.sigma.shape == (10, len(x))
    assert "loglik" in res.history and "elbo" not in res.history
    np.testing.assert_allclose(res.pointwise_loglik().mean(axis=1), res.history["loglik"].to_numpy(),
                               atol=1e-4, rtol=0)
    with pytest.raises(ValueError, match="unknown regression model"):
        fit_regression("quadratic", x, y, epochs=1, progress=False)


# ----------------------------------------------------------------------------- (h) jit
@pytest.mark.parametrize("cls", REGRESSION)
def test_jit_matches_eager(tiny_regression, cls):
    x, y = tiny_regression
    runs = {}
    for jit in (False, True):
        model, guide = make_regression(cls, 8)
        runs[jit] = (model, fit(model, guide, (x, y), epochs=60, lr=1e-2, seed=0, progress=False, jit=jit,
                                record=("f", "sigma")))
    (m_e, r_e), (m_j, r_j) = runs[False], runs[True]
    np.testing.assert_allclose(r_j.history["loss"].to_numpy(), r_e.history["loss"].to_numpy(),
                               atol=1e-4, rtol=0)
    np.testing.assert_allclose(r_j.records["f"], r_e.records["f"], atol=1e-4, rtol=0)
    for (k, a), b in zip(m_e.state_dict().items(), m_j.state_dict().values()):
        torch.testing.assert_close(a, b, atol=1e-4, rtol=1e-4, msg=k)


def test_jit_latent_model_matches_eager(latent_data):
    """Random draws inside a traced loss are drawn afresh each call, from the same RNG stream."""
    runs = {}
    for jit in (False, True):
        model, guide = make_latent(3)
        runs[jit] = fit(model, guide, latent_data, epochs=3, batch_size=16, lr=1e-2, seed=0,
                        progress=False, jit=jit)
    np.testing.assert_allclose(runs[True].history["loss"].to_numpy(), runs[False].history["loss"].to_numpy(),
                               atol=1e-4, rtol=0)


def test_traced_loss_draws_the_same_random_numbers_as_eager(latent_data):
    """Compiling must not consume random numbers: the traced loss, from its very first call, uses
    the RNG exactly like the eager loss (same value, same RNG state afterwards)."""
    (x,) = latent_data
    model, guide = make_latent(3)
    eager = LossModule(pyro.infer.Trace_ELBO(), model, guide)
    traced = train_mod.TracedLoss(eager)
    with pyro.validation_enabled(False):
        for seed in (0, 1):
            torch.manual_seed(seed)
            a = eager(x[:16])
            after_eager = torch.get_rng_state()
            torch.manual_seed(seed)
            b = traced(x[:16])  # traces on the first seed, reuses the trace on the second
            assert torch.equal(after_eager, torch.get_rng_state()), seed
            assert b.item() == pytest.approx(a.item(), rel=1e-5), seed
            ga = torch.autograd.grad(a, list(model.parameters()))
            gb = torch.autograd.grad(b, list(model.parameters()))
            for u, v in zip(ga, gb):
                torch.testing.assert_close(u, v, rtol=1e-5, atol=1e-6)


# Pyro's Trace_ELBO returns ``loss + (surrogate - surrogate.item())`` with ``loss`` a Python number;
# traced, both numbers were frozen at trace time and a resumed run (traced at another step) reported
# losses that differed in the last bits. TracedLoss now traces with ``live_loss_values`` and a resumed
# compiled run takes its first step compiled, as the uninterrupted run did: histories are equal.


def test_resume_with_jit_full_batch(tiny_regression, tmp_path):
    x, y = tiny_regression
    kw = dict(lr=1e-2, seed=0, progress=False, jit=True)
    model_a, guide_a = make_regression(HeteroscedasticRegression, 1)
    run_a = fit(model_a, guide_a, (x, y), epochs=30, **kw)
    ckpt = tmp_path / "jit.ckpt"
    model_b, guide_b = make_regression(HeteroscedasticRegression, 1)
    fit(model_b, guide_b, (x, y), epochs=15, checkpoint=ckpt, **kw)
    model_c, guide_c = make_regression(HeteroscedasticRegression, 99)
    run_c = fit(model_c, guide_c, (x, y), epochs=30, checkpoint=ckpt, resume=True, **kw)
    assert_same_state(model_a, model_c)
    assert_same_history(run_a, run_c)


def test_interrupt_and_resume_with_jit_minibatch(latent_data, tmp_path, monkeypatch):
    kw = dict(LATENT_KW, jit=True)
    model_a, guide_a = make_latent(1)
    run_a = fit(model_a, guide_a, latent_data, **kw)
    ckpt = tmp_path / "jit-latent.ckpt"
    model_b, guide_b = make_latent(1)
    with monkeypatch.context() as mp:
        interrupt_after(mp, 6)
        with pytest.raises(TrainingInterrupted):
            fit(model_b, guide_b, latent_data, checkpoint=ckpt, **kw)
    model_c, guide_c = make_latent(42)
    run_c = fit(model_c, guide_c, latent_data, checkpoint=ckpt, resume=True, **kw)
    assert_same_state(model_a, model_c)
    assert_same_history(run_a, run_c)


def test_a_list_of_batches_is_iterated(tiny_regression):
    from probnn.guides.regression import MaximumLikelihoodGuide
    from probnn.inference.train import fit
    from probnn.models.regression import HomoscedasticRegression
    x, y = tiny_regression
    batches = [(x[:20], y[:20]), (x[20:], y[20:])]
    res = fit(HomoscedasticRegression(), MaximumLikelihoodGuide(), batches, epochs=2, progress=False)
    assert len(res.history) == 2


def test_resume_with_fewer_epochs_than_done_is_an_error(tiny_regression, tmp_path):
    from probnn.inference.checkpoint import CheckpointError
    from probnn.inference.regression import fit_regression
    x, y = tiny_regression
    ckpt = tmp_path / "r.ckpt"
    fit_regression("homoscedastic", x, y, epochs=20, progress=False, checkpoint=ckpt)
    with pytest.raises(CheckpointError, match="already trained 20 epochs"):
        fit_regression("homoscedastic", x, y, epochs=10, progress=False, checkpoint=ckpt, resume=True)


def test_training_interrupted_survives_pickling(tmp_path):
    """The regression CLI trains in worker processes; their interruption must reach the parent."""
    import pickle
    from probnn.inference.train import TrainingInterrupted
    e = pickle.loads(pickle.dumps(TrainingInterrupted(tmp_path / "a.ckpt", 4, 2)))
    assert (e.checkpoint, e.epoch, e.batch) == (tmp_path / "a.ckpt", 4, 2)
    assert "--resume" in str(e)


def test_beta_nll_weights_each_point_by_detached_sigma(tiny_regression):
    """beta-NLL (Seitzer et al. 2022): loss = -sum_i stopgrad(sigma_i^(2 beta)) log N(y_i | f, sigma)."""
    import pyro.infer
    from probnn.guides.regression import MaximumLikelihoodGuide
    from probnn.models.regression import HeteroscedasticRegression
    x, y = tiny_regression
    model = HeteroscedasticRegression(beta=0.5)
    loss = pyro.infer.Trace_ELBO()(model, MaximumLikelihoodGuide())(x, y)
    f, s = model.mean_and_scale(x)
    lp = torch.distributions.Normal(f, s).log_prob(y).squeeze(-1)
    manual = -(s.detach().squeeze(-1) * lp).sum()
    assert loss.item() == pytest.approx(manual.item(), rel=1e-5)
    g1 = torch.autograd.grad(loss, model.g[0].weight, retain_graph=True)[0]
    g2 = torch.autograd.grad(manual, model.g[0].weight)[0]
    torch.testing.assert_close(g1, g2)  # no gradient through the weights themselves
    torch.testing.assert_close(model.log_likelihood(x, y), lp.detach(), rtol=1e-5, atol=1e-5)


def test_sigma_floor_bounds_sigma_and_is_part_of_the_checkpoint_identity(tiny_regression, tmp_path):
    from probnn.inference.checkpoint import CheckpointError
    from probnn.inference.regression import fit_regression
    from probnn.models.regression import HeteroscedasticRegression
    x, y = tiny_regression
    fit = fit_regression("heteroscedastic", x, y, epochs=50, sigma_floor=0.3, beta=0.5,
                         progress=False, checkpoint=tmp_path / "h.ckpt")
    assert fit.sigma.min() >= 0.3
    assert "objective" in fit.history and np.allclose(
        fit.history["loglik"], fit.pointwise_loglik().mean(1))
    with pytest.raises(CheckpointError, match="sigma_floor"):
        fit_regression("heteroscedastic", x, y, epochs=60, progress=False,
                       checkpoint=tmp_path / "h.ckpt", resume=True)
    with pytest.raises(ValueError, match="heteroscedastic model only"):
        fit_regression("homoscedastic", x, y, epochs=5, beta=0.5, progress=False)
    with pytest.raises(ValueError, match=">= 0"):
        HeteroscedasticRegression(sigma_floor=-1.0)


def test_a_stop_request_ends_a_fit_as_ctrl_c_does(tiny_regression, tmp_path):
    """How the report's runner stops a training on a Dask worker (no signal reaches it there):
    ``stop_requests`` is asked between steps, at most every ``every`` seconds; once it says
    stop, the fit saves mid-epoch and raises TrainingInterrupted, and resuming gives the
    uninterrupted numbers."""
    from probnn.inference.regression import fit_regression
    from probnn.inference.train import TrainingInterrupted, stop_requests
    x, y = tiny_regression
    asked = []
    with stop_requests(lambda: asked.append(1) or len(asked) >= 3, every=0.0):
        with pytest.raises(TrainingInterrupted) as e:
            fit_regression("homoscedastic", x, y, epochs=40, seed=1, progress=False,
                           checkpoint=tmp_path / "r.ckpt", checkpoint_every=10)
    assert (e.value.epoch, e.value.batch) == (2, 1) and len(asked) == 3
    resumed = fit_regression("homoscedastic", x, y, epochs=40, seed=1, progress=False,
                             checkpoint=tmp_path / "r.ckpt", checkpoint_every=10, resume=True)
    straight = fit_regression("homoscedastic", x, y, epochs=40, seed=1, progress=False)
    np.testing.assert_array_equal(resumed.history["loglik"], straight.history["loglik"])
    # asked at most once a period (it may be a round trip to a scheduler), and only in its block
    asked.clear()
    with stop_requests(lambda: asked.append(1) or False, every=3600.0):
        fit_regression("homoscedastic", x, y, epochs=40, progress=False)
    assert len(asked) == 1
    fit_regression("homoscedastic", x, y, epochs=5, progress=False)
    assert len(asked) == 1
