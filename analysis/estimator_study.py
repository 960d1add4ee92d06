"""The ELBO-estimator study of one model: its section, from the parts that answer it.

Takes an :class:`~probnn.inference.estimator_study.EstimatorStudy` (what
:func:`probnn.inference.estimator_study.run_estimator_study` returns) and builds one
:class:`~probnn.analysis.outputs.Section` from three answers, each in its own module: bias and
spread of the estimators (:mod:`probnn.analysis.estimator_bias`), the gradient SNR of each
training objective (:mod:`probnn.analysis.estimator_snr`) and, when the study trained them,
the objectives compared (:mod:`probnn.analysis.objectives`). Nothing here trains or runs an
estimator. Every sentence of the answers is written from the numbers, and claims a
difference only when it lies outside the 95% t-interval of its noise
(:mod:`probnn.analysis.significance`). The parts' public names are importable from here too.

Notebook use::

    from probnn.analysis.estimator_study import estimator_section
    from probnn.analysis.outputs import markdown, save
    section = estimator_section(study)          # figures, tables, answers, in memory
    save(section, "out/estimators")             # PNGs and CSVs
    print(markdown(section))
"""
from __future__ import annotations

from .estimator_bias import estimator_answer, estimator_bound_figure, estimator_spread_figure
from .estimator_snr import dreg_answer, snr_answer, snr_figure, stl_answer
from .objectives import (QUESTION_OBJECTIVES, objectives_answer, objectives_figure,
                         objectives_section, objectives_seed_answer)
from .outputs import Plot, Section, Table

__all__ = ["QUESTION", "QUESTION_OBJECTIVES", "SHOWN_BIAS", "dreg_answer", "estimator_answer",
           "estimator_bound_figure", "estimator_section", "estimator_spread_figure",
           "objectives_answer", "objectives_figure", "objectives_section",
           "objectives_seed_answer", "snr_answer", "snr_figure", "stl_answer"]

QUESTION = ("How biased and how noisy are the ELBO, ELBO-MC and IWAE-K estimators of log p(x)? "
            "How good are the gradients of each training objective (Trace_ELBO, "
            "TraceMeanField_ELBO, sticking-the-landing STL, IWAE and doubly reparameterised "
            "DReG-IWAE, at K = 1, 5, 50)? Does DReG remove IWAE's encoder-SNR decline? Which "
            "objective trains the best model, beyond the spread over seeds?")
SHOWN_BIAS = ("estimator", "mean", "stderr", "per_image_sd", "ms_per_image")


def _sizes_text(study) -> str:
    training = ("train_images", "epochs", "batch_size", "eval_k", "eval_images")
    shown = {k: v for k, v in study.config.items()
             if study.objectives is not None or k not in training}  # none trained: no sizes
    parts = ["Sizes: " + ", ".join(f"{k}={v}" for k, v in shown.items())] if shown else []
    if study.seconds:
        parts.append("Wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in study.seconds.items()))
    return ". ".join(parts) + "." if parts else ""


def estimator_section(study, name: str | None = None) -> Section:
    """The study of one model (an :class:`~probnn.inference.estimator_study.EstimatorStudy`):
    bias and spread of the estimators, gradient SNR per objective, and (when the study trained
    them) the objective comparison; files are named ``<name>-estimators-*``."""
    label = name or study.name
    stem = f"{label}-estimators"
    c, b = study.config, study.bias_spread
    s = Section(f"estimators-{label}", f"ELBO estimators: {label}", QUESTION,
                answers=[t for t in (_sizes_text(study), f"{label}. " + estimator_answer(b),
                                     f"{label}. " + snr_answer(study.snr)) if t],
                tables=[Table(f"{stem}-bias-spread", b,
                              f"{label}: log-likelihood estimators (nats per image)",
                              view=b[[col for col in SHOWN_BIAS if col in b]].set_index("estimator"),
                              index=False),
                        Table(f"{stem}-snr", study.snr, index=False)],
                plots=[Plot(f"{stem}-bound-vs-k", estimator_bound_figure(b, label),
                            f"{label}: the bound against K (mean over {c.get('holdout_images')} "
                            f"holdout images ± stderr over {c.get('repeats')} repeats), ELBO and "
                            "ELBO-MC beside it."),
                       Plot(f"{stem}-spread", estimator_spread_figure(b, label),
                            f"{label}: spread and cost of each estimator."),
                       Plot(f"{stem}-snr", snr_figure(study.snr, label),
                            f"{label}: gradient signal-to-noise ratio of encoder and decoder "
                            "parameters, per training objective.")])
    if study.objectives is not None and len(study.objectives):
        o = objectives_section(study.objectives, study.reference, f"{stem}-objectives", label)
        s.tables += o.tables
        s.plots += o.plots
        s.answers += o.answers
    return s

