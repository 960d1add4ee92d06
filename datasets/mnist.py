"""MNIST through ``torchvision.datasets.MNIST``, as float images in [0, 1] with labels."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import numpy as np
import torch

from .paths import DataFormatError, DataNotFoundError, cache_dir, candidate_dirs, not_found_message

MNIST_RAW = "MNIST/raw"
_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_MNIST_URL = f"{_MIRROR} (torchvision's mirrors)"


_RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")

_IMAGES, _LABELS = 2051, 2049  # idx magic numbers: unsigned bytes, 3 and 1 dimensions
_SHAPES = {"train": (60_000, 28, 28), "t10k": (10_000, 28, 28)}


def _expected(name: str) -> tuple[int, tuple[int, ...]]:
    """``(magic, shape)`` of one of the four files."""
    split = name.split("-")[0]
    return (_IMAGES, _SHAPES[split]) if "images" in name else (_LABELS, _SHAPES[split][:1])


def _describe(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return f"{shape[0]:,} images of {shape[1]}x{shape[2]}"
    return f"{shape[0]:,} labels" if len(shape) == 1 else f"an array of shape {shape}"


def _looks_like(magic: int, shape: tuple[int, ...]) -> str | None:
    """The name of the MNIST file with this header, if there is one."""
    return next((n for n in _RAW_FILES if _expected(n) == (magic, shape)), None)


def _problem(path: Path) -> str | None:
    """What is wrong with one raw MNIST file, as a phrase starting with its name; ``None`` if
    its header, size and (for labels) values are those of MNIST.

    Everything torchvision would trip over with a traceback is caught here: it reads whatever
    header it finds and fails on reshaping, or silently loads the wrong split.
    """
    name = path.name
    magic, shape = _expected(name)
    head_len = 4 * (1 + len(shape))
    size = head_len + int(np.prod(shape))
    what = _describe(shape)
    try:
        st = path.stat()
        if stat.S_ISDIR(st.st_mode):
            return f"{name} is a folder, not a file"
        if not stat.S_ISREG(st.st_mode):  # a pipe would block the read below
            return f"{name} is not a regular file (a pipe, socket or device)"
        with open(path, "rb") as f:
            head = f.read(16)
    except FileNotFoundError:
        return f"{name} is a symbolic link to {os.readlink(path)}, which does not exist"
    except PermissionError:
        return f"{name} cannot be read (permission denied; chmod u+r fixes that)"
    except OSError as e:
        return f"{name} cannot be read ({e.strerror or e})"
    if st.st_size == 0:
        return f"{name} is empty (0 bytes, expected {size:,}: {what}); the download was cut short"
    if head.startswith(b"\x1f\x8b"):
        return f"{name} is gzip-compressed: rename it to {name}.gz and run gunzip on it"
    if head.lstrip().startswith(b"<"):
        return f"{name} is a web page ({st.st_size:,} bytes), not MNIST data: a failed download"
    if len(head) < head_len:
        return f"{name}: {st.st_size:,} bytes, expected {size:,} ({what}); the file is truncated"
    found = int.from_bytes(head[:4], "big")
    dims = tuple(int.from_bytes(head[i:i + 4], "big") for i in range(4, 4 * (found % 256 + 1), 4)
                 ) if found in (_IMAGES, _LABELS) else ()
    if int.from_bytes(head[:4], "little") == magic:
        return (f"{name} has a little-endian header (magic number {magic} byte-reversed); the idx "
                "format is big-endian: it was not written as MNIST is")
    if found != magic:
        other = _looks_like(found, dims)
        if other:
            return f"{name} holds {_describe(dims)}; it looks like {other}"
        kind = "images" if magic == _IMAGES else "labels"
        return (f"{name} does not start with the MNIST {kind} header (magic number {magic}, "
                f"found {found}): it is not an MNIST file")
    if dims != shape:
        other = _looks_like(found, dims)
        if other:
            split = "test" if other.startswith("t10k") else "training"
            return f"{name} holds {_describe(dims)}; it looks like the {split}-set file {other}"
        return f"{name} holds {_describe(dims)}, expected {what}"
    if st.st_size != size:
        return (f"{name}: {st.st_size:,} bytes, expected {size:,} ({what}); " +
                ("the file is truncated" if st.st_size < size
                 else f"it has {st.st_size - size:,} bytes too many"))
    if magic == _LABELS:  # 60 kB: cheap to check every label
        try:
            values = np.fromfile(path, dtype=np.uint8, offset=head_len)
        except OSError as e:
            return f"{name} cannot be read ({e.strerror or e})"
        bad = np.flatnonzero(values > 9)
        if bad.size:
            return (f"{name} has label {values[bad[0]]} at index {bad[0]:,} ({bad.size:,} "
                    f"label{'s' if bad.size > 1 else ''} outside 0..9): the file is corrupt")
    return None


def _check_raw(root: Path, cache: bool) -> bool:
    """Whether ``root/MNIST/raw`` holds the four files, checked (headers, sizes, labels).

    ``False`` when it holds none of them (nor their ``.gz``); any other departure raises:
    :class:`~probnn.datasets.paths.DataFormatError` naming each bad file and how it is wrong, or
    :class:`~probnn.datasets.paths.DataNotFoundError` naming exactly the missing files.
    torchvision needs all four uncompressed files whichever split is asked for.
    """
    raw = root / MNIST_RAW
    if os.path.isdir(raw) and not os.access(raw, os.R_OK | os.X_OK):
        # lexists() below would answer False for every file, hiding the cause
        raise DataFormatError(f"{raw}: cannot be read (permission denied); make it readable "
                              f"(chmod u+rx) or point probnn at another copy")
    present = {n for n in _RAW_FILES if os.path.lexists(raw / n)}  # a broken link is reported
    gz = [n for n in _RAW_FILES if n not in present and os.path.lexists(raw / f"{n}.gz")]
    if not present and not gz:
        return False
    problems = [p for p in (_problem(raw / n) for n in _RAW_FILES if n in present) if p]
    if problems:
        one = len(problems) == 1
        it = "it" if one else "them"
        again = (f"delete {it} and run again: probnn then downloads MNIST afresh" if cache else
                 f"replace {it} with {'a fresh copy' if one else 'fresh copies'} (download the "
                 f"{'.gz' if one else '.gz files'} from {_MIRROR} and gunzip {it})")
        raise DataFormatError(f"bad MNIST file{'s' if len(problems) > 1 else ''} in {raw}: "
                              f"{'; '.join(problems)}; {again}")
    missing = [n for n in _RAW_FILES if n not in present]
    if missing:
        msg = (f"MNIST file{'s' if len(missing) > 1 else ''} missing from {raw}: "
               f"{', '.join(missing)}")
        if gz:  # decompressing here would write into the user's (possibly shared) data folder
            msg += (f"; {', '.join(n + '.gz' for n in gz)} {'is' if len(gz) == 1 else 'are'} "
                    "there but probnn reads only uncompressed files: run "
                    f"gunzip -k {raw}/*.gz")
        else:
            msg += (f" (torchvision needs all four, whichever split is used); put "
                    f"{'it' if len(missing) == 1 else 'them'} there (download the .gz from "
                    f"{_MIRROR} and gunzip)")
        raise DataNotFoundError(msg)
    return True


def find_mnist(data_dir=None, download: bool = True) -> Path:
    """The data folder whose ``MNIST/raw/`` holds the four files, checked.

    The folder searched is ``data_dir``, then ``$PROBNN_DATA``, then the user cache; each must
    hold ``MNIST/raw/`` as torchvision lays it out. The first that holds any of the four files
    is used, after checking their headers, sizes and labels
    (:class:`~probnn.datasets.paths.DataFormatError` or
    :class:`~probnn.datasets.paths.DataNotFoundError` say which file is wrong or missing). When
    none has any and ``download`` is allowed, torchvision downloads them into the cache.
    """
    from torchvision.datasets import MNIST  # torchvision is slow to import; only pay for it here

    searched = candidate_dirs(data_dir)
    cache = cache_dir()
    for d in searched:
        # torchvision completes its own download into the cache; elsewhere a partial folder is
        # reported, not silently replaced by another copy
        try:
            if _check_raw(d, cache=d == cache):
                return d
        except DataNotFoundError:
            if not (download and d == cache):
                raise
            break
    error = None
    if download:
        try:
            MNIST(root=str(cache), train=True, download=True)  # fetches all four files
        except (OSError, RuntimeError, EOFError) as e:  # offline; a .gz cut short: EOFError
            error = e
        else:
            _check_raw(cache, cache=True)
            return cache
    raise DataNotFoundError(not_found_message(
        "MNIST (" + ", ".join(_RAW_FILES) + ")", MNIST_RAW, searched, _MNIST_URL, error))


def mnist_files(data_dir=None) -> tuple[Path, ...]:
    """The four raw MNIST files :func:`load_mnist` reads (for keying cached results by them)."""
    raw = find_mnist(data_dir) / MNIST_RAW
    return tuple(raw / n for n in _RAW_FILES)


def load_mnist(data_dir=None, train: bool = True, download: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Load MNIST as ``(images, labels)``: float32 (N, 1, 28, 28) in [0, 1] and int64 (N,).

    ``train=True`` gives the 60,000 training images (indices are MNIST's own: image 59289 is
    a "1"), ``train=False`` the 10,000 official test images, from the folder
    :func:`find_mnist` finds (or downloads into).
    """
    root = find_mnist(data_dir, download)
    # The raw files just checked, read with torchvision's own readers: MNIST(root) would
    # prefer a MNIST/processed/*.pt left by an old torchvision, which nothing here checks
    # (float images, 60,000 images with 100 labels and labels of 200 went through it).
    from torchvision.datasets.mnist import read_image_file, read_label_file
    prefix = "train" if train else "t10k"
    raw = root / MNIST_RAW
    try:
        data = read_image_file(str(raw / f"{prefix}-images-idx3-ubyte"))
        targets = read_label_file(str(raw / f"{prefix}-labels-idx1-ubyte"))
    except (OSError, RuntimeError, ValueError, TypeError, AssertionError, EOFError) as e:
        raise DataFormatError(f"torchvision could not read MNIST from {raw} "
                              f"({type(e).__name__}: {' '.join(str(e).split())[:160]}); replace "
                              "the files there") from e
    images = data.unsqueeze(1).to(torch.float32).div_(255.0)
    return images, targets.to(torch.int64).clone()


