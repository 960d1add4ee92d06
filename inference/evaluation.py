"""Held-out log-likelihood bounds of a trained model/guide pair, as one table row.

:func:`holdout_bounds` is the one computation behind the VAE comparison
(:func:`probnn.inference.vae.evaluate` and :func:`~probnn.inference.vae.comparison_row`) and
the conditional VAE's evaluation (:func:`probnn.inference.cvae.evaluate_cvae`).
"""
from __future__ import annotations

from typing import Sequence

import pyro

from probnn.datasets.coursework import COURSEWORK_SEED

from .batching import as_tuple, random_subset
from .estimators import active_units, elbo_mc, iwae_and_elbo_mc, iwae_bound


def holdout_bounds(model, guide, data, *, k: int = 100, large_k: int | None = None,
                   large_k_images: int | None = None, seed: int = COURSEWORK_SEED,
                   batch_size: int = 100, shift: float = 0.0, mc_samples: int | None = None,
                   ks: Sequence[int] | None = None, with_active_units: bool = False,
                   precision: str = "fp32") -> dict:
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
       ``seed + 1``; its count in ``large_k_images``), beside ``iwae_<k>_subset``, the K=``k``
       bound of the same points, for a like-for-like comparison.

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
    row["elbo"] = float(elbo_mc(model, guide, data, 1, **kw).elbo.mean()) + shift
    bound, mc = iwae_and_elbo_mc(model, guide, data, mc_samples, **kw)
    row.update(elbo_mc=float(mc.elbo.mean()) + shift,
               reconstruction=float(mc.reconstruction.mean()) + shift, kl=float(mc.kl.mean()),
               **{f"iwae_{mc_samples}": float(bound.mean()) + shift})
    for kk in ks:
        if kk != mc_samples:
            res = iwae_bound(model, guide, data, kk, **kw)
            row[f"iwae_{kk}"] = float(res.bound.mean()) + shift
            _unreliable(row, kk, res)
    if with_active_units:
        row["active_units"] = active_units(guide, data)[0]
    if large_k:
        idx = random_subset(n, large_k_images, seed + 1)
        sub = tuple(t[idx] for t in data)
        row["large_k_images"] = len(idx)
        row[f"iwae_{k}_subset"] = float(iwae_bound(model, guide, sub, k, diagnostics=False,
                                                   **kw).bound.mean()) + shift
        res = iwae_bound(model, guide, sub, large_k, batch_size=max(1, batch_size // 10),
                         precision=precision)
        row[f"iwae_{large_k}"] = float(res.bound.mean()) + shift
        _unreliable(row, large_k, res)
    return row


def _unreliable(row: dict, k: int, res) -> None:
    if res.pareto_k is not None:  # not computed for K < 5: too few weights to fit a tail
        row[f"unreliable_{k}"] = float(res.unreliable.mean())
