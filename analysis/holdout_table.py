"""The table of held-out estimates, one row per model, and where its K values come from.

The rows (question (e)'s :func:`~probnn.inference.vae.comparison_estimates`, the conditional
VAE's :func:`~probnn.inference.cvae.evaluate_cvae`, or a ``comparison.csv`` read back by the
CLI) name each bound by its number of importance samples: ``iwae_<K>``, ``unreliable_<K>``,
``marginal_iwae_<K>``, and so do their per-image estimates. None of those producers gives its
K values as data, so :func:`k_columns` reads them back from the names: here, and nowhere else
in the analysis (:mod:`probnn.analysis.bounds` reads its own from the task's ``iwae_ks``).

The analysis reads: the largest K of a row (the bound that ranks the models, its gap and its
Pareto-k share) and the smallest (how much the bound rises), the K of the conditional VAE's
marginal, the large K of a holdout result's subset, and every K of a per-image part (the
invariants order them). What would let this adapter go: the holdout result and the
conditional VAE's evaluation carrying those as fields, e.g. ``ks: tuple[int, ...]`` (every
K of the ``all`` part, ascending) and ``large_k: int | None`` (the ``subset`` part's), with
the means and Pareto-k shares keyed by the int; a CSV read back by the CLI turned into that
form where it is read.
"""
from __future__ import annotations

import re
from collections.abc import Mapping

import pandas as pd

_MAIN_COLUMNS = ("images", "elbo", "elbo_mc", "reconstruction", "kl")


def k_columns(columns, prefix: str) -> list[tuple[int, str]]:
    """The columns ``<prefix>_<K>`` (K an integer) as sorted ``(K, column)`` pairs."""
    pattern = re.compile(rf"{prefix}_(\d+)$")
    return sorted((int(m.group(1)), c) for c in columns if (m := pattern.match(str(c))))


def comparison_table(rows: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per model (name -> the row of
    :func:`~probnn.inference.vae.comparison_estimates`, or of the conditional VAE's
    :func:`~probnn.inference.cvae.evaluate_cvae`).

    Columns: images, elbo, elbo_mc, reconstruction, kl, iwae_K (by K), active_units,
    unreliable_K (by K), then any other entries in the order first seen (e.g. ``train_elbo``,
    the last epoch's training ELBO). Nats rounded to 2 decimals, fractions to 3.
    """
    df = pd.DataFrame.from_dict({name: dict(row) for name, row in rows.items()}, orient="index")
    df.index.name = "model"
    iwae = [c for _, c in k_columns(df.columns, "iwae")]
    unreliable = [c for _, c in k_columns(df.columns, "unreliable")]
    known = [c for c in _MAIN_COLUMNS if c in df] + iwae + (
        ["active_units"] if "active_units" in df else []) + unreliable
    df = df[known + [c for c in df.columns if c not in known]]
    for c in ("images", "active_units"):
        if c in df and df[c].notna().all():
            df[c] = df[c].astype(int)
    rounding = {c: 3 for c in unreliable}
    rounding.update({c: 2 for c in df.columns if c not in rounding
                     and c not in ("images", "active_units") and pd.api.types.is_float_dtype(df[c])})
    return df.round(rounding)
