"""Data loading: the xkcd CSV (real file and malformed ones) and MNIST from a data folder."""
from __future__ import annotations

import builtins
import gzip
import math
import os
import random
import shutil
import time

import pytest
import torch

from probnn.datasets import (DataFormatError, DataNotFoundError, ENV_VAR, candidate_dirs,
                             holdout_split, load_mnist, load_xkcd, read_xkcd_csv)
from probnn.datasets import xkcd as xkcd_module
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


# 31 rows like the real file's, with row 2 (file line 3) replaced where a test needs it
_ROWS = [(0.947 + 0.27 * i, 1.6371 + 0.25 * i) for i in range(31)]


def _csv(x2=None, y2=None, x=None, y=None) -> str:
    rows = [(x if x is not None else a, y if y is not None else b) for a, b in _ROWS]
    if x2 is not None:
        rows[1] = (x2, rows[1][1])
    if y2 is not None:
        rows[1] = (rows[1][0], y2)
    return "x,y\n" + "".join(f"{a},{b}\n" for a, b in rows)


@pytest.mark.parametrize("content, column, value", [
    (_csv(y2="1e39"), "y", "1e39"),          # finite in float64, inf in float32
    (_csv(x2="1e308"), "x", "1e308"),
    (_csv(y2="-1e39"), "y", "-1e39"),
    (_csv(y2="1e400"), "y", "1e400"),        # inf even in float64
    ("x,y\n1,3e38\n2,-3e38\n3,1\n", "y", "3e38"),   # finite in float32, its spread is not
    (_csv(y2="1e20"), "y", "1e20"),          # finite in float32, its square is not
], ids=["1e39", "1e308", "-1e39", "1e400", "pm3e38", "1e20"])
def test_values_too_large_for_float32_are_rejected(tmp_path, content, column, value):
    path = _write(tmp_path, content)
    with pytest.raises(DataFormatError) as info:
        read_xkcd_csv(path)
    msg = str(info.value)
    assert str(path) in msg and f"column '{column}'" in msg and value in msg, msg
    assert "float32" in msg and "row" in msg and "\n" not in msg, msg


def test_largest_accepted_values_give_finite_statistics(tmp_path):
    """At the limit (±1e15) the standardisation the Bayesian models do stays finite in float32."""
    x, y = read_xkcd_csv(_write(tmp_path, "x,y\n-1e15,1e15\n1e15,-1e15\n0,0\n"))
    for t in (x, y):
        assert torch.isfinite(t).all() and torch.isfinite(t.std()) and t.std() > 0
        assert torch.isfinite((t - t.mean()) / t.std()).all()
        assert torch.isfinite((t * t).sum())


@pytest.mark.parametrize("content, problem", [
    (_csv(x=5), "column 'x' has the same value (5) in all 31 rows"),
    (_csv(y=2), "column 'y' has the same value (2) in all 31 rows"),
    ("x,y\n1,1e-20\n2,2e-20\n3,4e-20\n", "column 'y' has a standard deviation of"),
    ("x,y\n0,1\n1e-300,2\n3e-300,3\n", "standard deviation of 1.53e-300"),  # squares underflow
    ("x,y\n100000000.001,1\n100000000.002,2\n100000000.003,3\n", "column 'x' varies too little"),
    ("x,y\n1000000000.5,1\n1000000001.5,2\n1000000002.5,3\n", "subtract a constant"),
], ids=["constant-x", "constant-y", "tiny-sd", "sd-underflows", "equal-in-float32",
        "offset-too-large"])
def test_columns_the_models_cannot_standardise_are_rejected(tmp_path, content, problem):
    path = _write(tmp_path, content)
    with pytest.raises(DataFormatError) as info:
        read_xkcd_csv(path)
    assert problem in str(info.value) and str(path) in str(info.value), str(info.value)


