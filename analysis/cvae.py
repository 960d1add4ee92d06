"""Figures, tables and written answers for the label-conditioned VAE (question f).

Takes the arrays of :mod:`probnn.inference.cvae` and returns figures and text; nothing here
trains or runs an estimator.
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from probnn.inference.paired import paired_difference

from .comparison import Z
from .curves import history_figure
from .holdout_table import comparison_table, k_columns
from .images import flat_images, image_grid
from .outputs import Plot, Section, Table
from .plotting import new_figure
from .significance import fmt_diff

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
    p, s = flat_images(probs), flat_images(samples)
    styles = len(p) // 10
    cells, rows = [], []
    for i in range(styles):
        cells += list(p[10 * i:10 * i + 10]) + list(s[10 * i:10 * i + 10])
        rows += [f"style {i + 1} probs", f"style {i + 1} sample"]
    return image_grid(np.stack(cells), 2 * styles, 10, row_labels=rows, col_labels=DIGITS)


def digit_samples_figure(probs) -> Figure:
    """A 10 x n grid: row = digit, each column a different style z ~ N(0, I)."""
    p = flat_images(probs)
    per = len(p) // 10
    return image_grid(p, 10, per, row_labels=[f"y = {d}" for d in range(10)])


def style_transfer_figure(originals, labels, probs) -> Figure:
    """Real images (first column) re-drawn in their own style with every label 0-9."""
    x, p = flat_images(originals), flat_images(probs)
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
                train_elbo: float | None = None, per_image: Mapping | None = None,
                unconditional_images: Mapping[str, Mapping] | None = None) -> str:
    """The written answer of question (f), generated from the measured numbers.

    The conditional model is compared with an unconditional one only over the images both
    were scored on: its marginal log p(x) (on the classified images) against the unconditional
    IWAE bound of the same images, its ELBO against theirs on the same holdout images, each as
    a paired difference with its standard error from the per-image estimates (``per_image``:
    the evaluation's, ``unconditional_images``: name -> the holdout result's ``per_image``).
    Without them, no difference is stated: the means cover different images."""
    k_cols = [k for k, _ in k_columns(row, "marginal_iwae")]
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
    for name in (unconditional or {}):
        lines += _against(name, k, per_image or {}, (unconditional_images or {}).get(name, {}))
    lines.append(
        f"As a generative classifier, argmax_y p(x | y) p(y) is right on {row['accuracy']:.1%} "
        f"of {row['classify_images']} holdout images.")
    return "\n".join(lines)


def _against(name: str, k: int, mine: Mapping, theirs: Mapping) -> list[str]:
    """The paired comparisons with the unconditional model ``name``, or why there are none."""
    marg = paired_difference(mine["classified"], f"marginal_iwae_{k}", theirs["all"],
                             f"iwae_{k}") if "classified" in mine and "all" in theirs and \
        f"iwae_{k}" in theirs["all"] else None
    elbo = paired_difference(mine["all"], "elbo_mc", theirs["all"], "elbo_mc") \
        if "all" in mine and "all" in theirs else None
    if not (marg and marg.n) and not (elbo and elbo.n):
        return [f"Against {name}: no per-image estimates on common images, so no difference "
                "is stated (the two means cover different images)."]
    out = []
    if marg and marg.n:
        out.append(f"On the {marg.n} classified images, the marginal log p(x) minus {name}'s "
                   f"K={k} bound of the same images is {fmt_diff(marg.mean, marg.se)} nats: "
                   + _verdict(marg, "the conditional model's marginal is higher",
                              "the conditional model's marginal is lower"))
    if elbo and elbo.n:
        out.append(f"Conditional ELBO-MC log p(x | y) minus {name}'s ELBO-MC log p(x) on the same "
                   f"{elbo.n} images: {fmt_diff(elbo.mean, elbo.se)} nats: "
                   + _verdict(elbo, "the label pays", "the label does not pay"))
    return out


def _verdict(p, up: str, down: str) -> str:
    if not p.beyond(Z):
        return f"within {Z:g} standard errors, no difference shown."
    return (up if p.mean > 0 else down) + "."


QUESTION = ("Model X = f(Z, y): show style-consistent digit sets (fix Z, vary y) and samples of "
            "one digit (fix y, vary Z); what is the perfect sampling distribution for Z given an "
            "image and its label?")


def cvae_section(name: str, results, unconditional: Mapping[str, Mapping] | None = None,
                 history: pd.DataFrame | None = None,
                 unconditional_images: Mapping[str, Mapping] | None = None) -> Section:
    """Question (f): style sets, digit samples, style transfer, the generative classifier, the
    holdout evaluation beside the unconditional models and the answer.

    ``results``: a :class:`~probnn.inference.cvae.CVAEResults`; ``unconditional``: rows of
    the unconditional models' holdout comparison (name -> row; missing values are dropped);
    ``history``: the training history; ``unconditional_images``: name -> those models'
    per-image estimates (a holdout result's ``per_image``), for paired differences.
    """
    ev = results.evaluation
    others = ({n: r.dropna().to_dict() for n, r in comparison_table(unconditional).iterrows()}
              if unconditional else {})
    train_elbo = float(history["elbo"].iloc[-1]) if history is not None and len(history) else None
    s = Section("cvae-f", "(f) The label-conditioned VAE", QUESTION,
                answers=cvae_answer(ev.row, others, train_elbo, getattr(ev, "per_image", None),
                                    unconditional_images).split("\n"),
                tables=[Table(f"{name}-evaluation", comparison_table({name: ev.row, **others}),
                              "Held-out estimates beside the unconditional models"),
                        Table(f"{name}-confusion",
                              pd.DataFrame(ev.confusion, index=DIGITS, columns=DIGITS))],
                plots=[Plot(f"{name}-style-sets", style_sets_figure(*results.styles),
                            "Each row pair: one style z, digits 0-9."),
                       Plot(f"{name}-digit-samples", digit_samples_figure(results.digits[0]),
                            "Each column: one digit, ten styles."),
                       Plot(f"{name}-style-transfer", style_transfer_figure(*results.transfer),
                            "The style of two holdout images, redrawn as every digit."),
                       Plot(f"{name}-confusion", confusion_figure(ev.confusion, ev.row["accuracy"]),
                            "The model as a generative classifier, argmax_y p(x | y) p(y).")])
    if train_elbo is not None:
        s.plots.append(Plot(f"{name}-history", history_figure({name: history}),
                            "Training ELBO per epoch."))
    return s
