"""The ArviZ functions probnn uses, on either ArviZ API: arviz 0.2x or ArviZ 1.x.

ArviZ 1.x split arviz into ``arviz-base`` (data: :func:`arviz_base.from_dict` returns an
``xarray.DataTree``), ``arviz-stats`` (``loo``, ``compare``, ``rhat``, ``ess``, PSIS) and
``arviz-plots``, and changed the results: ``loo`` returns a dataclass with ``elpd``, ``p`` and
``elpd_i`` where arviz 0.2x returned a ``pandas.Series`` with ``elpd_loo``, ``p_loo`` and
``loo_i``, and ``compare``'s columns are renamed the same way. This module hides the
difference: :data:`BACKEND` is ``"arviz-stats"`` when ``arviz_stats`` and ``arviz_base`` can
be imported (arviz 1.x installs both; they also install beside arviz 0.2x), else ``"arviz"``
(0.2x). Every function takes ``backend=`` to choose explicitly, and returns the same types
from either: :class:`PsisLoo` for a LOO, a ``pandas.DataFrame`` with arviz 0.2x's column names
for a comparison, ``xarray.Dataset``\\ s and NumPy arrays for diagnostics. Both implement PSIS
(Vehtari et al. 2024, "Pareto smoothed importance sampling") with the same fit and the same
R-hat and ESS, but round PSIS's tail length differently (:mod:`probnn.inference.psis`);
:func:`loo` gives arviz-stats arviz 0.2x's PSIS weights, so the LOO terms and Pareto k agree
to rounding. Each backend's announcements and its small-sample Pareto-k warnings are silenced
here: the callers count unreliable k themselves.
"""
from __future__ import annotations

import importlib.util
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import psis
from .serialization import serializable

BACKENDS = ("arviz", "arviz-stats")


def _default_backend() -> str:
    new = all(importlib.util.find_spec(m) is not None for m in ("arviz_stats", "arviz_base"))
    return "arviz-stats" if new else "arviz"


BACKEND = _default_backend()
"""The backend used when none is given: ``"arviz-stats"`` (the ArviZ 1.x API) or ``"arviz"``."""


@contextmanager
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # refactor notices; Pareto-k warnings of small samples
        yield


def _module(backend: str | None, name: str = "stats"):
    backend = BACKEND if backend is None else backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown ArviZ backend {backend!r} (one of {', '.join(BACKENDS)})")
    with _quiet():
        if backend == "arviz":
            import arviz
            return arviz
        if name == "base":
            import arviz_base
            return arviz_base
        import arviz_stats
        return arviz_stats


def _backend(backend: str | None) -> str:
    _module(backend)
    return BACKEND if backend is None else backend


@serializable
@dataclass
class PsisLoo:
    """PSIS-LOO of one model: ``elpd_loo`` = ``sum_i log p(y_i | y_-i)`` estimated by Pareto
    smoothed importance sampling, its standard error ``se`` = sqrt(n var(loo_i)), the
    effective number of parameters ``p_loo`` (in-sample lppd minus elpd_loo), the pointwise
    terms ``loo_i`` and Pareto k per point ``pareto_k`` (n,), and ``warning`` (ArviZ's flag:
    some k is above its threshold)."""
    elpd_loo: float
    se: float
    p_loo: float
    n_samples: int
    n_data_points: int
    warning: bool
    loo_i: np.ndarray
    pareto_k: np.ndarray


def from_dict(posterior: dict, log_likelihood: dict, observed_data: dict, dims: dict,
              coords: dict, backend: str | None = None):
    """The backend's data object (arviz 0.2x ``InferenceData``, ArviZ 1.x ``DataTree``) with
    groups posterior, log_likelihood and observed_data; arrays are (chain, draw, ...)."""
    b = _backend(backend)
    with _quiet():
        if b == "arviz":
            return _module(b).from_dict(posterior=posterior, log_likelihood=log_likelihood,
                                        observed_data=observed_data, dims=dims, coords=coords)
        return _module(b, "base").from_dict(
            {"posterior": posterior, "log_likelihood": log_likelihood,
             "observed_data": observed_data}, dims=dims, coords=coords)


def group(data, name: str, variables: list[str] | None = None):
    """Group ``name`` of :func:`from_dict`'s object as an ``xarray.Dataset`` (only
    ``variables``, if given)."""
    ds = data[name]
    ds = ds.to_dataset() if hasattr(ds, "to_dataset") else ds
    return ds if variables is None else ds[variables]


def rhat(dataset, backend: str | None = None):
    """Rank-normalised split R-hat of every variable (and element) of a Dataset."""
    with _quiet():
        return _module(backend).rhat(dataset)


TAIL_PROBS = (0.05, 0.95)
"""The quantiles whose indicators the tail ESS is taken of (Vehtari, Gelman, Simpson, Carpenter
& Bürkner 2021, "Rank-normalization, folding, and localization: an improved R-hat"), arviz
0.2x's default; arviz-stats 0.8 takes ``prob`` and ``1 - prob`` of its ``stats.ci_prob``
setting instead (0.89: the quantiles 0.11 and 0.89; the quick report's tail ESS of 80 NUTS draws
moved from 19.1 to 33.1), so it is passed explicitly."""


def ess(dataset, method: str = "bulk", backend: str | None = None):
    """Effective sample size (``bulk`` or ``tail``) of every variable of a Dataset; the tail
    ESS at the quantiles :data:`TAIL_PROBS` under either backend."""
    kwargs = {"prob": TAIL_PROBS} if method == "tail" else {}
    with _quiet():
        return _module(backend).ess(dataset, method=method, **kwargs)


