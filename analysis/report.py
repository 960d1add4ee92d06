"""The HTML report: one section per coursework question, from finished results.

:func:`write_report` takes the results that :func:`probnn.report.load_results` reads back
from the pipeline's artifacts, writes every figure and table with the per-topic writers
(:func:`~probnn.analysis.regression.write_regression_outputs` and friends) into
sub-folders of ``out``, and then ``out/index.html``, which refers to them by relative path:
copy the folder and the report goes with it. Every written answer comes from the functions
that generate text from the measured numbers; nothing here trains or estimates.
"""
from __future__ import annotations

import html
import platform
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import bayes_regression as ba
from . import cvae as ca
from . import estimator_study as ea
from . import regression as ra
from . import vae as va
from ._plotting import save_figure


@dataclass
class Section:
    """A report section: what the question asks, figures (path, caption), tables
    (caption, DataFrame), and paragraphs of written answer."""
    id: str
    title: str
    question: str
    figures: list[tuple[Path, str]] = field(default_factory=list)
    tables: list[tuple[str, pd.DataFrame]] = field(default_factory=list)
    answers: list[str] = field(default_factory=list)


# ----------------------------------------------------------------------------- sections
def regression_sections(fits: dict, out: Path) -> list[Section]:
    """Questions (a) and (b), and the dip cures, from the maximum-likelihood fits
    (``homoscedastic``, ``heteroscedastic``, ``heteroscedastic-floor``, ``heteroscedastic-beta``)."""
    d = out / "regression"
    main = [fits["homoscedastic"], fits["heteroscedastic"]]
    ra.write_regression_outputs(main, d)
    table = ra.summary_table(main)
    answers = ra.regression_answers(main)
    dip_text, check, theory, reference = answers
    a = Section("regression-a", "(a) Homoscedastic regression",
                "Fit Y ~ N(f(x), σ²) with a small MLP f by maximum likelihood (50,000 Adam "
                "epochs); show the fit with its ±1.96σ ribbon; what is the maximum possible "
                "training log-likelihood if f is rich enough?",
                figures=[(d / "ribbon_homoscedastic.png", "Data, f(x) and f(x) ± 1.96 σ.")],
                tables=[("Both fits (mean log-likelihood per point)", table)],
                answers=[check, theory, reference])
    b = Section("regression-b", "(b) Heteroscedastic regression and its dips",
                "Fit Y ~ N(f(x), σ(x)²); plot log-likelihood per epoch for both models; why "
                "does the heteroscedastic curve dip?",
                figures=[(d / "ribbon_heteroscedastic.png", "Data, f(x) and f(x) ± 1.96 σ(x)."),
                         (d / "loglik.png", "Training mean log-likelihood per epoch (clipped at −10)."),
                         (d / "dip.png", "The deepest dip after epoch 100, point by point.")],
                tables=[("Points that drive the dip (at its lowest epoch)",
                         pd.read_csv(d / "dip_low.csv", index_col=0).head(8))],
                answers=[dip_text])
    floor, beta = fits["heteroscedastic-floor"].model, fits["heteroscedastic-beta"].model
    runs = {"no cure": fits["heteroscedastic"],
            f"σ floor {floor.sigma_floor:g}": fits["heteroscedastic-floor"],
            f"β-NLL β={beta.beta:g}": fits["heteroscedastic-beta"]}
    labelled = [replace(f, name=label) for label, f in runs.items()]
    cures = ra.cures_table(runs)
    cures.to_csv(d / "cures.csv")
    fig = save_figure(ra.loglik_curves(labelled, ylim=(-20, 1)), d / "cures-loglik.png")
    c = Section("regression-cures", "(b, further) Curing the dips",
                "Train the heteroscedastic model with a floor under σ(x), and with the β-NLL loss "
                "(Seitzer et al., 2022); does the log-likelihood still dip?",
                figures=[(fig, "True training log-likelihood per epoch, with and without the cures "
                               "(β-NLL trains a weighted objective; this is the log-likelihood).")],
                tables=[("Heteroscedastic runs", cures)],
                answers=[ra.cures_answer(cures, "no cure")])
    return [a, b, c]