@pytest.mark.parametrize("content, problem", [
    (b"x,y\n1,2\x00\n3,4\n", "NUL byte (line 2)"),
    (b"x,y\n1,2\n3,\xff4\n", "not UTF-8 text (byte 0xff on line 3"),
    ("x,y,note\n1,2,caf\u00e9\n3,4,ok\n".encode("cp1252"), "not UTF-8"),
    ("x,y\n1,2\n3,4\n".encode("utf-16"), "UTF-16"),
    ("x,y,x\n1,2,3\n4,5,6\n", "names column 'x' 2 times"),
    ("y,x,y\n1,2,3\n4,5,6\n", "names column 'y' 2 times"),
    ("x,y\n1,2\n3, \n5,6\n", "missing or non-finite value ' '"),
    ('x,y\n1,2\n"",4\n5,6\n', "missing or non-finite value ''"),
    ("x,y\n1,2\nInfinity,4\n5,6\n", "non-finite"),
    ("x,y\n1,2\nNA,4\n5,6\n", "missing or non-finite"),
    ("x,y\n1,2\n3,4,5\n6,7\n", "line 3 has 3 field(s) but the header (line 1) has 2"),
    ("x,y\n1,2\n3\n6,7\n", "line 3 has 1 field(s)"),
    ('x,y\n"1,5",2\n3,4\n', "use '.' for decimals"),
    ("x,y\n1_000,2\n3,4\n", "non-numeric value '1_000'"),
    ("x;y\n1;2\n3;4\n", "separated by ';'"),
    ("X,Y\n1,2\n3,4\n", "case-sensitive"),
    ("\n\n  \n", "is empty"),
], ids=["nul", "invalid-utf8", "cp1252", "utf16", "duplicate-x", "duplicate-y", "whitespace-cell",
        "empty-string", "Infinity", "NA", "long-row", "short-row", "decimal-comma", "underscore",
        "semicolons", "upper-case", "whitespace-only"])
def test_malformed_text_gets_one_clear_line(tmp_path, content, problem):
    path = _write(tmp_path, content)
    with pytest.raises(DataFormatError) as info:
        read_xkcd_csv(path)
    msg = str(info.value)
    assert problem in msg and str(path) in msg and "\n" not in msg, msg


@pytest.mark.parametrize("content", [
    b"\xef\xbb\xbfx,y\n1,2\n3,4\n",           # byte-order mark (Excel's "CSV UTF-8")
    b"x,y\n\n1,2\n\n3,4\n\n",                 # blank lines
    b"  x , y \n 1 , 2 \n 3 ,\t4 \n",         # whitespace around names and numbers
    b"x,y,note\n1,2,a\n3,4,b\n",              # extra columns are ignored
    b"note,y,x\na,2,1\nb,4,3\n",              # in any order
    b"x,y\r\n1,2\r\n3,4\r\n",                 # Windows line ends
    b"x,y\r1,2\r3,4",                         # old Mac line ends, no final newline
    b'"x","y"\n"1","2"\n"3","4"\n',           # quoted
    b"x,y,\n1,2,\n3,4,\n",                    # a trailing comma on every line
], ids=["bom", "blank-lines", "whitespace", "extra-columns", "column-order", "crlf", "cr",
        "quoted", "trailing-comma"])
def test_harmless_variants_are_read(tmp_path, content):
    x, y = read_xkcd_csv(_write(tmp_path, content))
    assert x[:, 0].tolist() == [1.0, 3.0] and y[:, 0].tolist() == [2.0, 4.0]


def test_huge_file_is_refused_before_reading(tmp_path):
    path = tmp_path / "xkcd.csv"
    with open(path, "wb") as f:
        f.write(b"x,y\n1,2\n")
        f.truncate(2**30)  # 1 GiB, sparse: costs no disk
    t0 = time.perf_counter()
    with pytest.raises(DataFormatError) as info:
        read_xkcd_csv(path)
    assert time.perf_counter() - t0 < 0.5
    msg = str(info.value)
    assert "1,073,741,824 bytes" in msg and "1 MiB" in msg and "small data" in msg, msg
    assert len(msg) < 400


def test_too_many_rows_are_refused(tmp_path):
    path = _write(tmp_path, "x,y\n" + "1,2\n3,4\n" * 501)  # 1,002 rows, 8 kB
    with pytest.raises(DataFormatError, match=r"more than 1,000 rows.*small data"):
        read_xkcd_csv(path)
    x, _ = read_xkcd_csv(_write(tmp_path, "x,y\n" + "1,2\n3,4\n" * 500))  # the limit itself
    assert len(x) == 1_000


def _special(tmp_path, kind: str):
    path = tmp_path / "xkcd.csv"
    if kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # opening it would block: it must be refused without opening
    elif kind == "device":
        path.symlink_to("/dev/zero")  # reading it would never end
    elif kind == "broken-link":
        path.symlink_to(tmp_path / "gone.csv")
    return path


@pytest.mark.parametrize("kind, error, problem", [
    ("folder", DataFormatError, "is a folder, not a file"),
    ("fifo", DataFormatError, "is not a regular file"),
    ("device", DataFormatError, "is not a regular file"),
    ("broken-link", DataNotFoundError, "is a symbolic link to"),
])
def test_not_a_regular_file(tmp_path, monkeypatch, isolated_cache, kind, error, problem):
    path = _special(tmp_path, kind)
    with pytest.raises(error, match=problem):
        read_xkcd_csv(path)
    # load_xkcd reports it too, and neither falls back to another copy nor downloads one
    monkeypatch.setattr(xkcd_module, "_download", _no_download)
    with pytest.raises(error, match=problem):
        load_xkcd(tmp_path, download=True)


