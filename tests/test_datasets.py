"""Data loading: the xkcd CSV (real file and malformed ones) and MNIST from a data folder."""
from __future__ import annotations

import gzip
import random
import shutil

import pytest
import torch

from probnn.datasets import (DataFormatError, DataNotFoundError, ENV_VAR, candidate_dirs,
                             holdout_split, load_mnist, load_xkcd, read_xkcd_csv)
from probnn.datasets.mnist import MNIST_RAW

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
               "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# ----------------------------------------------------------------------------- xkcd: real file
def test_load_xkcd_real_data(data_dir):
    x, y = load_xkcd(data_dir, download=False)
    assert x.shape == (31, 1) and y.shape == (31, 1)
    assert x.dtype == torch.float32 and y.dtype == torch.float32
    assert torch.isfinite(x).all() and torch.isfinite(y).all()
    assert torch.all(x[1:, 0] >= x[:-1, 0]), "xkcd points should be sorted by x"
    # first row of the file
    assert x[0, 0].item() == pytest.approx(0.947)
    assert y[0, 0].item() == pytest.approx(1.6371)


def test_load_xkcd_through_env_var(data_dir, monkeypatch, isolated_cache):
    monkeypatch.setenv(ENV_VAR, str(data_dir))
    x, y = load_xkcd(download=False)
    assert x.shape == (31, 1) and y.shape == (31, 1)


# ----------------------------------------------------------------------------- xkcd: bad files
def _write(tmp_path, content: str | bytes, name: str = "xkcd.csv"):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


@pytest.mark.parametrize("content, problem", [
    ("a,b\n1,2\n3,4\n", "missing column"),
    ("x,z\n1,2\n3,4\n", "missing column"),
    ("x,y\n1,2\nfoo,3\n4,5\n", "non-numeric value 'foo'"),
    ("x,y\n1,2\n3,4\n5,bar\n", "non-numeric value 'bar'"),
    ("x,y\n1,True\n2,False\n", "non-numeric value 'True'"),
    ("x,y\n1,2\n3,\n5,6\n", "missing or non-finite"),
    ("x,y\n1,2\nNaN,4\n5,6\n", "missing or non-finite"),
    ("x,y\n1,2\n3,inf\n5,6\n", "non-finite"),
    ("x,y\n1,2\n-inf,4\n5,6\n", "non-finite"),
    ("x,y\n1,2\n", "at least 2 rows"),
    ("x,y\n", "at least 2 rows"),
], ids=["no-x-y", "no-y", "text-in-x", "text-in-y", "booleans", "empty-cell", "nan", "inf", "minus-inf",
        "one-row", "header-only"])
def test_bad_csv_raises_data_format_error(tmp_path, content, problem):
    path = _write(tmp_path, content)
    with pytest.raises(DataFormatError) as info:
        read_xkcd_csv(path)
    msg = str(info.value)
    assert str(path) in msg, msg
    assert problem in msg, msg


def test_bad_csv_error_names_column_and_row(tmp_path):
    path = _write(tmp_path, "x,y\n1,2\n3,4\n5,oops\n")
    with pytest.raises(DataFormatError, match=r"column 'y'.*'oops'.*row 3"):
        read_xkcd_csv(path)


@pytest.mark.parametrize("content", [
    b"",
    b"\n\n\n",
    bytes(random.Random(0).randrange(256) for _ in range(2000)),
    bytes(random.Random(1).randrange(256) for _ in range(5000)),
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x1c\x00\x00\x00\x1c\x08\x00\x00\x00\x00",
    gzip.compress(b"x,y\n1,2\n3,4\n", mtime=0),
], ids=["empty", "blank-lines", "random-bytes-1", "random-bytes-2", "png-header", "gzip"])
def test_not_a_csv_raises_data_format_error(tmp_path, content):
    path = _write(tmp_path, content)
    with pytest.raises(DataFormatError) as info:
        read_xkcd_csv(path)
    assert str(path) in str(info.value)


def test_load_xkcd_validates_the_file_it_finds(tmp_path, isolated_cache):
    _write(tmp_path, "x,y\n1,2\n3,oops\n")
    with pytest.raises(DataFormatError, match="non-numeric"):
        load_xkcd(tmp_path, download=False)