def bayes_section(bayes: dict, ml_fits: dict, out: Path) -> Section:
    """Bayesian versions of both regression models compared by PSIS-LOO (``bayes``: the
    ``fits`` and ``compare`` of ``run_bayes_regression``; ``ml_fits``: the maximum-likelihood
    fits, whose final training log-likelihoods the answer sets beside the Bayesian ones)."""
    d = out / "bayes"
    fits, compare = bayes["fits"], bayes["compare"]
    ml = {n: float(ml_fits[n].history["loglik"].iloc[-1]) for n in ("homoscedastic", "heteroscedastic")}
    ba.write_bayes_outputs(fits, compare, d, ml_loglik=ml)
    table = ba.loo_table(compare)
    cols = [c for c in ("elpd_loo", "se", "p_loo", "elpd_diff", "dse", "lppd_per_point",
                        "sigma_mean", "k_over_0.7", "k_nonfinite", "k_max") if c in table]
    steps = ", ".join(f"{f.name} {len(f.history)} SVI steps" for f in fits)
    return Section("regression-bayes", "(a–b, further) Bayesian regression and PSIS-LOO",
                   "Put a Normal prior on every Wiggle weight, fit a Normal guide (AutoNormal) by "
                   "SVI, draw posterior-predictive ribbons, and compare the two models by PSIS-LOO "
                   "from the pointwise log-likelihoods of posterior draws.",
                   figures=[*[(d / f"bayes-ribbon_{f.name}.png",
                               f"{f.name}: posterior-predictive mean of f, its 95% band, and the "
                               "95% band of a new y.") for f in fits],
                            (d / "bayes-pareto-k.png", "Pareto k of each point's PSIS-LOO estimate "
                                                       "(above 0.7: unreliable).")],
                   tables=[(f"PSIS-LOO ({steps})", table[cols])],
                   answers=[ba.loo_answer(compare, ml)])


def vae_sections(results, train_x, out: Path) -> list[Section]:
    """Questions (c) and (d) for one VAE (reconstructions, noise, samples, interpolation;
    likely and unlikely images)."""
    d = out / "vae"
    va.write_vae_outputs(results, train_x, d)
    n = results.name
    noise = pd.read_csv(d / f"{n}-noise-bounds.csv")
    c = Section("vae-c", f"(c) The VAE ({n}): reconstructions, noise, samples, interpolation",
                "Train the Bernoulli-image VAE; show reconstructions of four training images, "
                "reconstructions of a noisy image, random samples, and an interpolation "
                "between two images in latent space.",
                figures=[(d / f"{n}-reconstructions.png",
                          "Originals; the decoder's pixel probabilities and a Bernoulli sample "
                          "for three draws z ~ q(z | x)."),
                         (d / f"{n}-noise.png", "Image 35508 with Gaussian noise of growing sd, "
                                                "its reconstruction, and its log-likelihood bound."),
                         (d / f"{n}-prior-samples.png", "Images from z ~ N(0, I)."),
                         (d / f"{n}-interpolation.png",
                          "Decoding the straight line between the posterior means of images "
                          "28001 and 43876."),
                         (d / f"{n}-history.png", "Training ELBO per epoch.")],
                tables=[(f"Bound of image 35508 ({results.rank_k} samples) by noise level", noise)],
                answers=[va.noise_answer(results.clean_bound, results.noise_sds,
                                         results.noisy_bounds)])
    table = pd.read_csv(d / f"{n}-bound-by-digit.csv", index_col=0)
    dd = Section("vae-d", f"(d) Likely and unlikely images ({n})",
                 f"Estimate each image's log-likelihood with {results.rank_k} Monte Carlo / "
                 "importance samples; show the most and least likely images; what makes an "
                 "image likely?",
                 figures=[(d / f"{n}-likely-unlikely.png",
                           "Most and least likely training images by their bound (Pareto k "
                           "flags the estimates that may be far from log p(x))."),
                          (d / f"{n}-likelihood-features.png",
                           "The bound against digit class and amount of ink.")],
                 tables=[("Bound by digit class", table)],
                 answers=[f"Scored {len(results.rank_bounds)} training images.",
                          va.likelihood_answer(results.rank_bounds, results.rank_labels,
                                               train_x[results.rank_index])])
    return [c, dd]


def comparison_section(rows: dict, histories: dict, out: Path) -> Section:
    """Question (e): d=4 vs d=20 vs the PyTorch example VAE on held-out images."""
    d = out / "compare"
    va.write_comparison_outputs(rows, d, histories)
    table = va.comparison_table(rows)
    return Section("vae-e", "(e) d = 4 vs d = 20 vs the PyTorch example VAE",
                   "Compare the latent dimensions (and the PyTorch example's MLP VAE) on a "
                   "holdout set: which is the better model, and what is the right measure?",
                   figures=[(d / "comparison-history.png", "Training ELBO per epoch.")],
                   tables=[("Held-out estimates (nats per image)", table)],
                   answers=[va.comparison_answer(table)])


