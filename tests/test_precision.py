"""Mixed precision (issue 14): bf16 autocast for the networks only; sums, KL, parameters and
optimiser state in fp32."""
from __future__ import annotations

import numpy as np
import pyro
import pytest
import torch

from probnn.inference.checkpoint import CheckpointError
from probnn.inference.estimators import iwae_and_elbo_mc, iwae_bound
from probnn.inference.precision import autocast
from probnn.inference.train import fit
from probnn.inference.vae import build_vae
from probnn.tasks import holdout, vae_training
from probnn.tasks.validation import ConfigError


def _images(n=8):
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, 1, 28, 28, generator=g)


@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_bf16_runs_the_networks_in_bf16_and_hands_fp32_on(architecture):
    model, guide = build_vae(3, architecture=architecture)
    z = torch.randn(5, 3)
    with autocast("bf16", "cpu"):
        assert model.decoder.f[0](z).dtype == torch.bfloat16  # the hidden layers run in bf16
        assert model.decoder(z).dtype == torch.float32  # the output layer in fp32 (fp32_layer)
        assert model.logits(z).dtype == torch.float32
        tr = pyro.poutine.trace(guide).get_trace(_images(2))
        assert tr.nodes["z"]["value"].dtype == torch.float32
    with autocast("fp32", "cpu"):
        assert model.decoder.f[0](z).dtype == torch.float32


def test_bf16_training_keeps_parameters_gradients_and_adam_state_fp32(tmp_path):
    model, guide = build_vae(3)
    x = _images()
    ckpt = tmp_path / "m.ckpt"
    result = fit(model, guide, (x,), epochs=2, batch_size=4, progress=False,
                 precision="bf16", checkpoint=ckpt)
    assert np.isfinite(result.history.loss).all()
    params = list(model.parameters()) + list(guide.parameters())
    assert all(p.dtype == torch.float32 for p in params)
    from probnn.inference.checkpoint import read_checkpoint
    state = read_checkpoint(ckpt)
    assert state["extra"]["train_config"]["precision"] == "bf16"
    moments = [v for s in state["optimizer_state"]["state"].values() for k, v in s.items()
               if k in ("exp_avg", "exp_avg_sq")]
    assert moments and all(m.dtype == torch.float32 for m in moments)
    # a resume in another precision would silently mix the two: refused
    with pytest.raises(CheckpointError, match="precision"):
        fit(model, guide, (x,), epochs=3, batch_size=4, progress=False, precision="fp32",
            checkpoint=ckpt, resume=True)


def test_bf16_training_takes_different_steps_than_fp32():
    """Not vacuous: the bf16 flag reaches the training step."""
    out = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        model, guide = build_vae(3)
        out[precision] = fit(model, guide, (_images(),), epochs=1, batch_size=4, seed=1,
                             progress=False, precision=precision).history.loss.iloc[0]
    assert out["fp32"] != out["bf16"]
    assert abs(out["fp32"] - out["bf16"]) < 0.01 * abs(out["fp32"])


def test_bf16_bounds_are_close_to_fp32_with_the_same_draws():
    torch.manual_seed(0)
    model, guide = build_vae(3)
    x = _images(6)
    got = {}
    for precision in ("fp32", "bf16"):
        pyro.set_rng_seed(5)
        got[precision] = iwae_bound(model, guide, (x,), 20, diagnostics=False,
                                    precision=precision).bound
    diff = np.abs(got["fp32"] - got["bf16"])
    assert 0 < diff.max() < 0.5  # differs (bf16 ran) by well under a nat per ~550-nat image
    pyro.set_rng_seed(5)
    b, mc = iwae_and_elbo_mc(model, guide, (x,), 20, precision="bf16")
    assert np.array_equal(b, got["bf16"]) or np.allclose(b, got["bf16"], atol=1e-3)
    assert np.isfinite(mc.kl).all() and (mc.kl >= 0).all()


def test_precision_is_a_validated_config_field():
    assert vae_training.Config(precision="bf16").precision == "bf16"
    assert holdout.Config().precision == "fp32"  # the defaults decided by precision_check
    assert vae_training.Config().precision == "bf16"
    with pytest.raises(ConfigError, match="precision"):
        holdout.Config(precision="fp16")
    with pytest.raises(ConfigError, match="precision"):
        vae_training.Config(precision="half")


@pytest.mark.parametrize("architecture", ["conv", "mlp"])
def test_evaluation_in_cache_sized_pieces_gives_the_same_numbers(architecture, monkeypatch):
    """The decoder and the Bernoulli log-likelihood work through large evaluation batches in
    pieces of INFERENCE_ROWS rows (issue 14, throughput): the bounds are bit for bit those of
    one call per batch."""
    from probnn.models import vae as vae_module
    torch.manual_seed(0)
    model, guide = build_vae(3, architecture=architecture)
    x = _images(12)
    got = []
    for rows in (7, 10**9):  # 7 rows: many pieces, and a ragged last one
        monkeypatch.setattr(vae_module, "INFERENCE_ROWS", rows)
        pyro.set_rng_seed(3)
        got.append(iwae_bound(model, guide, (x,), 10, batch_size=5, diagnostics=False).bound)
    assert np.array_equal(got[0], got[1])


def test_the_report_states_the_precision_of_its_vae_jobs():
    from dataclasses import replace
    from probnn.report import build_jobs, precision_used
    jobs = build_jobs(True, 309)
    assert precision_used(jobs).startswith("VAE training bf16, evaluation fp32")
    jobs["vae-d4"].config = replace(jobs["vae-d4"].config, precision="fp32")
    assert precision_used(jobs).startswith("VAE training bf16/fp32, evaluation fp32")