def ess_of_draws(values: np.ndarray, backend: str | None = None) -> float:
    """Bulk effective sample size of one chain of draws (S,)."""
    values = np.asarray(values, dtype=np.float64).reshape(1, -1)
    with _quiet():
        if _backend(backend) == "arviz":
            return float(_module(backend).ess(values))
        from arviz_stats.base import array_stats
        return float(array_stats.ess(values, chain_axis=0, draw_axis=1, method="bulk"))


def _relative_efficiency(data, backend: str) -> tuple[int, float]:
    """``(S, r_eff)``: the number of draws and the relative efficiency both backends' ``loo``
    estimate (the mean over the posterior's variables of ESS(mean) / S; 1 for one chain)."""
    posterior = group(data, "posterior")
    chains, draws = posterior.sizes["chain"], posterior.sizes["draw"]
    if chains == 1:
        return chains * draws, 1.0
    ess_mean = ess(posterior, method="mean", backend=backend)
    values = np.hstack([np.asarray(ess_mean[v].values, dtype=float).ravel()
                        for v in ess_mean.data_vars])
    return chains * draws, float(values.mean() / (chains * draws))


def _backend_loo(data, b: str):
    """The backend's own LOO result of ``data`` (pointwise). arviz-stats is given the PSIS
    weights and k of :func:`probnn.inference.psis.psislw`, i.e. arviz 0.2x's."""
    with _quiet():
        if b == "arviz":
            return _module(b).loo(data, pointwise=True)
        ll_group = group(data, "log_likelihood")
        if len(ll_group.data_vars) != 1:
            raise ValueError("loo needs exactly one log-likelihood variable, "
                             f"found {list(ll_group.data_vars)}")
        ll = ll_group[next(iter(ll_group.data_vars))]
        n_draws, r_eff = _relative_efficiency(data, b)
        obs_dims = [d for d in ll.dims if d not in ("chain", "draw")]
        ll = ll.transpose(*obs_dims, "chain", "draw")
        values = ll.values.reshape(ll.shape[:-2] + (n_draws,))
        lw, k = psis.psislw(-values, r_eff)
        log_weights = ll.copy(data=lw.reshape(ll.shape))
        pareto_k = ll.isel(chain=0, draw=0, drop=True).copy(data=k)
        return _module(b).loo(data, pointwise=True, log_weights=log_weights, pareto_k=pareto_k)


def loo(data, backend: str | None = None) -> PsisLoo:
    """PSIS-LOO with pointwise terms and Pareto k of :func:`from_dict`'s object. arviz-stats
    rounds PSIS's tail length otherwise than arviz 0.2x (:mod:`probnn.inference.psis`), so it
    is given arviz 0.2x's weights (:func:`probnn.inference.psis.psislw`, on the relative
    efficiency both estimate alike): the two agree to rounding."""
    b = _backend(backend)
    r = _backend_loo(data, b)
    if b == "arviz":
        return PsisLoo(float(r.elpd_loo), float(r.se), float(r.p_loo), int(r.n_samples),
                       int(r.n_data_points), bool(r.warning),
                       np.asarray(r.loo_i, dtype=float), np.asarray(r.pareto_k, dtype=float))
    return PsisLoo(float(r.elpd), float(r.se), float(r.p), int(r.n_samples),
                   int(r.n_data_points), bool(r.warning),
                   np.asarray(r.elpd_i, dtype=float), np.asarray(r.pareto_k, dtype=float))


COMPARE_COLUMNS = ["rank", "elpd_loo", "p_loo", "elpd_diff", "weight", "se", "dse", "warning",
                   "scale"]


def compare(data: dict, backend: str | None = None) -> pd.DataFrame:
    """ArviZ's comparison of models by PSIS-LOO (stacking weights), best first, with arviz
    0.2x's columns (``COMPARE_COLUMNS``); ``data``: model name -> :func:`from_dict`'s
    object."""
    b = _backend(backend)
    with _quiet():
        if b == "arviz":
            table = _module(b).compare(data, ic="loo")
        else:
            loos = {name: _backend_loo(d, b) for name, d in data.items()}
            table = _module(b).compare(loos).rename(columns={"elpd": "elpd_loo", "p": "p_loo"})
    if "scale" not in table:
        table["scale"] = "log"
    return table[COMPARE_COLUMNS + [c for c in table.columns if c not in COMPARE_COLUMNS]]


def pareto_k(log_weights: np.ndarray, backend: str | None = None) -> np.ndarray:
    """The backend's own PSIS Pareto k of each row of ``log_weights`` (N, K) (relative
    efficiency 1). arviz 0.2x's ``psislw`` takes log importance weights; arviz-stats'
    ``array_stats.psislw`` takes log-likelihood values and smooths their negation (LOO's raw
    weights ``1 / p(y_i | theta)``), so it is given ``-log_weights``. The two round the tail
    length differently (:mod:`probnn.inference.psis`); probnn's estimators use
    :func:`probnn.inference.psis.pareto_k`, which is the same under both."""
    lw = np.asarray(log_weights, dtype=np.float64)
    with _quiet():
        if _backend(backend) == "arviz":
            _, k = _module(backend).psislw(lw, reff=1.0)
        else:
            from arviz_stats.base import array_stats
            _, k = array_stats.psislw(-lw, r_eff=1.0, axis=-1)
    return np.asarray(k, dtype=float)
