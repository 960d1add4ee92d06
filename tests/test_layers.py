"""The project's structure: no import cycles, Pyro's ``module_local_params`` scoped to the
project's own modules (never left changed for the process), and the shared batching helpers."""
from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from probnn.inference import batching, train

PROJECT_ROOT = Path(__file__).resolve().parents[1]
IMPORT_LAYERS = PROJECT_ROOT.parent / "shared" / "tools" / "import_layers.py"


@pytest.mark.skipif(not IMPORT_LAYERS.is_file(), reason=f"{IMPORT_LAYERS} not found")
def test_no_import_cycles():
    out = subprocess.run([sys.executable, str(IMPORT_LAYERS), "."], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert "Traceback" not in out.stderr, out.stderr
    summary = re.search(r"(\d+) modules, (\d+) import cycles", out.stdout)
    assert summary and int(summary[1]) > 0, out.stdout + out.stderr
    cycles = [line for line in out.stdout.splitlines() if line.startswith("cycle:")]
    assert cycles == [] and int(summary[2]) == 0, "\n".join(cycles)


def test_building_a_model_leaves_module_local_params_alone(tmp_path):
    """A fresh process with the setting off: importing probnn and building and running a VAE
    leave it off, and the VAE's parameters are still the modules' own (state_dict, not the
    param store)."""
    import probnn.inference.vae as vae_module
    script = textwrap.dedent(f"""
        import pyro, torch
        pyro.settings.set(module_local_params=False)
        import probnn.inference.vae as vae_module
        assert vae_module.__file__ == {vae_module.__file__!r}, vae_module.__file__
        assert not pyro.settings.get("module_local_params"), "set as an import side effect"
        model, guide = vae_module.build_vae(2, architecture="mlp")
        assert not pyro.settings.get("module_local_params"), "set by building a model"
        for module in (model, guide):
            names = [n for n, _ in module.named_parameters()]
            assert names and set(names) <= set(module.state_dict()), names
        x = torch.rand(3, 1, 28, 28)
        pyro.poutine.trace(pyro.poutine.replay(model, trace=pyro.poutine.trace(guide).get_trace(x))).get_trace(x)
        assert len(pyro.get_param_store()) == 0, list(pyro.get_param_store().keys())
        assert not pyro.settings.get("module_local_params"), "set by running a model"
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


def test_fit_trains_a_users_own_modules_and_leaves_the_setting_off(tmp_path):
    """A notebook's own PyroModule pair, built with the setting off (Pyro's default): fit()
    trains it with every objective, leaves the setting off, and plain Pyro SVI still trains
    the same modules afterwards (their parameters in Pyro's param store, as Pyro keeps them)."""
    script = textwrap.dedent("""
        import pyro, torch, pyro.distributions as dist
        from pyro.nn import PyroModule, PyroParam
        pyro.settings.set(module_local_params=False)
        from probnn.inference.train import fit

        class Model(PyroModule):
            def __init__(self):
                super().__init__()
                self.w = torch.nn.Parameter(torch.zeros(()))
            def forward(self, x):
                with pyro.plate("data", len(x)):
                    z = pyro.sample("z", dist.Normal(self.w, 1.0))
                    pyro.sample("x", dist.Normal(z, 0.5), obs=x)

        class Guide(PyroModule):
            def __init__(self):
                super().__init__()
                self.loc = torch.nn.Parameter(torch.zeros(()))
                self.scale = PyroParam(torch.ones(()), dist.constraints.positive)
            def forward(self, x):
                with pyro.plate("data", len(x)):
                    pyro.sample("z", dist.Normal(self.loc + 0 * x, self.scale))

        model, guide = Model(), Guide()
        x = torch.randn(50) + 3.0
        for elbo in ("trace", "dreg-iwae"):
            res = fit(model, guide, (x,), epochs=60, elbo=elbo, num_particles=3, lr=0.05,
                      progress=False, seed=0)
            assert res.history["loss"].iloc[-1] < res.history["loss"].iloc[0], elbo
        assert not pyro.settings.get("module_local_params")
        before = model.w.detach().clone()
        svi = pyro.infer.SVI(model, guide, pyro.optim.Adam({"lr": 0.05}), pyro.infer.Trace_ELBO())
        for _ in range(3):
            svi.step(x)
        assert not torch.equal(before, model.w.detach())
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


@pytest.mark.parametrize("kind", ["vae", "cvae", "regression", "bayes"])
def test_loading_a_pickled_model_keeps_its_parameters_module_local(tmp_path, kind):
    """Unpickling counts as loading: a saved fit read back in a fresh process (the report's
    results) keeps its parameters module-local (else two Bayesian fits read back together
    would share their guides' parameters through the param store) and leaves the process's
    setting off."""
    from probnn.guides.regression import MaximumLikelihoodGuide
    from probnn.inference.vae import build_vae
    from probnn.models.bayes_regression import BayesianHomoscedasticRegression
    from probnn.models.regression import HomoscedasticRegression
    pair = {"vae": lambda: build_vae(2, architecture="mlp"),
            "cvae": lambda: build_vae(2, architecture="mlp", conditional=True),
            "regression": lambda: (HomoscedasticRegression(), MaximumLikelihoodGuide()),
            "bayes": lambda: (BayesianHomoscedasticRegression(), MaximumLikelihoodGuide())}[kind]()
    for i, module in enumerate(pair):
        torch.save(module, tmp_path / f"{i}.pt")
    script = textwrap.dedent(f"""
        import pyro, torch
        pyro.settings.set(module_local_params=False)
        for i in range(2):
            m = torch.load({str(tmp_path)!r} + f"/{{i}}.pt", weights_only=False)
            assert not pyro.settings.get("module_local_params"), i
            assert hasattr(m._pyro_context, "param_state"), i  # built module-local
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stdout + out.stderr


def test_batching_helpers():
    assert batching.as_tuple([1, 2]) == (1, 2) and batching.as_tuple("x") == ("x",)
    assert train.TensorBatches is batching.TensorBatches  # still importable from train
    x, y = torch.arange(7), torch.arange(7) * 10
    parts = list(batching.chunks((x, y), 3))
    assert [len(p[0]) for p in parts] == [3, 3, 1] and torch.equal(parts[2][1], torch.tensor([60]))
    assert torch.equal(batching.random_subset(5, None, 0), torch.arange(5))
    assert torch.equal(batching.random_subset(5, 9, 0), torch.arange(5))
    state = torch.get_rng_state()
    a = batching.random_subset(100, 10, 3)
    assert torch.equal(torch.get_rng_state(), state)  # its own generator: global RNG untouched
    assert torch.equal(a, batching.random_subset(100, 10, 3)) and len(a.unique()) == 10
    assert torch.equal(a, a.sort().values)
    expected = torch.randperm(100, generator=torch.Generator().manual_seed(3))[:10].sort().values
    assert torch.equal(a, expected)
