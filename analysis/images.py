"""Image grids: many 28 x 28 images drawn as one canvas, with labels and titles.

Shared by the VAE and conditional-VAE figures. The images are pasted into one array shown by
one ``imshow`` (a few hundred image axes take seconds to lay out; one canvas milliseconds),
and :func:`grid_cells` lists what a drawn grid shows, for tests and notebooks. Ink (pixel
value 1) is dark on a light background (``gray_r``), as digits are written.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure, SubFigure

CMAP = "gray_r"
_CELL = 0.85   # inches per image cell


# ----------------------------------------------------------------------------- helpers
def as_array(x) -> np.ndarray:
    """Tensors (any device, with or without grad) and array-likes as a float numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def pixels(images) -> np.ndarray:
    """Images as (..., 28, 28): drops a single channel axis, unflattens 784-vectors."""
    a = as_array(images)
    if a.ndim >= 1 and a.shape[-1] == 784:
        a = a.reshape(a.shape[:-1] + (28, 28))
    if a.ndim >= 4 and a.shape[-3] == 1:
        a = a[..., 0, :, :]
    return a


def flat_images(images) -> np.ndarray:
    """Images as (N, 28, 28); a single (28, 28) image becomes N = 1."""
    a = pixels(images)
    return a.reshape((-1,) + a.shape[-2:])


@dataclass
class GridCell:
    """One image placed by :func:`fill_grid`: where, with which title and row label."""
    image: np.ndarray
    row: int
    col: int
    title: str | None
    row_label: str | None


# Grid geometry in canvas pixels: one image is 28 pixels and _CELL inches.
PX_PER_INCH = 28 / _CELL
_GAP_PX = 2      # between neighbouring images
_LINE_PX = 5     # one line of 7-point text above an image


def grid_geometry(nrows: int, ncols: int, heads: list[list[str]]) -> tuple[list[int], int, int]:
    """Top pixel of each row (room for the text above it), canvas height and width."""
    first = max((len(h) for h in heads[:ncols]), default=0)
    other = max((len(h) for h in heads[ncols:]), default=0)
    tops, y = [], first * _LINE_PX
    for r in range(nrows):
        tops.append(y)
        y += 28 + _GAP_PX + other * _LINE_PX
    height = tops[-1] + 28 if tops else 0
    return tops, height, ncols * 28 + (ncols - 1) * _GAP_PX


def _heads(n: int, ncols: int, col_labels, titles) -> list[list[str]]:
    """The text lines above each of ``n`` cells: the column label (first row), then the title."""
    out = []
    for i in range(n):
        r, c = divmod(i, ncols)
        head = [str(col_labels[c])] if col_labels is not None and r == 0 else []
        t = titles[i] if titles is not None and i < len(titles) else None
        out.append(head + (str(t).split("\n") if t is not None else []))
    return out


