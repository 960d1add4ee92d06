"""Reading a regression fit's training record: shared by the regression figures, dips and seeds.

A :class:`~probnn.inference.regression.RegressionFit` keeps its history (one row per epoch)
and, when recorded, f and sigma at every data point per epoch; these read the mean
log-likelihood curve off it and find its extremes.
"""
from __future__ import annotations

import math

import numpy as np

from probnn.inference.regression import RegressionFit

HETEROSCEDASTIC = "heteroscedastic"
"""The name of the heteroscedastic model's fits in results and tables."""


def has_record(fit: RegressionFit) -> bool:
    """Whether the fit kept f and sigma at the data for every epoch of its history."""
    return fit.f.shape[0] == len(fit.history) and len(fit.history) > 0


def train_loglik(fit: RegressionFit) -> np.ndarray:
    """The mean training log-likelihood per point, one value per epoch."""
    return fit.history["loglik"].to_numpy()


def train_epochs(fit: RegressionFit) -> np.ndarray:
    """The epochs of the history (1-based; a resumed fit may not start at 1)."""
    return fit.history["epoch"].to_numpy()


def extreme_after(fit: RegressionFit, after_epoch: int,
                  highest: bool = False) -> tuple[int | None, float]:
    """(epoch, mean log-likelihood) of the lowest (or highest) epoch after ``after_epoch``."""
    late = fit.history.loc[fit.history["epoch"] > after_epoch, "loglik"]
    if late.empty:
        return None, math.nan
    i = late.idxmax() if highest else late.idxmin()
    return int(fit.history.at[i, "epoch"]), float(late[i])