def holdout_split(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``(train_idx, holdout_idx)`` of ``range(n)`` with ``fraction`` held out.

    Used for the coursework's 10% split of the training set (``--holdout-split 0.1``).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"holdout fraction must be in (0, 1), got {fraction}")
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=g)
    k = int(round(n * fraction))
    return perm[k:].sort().values, perm[:k].sort().values


SPLIT_SEED = 2048


def mnist_splits(data_dir=None, holdout_split_fraction: float | None = None,
                 seed: int = SPLIT_SEED, download: bool = True):
    """Return ``(train_x, train_y, train_idx), (holdout_x, holdout_y, holdout_idx)``.

    By default the holdout set is the official test set (``holdout_idx`` then indexes it).
    With ``holdout_split_fraction`` the holdout is a random fraction of the training set and
    both index arrays refer to training-set indices. The split's ``seed`` is fixed by default
    (not the training seed), so training and evaluation commands agree on it whatever
    ``--seed`` they are given.
    """
    x, y = load_mnist(data_dir, train=True, download=download)
    if holdout_split_fraction:
        tr, ho = holdout_split(len(x), holdout_split_fraction, seed)
        return (x[tr], y[tr], tr), (x[ho], y[ho], ho)
    tx, ty = load_mnist(data_dir, train=False, download=download)
    return (x, y, torch.arange(len(x))), (tx, ty, torch.arange(len(tx)))
