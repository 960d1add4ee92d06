"""The example notebooks run headlessly, top to bottom."""
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def run_notebook(path, quick_variable, data_dir, tmp_path, monkeypatch) -> str:
    """Execute a notebook with ``quick_variable=1`` in ``tmp_path``; its printed text (no cell
    may raise)."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PROBNN_DATA", str(data_dir))
    monkeypatch.setenv(quick_variable, "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    return "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")


def test_tour_notebook_runs(data_dir, tmp_path, monkeypatch):
    text = run_notebook(NOTEBOOK, "PROBNN_TOUR_QUICK", data_dir, tmp_path, monkeypatch)
    assert "IWAE(100)" in text and "heteroscedastic: mean log-likelihood" in text


OWN_MODEL = NOTEBOOK.parent / "your_own_model.ipynb"


def test_your_own_model_notebook_runs(data_dir, tmp_path, monkeypatch):
    """Pyro's VAE example trained by plain Pyro, then every probnn tool on it, tiny sizes."""
    text = run_notebook(OWN_MODEL, "PROBNN_OWN_MODEL_QUICK", data_dir, tmp_path, monkeypatch)
    for needle in ("plain Pyro SVI", "IWAE(50)", "Pareto k", "AIS", "approximation gap",
                   "dreg-iwae", "STL inside plain SVI"):
        assert needle in text, needle
    assert "Error" not in text and "Traceback" not in text
