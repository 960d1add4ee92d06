"""The commands that compute a question's answer and write its sections: each parses its
options into its task's config (options generated from the config's settings,
:mod:`probnn.options`), runs the task, builds the sections with the builder the report uses,
saves them and prints their summary."""
from __future__ import annotations

from pathlib import Path

from probnn.tasks import (bayes_regression, bounds, cvae, estimators, holdout, objectives,
                          vae_figures)

from .commandline import (UsageError, common_options, device_option, each_checkpoint, folder,
                          publish, require_files, task_inputs)
from .options import add_settings, given

SEED = {"seed"}


def _config(task, args, *, skip=frozenset(), **fixed):
    """The task's config from the command line: the preset ``--preset`` names (where the
    task has presets), then every setting the user gave, then ``fixed``."""
    settings = {**given(args, task.Config, skip=SEED | set(skip)), **fixed, "seed": args.seed}
    if getattr(args, "preset", None):
        return task.Config.preset(args.preset, **settings)
    return task.Config(**settings)


def _preset_option(p, task, what: str) -> None:
    names = list(task.PRESETS)
    p.add_argument("--preset", choices=names, default="standard",
                   help=f"sizes: {what}; any size option overrides the preset's")


# ----------------------------------------------------------------------------- regression
def add_bayes_regression(sub) -> None:
    p = sub.add_parser("bayes-regression",
                       help="Bayesian versions of the regression models: NUTS, LOO with exact "
                            "refits, VI against NUTS")
    common_options(p)
    add_settings(p, bayes_regression.Config, skip=SEED, presets=bayes_regression.PRESETS)
    p.add_argument("--quick", action="store_true", help="the quick preset instead of the full one")
    p.set_defaults(func=cmd_bayes_regression)


def cmd_bayes_regression(args) -> int:
    from probnn.analysis.bayes_regression import result_section

    config = bayes_regression.Config.preset(
        "quick" if args.quick else "full", seed=args.seed,
        **given(args, bayes_regression.Config, skip=SEED))
    out = folder(args.out or "out/regression")
    r = bayes_regression.run(config, task_inputs(args), progress=not args.quiet)
    return publish(result_section(r), out, "bayes-summary.md")


# ----------------------------------------------------------------------------- vae, cvae
def add_vae_figures(sub) -> None:
    p = sub.add_parser("figures", help="figures and tables of questions (c)-(e) for one model")
    common_options(p)
    p.add_argument("--checkpoint", required=True)
    add_settings(p, vae_figures.Config, skip=SEED | {"holdout_split"})
    device_option(p)
    p.set_defaults(func=cmd_vae_figures)


def cmd_vae_figures(args) -> int:
    from probnn.analysis.vae import vae_sections

    config = _config(vae_figures, args)
    out = folder(args.out or "out/vae")
    require_files([args.checkpoint])
    inputs = task_inputs(args, args.checkpoint)
    results = vae_figures.run(config, inputs, progress=not args.quiet)
    (train_x, _, _), _ = inputs.mnist(config.holdout_split)
    return publish(vae_sections(results, train_x), out, f"{results.name}-summary.md")


def add_vae_compare(sub) -> None:
    p = sub.add_parser("compare", help="holdout comparison of trained VAEs (question e)")
    common_options(p)
    p.add_argument("--checkpoints", nargs="+", required=True)
    add_settings(p, holdout.Config, skip=SEED)
    device_option(p)
    p.set_defaults(func=cmd_vae_compare)


def cmd_vae_compare(args) -> int:
    from probnn.analysis.comparison import results_section

    config = _config(holdout, args)
    out = folder(args.out or "out/vae")
    results = [holdout.run(config, inputs)
               for inputs in each_checkpoint(args, args.checkpoints, "evaluating")]
    return publish(results_section(results), out, "comparison.md")


def add_cvae_figures(sub) -> None:
    p = sub.add_parser("figures", help="figures, holdout evaluation and classifier")
    common_options(p)
    p.add_argument("--checkpoint", required=True)
    add_settings(p, cvae.Config, skip=SEED)
    p.add_argument("--compare", default=None,
                   help="comparison.csv of 'probnn vae compare', to set the unconditional models beside")
    device_option(p)
    p.set_defaults(func=cmd_cvae_figures)


def cmd_cvae_figures(args) -> int:
    from probnn.analysis.cvae import cvae_section

    config = _config(cvae, args)
    out = folder(args.out or "out/cvae")
    require_files([args.checkpoint])
    unconditional = comparison_rows(args.compare) if args.compare else {}
    r = cvae.run(config, task_inputs(args, args.checkpoint), progress=not args.quiet)
    return publish(cvae_section(r.name, r.results, unconditional, r.history),
                   out, f"{r.name}-summary.md")