def fill_grid(container: Figure | SubFigure, cells: Sequence[np.ndarray | None], nrows: int,
               ncols: int, row_labels=None, col_labels=None, titles=None, rect=None):
    """Draw ``cells`` row by row as an ``nrows`` x ``ncols`` grid in ``container``.

    The images are pasted into one canvas drawn by one ``imshow`` (a few hundred image axes
    take seconds to lay out and draw; one canvas takes milliseconds). A ``None`` cell (or a
    cell past the end of ``cells``) leaves a transparent gap. ``rect`` (left, bottom, width,
    height, in container fractions) is where the grid goes, labels outside it. The placed
    cells are listed by :func:`grid_cells`.
    """
    if len(cells) > nrows * ncols:
        raise ValueError(f"{len(cells)} images do not fit a {nrows} x {ncols} grid")
    for name, labels, size in (("titles", titles, len(cells)), ("row_labels", row_labels, nrows),
                               ("col_labels", col_labels, ncols)):
        if labels is not None and len(labels) != size:
            raise ValueError(f"{name} has {len(labels)} entries, expected {size}")
    heads = _heads(nrows * ncols, ncols, col_labels, titles)
    tops, height, width = grid_geometry(nrows, ncols, heads)
    canvas = np.full((height, width), np.nan)
    placed, frames = [], []
    for i in range(nrows * ncols):
        cell = cells[i] if i < len(cells) else None
        if cell is None:
            continue
        r, c = divmod(i, ncols)
        x0, y0 = c * (28 + _GAP_PX), tops[r]
        canvas[y0:y0 + 28, x0:x0 + 28] = cell
        frames.append([(x0 - 0.5, y0 - 0.5), (x0 + 27.5, y0 - 0.5), (x0 + 27.5, y0 + 27.5),
                       (x0 - 0.5, y0 + 27.5), (x0 - 0.5, y0 - 0.5)])
        placed.append(GridCell(np.asarray(cell), r, c,
                               None if titles is None or i >= len(titles) or titles[i] is None
                               else str(titles[i]),
                               None if row_labels is None else str(row_labels[r])))
    ax = container.add_axes(rect or [0.02, 0.02, 0.96, 0.96])
    ax.imshow(canvas, cmap=CMAP, vmin=0.0, vmax=1.0, interpolation="nearest")
    # a faint frame per image: a white background cell would otherwise merge with the page
    ax.add_collection(LineCollection(frames, colors="0.8", linewidths=0.5))
    ax.set(xlim=(-1, width), ylim=(height, -1))  # room for the outer frames
    ax.set_anchor("N")
    ax.set_axis_off()
    for i, head in enumerate(heads):
        if head and (i < len(cells) and cells[i] is not None):
            r, c = divmod(i, ncols)
            ax.text(c * (28 + _GAP_PX) + 13.5, tops[r] - 1, "\n".join(head), ha="center",
                    va="bottom", fontsize=7, linespacing=1.0)
    if row_labels is not None:
        for r, label in enumerate(row_labels):
            ax.text(-3, tops[r] + 13.5, str(label), ha="right", va="center", fontsize=8)
    ax.probnn_cells = placed
    return ax


def grid_cells(container) -> list[GridCell]:
    """The images an image-grid figure (or a panel of one) shows, row by row."""
    return [cell for ax in container.axes for cell in getattr(ax, "probnn_cells", [])]


# ----------------------------------------------------------------------------- image grids
def image_grid(images, nrows: int, ncols: int, row_labels=None, col_labels=None, titles=None,
               figsize=None) -> Figure:
    """Images (N, 1, 28, 28) or (N, 28, 28), values in [0, 1], drawn row by row in a grid.

    Ink is dark on light (``gray_r``, fixed range 0-1 so grey levels are comparable across
    images). ``row_labels`` go left of each row, ``col_labels`` above the first row and
    ``titles`` (one per image) above each image. Cells beyond N stay empty.
    """
    return grid_figure(list(flat_images(images)), nrows, ncols, row_labels, col_labels,
                        titles, figsize)


def grid_figure(cells: Sequence[np.ndarray | None], nrows: int, ncols: int, row_labels=None,
                 col_labels=None, titles=None, figsize=None) -> Figure:
    """A figure holding one grid of :func:`fill_grid`; ``None`` cells are gaps."""
    heads = _heads(nrows * ncols, ncols, col_labels, titles)
    _, height, width = grid_geometry(nrows, ncols, heads)
    left = 1.1 if row_labels is not None else 0.1  # inches, for the row labels
    w_in, h_in = width / PX_PER_INCH, height / PX_PER_INCH
    w, h = figsize or (left + w_in + 0.1, h_in + 0.2)
    fig = Figure(figsize=(w, h))
    fill_grid(fig, cells, nrows, ncols, row_labels, col_labels, titles,
               rect=[left / w, 0.1 / h, 1 - (left + 0.1) / w, 1 - 0.2 / h])
    return fig
