"""Figures, tables and written answers for the label-conditioned VAE (question f).

Takes the arrays of :mod:`probnn.inference.cvae` and returns figures and text; nothing here
trains or runs an estimator.
"""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from ._plotting import new_figure, save_figure
from .vae import _flat_images, comparison_table, history_figure, image_grid

DIGITS = [str(d) for d in range(10)]

PERFECT_SAMPLER_ANSWER = (
    "Given an image x and its label Y = y, the perfect sampling distribution for the style Z "
    "is the posterior p(z | x, y) = p(x | z, y) p(z) / p(x | y). Sampling from it makes every "
    "importance weight p(x, z | y) / p(z | x, y) equal to p(x | y), so a single sample gives "
    "log p(x | y) exactly and the ELBO's gap, KL(q || p(z | x, y)), is zero. The guide "
    "q(z | x, y) is the learned approximation of it.")


def style_sets_figure(probs, samples) -> Figure:
    """Each style z (a row pair: probability maps, then samples) decoded as every digit 0-9.

    ``probs`` and ``samples`` are (styles, 10, 1, 28, 28) from
    :func:`~probnn.inference.cvae.style_sets`.
    """
    p, s = _flat_images(probs), _flat_images(samples)
    styles = len(p) // 10
    cells, rows = [], []
    for i in range(styles):
        cells += list(p[10 * i:10 * i + 10]) + list(s[10 * i:10 * i + 10])
        rows += [f"style {i + 1} probs", f"style {i + 1} sample"]
    return image_grid(np.stack(cells), 2 * styles, 10, row_labels=rows, col_labels=DIGITS)


def digit_samples_figure(probs) -> Figure:
    """A 10 x n grid: row = digit, each column a different style z ~ N(0, I)."""
    p = _flat_images(probs)
    per = len(p) // 10
    return image_grid(p, 10, per, row_labels=[f"y = {d}" for d in range(10)])


def style_transfer_figure(originals, labels, probs) -> Figure:
    """Real images (first column) re-drawn in their own style with every label 0-9."""
    x, p = _flat_images(originals), _flat_images(probs)
    n = len(x)
    cells = []
    for i in range(n):
        cells += [x[i]] + list(p[10 * i:10 * i + 10])
    return image_grid(np.stack(cells), n, 11, col_labels=["real"] + DIGITS,
                      row_labels=[f"label {int(lab)}" for lab in labels])


def confusion_figure(confusion: np.ndarray, accuracy: float) -> Figure:
    """The generative classifier's confusion matrix (rows: true digit, columns: predicted)."""
    fig, axes = new_figure(size=(5.5, 5.0))
    ax = axes[0, 0]
    ax.imshow(confusion, cmap="Blues")
    for (i, j), v in np.ndenumerate(confusion):
        if v:
            ax.text(j, i, str(v), ha="center", va="center", fontsize=7,
                    color="white" if v > confusion.max() / 2 else "black")
    ax.set(xticks=range(10), yticks=range(10), xlabel="predicted digit", ylabel="true digit",
           title=f"p(y | x) ∝ p(x | y) p(y): accuracy {accuracy:.1%} on {confusion.sum()} images")
    return fig


def cvae_answer(row: Mapping, unconditional: Mapping[str, Mapping] | None = None,
                train_elbo: float | None = None) -> str:
    """The written answer of question (f), generated from the measured numbers."""
    k_cols = sorted(int(c.split("_")[-1]) for c in row if c.startswith("marginal_iwae_"))
    k = k_cols[-1] if k_cols else 100
    lines = [PERFECT_SAMPLER_ANSWER, ""]
    lines.append(
        f"On {row['images']} holdout images the conditional model's ELBO for log p(x | y) is "
        f"{row['elbo']:.2f} nats and its {k}-sample IWAE bound {row[f'iwae_{k}']:.2f}; the KL "
        f"term is {row['kl']:.2f} nats.")
    if train_elbo is not None:
        lines.append(f"Its last training-epoch ELBO was {train_elbo:.2f} nats.")
    marg = row.get(f"marginal_iwae_{k}")
    if marg is not None:
        lines.append(
            f"Summing over labels, log p(x) = logsumexp_y [log p(x | y) + log 1/10] is "
            f"{marg:.2f} nats on {row['classify_images']} images, where log p(x | y) for the "
            f"true labels is {row[f'iwae_{k}_classified']:.2f}: knowing the label is worth "
            f"{row[f'iwae_{k}_classified'] - marg:.2f} nats (at most log 10 = 2.30 when the "
            f"image alone determines the digit).")
    if unconditional:
        key = f"iwae_{k}"
        best = max(unconditional, key=lambda n: unconditional[n].get(key, -np.inf))
        ub = unconditional[best].get(key)
        if ub is not None and marg is not None:
            rel = "higher" if marg > ub else "lower"
            lines.append(
                f"Against the unconditional models, the marginal log p(x) is {rel} than the best "
                f"of them ({best}: {ub:.2f} nats, K={k}) by {abs(marg - ub):.2f} nats.")
        for name, r in unconditional.items():
            if "elbo" in r:
                pays = row["elbo"] > r["elbo"]
                lines.append(
                    f"Conditional ELBO log p(x | y) {row['elbo']:.2f} vs {name}'s ELBO log p(x) "
                    f"{r['elbo']:.2f}: the label {'pays' if pays else 'does not pay'} "
                    f"({row['elbo'] - r['elbo']:+.2f} nats).")
    lines.append(
        f"As a generative classifier, argmax_y p(x | y) p(y) is right on {row['accuracy']:.1%} "
        f"of {row['classify_images']} holdout images.")
    return "\n".join(lines)


def write_cvae_outputs(name: str, styles, digits, transfer, evaluation: Mapping, out_dir,
                       unconditional: Mapping[str, Mapping] | None = None,
                       history: pd.DataFrame | None = None) -> list[Path]:
    """Write the figures, the evaluation table and the answer of question (f).

    ``styles``, ``digits``: (probs, samples) pairs; ``transfer``: (originals, labels, probs);
    ``evaluation``: the dict of :func:`~probnn.inference.cvae.evaluate_cvae`.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [
        save_figure(style_sets_figure(*styles), out / f"{name}-style-sets.png"),
        save_figure(digit_samples_figure(digits[0]), out / f"{name}-digit-samples.png"),
        save_figure(style_transfer_figure(*transfer), out / f"{name}-style-transfer.png"),
        save_figure(confusion_figure(evaluation["confusion"], evaluation["row"]["accuracy"]),
              out / f"{name}-confusion.png"),
    ]
    rows = {name: evaluation["row"], **(unconditional or {})}
    table = comparison_table(rows)
    table.to_csv(out / f"{name}-evaluation.csv")
    pd.DataFrame(evaluation["confusion"], index=DIGITS, columns=DIGITS).to_csv(out / f"{name}-confusion.csv")
    train_elbo = float(history["elbo"].iloc[-1]) if history is not None and len(history) else None
    text = (f"# {name}: question (f)\n\n" + table.to_string() + "\n\n"
            + cvae_answer(evaluation["row"], unconditional, train_elbo) + "\n")
    (out / f"{name}-summary.md").write_text(text)
    if history is not None and len(history):
        written.append(save_figure(history_figure({name: history}), out / f"{name}-history.png"))
    return written + [out / f"{name}-evaluation.csv", out / f"{name}-confusion.csv",
                      out / f"{name}-summary.md"]
