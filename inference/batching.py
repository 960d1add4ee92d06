"""Batches of in-memory data tensors: the helpers training and the estimators share.

A leaf of :mod:`probnn.inference` (it imports nothing from the rest of the project), so
:mod:`.train`, :mod:`~probnn.inference.estimators` and the modules above them can all use it without an
import cycle.
"""
from __future__ import annotations

import hashlib
import math
from typing import Sequence

import torch


def as_tuple(batch) -> tuple:
    """A batch as a tuple of model arguments: a tuple or list as a tuple, anything else as
    ``(batch,)``."""
    return tuple(batch) if isinstance(batch, (tuple, list)) else (batch,)


def tensor_digest(tensors: Sequence[torch.Tensor]) -> str:
    """A digest of the shapes, dtypes and contents of ``tensors`` (for checks, not security)."""
    h = hashlib.sha256()
    for t in tensors:
        a = t.detach().cpu().contiguous()
        h.update(f"{tuple(a.shape)}{a.dtype};".encode())
        h.update(memoryview(a.reshape(-1).view(torch.uint8).numpy()))
    return h.hexdigest()[:16]


def fingerprint(tensors: Sequence[torch.Tensor]) -> dict:
    """What identifies a data set of ``tensors`` (one row per point): the number of points and
    a digest of every tensor's shape, dtype and contents (0.11 s for the 60,000 MNIST images)."""
    return {"data_points": len(tensors[0]), "data_digest": tensor_digest(tensors)}


class TensorBatches:
    """Mini-batches of in-memory tensors, reshuffled each epoch from torch's global RNG.

    Slicing whole tensors is much faster than a ``DataLoader`` over a ``TensorDataset``,
    which collates item by item.
    """

    def __init__(self, tensors: Sequence[torch.Tensor], batch_size: int, shuffle: bool = True):
        self.tensors = as_tuple(tensors)
        n = len(self.tensors[0])
        if any(len(t) != n for t in self.tensors):
            raise ValueError("all data tensors must have the same length")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.n, self.batch_size, self.shuffle = n, int(batch_size), shuffle

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


    def __iter__(self):
        # drawn on the CPU from torch's global CPU RNG whatever the data's device (the same
        # shuffle on every device, and what exact resume replays), then moved there once
        order = (torch.randperm(self.n, device="cpu") if self.shuffle
                 else torch.arange(self.n, device="cpu")).to(self.tensors[0].device)
        for i in range(0, self.n, self.batch_size):
            idx = order[i:i + self.batch_size]
            yield tuple(t[idx] for t in self.tensors)


def chunks(data: tuple, batch_size: int):
    """Consecutive slices of ``batch_size`` data points of every tensor in ``data``, in order
    (no shuffling, no random numbers drawn)."""
    n = len(data[0])
    for i in range(0, n, batch_size):
        yield tuple(t[i:i + batch_size] for t in data)


def subset_rows(x, index):
    """``x[index]`` for an ``index`` of :func:`random_subset` (sorted, distinct): ``x`` itself
    when it holds every row, so ranking all 60,000 training images copies none of them."""
    return x if len(index) == len(x) else x[index]


def random_subset(n: int, size: int | None, seed: int) -> torch.Tensor:
    """Sorted indices of a random subset of ``size`` of ``range(n)``, drawn from its own
    generator seeded with ``seed`` (torch's global RNG is left alone); all of ``range(n)`` when
    ``size`` is None or 0 or at least ``n``."""
    if size is not None and size < 0:  # a slice [:size] would silently drop |size| instead
        raise ValueError(f"subset size must be >= 0 or None, got {size}")
    if not size or size >= n:
        return torch.arange(n, device="cpu")
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed), device="cpu")[:size].sort().values
