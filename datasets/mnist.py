"""MNIST through ``torchvision.datasets.MNIST``, as float images in [0, 1] with labels."""
from __future__ import annotations

from pathlib import Path

import torch

from .paths import DataNotFoundError, cache_dir, candidate_dirs, not_found_message

MNIST_RAW = "MNIST/raw"
_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/ (torchvision's mirrors)"


_RAW_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


def _has_raw(root: Path) -> bool:
    """Whether ``root`` holds what ``torchvision.datasets.MNIST(root, download=False)`` reads.

    torchvision requires all four *uncompressed* files whichever split is asked for (it does
    not read the ``.gz`` archives without ``download=True``), so check exactly that.
    """
    raw = root / MNIST_RAW
    return all((raw / name).is_file() for name in _RAW_FILES)


def load_mnist(data_dir=None, train: bool = True, download: bool = True
               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Load MNIST as ``(images, labels)``: float32 (N, 1, 28, 28) in [0, 1] and int64 (N,).

    ``train=True`` gives the 60,000 training images (indices are MNIST's own: image 59289 is
    a "1"), ``train=False`` the 10,000 official test images. The folder searched is
    ``data_dir``, then ``$PROBNN_DATA``, then the user cache; each must hold ``MNIST/raw/``
    as torchvision lays it out. When none has it and ``download`` is allowed, torchvision
    downloads it into the cache.
    """
    from torchvision.datasets import MNIST  # torchvision is slow to import; only pay for it here

    searched = candidate_dirs(data_dir)
    root = next((d for d in searched if _has_raw(d)), None)
    error = None
    if root is None and download:
        root = cache_dir()
        try:
            MNIST(root=str(root), train=train, download=True)
        except (OSError, RuntimeError) as e:  # no network: URLError / "Error downloading"
            error, root = e, None
    if root is None:
        raise DataNotFoundError(not_found_message(
            f"MNIST {'training' if train else 'test'} files", MNIST_RAW, searched, _MNIST_URL, error))
    ds = MNIST(root=str(root), train=train, download=False)
    images = ds.data.unsqueeze(1).to(torch.float32).div_(255.0)
    return images, ds.targets.clone()


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
