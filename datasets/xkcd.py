"""The xkcd 2048 ("Curve-Fitting") data set: 31 points, columns ``x`` and ``y``."""
from __future__ import annotations

import csv
import io
import math
import os
import re
import stat
import urllib.request
from pathlib import Path

import numpy as np
import torch

from .paths import DataFormatError, DataNotFoundError, cache_dir, candidate_dirs, not_found_message

XKCD_URL = "https://www.cl.cam.ac.uk/teaching/2122/DataSci/data/xkcd.csv"
XKCD_FILE = "xkcd.csv"

MAX_ROWS = 1_000
"""Most data rows read. The real file has 31; the models train full-batch for 50,000 epochs and
record f(x) and sigma(x) at every point in every epoch (for the dip explanation): 8 bytes x rows
x 50,000 epochs is 400 MB at 1,000 rows, so a file of millions of rows would run for hours and
fill memory rather than fail."""

MAX_BYTES = 2**20
"""Largest file read (1 MiB): room for MAX_ROWS rows of two long numbers and more columns.
Checked before reading, so that an unsuitable large file is refused at once."""

MAX_ABS = 1e15
"""Largest magnitude of a value. The models compute in float32 (largest number about 3.4e38),
the maximum-likelihood ones on the raw values, and the loss and the standardisation sum squares
over the rows: MAX_ROWS * (2 * MAX_ABS)**2 = 4e33 stays finite."""

MIN_SD = 1e-12
"""Smallest standard deviation of a column. The models square it in float32; y * 1e-17
(sd 2e-17) gave a NaN loss in the Bayesian models, y * 1e-15 still worked."""

RESOLUTION = 0.01
"""Largest float32 rounding step at the column's largest value, as a fraction of its sd:
beyond it float32 (about 7 significant digits) rounds the values to a few distinct numbers."""

_LIMIT = f"{MAX_ABS:.0e}".replace("e+", "e")  # "1e15", as a user would write it

_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
# What pandas and spreadsheets write for a missing or non-finite cell (compared lower-cased).
_MISSING = {"", "nan", "-nan", "+nan", "na", "n/a", "null", "none", "inf", "+inf", "-inf",
            "infinity", "+infinity", "-infinity"}


