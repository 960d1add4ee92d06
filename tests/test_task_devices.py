"""Devices at the task layer: every task computes on ``Inputs.device``, its models loaded there
and its data moved there, through the command line's ``--device`` as a user runs it.

On a machine with no GPU a CPU/GPU mix cannot happen, so the CPU run marks the device: the
command line's device becomes ``cpu:0``, equal in effect to ``cpu`` but a different
``torch.device``, and every model load (``load_vae``) must receive it. A task that loads its
model without the inputs' device (the bounds task once did: images on the GPU, the model on
the CPU) is caught here on any machine. The same run counts tensor factories called from
project code with no ``device=`` (:class:`test_devices.FactoryRecorder`). Where CUDA is
available, every task runs end to end on it.
"""
from __future__ import annotations

import pytest
import torch

from probnn import commandline
from probnn.tasks import bayes_regression

from test_devices import FactoryRecorder
from test_tasks import QUESTIONS, checkpoints, cli  # noqa: F401  (checkpoints: a fixture)

MARKED = "cpu:0"
DEVICES = [MARKED, pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="no CUDA device on this machine"))]
TRAINING = [("vae train", ["vae", "train", "--architecture", "mlp", "--latent-dim", 2,
                           "--epochs", 1, "--train-images", 40, "--batch-size", 20], None),
            ("regression", ["regression", "--model", "heteroscedastic", "--epochs", 5], None)]
# bayes-regression runs NUTS on the CPU by design (31 points): it has no --device
ON_DEVICE = [(q[1], q[2], q[3]) for q in QUESTIONS if q[0] is not bayes_regression] + TRAINING


@pytest.fixture
def loads(monkeypatch):
    """Every ``load_vae`` call's device, wherever a task module imported the function."""
    import sys
    from probnn.inference import vae
    seen, original = [], vae.load_vae

    def recorded(path, *args, device="cpu", **kw):
        seen.append(torch.device(device))
        return original(path, *args, device=device, **kw)
    for name, module in list(sys.modules.items()):
        if name.startswith("probnn.") and getattr(module, "load_vae", None) is original:
            monkeypatch.setattr(module, "load_vae", recorded)
    return seen


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("name, args, checkpoint", ON_DEVICE, ids=[q[0] for q in ON_DEVICE])
def test_every_task_computes_on_the_inputs_device(name, args, checkpoint, device, loads,
                                                  checkpoints, data_dir, tmp_path,
                                                  monkeypatch):
    if device == MARKED:
        monkeypatch.setattr(commandline, "torch_device", lambda _: torch.device(MARKED))
    parents = [checkpoints[checkpoint]] if checkpoint else []
    extra = [] if not checkpoint or args[-1] in ("--checkpoints", "--checkpoint") \
        else ["--checkpoint"]
    rec = FactoryRecorder()
    with rec:
        cli(*args, *extra, *parents, "--device", "cpu" if device == MARKED else device,
            "--data-dir", data_dir, "--out", tmp_path, "--quiet")
    assert rec.calls == [], f"tensor factories without device=: {rec.calls}"
    assert all(d == torch.device(device) for d in loads), \
        f"{name}: models loaded on {loads}, not on the inputs' device {device}"
    if checkpoint:
        assert loads, f"{name} read its checkpoint without load_vae"


def test_the_marked_device_tells_a_load_without_the_inputs_device(checkpoints, loads, data_dir):
    """Not vacuous: a load with no device (as the bounds task once loaded its model) is told
    from a load on the marked device."""
    from probnn.tasks import inputs as inputs_module
    inputs = inputs_module.Inputs(data_dir, (checkpoints["vae"],), MARKED)
    inputs_module.load_vae(inputs.checkpoint(0))
    inputs.vae(0)
    assert loads == [torch.device("cpu"), torch.device(MARKED)]
    assert loads[0] != torch.device(MARKED)