def cvae_section(cvae: dict, rows: dict, history, out: Path) -> Section:
    """Question (f): the label-conditioned VAE."""
    d = out / "cvae"
    name = "cvae-d4"
    table = va.comparison_table(rows)
    unconditional = {n: r.dropna().to_dict() for n, r in table.iterrows()}
    ca.write_cvae_outputs(name, cvae["styles"], cvae["digits"], cvae["transfer"],
                          cvae["evaluation"], d, unconditional, history)
    ev = cvae["evaluation"]
    train_elbo = float(history["elbo"].iloc[-1]) if len(history) else None
    return Section("cvae-f", "(f) The label-conditioned VAE",
                   "Model X = f(Z, y): show style-consistent digit sets (fix Z, vary y) and "
                   "samples of one digit (fix y, vary Z); what is the perfect sampling "
                   "distribution for Z given an image and its label?",
                   figures=[(d / f"{name}-style-sets.png", "Each row pair: one style z, digits 0-9."),
                            (d / f"{name}-digit-samples.png", "Each column: one digit, ten styles."),
                            (d / f"{name}-style-transfer.png",
                             "The style of two holdout images, redrawn as every digit."),
                            (d / f"{name}-confusion.png",
                             "The model as a generative classifier, argmax_y p(x | y) p(y)."),
                            (d / f"{name}-history.png", "Training ELBO per epoch.")],
                   tables=[("Held-out estimates beside the unconditional models",
                            pd.read_csv(d / f"{name}-evaluation.csv", index_col=0))],
                   answers=ca.cvae_answer(ev["row"], unconditional, train_elbo).split("\n"))


def estimator_section(studies: dict, objectives: pd.DataFrame, out: Path) -> Section:
    """The ELBO-estimator study: bias and spread of the estimators and gradient SNR at each
    trained checkpoint (``studies``: name -> EstimatorStudy), and one model trained per
    objective (``objectives``: the table of ``objective_comparison``)."""
    d = out / "estimators"
    figures, tables, answers = [], [], []
    for name, study in studies.items():
        ea.write_estimator_outputs(study, d, name)
        stem = d / f"{name}-estimators"
        c = study.config
        figures += [(Path(f"{stem}-bound-vs-k.png"),
                     f"{name}: the bound against K (mean over {c.get('holdout_images')} holdout "
                     f"images ± stderr over {c.get('repeats')} repeats), ELBO and ELBO-MC beside it."),
                    (Path(f"{stem}-spread.png"), f"{name}: spread and cost of each estimator."),
                    (Path(f"{stem}-snr.png"), f"{name}: gradient signal-to-noise ratio of encoder "
                                              "and decoder parameters, per training objective.")]
        cols = [col for col in ("estimator", "mean", "stderr", "per_image_sd", "ms_per_image")
                if col in study.bias_spread]
        tables.append((f"{name}: log-likelihood estimators (nats per image)",
                       study.bias_spread[cols].set_index(cols[0])))
        answers += [f"{name}. " + ea.estimator_answer(study.bias_spread),
                    f"{name}. " + ea.snr_answer(study.snr)]
    d.mkdir(parents=True, exist_ok=True)
    objectives.to_csv(d / "objectives.csv", index=False)
    fig = save_figure(ea.objectives_figure(objectives, None, "vae-mlp-d20"), d / "objectives.png")
    row = objectives.iloc[0]
    figures.append((fig, f"One VAE per training objective (the PyTorch example's MLP VAE, d=20, "
                         f"{int(row['epochs'])} epoch on {int(row['train_images'])} training "
                         f"images, same start and same batches), scored by IWAE-{int(row['eval_k'])} "
                         f"on {int(row['eval_images'])} holdout images."))
    shown = [c for c in ("objective", "train_seconds", "train_objective", "holdout_elbo",
                         "holdout_iwae", "holdout_iwae_se", "delta_vs_best", "delta_vs_best_se")
             if c in objectives]
    tables.append(("Training with each objective (nats per image)",
                   objectives[shown].set_index("objective")))
    answers.append(ea.objectives_answer(objectives))
    return Section("estimators", "ELBO estimators compared",
                   "How biased and how noisy are the ELBO, ELBO-MC and IWAE-K estimators of log "
                   "p(x)? How good are the gradients of each training objective (Trace_ELBO, "
                   "TraceMeanField_ELBO, IWAE K=1, 5, 50)? Which objective trains the best model?",
                   figures, tables, answers)


