"""Held-out log-likelihood bounds of a trained model/guide pair, as one table row.

:func:`holdout_bounds` is the one computation behind the VAE comparison
(:func:`~probnn.inference.vae.comparison_row`) and
the conditional VAE's evaluation (:func:`probnn.inference.cvae.evaluate_cvae`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import pyro

from probnn.datasets.coursework import COURSEWORK_SEED

from .batching import as_tuple, random_subset
from .estimators import active_units, elbo_mc, iwae_and_elbo_mc, iwae_bound
from .paired import PerImage, paired_difference


def holdout_bounds(model, guide, data, *, k: int = 100, large_k: int | None = None,
                   large_k_images: int | None = None, seed: int = COURSEWORK_SEED,
                   batch_size: int = 100, shift: float = 0.0, mc_samples: int | None = None,
                   ks: Sequence[int] | None = None, with_active_units: bool = False,
                   precision: str = "fp32") -> dict:
    """The row of :func:`holdout_estimates` (its per-image estimates dropped)."""
    return holdout_estimates(model, guide, data, k=k, large_k=large_k,
                             large_k_images=large_k_images, seed=seed, batch_size=batch_size,
                             shift=shift, mc_samples=mc_samples, ks=ks,
                             with_active_units=with_active_units, precision=precision)[0]


def holdout_estimates(model, guide, data, *, k: int = 100, large_k: int | None = None,
                      large_k_images: int | None = None, seed: int = COURSEWORK_SEED,
                      batch_size: int = 100, shift: float = 0.0, mc_samples: int | None = None,
                      ks: Sequence[int] | None = None, with_active_units: bool = False,
                      precision: str = "fp32", index=None) -> tuple[dict, dict[str, PerImage]]:
    """Bounds on the held-out log-likelihood of ``data`` (the model's arguments, e.g. ``(x,)``
    or ``(x, y)``), as means over the data points, in nats. Seeded with ``seed``; in order:

    1. ``elbo``: the one-sample ELBO (as in training);
    2. ``elbo_mc`` (split into ``reconstruction`` and ``kl``) and ``iwae_<mc_samples>`` from
       the same ``mc_samples`` samples (default ``k``);
    3. ``iwae_<K>`` and ``unreliable_<K>`` (the fraction of data points with Pareto k above
       :data:`~probnn.inference.estimators.PARETO_K_UNRELIABLE`; K >= 5 only) for every K in ``ks``
       (default ``(k,)``) other than ``mc_samples``;
    4. with ``with_active_units``: ``active_units`` (its guide pass draws random numbers too);
    5. with ``large_k``: ``iwae_<large_k>`` and ``unreliable_<large_k>`` on a random subset of
       ``large_k_images`` data points (:func:`~probnn.inference.batching.random_subset` with
       ``seed + 1``; its count in ``large_k_images``), beside the estimates of step 1-2 on the
       same points, ``elbo_subset``, ``elbo_mc_subset`` and ``iwae_<k>_subset``, and the paired
       gap ``gap_<large_k>`` = mean over those points of IWAE-``large_k`` minus ELBO-MC with its
       standard error ``gap_<large_k>_se`` (:func:`~probnn.inference.paired.paired_difference`):
       every difference is taken on the same images.

    Returns ``(row, per_image)``: ``per_image["all"]`` holds the per-image ``elbo``,
    ``elbo_mc`` and ``iwae_<K>`` of every data point, ``per_image["subset"]`` those of the
    large-K subset with ``iwae_<large_k>``, each with the images' indices (``index``: the data
    points' indices in the set they were drawn from; default ``0..n-1``).

    ``shift`` is added to every bound (``elbo``, ``elbo_mc``, ``reconstruction``, ``iwae_*``),
    not to ``kl`` and not to the ``unreliable_*`` fractions: the conditional VAE passes
    ``-log p(y)`` to turn bounds on log p(x, y) into bounds on log p(x | y).

    ``precision`` (``"fp32"`` or ``"bf16"``) is the networks' precision in every estimator
    (:mod:`probnn.inference.precision`).
    """
    data = as_tuple(data)
    mc_samples = mc_samples or k
    ks = (k,) if ks is None else tuple(ks)
    pyro.set_rng_seed(seed)
    n = len(data[0])
    row: dict = {"images": n}
    kw = dict(batch_size=batch_size, precision=precision)
    one = elbo_mc(model, guide, data, 1, **kw).elbo
    row["elbo"] = float(one.mean()) + shift
    bound, mc = iwae_and_elbo_mc(model, guide, data, mc_samples, **kw)
    each = {"elbo": _shifted(one, shift), "elbo_mc": _shifted(mc.elbo, shift),
            f"iwae_{mc_samples}": _shifted(bound, shift)}
    row.update(elbo_mc=float(mc.elbo.mean()) + shift,
               reconstruction=float(mc.reconstruction.mean()) + shift, kl=float(mc.kl.mean()),
               **{f"iwae_{mc_samples}": float(bound.mean()) + shift})
    for kk in ks:
        if kk != mc_samples:
            res = iwae_bound(model, guide, data, kk, **kw)
            each[f"iwae_{kk}"] = _shifted(res.bound, shift)
            row[f"iwae_{kk}"] = float(res.bound.mean()) + shift
            _unreliable(row, kk, res)
    if with_active_units:
        row["active_units"] = active_units(guide, data)[0]
    per_image = {"all": PerImage(np.arange(n) if index is None else np.asarray(index), each)}
    if large_k:
        idx = random_subset(n, large_k_images, seed + 1)
        per_image["subset"] = _large_k(row, per_image["all"].at(idx.numpy()), model, guide,
                                       tuple(t[idx] for t in data), k, large_k, shift,
                                       max(1, batch_size // 10), precision)
    return row, per_image


def _large_k(row: dict, sub: PerImage, model, guide, data, k: int, large_k: int, shift: float,
             batch_size: int, precision: str) -> PerImage:
    """The large-K bound on the subset ``data`` (whose smaller-K estimates are ``sub``), its
    row entries, and ``sub`` with it."""
    res = iwae_bound(model, guide, data, large_k, batch_size=batch_size, precision=precision)
    sub.values[f"iwae_{large_k}"] = _shifted(res.bound, shift)
    row["large_k_images"] = len(sub)
    row.update({f"{name}_subset": float(sub.values[name].mean())
                for name in ("elbo", "elbo_mc", f"iwae_{k}")})
    row[f"iwae_{large_k}"] = float(res.bound.mean()) + shift
    gap = paired_difference(sub, f"iwae_{large_k}", sub, "elbo_mc")
    row[f"gap_{large_k}"], row[f"gap_{large_k}_se"] = gap.mean, gap.se
    _unreliable(row, large_k, res)
    return sub


def _shifted(values, shift: float) -> np.ndarray:
    """Per-image estimates in float64, plus ``shift``."""
    return np.asarray(values, dtype=np.float64) + shift


def _unreliable(row: dict, k: int, res) -> None:
    if res.pareto_k is not None:  # not computed for K < 5: too few weights to fit a tail
        row[f"unreliable_{k}"] = float(res.unreliable.mean())