# ----------------------------------------------------------------------------- xkcd: lookup
def test_missing_xkcd_without_download(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.delenv(ENV_VAR, raising=False)
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(DataNotFoundError) as info:
        load_xkcd(empty, download=False)
    msg = str(info.value)
    assert str(empty / "xkcd.csv") in msg          # where it looked: the given folder ...
    assert str(isolated_cache) in msg               # ... and the user cache
    assert "--data-dir" in msg and "PROBNN_DATA" in msg
    assert "download=False" in msg
    assert isinstance(info.value, FileNotFoundError)
    assert not any(isolated_cache.rglob("*")), "nothing may be written to the cache"


def test_missing_xkcd_via_env_var_reports_env_folder(tmp_path, monkeypatch, isolated_cache):
    empty = tmp_path / "env-folder"
    empty.mkdir()
    monkeypatch.setenv(ENV_VAR, str(empty))
    with pytest.raises(DataNotFoundError) as info:
        load_xkcd(download=False)
    assert str(empty / "xkcd.csv") in str(info.value)


def test_explicit_data_dir_beats_env_var(tmp_path, data_dir, monkeypatch, isolated_cache):
    decoy = tmp_path / "decoy"
    decoy.mkdir()
    (decoy / "xkcd.csv").write_text("x,y\n0,0\n1,1\n2,2\n")
    monkeypatch.setenv(ENV_VAR, str(decoy))
    assert load_xkcd(download=False)[0].shape == (3, 1)          # env var used without data_dir
    assert load_xkcd(data_dir, download=False)[0].shape == (31, 1)  # explicit folder wins
    # and an explicit folder without the data does not silently fall back to $PROBNN_DATA
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataNotFoundError):
        load_xkcd(empty, download=False)
    dirs = candidate_dirs(empty)
    assert dirs[0] == empty and decoy not in dirs


def test_cache_is_searched_last(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.delenv(ENV_VAR, raising=False)
    cached = isolated_cache / "probnn" / "data"
    cached.mkdir(parents=True)
    (cached / "xkcd.csv").write_text("x,y\n0,0\n1,1\n")
    assert load_xkcd(download=False)[0].shape == (2, 1)
    assert candidate_dirs(tmp_path)[-1] == cached


# ----------------------------------------------------------------------------- MNIST
def test_load_mnist_test_set(data_dir):
    images, labels = load_mnist(data_dir, train=False, download=False)
    assert images.shape == (10000, 1, 28, 28)
    assert images.dtype == torch.float32
    assert images.min().item() == 0.0 and images.max().item() == 1.0
    assert labels.shape == (10000,) and labels.dtype == torch.int64
    assert set(labels.unique().tolist()) == set(range(10))
    assert labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]  # MNIST's first test labels


def test_load_mnist_training_indices(data_dir):
    images, labels = load_mnist(data_dir, train=True, download=False)
    assert images.shape == (60000, 1, 28, 28) and labels.shape == (60000,)
    assert labels.dtype == torch.int64
    assert 0.0 <= images.min().item() and images.max().item() <= 1.0
    assert images.mean().item() == pytest.approx(0.1307, abs=5e-4)
    for idx, digit in [(59289, 1), (28001, 6), (35508, 1), (43876, 8)]:
        assert labels[idx].item() == digit, idx
        assert images[idx].sum() > 10  # not a blank image


def test_holdout_split():
    n = 60000
    tr, ho = holdout_split(n, 0.1, seed=3)
    assert len(ho) == 6000 and len(tr) == 54000
    assert tr.dtype == torch.int64
    assert len(set(tr.tolist()) & set(ho.tolist())) == 0
    assert torch.equal(torch.sort(torch.cat([tr, ho])).values, torch.arange(n))
    assert torch.all(tr[1:] > tr[:-1]) and torch.all(ho[1:] > ho[:-1])
    tr2, ho2 = holdout_split(n, 0.1, seed=3)
    assert torch.equal(tr, tr2) and torch.equal(ho, ho2)
    _, ho3 = holdout_split(n, 0.1, seed=4)
    assert not torch.equal(ho, ho3)
    assert len(holdout_split(101, 0.25, seed=0)[1]) == 25
    for bad in (0.0, 1.0, -0.1, 1.5):
        with pytest.raises(ValueError):
            holdout_split(n, bad, seed=0)


def test_missing_mnist_without_download(tmp_path, monkeypatch, isolated_cache):
    monkeypatch.delenv(ENV_VAR, raising=False)
    empty = tmp_path / "no-mnist"
    empty.mkdir()
    for train in (True, False):
        with pytest.raises(DataNotFoundError) as info:
            load_mnist(empty, train=train, download=False)
        msg = str(info.value)
        assert str(empty / MNIST_RAW) in msg
        assert "--data-dir" in msg and "PROBNN_DATA" in msg
    assert not any(isolated_cache.rglob("*"))


@pytest.mark.parametrize("keep", [
    ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),   # only the test split
    tuple(f + ".gz" for f in MNIST_FILES),                    # only compressed files
], ids=["test-split-only", "gz-only"])
def test_incomplete_mnist_folder_is_data_not_found(tmp_path, data_dir, monkeypatch, isolated_cache, keep):
    """A folder torchvision cannot read (with download=False) must give DataNotFoundError,
    not torchvision's bare RuntimeError("Dataset not found. You can use download=True")."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    raw = tmp_path / "partial" / MNIST_RAW
    raw.mkdir(parents=True)
    for name in keep:
        if name.endswith(".gz"):
            (raw / name).write_bytes(b"")  # existence is all that matters for the lookup
        else:
            shutil.copy(data_dir / MNIST_RAW / name, raw / name)
    with pytest.raises(DataNotFoundError):
        load_mnist(tmp_path / "partial", train=False, download=False)