# ----------------------------------------------------------------------------- html
_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em;
       margin-top: 2.2em; }
.question { color: #555; font-style: italic; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.55em; text-align: right; }
th { background: #f5f5f5; } .caption { font-weight: 600; margin-top: 1em; }
.answer { background: #f8f9fb; border-left: 3px solid #5b7bb5; padding: 0.6em 1em; }
nav ul { columns: 2; } .meta { font-size: 0.85em; color: #555; }
"""


def _table_html(df: pd.DataFrame) -> str:
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.4g}"
        return str(v)
    return df.to_html(formatters={c: fmt for c in df.columns}, border=0, escape=True)


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n") if p.strip())


def render_html(title: str, sections: list[Section], meta: list[tuple[str, str]],
                provenance: pd.DataFrame, out: Path, warning: str | None = None) -> Path:
    """Write ``out/index.html``: a contents list, the sections, and how the numbers were made."""
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if warning:
        parts.append(f"<p class='answer'><strong>{html.escape(warning)}</strong></p>")
    parts += [
             "<p class='meta'>" + " · ".join(f"{html.escape(k)}: {html.escape(v)}" for k, v in meta)
             + "</p>",
             "<nav><ul>" + "".join(f"<li><a href='#{s.id}'>{html.escape(s.title)}</a></li>"
                                   for s in sections)
             + "<li><a href='#provenance'>How these numbers were made</a></li></ul></nav>"]
    for s in sections:
        parts.append(f"<section id='{s.id}'><h2>{html.escape(s.title)}</h2>"
                     f"<p class='question'>{html.escape(s.question)}</p>")
        if s.answers:
            parts.append("<div class='answer'>" + "".join(_paragraphs(a) for a in s.answers)
                         + "</div>")
        for caption, df in s.tables:
            parts.append(f"<p class='caption'>{html.escape(caption)}</p>{_table_html(df)}")
        for path, caption in s.figures:
            rel = Path(path).relative_to(out).as_posix()
            parts.append(f"<figure><img src='{html.escape(rel)}' alt='{html.escape(caption)}'>"
                         f"<figcaption>{html.escape(caption)}</figcaption></figure>")
        parts.append("</section>")
    parts.append("<section id='provenance'><h2>How these numbers were made</h2>"
                 + _table_html(provenance) + "</section></body></html>")
    index = out / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index


def figures_of(sections: list[Section]) -> list[Path]:
    return [p for s in sections for p, _ in s.figures]


def write_report(results: dict[str, Any], out, run) -> Path:
    """Write every section's files and ``out/index.html``; return the index path.

    ``results``: from :func:`probnn.report.load_results`; ``run``: the
    :class:`probnn.report.ReportRun` (mode, seed, jobs and their statuses, for the
    provenance table).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sections = regression_sections(results["regression"], out)
    sections.append(bayes_section(results["bayes"], results["regression"], out))
    sections += vae_sections(results["vae_figures"], results["train_x"], out)
    sections.append(comparison_section(results["compare"],
                                       {n: results["histories"][n] for n in results["compare"]}, out))
    sections.append(cvae_section(results["cvae"], results["compare"],
                                 results["histories"]["cvae-d4"], out))
    sections.append(estimator_section(results["estimators"], results["objectives"], out))
    missing = [p for p in figures_of(sections) if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(f"report figures were not written: {missing}")
    provenance = run.provenance()
    provenance.to_csv(out / "provenance.csv")
    meta = [("mode", "quick (a first look: few epochs, small subsets)" if run.quick
             else "full (the coursework's settings)"),
            ("seed", str(run.seed)), ("written", time.strftime("%Y-%m-%d %H:%M")),
            ("pipeline", f"{run.seconds:.0f} s before rendering"),
            ("cache", str(run.cache)), ("python", platform.python_version())]
    warning = ("Quick mode: every model is trained for a few epochs on a subset and evaluated on "
               "small subsets. This checks the pipeline and shows what the report looks like; "
               "its numbers are not the coursework's answers (run without --quick for those)."
               if run.quick else None)
    return render_html("probnn: Probabilistic Neural Networks, every answer", sections, meta,
                       provenance, out, warning)
