"""Figure helpers shared by the analysis modules.

Figures are bare :class:`matplotlib.figure.Figure` objects, not pyplot ones: they work with
any backend, and a notebook or a long report run never accumulates open pyplot figures.
"""
from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure


def new_figure(nrows: int = 1, ncols: int = 1, size: tuple[float, float] = (7.0, 4.5)):
    """A constrained-layout figure and its (nrows, ncols) array of axes."""
    fig = Figure(figsize=size, layout="constrained")
    return fig, fig.subplots(nrows, ncols, squeeze=False)


def save_figure(fig: Figure, path, dpi: int = 110) -> Path:
    """Save ``fig`` as ``path`` (format from the suffix) and return the path."""
    path = Path(path)
    fig.savefig(path, dpi=dpi)
    return path