def _regular_file(path: Path) -> os.stat_result:
    """``path``'s stat if it is a regular file; otherwise the error saying what it is instead.

    Checked before opening: opening a FIFO blocks until someone writes to it, and a device
    such as /dev/zero never ends.
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        if path.is_symlink():
            raise DataNotFoundError(f"{path}: is a symbolic link to {os.readlink(path)}, which "
                                    "does not exist; fix or remove the link") from None
        raise DataNotFoundError(f"{path}: no such file") from None
    except PermissionError:
        raise DataFormatError(f"{path}: cannot be read (permission denied); make it readable "
                              "(chmod u+r) or point probnn at another copy") from None
    except OSError as e:
        raise DataFormatError(f"{path}: cannot be read ({e.strerror or e}); point probnn at "
                              "a CSV file with columns x and y") from None
    if stat.S_ISDIR(st.st_mode):
        raise DataFormatError(f"{path}: is a folder, not a file; put the CSV file there "
                              "(columns x and y) or point probnn at another folder")
    if not stat.S_ISREG(st.st_mode):
        raise DataFormatError(f"{path}: is not a regular file (a pipe, socket or device); "
                              "put a CSV file with columns x and y there")
    return st


def _too_big(path: Path, size: int) -> DataFormatError:
    return DataFormatError(
        f"{path}: {size:,} bytes, over probnn's limit of {MAX_BYTES // 2**20} MiB for the xkcd "
        f"data; the xkcd models are meant for small data (the real file has 31 rows), so use a "
        f"file of at most {MAX_ROWS:,} rows")


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _read_text(path: Path) -> str:
    st = _regular_file(path)
    if st.st_size > MAX_BYTES:
        raise _too_big(path, st.st_size)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_BYTES + 1)  # + 1: a file that grew since stat is still caught
    except PermissionError:
        raise DataFormatError(f"{path}: cannot be read (permission denied); make it readable "
                              "(chmod u+r) or point probnn at another copy") from None
    except OSError as e:
        raise DataFormatError(f"{path}: cannot be read ({e.strerror or e})") from None
    if len(data) > MAX_BYTES:
        raise _too_big(path, len(data))
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataFormatError(f"{path}: is UTF-16 text; save it as UTF-8 (in Excel: "
                              "'CSV UTF-8 (comma delimited)')")
    if data.startswith(b"\x1f\x8b"):
        raise DataFormatError(f"{path}: is gzip-compressed; decompress it (gunzip) to a plain CSV "
                              "file")
    nul = data.find(b"\x00")
    if nul >= 0:
        raise DataFormatError(f"{path}: contains a NUL byte (line {_line_of(data, nul)}), "
                              "so it is a binary file, not CSV text; expected a CSV file with "
                              "columns x and y")
    try:
        return data.decode("utf-8-sig")  # -sig: a byte-order mark, as Excel writes, is dropped
    except UnicodeDecodeError as e:
        raise DataFormatError(
            f"{path}: is not UTF-8 text (byte 0x{data[e.start]:02x} on line "
            f"{_line_of(data, e.start)}; Windows-1252 or Latin-1?); save it as UTF-8"
            ) from None


def _header(path: Path, names: list[str], line: int) -> tuple[int, int]:
    """The indices of columns ``x`` and ``y`` in the header row ``names``."""
    names = [n.strip() for n in names]
    where = {}
    for c in ("x", "y"):
        at = [i for i, n in enumerate(names) if n == c]
        if len(at) > 1:
            raise DataFormatError(
                f"{path}: line {line} names column '{c}' {len(at)} times (columns "
                f"{', '.join(str(i + 1) for i in at)}); keep one column '{c}'")
        where[c] = at[0] if at else None
    missing = [c for c in ("x", "y") if where[c] is None]
    if missing:
        hint = ""
        if len(names) == 1 and any(s in names[0] for s in ";\t|"):
            sep = next(s for s in ";\t|" if s in names[0])
            hint = f"; the file seems separated by {sep!r}: probnn reads comma-separated files"
        elif {n.lower() for n in names} >= set(missing):
            hint = "; column names are case-sensitive: use lower-case 'x' and 'y'"
        raise DataFormatError(f"{path}: missing column(s) {missing}; expected columns 'x' and 'y', "
                              f"found {names}{hint}")
    return where["x"], where["y"]


def _value(path: Path, column: str, cell: str, row: int, line: int) -> float:
    s = cell.strip()
    where = f"at data row {row} (line {line})"
    if not _NUMBER.fullmatch(s):
        if s.lower() in _MISSING:
            raise DataFormatError(f"{path}: column '{column}' has a missing or non-finite value "
                                  f"{cell!r} {where}; every row needs a finite number in x and y")
        hint = ("; use '.' for decimals" if re.fullmatch(r"[+-]?\d*,\d+", s)
                else "; expected a plain decimal number such as 1.25 or -3e-2")
        raise DataFormatError(f"{path}: column '{column}' has a non-numeric value {cell!r} "
                              f"{where}{hint}")
    v = float(s)
    if not abs(v) <= MAX_ABS:  # also inf, from a literal beyond float64 such as 1e400
        raise DataFormatError(
            f"{path}: column '{column}' has the value {s} {where}, beyond ±{_LIMIT}: the models "
            "compute in float32 (largest number 3.4e38), where sums of squares of such values "
            "overflow; rescale the column (e.g. other units)")
    return v


def _check_spread(path: Path, column: str, v: np.ndarray) -> None:
    """Reject a column the models cannot standardise (they divide by its sd) in float32."""
    if np.all(v == v[0]):
        raise DataFormatError(
            f"{path}: column '{column}' has the same value ({v[0]:g}) in all {len(v)} rows; "
            f"{column} must vary (the Bayesian models divide it by its standard deviation, 0 here)")
    top = float(np.max(np.abs(v)))
    sd = float(np.std(v / top, ddof=1)) * top  # scaled: squares of 1e-300 would underflow to 0
    if sd < MIN_SD:
        factor = f"1e{math.ceil(-math.log10(sd))}" if sd > 0 else "a large power of 10"
        raise DataFormatError(
            f"{path}: column '{column}' has a standard deviation of {sd:.3g}, below {MIN_SD:g}, "
            "too small for the models' float32 arithmetic; rescale the column (e.g. multiply it "
            f"by {factor})")
    step = float(np.spacing(np.float32(top)))
    if step > RESOLUTION * sd:
        raise DataFormatError(
            f"{path}: column '{column}' varies too little for its size (sd {sd:.3g} at values up "
            f"to {top:.6g}): float32, in which the models compute, resolves only steps of "
            f"{step:.3g} there; subtract a constant such as {float(np.median(v)):.6g} from the "
            "column")


def read_xkcd_csv(path: str | os.PathLike) -> tuple[torch.Tensor, torch.Tensor]:
    """Read and validate an xkcd-style CSV; return float tensors ``(x, y)`` of shape (n, 1).

    The file must be a UTF-8 (or ASCII) comma-separated text file of at most
    :data:`MAX_BYTES` with columns ``x`` and ``y`` (others are ignored) and 2 to
    :data:`MAX_ROWS` rows of plain decimal numbers within ±:data:`MAX_ABS`, each column varying
    enough for the models to standardise it in float32. Blank lines, surrounding whitespace and a
    byte-order mark are accepted. Anything else raises :class:`~probnn.datasets.paths.DataFormatError` (or
    :class:`~probnn.datasets.paths.DataNotFoundError` for a missing file) with a one-line message naming the file, the
    problem (column, row and value where there is one) and what to do.
    """
    path = Path(path)
    text = _read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header_line, ix, iy, width = None, 0, 0, 0
        xs, ys = [], []
        for fields in reader:
            if not any(f.strip() for f in fields):
                continue  # blank line
            line = reader.line_num
            if header_line is None:
                header_line, width = line, len(fields)
                ix, iy = _header(path, fields, line)
                continue
            if len(fields) != width:
                hint = " (decimal commas? use '.' for decimals)" if len(fields) > width else ""
                raise DataFormatError(f"{path}: line {line} has {len(fields)} field(s) but the "
                                      f"header (line {header_line}) has {width}{hint}")
            row = len(xs) + 1
            if row > MAX_ROWS:
                raise DataFormatError(
                    f"{path}: more than {MAX_ROWS:,} rows of data, over probnn's limit for the "
                    "xkcd data; the xkcd models are meant for small data (the real file has 31 "
                    "rows), so use a smaller file")
            xs.append(_value(path, "x", fields[ix], row, line))
            ys.append(_value(path, "y", fields[iy], row, line))
    except csv.Error as e:
        raise DataFormatError(f"{path}: is not valid CSV (line {reader.line_num}: {e})") from None
    if header_line is None:
        raise DataFormatError(f"{path}: is empty; expected a CSV file with a header line 'x,y' "
                              "and rows of numbers")
    if len(xs) < 2:
        raise DataFormatError(f"{path}: needs at least 2 rows of data, found {len(xs)}")
    cols = {"x": np.array(xs), "y": np.array(ys)}
    for c, v in cols.items():
        _check_spread(path, c, v)
    x = torch.tensor(cols["x"], dtype=torch.float32).unsqueeze(-1)
    y = torch.tensor(cols["y"], dtype=torch.float32).unsqueeze(-1)
    return x, y


def _download(url: str, dest: Path) -> None:
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_suffix(dest.suffix + ".part")
    with urllib.request.urlopen(url, timeout=30) as r, open(tmp, "wb") as f:
        f.write(r.read())
    os.replace(tmp, dest)


def _present(path: Path) -> bool:
    """Whether anything (even a broken link or a folder) has this name."""
    try:
        path.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # e.g. permission denied on the folder: let the check say so
    return True


def find_xkcd(data_dir=None, download: bool = True) -> Path:
    """The path of ``xkcd.csv``: in ``data_dir``, ``$PROBNN_DATA`` or the cache, else downloaded.

    The first folder with anything named ``xkcd.csv`` is used: when that is not a readable
    file (a folder, a pipe, a broken link, no read permission) this raises
    :class:`~probnn.datasets.paths.DataFormatError` (or :class:`~probnn.datasets.paths.DataNotFoundError`) saying so, rather than silently
    using another copy or downloading one.
    """
    searched = candidate_dirs(data_dir)
    for d in searched:
        path = d / XKCD_FILE
        if _present(path):
            _regular_file(path)
            if not os.access(path, os.R_OK):
                raise DataFormatError(f"{path}: cannot be read (permission denied); make it "
                                      "readable (chmod u+r) or point probnn at another copy")
            return path
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
    file into the cache when allowed. A bad file raises :class:`~probnn.datasets.paths.DataFormatError`
    (see :func:`read_xkcd_csv`).
    """
    return read_xkcd_csv(find_xkcd(data_dir, download))
