"""The xkcd 2048 ("Curve-Fitting") data set: 31 points, columns ``x`` and ``y``."""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .paths import DataFormatError, DataNotFoundError, cache_dir, candidate_dirs, not_found_message

XKCD_URL = "https://www.cl.cam.ac.uk/teaching/2122/DataSci/data/xkcd.csv"
XKCD_FILE = "xkcd.csv"


def read_xkcd_csv(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read and validate an xkcd-style CSV; return float tensors ``(x, y)`` of shape (n, 1).

    Raises :class:`DataFormatError` naming the file and the problem when the columns ``x`` and
    ``y`` are missing, hold non-numeric or non-finite values, or there are fewer than 2 rows.
    """
    path = Path(path)
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as e:
        raise DataFormatError(f"{path}: cannot be read as CSV ({e})") from e
    missing = [c for c in ("x", "y") if c not in df.columns]
    if missing:
        raise DataFormatError(
            f"{path}: missing column(s) {missing}; expected columns 'x' and 'y', found {list(df.columns)}")
    cols = {}
    for c in ("x", "y"):
        if pd.api.types.is_bool_dtype(df[c]):  # pandas parses a column of True/False as bool,
            raise DataFormatError(              # which to_numeric would pass through as 1/0
                f"{path}: column '{c}' has a non-numeric value {str(df[c].iloc[0])!r} at data row 1")
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() & df[c].notna()
        if bad.any():
            row = int(np.flatnonzero(bad.to_numpy())[0])
            raise DataFormatError(
                f"{path}: column '{c}' has a non-numeric value {df[c].iloc[row]!r} at data row {row + 1}")
        arr = values.to_numpy(dtype=np.float64)
        nonfinite = ~np.isfinite(arr)
        if nonfinite.any():
            row = int(np.flatnonzero(nonfinite)[0])
            raise DataFormatError(
                f"{path}: column '{c}' has a missing or non-finite value ({arr[row]}) at data row {row + 1}")
        cols[c] = arr
    if len(df) < 2:
        raise DataFormatError(f"{path}: needs at least 2 rows of data, found {len(df)}")
    x = torch.tensor(cols["x"], dtype=torch.float32).unsqueeze(-1)
    y = torch.tensor(cols["y"], dtype=torch.float32).unsqueeze(-1)
    return x, y


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
        f.write(r.read())
    os.replace(tmp, dest)


def find_xkcd(data_dir=None, download: bool = True) -> Path:
    """Return the path of ``xkcd.csv``: in ``data_dir``, ``$PROBNN_DATA`` or the cache, else download."""
    searched = candidate_dirs(data_dir)
    for d in searched:
        if (d / XKCD_FILE).is_file():
            return d / XKCD_FILE
    error = None
    if download:
        dest = cache_dir() / XKCD_FILE
        try:
            _download(XKCD_URL, dest)
            return dest
        except OSError as e:  # URLError and timeouts are OSErrors
            error = e
    raise DataNotFoundError(not_found_message("xkcd data", XKCD_FILE, searched, XKCD_URL, error))


def load_xkcd(data_dir=None, download: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the xkcd 2048 points as float tensors ``(x, y)`` of shape (31, 1).

    Looks in ``data_dir``, then ``$PROBNN_DATA``, then the user cache; downloads the course's
    file into the cache when allowed.
    """
    return read_xkcd_csv(find_xkcd(data_dir, download))
