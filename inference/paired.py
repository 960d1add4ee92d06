"""Per-image estimates that carry the images they were computed on, and paired differences.

Two means over different images differ by the images as much as by what is compared: the
200-image subset that the K=1000 bound is affordable on sits some nats above the 2,000 images
of the ELBO. So every per-image estimate is kept with the indices of its images
(:class:`PerImage`), and a difference of two estimates is computed only over the images both
have (:func:`paired_difference`), with the standard error of the paired differences::

    d_i = a_i - b_i  (i in the common images),   mean d,   se = sd(d) / sqrt(n)

The se covers both the Monte Carlo noise of the estimators and which images were drawn, and it
is smaller than either estimate's own spread whenever a_i and b_i move together (they do: an
image that is hard for one bound is hard for the other).

A leaf module: NumPy only, so the analysis can pair results without importing torch code.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .serialization import serializable


@serializable
@dataclass
class PerImage:
    """Per-image estimates in nats: ``values[name][j]`` is estimate ``name`` of image
    ``index[j]`` (an index into the data set the images were drawn from, e.g. the holdout set)."""
    index: np.ndarray
    values: dict = field(default_factory=dict)

    def __post_init__(self):
        self.index = np.asarray(self.index, dtype=np.int64)
        self.values = {k: np.asarray(v, dtype=np.float64) for k, v in self.values.items()}
        for k, v in self.values.items():
            if v.shape != self.index.shape:
                raise ValueError(f"estimate {k!r} has shape {v.shape}, its images "
                                 f"{self.index.shape}")

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, name: str) -> bool:
        return name in self.values

    def at(self, positions) -> "PerImage":
        """The estimates of the images at ``positions`` (positions in this object, not indices)."""
        pos = np.asarray(positions, dtype=np.int64)
        return PerImage(self.index[pos], {k: v[pos] for k, v in self.values.items()})


class Paired(NamedTuple):
    """A paired difference: ``mean`` of a_i - b_i over ``n`` common images, its standard error
    ``se`` (NaN when n < 2)."""
    mean: float
    se: float
    n: int

    def beyond(self, z: float = 2.0) -> bool:
        """Whether the difference is further than ``z`` standard errors from zero."""
        return bool(self.n >= 2 and np.isfinite(self.se) and abs(self.mean) > z * self.se)


def common(a: PerImage, b: PerImage) -> tuple[np.ndarray, np.ndarray]:
    """Positions in ``a`` and in ``b`` of the images both hold (sorted by image index)."""
    _, ia, ib = np.intersect1d(a.index, b.index, assume_unique=True, return_indices=True)
    return ia, ib


def paired_difference(a: PerImage, name_a: str, b: PerImage | None = None,
                      name_b: str | None = None) -> Paired:
    """Mean and standard error of ``a.values[name_a] - b.values[name_b]`` over the images the
    two hold in common (``b`` defaults to ``a``, ``name_b`` to ``name_a``). No common image:
    ``Paired(nan, nan, 0)``."""
    b = a if b is None else b
    name_b = name_a if name_b is None else name_b
    ia, ib = common(a, b)
    d = a.values[name_a][ia] - b.values[name_b][ib]
    n = len(d)
    if n == 0:
        return Paired(math.nan, math.nan, 0)
    se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    return Paired(float(d.mean()), se, n)
