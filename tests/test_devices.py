"""Devices end to end (issue 14): every tensor a model, guide, estimator or training step
creates lands on the device of the model's parameters and data.

This machine has no GPU, so besides the CUDA-parametrised runs (skipped with a reason where
there is none) a :class:`FactoryRecorder` catches the bug that made ``--device cuda`` fail
(``torch.zeros(self.latent_dim)`` in a model): a tensor factory called from project code
with no ``device=``. On the CPU such a call works and goes unnoticed; on a GPU it is a
device mismatch. The recorder checks the project's own frames only (Pyro and torch place
their internal tensors themselves).
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pyro
import pytest
import torch
from torch.overrides import TorchFunctionMode

from probnn.inference.ais import ais_log_likelihood
from probnn.inference.estimators import elbo_mc, iwae_and_elbo_mc, iwae_bound
from probnn.inference.train import fit
from probnn.inference.vae import build_vae, interpolate, reconstruct, sample_prior
from probnn.inference.cvae import digit_samples, label_log_joint, style_sets

PROJECT = Path(__file__).resolve().parents[1]
SOURCES = tuple(str(PROJECT / d) for d in ("models", "guides", "inference", "tasks", "analysis",
                                           "probnn"))

# factories that create a tensor from nothing: without device= they land on the default device
FACTORIES = {torch.zeros, torch.ones, torch.empty, torch.full, torch.randn, torch.rand,
             torch.randint, torch.arange, torch.linspace, torch.logspace, torch.eye,
             torch.tensor, torch.as_tensor, torch.randperm, torch.normal}
# ... unless made from a tensor, which keeps its device (torch.as_tensor(t), torch.tensor(t))
FROM_DATA = {torch.tensor, torch.as_tensor}


class FactoryRecorder(TorchFunctionMode):
    """Records ``(function, file:line)`` of tensor factory calls made from project code with
    no ``device=``. Calls whose result is deliberately CPU-side (index subsets drawn from a
    CPU generator) pass ``device=`` explicitly, so the rule has no exceptions."""

    def __init__(self):
        super().__init__()
        self.calls: list[tuple[str, str]] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs and not (
                func in FROM_DATA and args and isinstance(args[0], torch.Tensor)):
            f = sys._getframe(1)
            while f is not None and f.f_code.co_filename.startswith(str(Path(torch.__file__).parent)):
                f = f.f_back
            if f is not None and f.f_code.co_filename.startswith(SOURCES):
                self.calls.append((func.__name__, f"{Path(f.f_code.co_filename).name}:{f.f_lineno}"))
        return func(*args, **kwargs)


def _images(n=6, device="cpu"):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g).to(device)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"))]


@pytest.mark.parametrize("conditional", [False, True])
@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_models_and_estimators_create_no_tensor_without_a_device(conditional, architecture):
    model, guide = build_vae(3, architecture=architecture, conditional=conditional)
    x = _images()
    data = (x, torch.arange(6, device=x.device) % 10) if conditional else (x,)
    rec = FactoryRecorder()
    with rec:
        iwae_and_elbo_mc(model, guide, data, 4, batch_size=4)
        iwae_bound(model, guide, data, 5, batch_size=4)
        elbo_mc(model, guide, data, 2, batch_size=4)
        ais_log_likelihood(model, guide, data, steps=2, chains=2, leapfrog=1, batch_size=4)
        with pyro.validation_enabled(False):
            model(*data)  # the model scoring data
            model(*((None, None, 3) if conditional else (None, 3)))  # ... and generating
        if conditional:
            style_sets(model, 2), digit_samples(model, 2)
            label_log_joint(model, guide, x, 2, batch_size=4)
        else:
            reconstruct(model, guide, x[:2], 1), sample_prior(model, 2)
            interpolate(model, guide, x[0], x[1], 3)
        fit(model, guide, data, epochs=1, batch_size=3, progress=False)
    assert rec.calls == [], f"tensor factories without device=: {rec.calls}"


def test_the_recorder_catches_a_factory_without_device():
    """The recorder is not vacuous: the old ``torch.zeros(n)`` in project code is caught."""
    from probnn.models import vae as vae_module
    rec = FactoryRecorder()
    with rec:
        exec(compile("torch.zeros(3)", vae_module.__file__, "exec"), {"torch": torch})
        exec(compile("torch.zeros(3, device='cpu')", vae_module.__file__, "exec"), {"torch": torch})
    assert [c[0] for c in rec.calls] == ["zeros"]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("conditional", [False, True])
def test_vae_training_step_and_estimators_run_on_the_device(device, conditional):
    torch.manual_seed(0)
    model, guide = build_vae(3, architecture="conv", conditional=conditional)
    model.to(device), guide.to(device)
    x = _images(8, device)
    data = (x, torch.arange(8, device=device) % 10) if conditional else (x,)
    result = fit(model, guide, data, epochs=1, batch_size=4, progress=False)
    assert torch.isfinite(torch.tensor(result.history["loss"].to_numpy())).all()
    assert all(p.device.type == torch.device(device).type for p in model.parameters())
    bound, mc = iwae_and_elbo_mc(model, guide, data, 5, batch_size=4)
    assert bound.shape == (8,) and (bound >= mc.elbo - 1e-3).mean() > 0.5
    ais = ais_log_likelihood(model, guide, data, steps=2, chains=2, leapfrog=1)
    assert ais.log_likelihood.shape == (8,)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
def test_cuda_estimates_match_the_cpu_ones():
    """The same weights and samples give the same bound on both devices (up to float error)."""
    model, guide = build_vae(3)
    x = _images(4)
    pyro.set_rng_seed(1)
    z = guide.encode(x)[0]
    ref = model.pixel_probs(z)
    model.cuda(), guide.cuda()
    got = model.pixel_probs(z.cuda()).cpu()
    assert torch.allclose(ref, got, atol=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_regression_fits_on_the_device_and_returns_a_cpu_fit(device, tiny_regression):
    from probnn.inference.regression import fit_regression
    x, y = tiny_regression
    rec = FactoryRecorder()
    with rec:
        out = fit_regression("heteroscedastic", x, y, epochs=3, progress=False, jit=False,
                             device=device)
    assert rec.calls == [], rec.calls
    assert all(p.device.type == "cpu" for p in out.model.parameters())
    assert out.f.shape == (3, len(x)) and np.isfinite(out.sigma).all()


def test_the_study_and_the_gaps_create_no_tensor_without_a_device():
    from probnn.inference.estimator_study import estimator_bias_spread, gradient_snr
    from probnn.inference.gaps import inference_gaps
    model, guide = build_vae(2, architecture="mlp")
    x = _images(3)
    rec = FactoryRecorder()
    with rec:
        estimator_bias_spread(model, guide, x, ks=(1, 3), elbo_mc_k=2, repeats=2)
        gradient_snr(model, guide, x, objectives=("trace", "iwae-2"), samples=3, bootstrap=5)
        inference_gaps(model, guide, (x,), samples=4, steps=2, num_particles=2)
    assert rec.calls == [], f"tensor factories without device=: {rec.calls}"
