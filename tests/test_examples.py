"""The example notebook runs headlessly, top to bottom."""
import os
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "examples" / "tour.ipynb"


def test_tour_notebook_runs(data_dir, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PROBNN_DATA", str(data_dir))
    monkeypatch.setenv("PROBNN_TOUR_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    assert "IWAE(100)" in text and "heteroscedastic: mean log-likelihood" in text


OWN_MODEL = NOTEBOOK.parent / "your_own_model.ipynb"


def test_your_own_model_notebook_runs(data_dir, tmp_path, monkeypatch):
    """Pyro's VAE example trained by plain Pyro, then every probnn tool on it, tiny sizes."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PROBNN_DATA", str(data_dir))
    monkeypatch.setenv("PROBNN_OWN_MODEL_QUICK", "1")
    monkeypatch.setenv("MPLBACKEND", "Agg")
    nb = nbformat.read(OWN_MODEL, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    text = "".join(o.get("text", "") for o in outputs if o.get("output_type") == "stream")
    for needle in ("plain Pyro SVI", "IWAE(50)", "Pareto k", "AIS", "approximation gap",
                   "dreg-iwae", "STL inside plain SVI"):
        assert needle in text, needle
    assert "Error" not in text and "Traceback" not in text
