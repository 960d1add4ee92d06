"""Curves shared by several questions: a bound against K, and training ELBO per epoch.

The estimator study draws its bound against K with :func:`bound_vs_k_figure`; question (e),
the conditional VAE and the VAE section draw their training histories with
:func:`history_figure`.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .images import as_array
from .plotting import new_figure


def bound_vs_k_figure(ks, means, stderrs=None, labels=None, references=None,
                      title: str | None = None) -> Figure:
    """The estimated bound (mean over images, nats) against the number of importance samples
    K on a log axis, one line per model; ``means`` is (models, len(ks)) or (len(ks),), and
    ``stderrs`` (same shape) adds error bars.

    ``references`` maps a label to a value or a ``(value, stderr)`` pair drawn as a
    horizontal dashed line (with a ±stderr band), e.g. the ELBO and ELBO-MC, which do not
    depend on K."""
    ks = np.asarray(ks)
    means = np.atleast_2d(as_array(means))
    errs = None if stderrs is None else np.atleast_2d(as_array(stderrs))
    if means.shape[1] != len(ks) or (errs is not None and errs.shape != means.shape):
        raise ValueError(f"{len(ks)} values of K but means {means.shape}"
                         + ("" if errs is None else f", stderrs {errs.shape}"))
    if labels is not None and len(labels) != len(means):
        raise ValueError(f"{len(labels)} labels for {len(means)} models")
    fig, axes = new_figure(size=(6.5, 4.5))
    ax = axes[0, 0]
    for i, m in enumerate(means):
        ax.errorbar(ks, m, yerr=None if errs is None else errs[i], marker="o", capsize=3,
                    label=None if labels is None else labels[i])
    for j, (label, ref) in enumerate((references or {}).items()):
        value, err = (ref if isinstance(ref, (tuple, list)) else (ref, None))
        color = f"C{len(means) + j}"
        ax.axhline(value, color=color, linestyle="--", linewidth=1.2, label=label)
        if err is not None and np.isfinite(err) and err > 0:
            ax.axhspan(value - err, value + err, color=color, alpha=0.15, linewidth=0)
    ax.set_xscale("log")
    ax.set(xlabel="K (importance samples)", ylabel="bound (nats per image)",
           title=title or "Importance-weighted bound against K")
    ax.grid(alpha=0.3, which="both")
    if labels is not None or references:
        ax.legend(fontsize="small")
    return fig


def history_figure(histories: Mapping[str, pd.DataFrame]) -> Figure:
    """Training ELBO per epoch (columns ``epoch`` and ``elbo`` of each history), one line per
    model, labelled with the final value."""
    fig, axes = new_figure(size=(6.5, 4.5))
    ax = axes[0, 0]
    for name, h in histories.items():
        if h.empty:  # stopped in its first epoch: nothing to draw
            continue
        ax.plot(h["epoch"], h["elbo"], marker="o", label=f"{name} (final {h['elbo'].iloc[-1]:.2f})")
    ax.set(xlabel="epoch", ylabel="training ELBO (nats per image)", title="Training ELBO")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    return fig
