"""Shared fixtures: seeding, a clean Pyro param store, the data folder and small synthetic data."""
from __future__ import annotations

import os
from pathlib import Path

# Must happen before anything imports matplotlib (probnn.analysis does).
os.environ["MPLBACKEND"] = "Agg"

import pyro  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = PROJECT_ROOT.parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _seed_and_clean_param_store():
    """Every test starts from the same RNG state and an empty global param store."""
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield
    pyro.clear_param_store()


def _resolve_data_dir() -> Path:
    raw = os.environ.get("PROBNN_DATA")
    path = Path(raw).expanduser() if raw else DEFAULT_DATA
    if not path.is_absolute():
        path = PROJECT_ROOT / path  # CI sets PROBNN_DATA=../shared/data relative to the project root
    return path.resolve()


@pytest.fixture
def data_dir() -> Path:
    """The folder with the real data (``xkcd.csv``, ``MNIST/raw/``); skips the test if absent."""
    path = _resolve_data_dir()
    if not path.is_dir():
        pytest.skip(f"data folder {path} not found (set PROBNN_DATA to the folder holding "
                    "xkcd.csv and MNIST/raw/)")
    return path


@pytest.fixture
def one_thread():
    """torch with one thread for the test: for exact comparisons with a computation that runs
    with one thread elsewhere (a Dask worker, a subprocess), since the order of a sum split
    across threads can differ from the one-thread order."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch) -> Path:
    """Point the user cache (``$XDG_CACHE_HOME/probnn/data``) at an empty temporary folder,
    so data-not-found tests never see (or write into) the real user cache."""
    cache = tmp_path / "xdg-cache"
    cache.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    return cache


@pytest.fixture
def tiny_regression():
    """Small synthetic regression data ``(x, y)``, both float32 of shape (n, 1): y = 2x + noise."""
    g = torch.Generator().manual_seed(1234)
    n = 40
    x = torch.linspace(-2.0, 2.0, n).unsqueeze(-1)
    y = 2.0 * x + 0.3 * torch.randn(n, 1, generator=g)
    return x, y