def comparison_rows(path) -> dict:
    """The rows (model -> values) of a ``comparison.csv`` written by ``probnn vae compare``,
    checked before any work: a given table is meant, so it is never silently ignored."""
    import pandas as pd
    path = Path(path)
    what = f"--compare {path}"
    if not path.is_file():
        raise UsageError(f"no comparison table (--compare) at {path}: run 'probnn vae compare' "
                         "first, or leave --compare out")
    if path.stat().st_size > 2**20:
        raise UsageError(f"{what} is over 1 MiB: not a comparison table of 'probnn vae compare'")
    try:
        df = pd.read_csv(path, index_col=0)
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:  # EmptyDataError too
        raise UsageError(f"{what} cannot be read as a CSV table ({' '.join(str(e).split())[:120]})")
    iwae = [c for c in df.columns if str(c).startswith("iwae_")]
    if df.empty or "elbo" not in df.columns or not iwae or len(df) > 100 or len(df.columns) > 100:
        raise UsageError(f"{what} is not a comparison table of 'probnn vae compare' (one row "
                         "per model with columns elbo and iwae_K)")
    bad = [c for c in ["elbo", *iwae] if not pd.api.types.is_numeric_dtype(df[c])]
    if bad:
        raise UsageError(f"{what}: column(s) {', '.join(map(str, bad))} hold values that are not numbers")
    return {str(n): row.to_dict() for n, row in df.iterrows()}


# ----------------------------------------------------------------------------- bounds
def add_bounds(sub) -> None:
    p = sub.add_parser(
        "bounds", help="how good are the bounds: AIS, BDMC and the inference gaps (e, further)",
        description="For each VAE checkpoint, on the same random holdout images: ELBO, IWAE-K "
                    "with Pareto k, AIS (annealed importance sampling with HMC), the ELBO of a "
                    "per-image optimised Gaussian q* (approximation and amortisation gaps), and "
                    "BDMC on data simulated from the model. Writes bounds.csv, figures and "
                    "bounds.md.")
    common_options(p)
    p.add_argument("--checkpoint", required=True, action="extend", nargs="+",
                   help="VAE or conditional-VAE checkpoint(s)")
    add_settings(p, bounds.Config, skip=SEED)
    device_option(p)
    p.set_defaults(func=cmd_bounds)


def cmd_bounds(args) -> int:
    from probnn.analysis.bounds import bounds_section

    config = _config(bounds, args)
    out = folder(args.out or "out/bounds")
    results = [bounds.run(config, inputs)
               for inputs in each_checkpoint(args, args.checkpoint, "bounds of")]
    return publish(bounds_section(results), out, "bounds.md")


# ----------------------------------------------------------------------------- estimators
def add_estimators(sub) -> None:
    p = sub.add_parser(
        "estimators", help="ELBO-estimator study: bias and spread, gradient SNR, objectives",
        description="Bias, spread and cost of the ELBO, ELBO-MC and IWAE-K estimators on "
                    "holdout images; gradient signal-to-noise ratio of Trace_ELBO, "
                    "TraceMeanField_ELBO, STL, IWAE-K and DReG-IWAE-K (Rainforth et al. 2018); "
                    "and one VAE trained per objective, compared on the same holdout IWAE "
                    "bound.")
    common_options(p)
    p.add_argument("--checkpoint", required=True, action="extend", nargs="+",
                   help="VAE checkpoint(s); repeat or list several")
    _preset_option(p, estimators, "quick (seconds a model), standard (default; minutes a conv "
                                  "model), thorough (hours a model)")
    add_settings(p, estimators.Config, skip=SEED, presets=estimators.PRESETS)
    p.add_argument("--no-train", dest="train", action="store_false",
                   help="skip training a VAE per objective")
    device_option(p)
    p.set_defaults(func=cmd_estimators)


def cmd_estimators(args) -> int:
    from probnn.analysis.estimator_study import estimator_section

    config = _config(estimators, args, **({} if args.train else {"train_objectives": ()}))
    out = folder(args.out or "out/estimators")
    for inputs in each_checkpoint(args, args.checkpoint, "estimator study of"):
        study = estimators.run(config, inputs, progress=not args.quiet)
        publish(estimator_section(study), out, f"{study.name}-estimators.md")
    return 0


def add_objectives(sub) -> None:
    p = sub.add_parser(
        "objectives", help="train one VAE per objective and compare them on one holdout bound",
        description="Train a fresh VAE with each objective from the same initialisation and the "
                    "same batches, and score every model with the same holdout IWAE bound "
                    "(the report's objectives job).")
    common_options(p)
    _preset_option(p, objectives, "quick (seconds), standard (default; minutes), thorough "
                                  "(the conv VAE on every image: hours)")
    add_settings(p, objectives.Config, skip=SEED, presets=objectives.PRESETS)
    device_option(p)
    p.set_defaults(func=cmd_objectives)


def cmd_objectives(args) -> int:
    from probnn.analysis.estimator_study import objectives_section

    config = _config(objectives, args)
    out = folder(args.out or "out/objectives")
    r = objectives.run(config, task_inputs(args), progress=not args.quiet)
    return publish(objectives_section(r.table, name=r.name), out, f"{r.name}-objectives.md")