def _no_download(url, dest):
    raise AssertionError(f"must not download {url}")


def _deny(monkeypatch, path):
    """Make reading ``path`` fail as it does without read permission (tests run as root too)."""
    real_open, real_access = builtins.open, os.access

    def fake_open(file, *args, **kwargs):
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)

    def fake_access(file, mode, **kwargs):
        return False if os.fspath(file) == str(path) else real_access(file, mode, **kwargs)
    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr(os, "access", fake_access)


def test_unreadable_file(tmp_path, monkeypatch, isolated_cache):
    path = _write(tmp_path, "x,y\n1,2\n3,4\n")
    monkeypatch.setattr(xkcd_module, "_download", _no_download)
    _deny(monkeypatch, path)
    for read in (lambda: read_xkcd_csv(path), lambda: load_xkcd(tmp_path, download=True)):
        with pytest.raises(DataFormatError, match="cannot be read .permission denied.; make it"):
            read()


def test_data_dir_naming_the_file_itself_gets_a_hint(tmp_path, isolated_cache):
    path = _write(tmp_path, "x,y\n1,2\n3,4\n")
    with pytest.raises(DataNotFoundError, match="is a file: DIR must be the folder that holds"):
        load_xkcd(path, download=False)


def test_cli_bad_xkcd_is_one_line_exit_2(tmp_path, capsys, isolated_cache):
    from probnn.cli import main
    d = tmp_path / "data"
    d.mkdir()
    _write(d, _csv(y2="1e39"))
    code = main(["regression", "--epochs", "5", "--data-dir", str(d), "--out", str(tmp_path / "o"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("probnn: ") and "Traceback" not in err, err
    assert "column 'y'" in err and "1e39" in err
    assert not (tmp_path / "o").exists()


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


def test_a_failed_download_is_reported_on_one_line(tmp_path, monkeypatch, isolated_cache):
    """torchvision's download errors span lines (one per mirror tried); the message is one."""
    import torchvision.datasets

    class Offline:
        def __init__(self, *a, download=False, **k):
            if download:
                raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\n"
                                   "Tried https://a/, got:\n<urlopen error no network>\n")
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setattr(torchvision.datasets, "MNIST", Offline)
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(tmp_path / "none", download=True)
    assert "\n" not in str(info.value) and "no network" in str(info.value)


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


# ----------------------------------------------------------------------------- MNIST: bad folders
TRAIN_IMAGES, TRAIN_LABELS, TEST_IMAGES, TEST_LABELS = MNIST_FILES


def _idx(magic: int, *dims: int, body: bytes | None = None, order: str = "big") -> bytes:
    """An idx file: big-endian magic and dimensions, then the bytes (zeros unless given)."""
    head = b"".join(v.to_bytes(4, order) for v in (magic, *dims))
    return head + (bytes(math.prod(dims)) if body is None else body)


@pytest.fixture
def mnist_folder(tmp_path, data_dir, monkeypatch, isolated_cache):
    """A data folder whose MNIST/raw/ links to the real files (nothing copied); a test replaces
    one of them. Returns ``(folder, raw)``."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    raw = tmp_path / "data" / MNIST_RAW
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).symlink_to(data_dir / MNIST_RAW / name)
    return tmp_path / "data", raw


def _replace(raw, name, kind):
    path = raw / name
    path.unlink()
    if isinstance(kind, bytes):
        path.write_bytes(kind)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)
    elif kind == "broken-link":
        path.symlink_to(raw / "gone")
    elif kind.startswith("link:"):
        path.symlink_to((raw / kind[5:]).resolve())
    elif kind == "missing":
        pass
    return path


def _labels(n: int, bad_at: int | None = None) -> bytes:
    body = bytearray(i % 10 for i in range(n))
    if bad_at is not None:
        body[bad_at] = 255
    return _idx(2049, n, body=bytes(body))


@pytest.mark.parametrize("name, kind, problem", [
    (TEST_LABELS, _idx(2049, 10000, body=b""), "t10k-labels-idx1-ubyte: 8 bytes, expected 10,008 "
                                               "(10,000 labels); the file is truncated"),
    (TEST_LABELS, b"", "t10k-labels-idx1-ubyte is empty (0 bytes, expected 10,008"),
    (TEST_LABELS, b"\x00\x00\x08", "t10k-labels-idx1-ubyte: 3 bytes, expected 10,008"),
    (TRAIN_IMAGES, _idx(2051, 60000, 28, 28, body=bytes(1000)),
     "train-images-idx3-ubyte: 1,016 bytes, expected 47,040,016 (60,000 images of 28x28); "
     "the file is truncated"),
    (TRAIN_LABELS, f"link:{TEST_LABELS}",
     "train-labels-idx1-ubyte holds 10,000 labels; it looks like the test-set file "
     "t10k-labels-idx1-ubyte"),
    (TRAIN_IMAGES, f"link:{TEST_IMAGES}",
     "train-images-idx3-ubyte holds 10,000 images of 28x28; it looks like the test-set file "
     "t10k-images-idx3-ubyte"),
    (TEST_LABELS, _labels(60000), "t10k-labels-idx1-ubyte holds 60,000 labels; it looks like the "
                                  "training-set file train-labels-idx1-ubyte"),
    (TEST_IMAGES, f"link:{TEST_LABELS}", "t10k-images-idx3-ubyte holds 10,000 labels; it looks "
                                         "like t10k-labels-idx1-ubyte"),
    (TEST_LABELS, _labels(10000, bad_at=1234), "label 255 at index 1,234 (1 label outside 0..9)"),
    (TEST_LABELS, _labels(10000) + bytes(100), "10,108 bytes, expected 10,008 (10,000 labels); "
                                               "it has 100 bytes too many"),
    (TEST_IMAGES, _idx(2051, 10000, 32, 32), "holds 10,000 images of 32x32, expected 10,000 "
                                             "images of 28x28"),
    (TEST_LABELS, _idx(2049, 10000, order="little"), "little-endian header"),
    (TEST_LABELS, b"GIF89a" + bytes(10002), "does not start with the MNIST labels header"),
    (TEST_LABELS, gzip.compress(_labels(10000), mtime=0), "is gzip-compressed: rename it to "
                                                          "t10k-labels-idx1-ubyte.gz"),
    (TEST_LABELS, b"<!DOCTYPE html><html>Access Denied</html>", "is a web page"),
    (TEST_LABELS, "folder", "t10k-labels-idx1-ubyte is a folder, not a file"),
    (TEST_LABELS, "fifo", "t10k-labels-idx1-ubyte is not a regular file"),
    (TEST_LABELS, "broken-link", "t10k-labels-idx1-ubyte is a symbolic link to"),
], ids=["labels-8-bytes", "labels-0-bytes", "labels-3-bytes", "images-truncated",
        "train-labels-from-test", "train-images-from-test", "test-labels-from-train",
        "images-are-labels", "label-out-of-range", "extra-bytes", "32x32", "little-endian",
        "not-idx", "gzip-without-suffix", "html", "folder", "fifo", "broken-link"])
def test_bad_mnist_file_is_named_with_its_problem(mnist_folder, name, kind, problem):
    folder, raw = mnist_folder
    _replace(raw, name, kind)
    for train in (True, False):  # whichever split is asked for: torchvision needs all four
        with pytest.raises(DataFormatError) as info:
            load_mnist(folder, train=train, download=False)
        msg = str(info.value)
        assert problem in msg and str(raw) in msg and "\n" not in msg, msg
        assert "fresh copy" in msg, msg


def test_unreadable_mnist_file(mnist_folder, monkeypatch):
    folder, raw = mnist_folder
    path = raw / TEST_IMAGES
    real_open = builtins.open

    def fake_open(file, *args, **kwargs):  # tests may run as root, where chmod 000 reads fine
        if os.fspath(file) == str(path):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(file, *args, **kwargs)
    monkeypatch.setattr(builtins, "open", fake_open)
    with pytest.raises(DataFormatError, match="t10k-images-idx3-ubyte cannot be read .permission"):
        load_mnist(folder, train=True, download=False)


def test_several_bad_files_are_all_named(mnist_folder):
    folder, raw = mnist_folder
    _replace(raw, TRAIN_LABELS, f"link:{TEST_LABELS}")  # links to the real file
    _replace(raw, TEST_LABELS, b"")
    with pytest.raises(DataFormatError, match=r"bad MNIST files in .*train-labels-idx1-ubyte holds "
                                              r"10,000 labels.*; t10k-labels-idx1-ubyte is empty") \
            as info:
        load_mnist(folder, train=False, download=False)
    assert "replace them with fresh copies (download the .gz files from" in str(info.value)


@pytest.mark.parametrize("name", MNIST_FILES)
def test_missing_mnist_file_is_named(mnist_folder, name):
    folder, raw = mnist_folder
    _replace(raw, name, "missing")
    for train in (True, False):
        with pytest.raises(DataNotFoundError) as info:
            load_mnist(folder, train=train, download=False)
        msg = str(info.value)
        assert f"MNIST file missing from {raw}: {name} " in msg, msg
        assert "training files" not in msg and "test files" not in msg


def test_gz_only_says_to_gunzip(mnist_folder):
    folder, raw = mnist_folder
    for name in MNIST_FILES:
        _replace(raw, name, "missing")
        (raw / f"{name}.gz").write_bytes(b"")
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(folder, train=False, download=False)
    msg = str(info.value)
    assert "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz" in msg
    assert f"gunzip -k {raw}/*.gz" in msg
    assert sorted(p.name for p in raw.iterdir()) == sorted(f"{n}.gz" for n in MNIST_FILES)


def test_partial_folder_is_reported_not_replaced_by_the_cache(mnist_folder, isolated_cache,
                                                              data_dir):
    folder, raw = mnist_folder
    cached = isolated_cache / "probnn" / "data"
    cached.mkdir(parents=True)
    (cached / "MNIST").symlink_to(data_dir / "MNIST")  # a complete copy in the cache
    _replace(raw, TEST_LABELS, "missing")
    with pytest.raises(DataNotFoundError, match=f"missing from {raw}"):
        load_mnist(folder, train=False, download=True)
    assert load_mnist(tmp := folder.parent / "elsewhere", train=False, download=False)[0].shape[0] \
        == 10000 and not tmp.exists()  # a folder without MNIST falls back to the cache


def test_bad_file_in_cache_is_not_downloaded_over(isolated_cache, data_dir, monkeypatch):
    from torchvision.datasets import MNIST
    monkeypatch.delenv(ENV_VAR, raising=False)
    raw = isolated_cache / "probnn" / "data" / MNIST_RAW
    raw.mkdir(parents=True)
    for name in MNIST_FILES:
        (raw / name).symlink_to(data_dir / MNIST_RAW / name)
    _replace(raw, TEST_LABELS, _idx(2049, 10000, body=bytes(10)))

    def no_download(self):
        raise AssertionError("must not download")
    monkeypatch.setattr(MNIST, "download", no_download)
    with pytest.raises(DataFormatError, match="delete it and run again"):
        load_mnist(None, train=False, download=True)


def test_a_broken_processed_folder_is_ignored(mnist_folder):
    folder, raw = mnist_folder
    processed = raw.parent / "processed"  # torchvision's MNIST would read these instead of raw/
    processed.mkdir()
    for name in ("training.pt", "test.pt"):
        (processed / name).write_bytes(b"not a torch file")
    x, y = load_mnist(folder, train=False, download=False)  # the checked raw files
    assert x.shape == (10000, 1, 28, 28) and y.shape == (10000,)


def test_valid_synthetic_folder_loads(tmp_path, monkeypatch, isolated_cache):
    """Any four files with MNIST's headers and sizes are accepted (zeros are valid pixels and
    labels): the check is on the format, not on the content."""
    monkeypatch.delenv(ENV_VAR, raising=False)
    raw = tmp_path / MNIST_RAW
    raw.mkdir(parents=True)
    for name, n in zip(MNIST_FILES, (60000, 60000, 10000, 10000)):
        (raw / name).write_bytes(_idx(2051, n, 28, 28) if "images" in name else _labels(n))
    images, labels = load_mnist(tmp_path, train=False, download=False)
    assert images.shape == (10000, 1, 28, 28) and labels[:12].tolist() == [*range(10), 0, 1]


def test_cli_bad_mnist_is_one_line_exit_2(mnist_folder, tmp_path, capsys):
    from probnn.cli import main
    folder, raw = mnist_folder
    _replace(raw, TEST_LABELS, _idx(2049, 10000, body=b""))
    code = main(["vae", "train", "--architecture", "mlp", "--latent-dim", "2", "--epochs", "1",
                 "--train-images", "100", "--data-dir", str(folder), "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("probnn: bad MNIST file in ") and \
        "Traceback" not in err, err
    assert "t10k-labels-idx1-ubyte: 8 bytes, expected 10,008" in err


def test_unreadable_mnist_folder(mnist_folder, monkeypatch):
    folder, raw = mnist_folder
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if os.fspath(p) == str(raw)
                        else real_access(p, mode, **kw))
    with pytest.raises(DataFormatError, match=r"raw: cannot be read \(permission denied\)"):
        load_mnist(folder, train=False, download=False)
