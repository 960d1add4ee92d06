"""The ``probnn`` command line: a thin layer over the tasks.

Every command parses its arguments into a task's config (:mod:`probnn.tasks`), runs the task,
builds the question's sections (:mod:`probnn.analysis`), saves them and prints their summary:
the same task and builder the report's job for that question calls. See README.md.
"""
from __future__ import annotations

import os
import signal
import sys

STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP")
                     if hasattr(signal, n))
# Run as the program (not imported by a notebook or the tests): a stop signal during the
# seconds of imports before a command starts (torch, pyro) ends it quietly, as it would a
# shell command, instead of a KeyboardInterrupt traceback from inside some import (SIGINT)
# or a silent death (SIGTERM, SIGHUP); main() takes over once the command runs.
AS_PROGRAM = __name__ == "__main__" or os.path.basename(sys.argv[0]) == "probnn"


def _stopped_early(signum, frame):
    os.write(2, b"\nprobnn: interrupted\n")
    os._exit(130)


if AS_PROGRAM:
    for _sig in STOP_SIGNALS:
        signal.signal(_sig, _stopped_early)

import argparse  # noqa: E402
from contextlib import contextmanager  # noqa: E402
from pathlib import Path  # noqa: E402

from probnn import __version__  # noqa: E402
from probnn.datasets.coursework import COURSEWORK_SEED  # noqa: E402
from probnn.tasks.validation import (AT_LEAST_TWO, CHAINS, CHAINS0, DRAWS,  # noqa: E402
                                     ENSEMBLE_SEEDS, EPOCHS, FRACTION, LATENT, MCMC_CHAINS,
                                     MCMC_DRAWS, NONNEG_FLOAT,
                                     NONNEG_INT,
                                     OBJECTIVE, POSITIVE_FLOAT, POSITIVE_INT, SAMPLES,
                                     SAMPLES0, SEED, SEEDS, STEPS, STEPS0, TREE_DEPTH,
                                     UNIT_INTERVAL, ConfigError, int_between)

# argparse types: the task configs' own rules (probnn.tasks.validation), so a bad option is
# argparse's one-line usage error (exit status 2) before any work starts
COUNT, COUNT0, COUNT2 = POSITIVE_INT.arg(), NONNEG_INT.arg(), AT_LEAST_TWO.arg()
EPOCHS_ARG = EPOCHS.arg()
RATE = POSITIVE_FLOAT.arg()


class UsageError(Exception):
    """Bad input the command finds itself (an --out that is a file, a checkpoint it would
    overwrite, ...): printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser with a short error: the problem and where the options are listed, not
    the whole usage block (subcommands' parsers are of this class too)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _common(p: argparse.ArgumentParser, seed: int = COURSEWORK_SEED) -> None:
    p.add_argument("--seed", type=SEED.arg(), default=seed,
                   help=f"random seed, 0 to 2**32 - 1 (default {seed})")
    p.add_argument("--data-dir", type=_nonempty("--data-dir"), default=None,
                   help="data folder (default: $PROBNN_DATA, then ~/.cache/probnn/data)")
    p.add_argument("--out", type=_nonempty("--out"), default=None, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="on an error, show the full traceback")


def _nonempty(option: str):
    def parse(text: str) -> str:
        if not text.strip():  # '' would silently mean the default folder
            raise argparse.ArgumentTypeError("must name a folder, not be empty")
        return text
    parse.__name__ = option
    return parse


DEVICE_HELP = "where to compute: cpu (default), cuda, cuda:N, mps, or auto (cuda if there is one)"


def _device_name(text: str) -> str:
    """``--device``'s syntax (checked by argparse); whether it exists: :func:`_device`."""
    import re
    if not re.fullmatch(r"cpu|cuda(:\d{1,3})?|mps|auto", text):
        raise argparse.ArgumentTypeError("must be cpu, cuda, cuda:N, mps or auto")
    return text


_device_name.__name__ = "--device"


def _device(name: str):
    """The torch device ``name`` (``auto``: the GPU if there is one, else the CPU), refused
    with one line when this machine has none such."""
    import torch
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    dev = torch.device(name)
    if dev.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise UsageError(f"--device {name} requested but no CUDA device is available")
        if (dev.index or 0) >= count:
            raise UsageError(f"--device {name}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
    if dev.type == "mps" and not (getattr(torch.backends, "mps", None)
                                  and torch.backends.mps.is_available()):
        raise UsageError(f"--device {name} requested but no MPS device is available")
    return dev


# The defaults follow the measured check of benchmarks/precision_check.py (its numbers
# in benchmarks/issue14-results.md): training in bf16 (holdout ELBO/IWAE within the fp32
# seed spread), evaluation in fp32 (bf16 moved per-image bounds by up to 0.087 > 0.05 nats)
TRAIN_PRECISION = "bf16"
EVAL_PRECISION = "fp32"


def _precision_option(p: argparse.ArgumentParser, default: str, what: str) -> None:
    p.add_argument("--precision", choices=["fp32", "bf16"], default=default,
                   help=f"the networks' precision in {what}: fp32, or bf16 (bfloat16 autocast; "
                        f"likelihood sums, KL and optimiser state stay fp32; default {default})")


def _device_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", type=_device_name, default="cpu", help=DEVICE_HELP)


def _folder(path, option: str = "--out") -> Path:
    """The output folder ``path``, checked before any work: refused with one line when it is
    a file, lies under a file, or cannot be created or written. Nothing is created here (the
    command makes the folder when it first writes), so a refused or failed run leaves none."""
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise UsageError(f"{option} {p} is a file, not a folder")
    existing = next(a for a in (p, *p.absolute().parents) if a.exists())
    if not existing.is_dir():
        raise UsageError(f"{option} {p}: cannot create this folder ({existing} is a file)")
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "write into this folder" if existing == p else f"create this folder in {existing}"
        raise UsageError(f"{option} {p}: cannot {what} (permission denied)")
    return p


# ----------------------------------------------------------------------------- overwriting
# One rule for every command that trains into --out: an existing checkpoint is continued
# (--resume), kept (neither: refused), or replaced (--force) only once the new training has
# finished. A --force run trains into <name>.ckpt.new beside the old one and renames it over
# the old one at the end; a failed run removes the .new file, an interrupted one leaves it
# (the message says where) and the old checkpoint is never touched. A later --force starts
# afresh, overwriting any .new file; --resume continues <name>.ckpt, never a .new file.
def _check_overwrite(args, checkpoints) -> None:
    for p in checkpoints:
        if p.exists() and not p.is_file():
            raise UsageError(f"{p} is in the way: it is a folder (or not a regular file), where "
                             "the checkpoint goes; move it, or use another --out")
    if args.force and args.resume:
        raise UsageError("--force and --resume contradict each other: --resume continues the "
                         "existing checkpoint, --force trains a new one to replace it")
    existing = [str(p) for p in checkpoints if p.exists()]
    if existing and not args.resume and not args.force:
        raise UsageError(f"{' and '.join(existing)} exist{'s' if len(existing) == 1 else ''}; "
                         "pass --resume to continue training or --force to train anew (the "
                         "existing checkpoint is replaced only when the new training has finished)")
    if args.resume:
        for p in checkpoints:
            if not p.exists():
                print(f"probnn: no checkpoint at {p} to resume: training from the start",
                      file=sys.stderr)


def _aside(ckpt: Path) -> Path:
    """Where a --force run trains while ``ckpt`` stays as it is."""
    return ckpt.with_name(ckpt.name + ".new")


def _discard(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".json")):
        p.unlink(missing_ok=True)


def _aside_hint(aside: dict) -> str:
    """What to do after Ctrl-C stopped a --force run (the old checkpoints are unchanged)."""
    pairs = ", ".join(f"{new} (for {old})" for old, new in aside.items())
    if len(aside) == 1:
        return (f"the existing checkpoint is unchanged; the new training so far is in {pairs}: "
                "run with --force again to start it over, or move it over the checkpoint and "
                "run with --resume to continue it")
    return (f"the existing checkpoints are unchanged; the new trainings so far are in {pairs}: "
            "run with --force again to start them over, or move one over its checkpoint and "
            "run with --resume to continue it")


def _read(paths, what: str = "checkpoint") -> None:
    """Every input file a command reads is there, checked before any work (a command reading
    several would otherwise find a missing one only after the others' work)."""
    for path in paths:
        if not Path(path).is_file():
            folder = " (it is a folder)" if Path(path).is_dir() else ""
            raise UsageError(f"no {what} at {path}{folder}")


def _each_checkpoint(args, paths, doing: str):
    """The inputs of each checkpoint in ``paths`` in turn, saying ``doing <path> ...``; every
    path is checked before the first is used."""
    _read(paths)
    for path in paths:
        if not args.quiet:
            print(f"{doing} {path} ...", file=sys.stderr)
        yield _inputs(args, path)


def _inputs(args, *checkpoints):
    from probnn.tasks.inputs import Inputs
    device = str(_device(args.device)) if getattr(args, "device", None) else "cpu"
    return Inputs(args.data_dir, tuple(checkpoints), device)


def _given(args, names) -> dict:
    """The options among ``names`` given on the command line (not None), lists as tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k in names
            if (v := getattr(args, k, None)) is not None}


def _publish(sections, out: Path, summary: str) -> int:
    """Save the sections' files into ``out`` and print their summary."""
    from probnn.analysis.outputs import markdown, save
    written = save(sections, out, summary)
    print(markdown(sections))
    print(f"wrote {len(written)} files to {out}")
    return 0


# ----------------------------------------------------------------------------- regression
def cmd_regression(args) -> int:
    from probnn.analysis.regression import regression_sections, seeds_section
    from probnn.jobs import Job, load
    from probnn.runner import default_workers, run_jobs
    from probnn.tasks import regression

    names = ["homoscedastic", "heteroscedastic"] if args.model == "both" else [args.model]
    if names == ["homoscedastic"] and (args.sigma_floor or args.beta_nll or args.cure != "none"):
        raise UsageError("--sigma-floor, --beta-nll and --cure are cures of the heteroscedastic "
                         "model: use them with --model heteroscedastic or both")
    if args.cure != "none" and (args.sigma_floor or args.beta_nll):
        raise UsageError(f"--cure {args.cure} does not combine with --sigma-floor or --beta-nll")
    configs = {}
    for n in names:
        cures = (dict(sigma_floor=args.sigma_floor, beta=args.beta_nll, cure=args.cure)
                 if n == "heteroscedastic" else {})
        configs[n] = regression.Config(model=n, epochs=args.epochs, lr=args.lr,
                                       checkpoint_every=args.checkpoint_every,
                                       jit=not args.no_jit, seed=args.seed, seeds=args.seeds,
                                       **cures)
    out = _folder(args.out or "out/regression")
    ckpts = {n: out / f"{n}.ckpt" for n in names}
    _check_overwrite(args, ckpts.values())
    _inputs(args).xkcd()  # fail fast, with the data error, before starting workers
    aside = {ckpts[n]: _aside(ckpts[n]) for n in names if args.force and ckpts[n].exists()}
    # ~2.5 ms an epoch on one core: only for the progress line's ETA
    jobs = {n: Job(n, "regression", configs[n], estimate=2.5e-3 * args.epochs,
                   artifact=aside.get(ckpts[n], ckpts[n]), resume=args.resume,
                   device=str(_device(args.device))) for n in names}
    try:
        run_jobs(jobs, args.data_dir, min(len(jobs), default_workers()), not args.quiet,
                 reuse=False, label="regression",
                 hint=_aside_hint(aside) if aside else "run again with --resume to continue")
    except KeyboardInterrupt:
        raise  # the partial trainings stay where the hint says
    except BaseException:
        for new in aside.values():
            _discard(new)
        raise
    for n in names:  # every new training finished: replace the old checkpoints
        if ckpts[n] in aside:
            new, old = aside[ckpts[n]], ckpts[n]
            os.replace(new.with_name(new.name + ".json"), old.with_name(old.name + ".json"))
            os.replace(new, old)
            jobs[n].artifact = ckpts[n]
    runs = {n: load(j, jobs, args.data_dir) for n, j in jobs.items()}
    fits = [r.member(args.seed) for r in runs.values()]
    return _publish(regression_sections(fits) + [seeds_section(runs)], out, "summary.txt")


def cmd_bayes_regression(args) -> int:
    from probnn.analysis.bayes_regression import result_section
    from probnn.tasks import bayes_regression

    config = bayes_regression.Config.preset(
        "quick" if args.quick else "full", seed=args.seed, prior_scale=args.prior_scale,
        sampler=args.sampler, parallel_chains=args.parallel_chains,
        **_given(args, ("epochs", "draws", "lr", "map_steps", "chains", "warmup", "nuts_draws",
                        "max_tree_depth", "loo_warmup", "loo_draws", "loo_max_refits",
                        "vi_guides")),
        **({"num_particles": args.particles} if args.particles is not None else {}))
    out = _folder(args.out or "out/regression")
    r = bayes_regression.run(config, _inputs(args), progress=not args.quiet)
    return _publish(result_section(r), out, "bayes-summary.md")


# ----------------------------------------------------------------------------- vae
def cmd_vae_train(args) -> int:
    from probnn.tasks import vae_training

    config = vae_training.Config(
        latent_dim=args.latent_dim, architecture=args.architecture,
        conditional=args.command == "cvae", likelihood=args.likelihood, binarize=args.binarize,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, elbo=args.elbo,
        num_particles=args.particles, train_images=args.train_images,
        holdout_split=args.holdout_split, seed=args.seed, precision=args.precision)
    out = _folder(args.out or "out/vae")
    device = _device(args.device)
    stem = config.name()
    ckpt, history = out / f"{stem}.ckpt", out / f"{stem}-history.csv"
    _check_overwrite(args, [ckpt])
    if history.exists() and not history.is_file():
        raise UsageError(f"{history} is in the way: it is a folder, where the history goes")
    inputs = _inputs(args)
    vae_training.check_data(config, inputs)  # the data and the sizes that depend on it
    out.mkdir(parents=True, exist_ok=True)
    with _exclusive(ckpt):
        _check_overwrite(args, [ckpt])  # again, now that no other run can be writing it
        return _train_vae(args, config, inputs, device, ckpt, history)


@contextmanager
def _exclusive(ckpt: Path):
    """Hold ``ckpt``'s lock (the report cache's, :class:`~probnn.jobs.ArtifactLock`) while a
    command trains into it: a second command training the same checkpoint is refused."""
    from probnn.jobs import ArtifactLock
    lock = ArtifactLock(ckpt)
    if not lock.acquire():
        raise UsageError(f"another probnn run is training {ckpt}; wait for it to finish, "
                         "or use another --out")
    try:
        yield
    finally:
        lock.release()


def _train_vae(args, config, inputs, device, ckpt: Path, history: Path) -> int:
    from probnn.inference.train import TrainingInterrupted
    from probnn.tasks import vae_training

    stem = config.name()
    target = _aside(ckpt) if args.force and ckpt.exists() else ckpt
    try:
        result = vae_training.run(config, inputs, checkpoint=target, resume=args.resume,
                                  progress=not args.quiet, device=device)
    except TrainingInterrupted as e:
        if target == ckpt:
            raise
        raise KeyboardInterrupt(f"training interrupted in epoch {e.epoch + 1}: "
                                f"{_aside_hint({ckpt: target})}") from e
    except BaseException:
        if target != ckpt:
            _discard(target)
            print(f"probnn: {ckpt} is unchanged (the failed new training was removed)",
                  file=sys.stderr)
        raise
    new_history = history.with_name(history.name + ".new")
    result.history.to_csv(new_history, index=False)
    if target != ckpt:  # the new training has finished: now it replaces the old one
        os.replace(target, ckpt)
    os.replace(new_history, history)
    last = result.history.iloc[-1]
    print(f"{stem}: {int(last.epoch)} epochs, last-epoch mean train ELBO {last.elbo:.2f} nats/image, "
          f"{last.seconds:.0f} s of training")
    print(f"checkpoint: {ckpt}")
    return 0


def cmd_vae_figures(args) -> int:
    from probnn.analysis.vae import vae_sections
    from probnn.tasks import vae_figures

    config = vae_figures.Config(rank_subset=args.rank_subset, rank_k=args.rank_k,
                                holdout_split=args.holdout_split, seed=args.seed)
    out = _folder(args.out or "out/vae")
    _read([args.checkpoint])
    inputs = _inputs(args, args.checkpoint)
    results = vae_figures.run(config, inputs, progress=not args.quiet)
    (train_x, _, _), _ = inputs.mnist(config.holdout_split)
    return _publish(vae_sections(results, train_x), out, f"{results.name}-summary.md")


def _holdout_config(args, task):
    return task.Config(**_given(args, ("k", "large_k", "large_k_images", "holdout_images",
                                       "train_images", "classify_images", "precision")),
                       holdout_split=args.holdout_split, seed=args.seed)


def cmd_vae_compare(args) -> int:
    from probnn.analysis.comparison import results_section
    from probnn.tasks import holdout

    config = _holdout_config(args, holdout)
    out = _folder(args.out or "out/vae")
    results = [holdout.run(config, inputs)
               for inputs in _each_checkpoint(args, args.checkpoints, "evaluating")]
    return _publish(results_section(results), out, "comparison.md")


def cmd_cvae_figures(args) -> int:
    from probnn.analysis.cvae import cvae_section
    from probnn.tasks import cvae

    config = _holdout_config(args, cvae)
    out = _folder(args.out or "out/cvae")
    _read([args.checkpoint])
    unconditional = _comparison_rows(args.compare) if args.compare else {}
    r = cvae.run(config, _inputs(args, args.checkpoint), progress=not args.quiet)
    return _publish(cvae_section(r.name, r.results, unconditional, r.history),
                    out, f"{r.name}-summary.md")


def _comparison_rows(path) -> dict:
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


def cmd_bounds(args) -> int:
    from probnn.analysis.bounds import bounds_section
    from probnn.tasks import bounds

    config = bounds.Config(
        **_given(args, ("images", "iwae_ks", "pareto_k_at", "ais_steps", "ais_chains",
                        "local_steps", "elbo_samples", "bdmc_images", "bdmc_steps")),
        holdout_split=args.holdout_split, seed=args.seed)
    out = _folder(args.out or "out/bounds")
    results = [bounds.run(config, inputs)
               for inputs in _each_checkpoint(args, args.checkpoint, "bounds of")]
    return _publish(bounds_section(results), out, "bounds.md")


# ----------------------------------------------------------------------------- report
def cmd_report(args) -> int:
    from collections import Counter

    from probnn.report import default_cache, make_report

    out = _folder(args.out or "out/report")
    cache = _folder(args.cache_dir or default_cache(), "--cache-dir")
    run = make_report(out, data_dir=args.data_dir, quick=args.quick, seed=args.seed,
                      cache=cache, workers=args.jobs, progress=not args.quiet,
                      device=args.device, scheduler=args.scheduler)
    counts = Counter(run.statuses().values())
    print(f"{len(run.jobs)} jobs (" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f") in {run.seconds:.0f} s")
    for line in run.broken or ():
        print(f"report: check failed: {line}", file=sys.stderr)
    print(f"report: {run.index.resolve()}")
    return 0


# ----------------------------------------------------------------------------- estimators
STUDY_SIZES = ("holdout_images", "repeats", "ks", "elbo_mc_k", "snr_objectives", "snr_samples",
               "snr_images", "train_objectives", "train_images", "epochs", "batch_size", "eval_k",
               "eval_images", "seeds")


def cmd_estimators(args) -> int:
    from dataclasses import replace

    from probnn.analysis.estimator_study import estimator_section
    from probnn.tasks import estimators

    config = estimators.Config.preset(args.preset, **_given(args, STUDY_SIZES),
                                      holdout_split=args.holdout_split, seed=args.seed)
    if not args.train:
        config = replace(config, train_objectives=())
    out = _folder(args.out or "out/estimators")
    for inputs in _each_checkpoint(args, args.checkpoint, "estimator study of"):
        study = estimators.run(config, inputs, progress=not args.quiet)
        _publish(estimator_section(study), out, f"{study.name}-estimators.md")
    return 0


def cmd_objectives(args) -> int:
    from probnn.analysis.estimator_study import objectives_section
    from probnn.tasks import objectives

    config = objectives.Config(
        **_given(args, ("objectives", "latent_dim", "architecture", "likelihood",
                        "train_images", "epochs", "batch_size", "eval_k", "eval_images",
                        "seeds")),
        binarize=args.binarize, holdout_split=args.holdout_split, seed=args.seed)
    out = _folder(args.out or "out/objectives")
    r = objectives.run(config, _inputs(args), progress=not args.quiet)
    return _publish(objectives_section(r.table, name=r.name), out, f"{r.name}-objectives.md")


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="probnn", description=__doc__)
    parser.add_argument("--debug", action="store_true",
                        help="on an error, show the full traceback")
    parser.add_argument("--version", action="version", version=f"probnn {__version__}",
                        help="print the installed probnn version and exit")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("regression", help="fit the xkcd regression models (questions a-b)")
    _common(p)
    p.add_argument("--model", choices=["homoscedastic", "heteroscedastic", "both"], default="both")
    p.add_argument("--epochs", type=EPOCHS_ARG, default=50_000)
    p.add_argument("--lr", type=RATE, default=1e-3)
    p.add_argument("--checkpoint-every", type=COUNT, default=5000)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--force", action="store_true",
                   help="train anew over the checkpoints in --out (replaced when the new "
                        "training has finished)")
    p.add_argument("--no-jit", action="store_true", help="do not compile the loss")
    p.add_argument("--sigma-floor", type=NONNEG_FLOAT.arg(), default=0.0,
                   help="heteroscedastic: sigma(x) = floor + softplus(g(x)), a cure for the dips")
    p.add_argument("--beta-nll", type=UNIT_INTERVAL.arg(), default=0.0,
                   help="heteroscedastic: train with the beta-NLL loss (Seitzer et al. 2022), "
                        "beta from 0 (the plain likelihood) to 1")
    _device_option(p)
    p.add_argument("--cure", choices=["none", "faithful", "natural"], default="none",
                   help="heteroscedastic: train with the faithful loss (Stirn et al. 2023: f by "
                        "squared error, sigma by the likelihood with f's gradient stopped) or "
                        "the natural-parameter likelihood (Immer et al. 2023)")
    p.add_argument("--seeds", type=ENSEMBLE_SEEDS.arg(), default=8,
                   help="train from this many seeds at once (--seed, --seed + 1, ...: one "
                        "batched ensemble); the tables give the spread over them")
    p.set_defaults(func=cmd_regression)

    p = sub.add_parser("bayes-regression",
                       help="Bayesian versions of the regression models: NUTS, LOO with exact "
                        "refits, VI against NUTS")
    _common(p)
    p.add_argument("--sampler", choices=("nuts", "vi"), default="nuts",
                   help="nuts (default): NUTS reference posterior, exact LOO refits and the "
                        "guides measured against it; vi: the AutoNormal fits and PSIS-LOO only")
    p.add_argument("--chains", type=MCMC_CHAINS.arg(), default=None,
                   help="NUTS chains per model (default: preset, 2)")
    p.add_argument("--warmup", type=STEPS.arg(), default=None,
                   help="NUTS warmup iterations per chain (default: preset)")
    p.add_argument("--nuts-draws", type=MCMC_DRAWS.arg(), default=None,
                   help="NUTS draws kept per chain (default: preset)")
    p.add_argument("--max-tree-depth", type=TREE_DEPTH.arg(), default=None,
                   help="NUTS tree depth limit (default: preset)")
    p.add_argument("--loo-warmup", type=STEPS.arg(), default=None,
                   help="warmup of each exact-LOO refit (default: preset)")
    p.add_argument("--loo-draws", type=MCMC_DRAWS.arg(), default=None,
                   help="draws of each exact-LOO refit (default: preset)")
    p.add_argument("--loo-max-refits", type=SAMPLES0.arg(), default=None,
                   help="refit at most this many flagged points per model, worst k first; "
                        "0: PSIS only (default: preset)")
    p.add_argument("--vi-guides", nargs="*", choices=("normal", "diagonal", "lowrank", "mvn"),
                   default=None, help="guides fitted by SVI and compared with NUTS "
                                      "(default: normal lowrank)")
    p.add_argument("--parallel-chains", action="store_true",
                   help="run the chains in spawned processes (same draws)")
    p.add_argument("--epochs", type=EPOCHS_ARG, default=None, help="SVI steps per model (default: preset)")
    p.add_argument("--draws", type=DRAWS.arg(), default=None,
                   help="guide draws for PSIS-LOO and ribbons, 2 at least (default: preset)")
    p.add_argument("--quick", action="store_true", help="the QUICK preset instead of FULL")
    p.add_argument("--prior-scale", type=RATE, default=1.0,
                   help="prior sd of the biases, and of the weights times sqrt(fan-in)")
    p.add_argument("--lr", type=RATE, default=None, help="SVI learning rate (default 0.01)")
    p.add_argument("--map-steps", type=STEPS0.arg(), default=None,
                   help="MAP steps before SVI, whose weights start the guide; 0: none "
                        "(default: preset)")
    p.add_argument("--particles", type=SAMPLES.arg(), default=None,
                   help="vectorised ELBO particles per SVI step (default 4)")
    p.set_defaults(func=cmd_bayes_regression)

    vae = sub.add_parser("vae", help="Bernoulli-image VAE on MNIST (questions c-e)")
    vsub = vae.add_subparsers(dest="vae_command", required=True)
    p = vsub.add_parser("train", help="train a VAE by SVI")
    _train_options(p)

    p = vsub.add_parser("figures", help="figures and tables of questions (c)-(e) for one model")
    _common(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--rank-subset", type=COUNT, default=None,
                   help="score a random subset of this many training images (default: all 60,000)")
    p.add_argument("--rank-k", type=SAMPLES.arg(), default=100, help="samples per image for the bound")
    _device_option(p)
    p.set_defaults(func=cmd_vae_figures, holdout_split=None)

    p = vsub.add_parser("compare", help="holdout comparison of trained VAEs (question e)")
    _common(p)
    p.add_argument("--checkpoints", nargs="+", required=True)
    _estimator_options(p)
    p.add_argument("--train-images", type=COUNT, default=10_000,
                   help="random training images for the one-sample ELBO on training data")
    _device_option(p)
    p.set_defaults(func=cmd_vae_compare)

    cvae = sub.add_parser("cvae", help="label-conditioned VAE (question f)")
    csub = cvae.add_subparsers(dest="cvae_command", required=True)
    p = csub.add_parser("train", help="train a conditional VAE by SVI")
    _train_options(p)
    p = csub.add_parser("figures", help="figures, holdout evaluation and classifier")
    _common(p)
    p.add_argument("--checkpoint", required=True)
    _estimator_options(p)
    p.add_argument("--classify-images", type=COUNT, default=1000,
                   help="holdout images for log p(x) and the classifier (10 bounds each)")
    p.add_argument("--compare", default=None,
                   help="comparison.csv of 'probnn vae compare', to set the unconditional models beside")
    _device_option(p)
    p.set_defaults(func=cmd_cvae_figures)

    p = sub.add_parser(
        "bounds", help="how good are the bounds: AIS, BDMC and the inference gaps (e, further)",
        description="For each VAE checkpoint, on the same random holdout images: ELBO, IWAE-K "
                    "with Pareto k, AIS (annealed importance sampling with HMC), the ELBO of a "
                    "per-image optimised Gaussian q* (approximation and amortisation gaps), and "
                    "BDMC on data simulated from the model. Writes bounds.csv, figures and "
                    "bounds.md. Defaults take about 1.5 min per conv model on 2 cores.")
    _common(p)
    p.add_argument("--checkpoint", required=True, action="extend", nargs="+",
                   help="VAE or conditional-VAE checkpoint(s)")
    p.add_argument("--images", type=COUNT, default=None, help="holdout images (default 16)")
    p.add_argument("--iwae-ks", type=SAMPLES.arg(), nargs="+", default=None,
                   help="IWAE sample sizes (default 1 10 100 1000 5000)")
    p.add_argument("--pareto-k-at", type=SAMPLES.arg(), default=None,
                   help="the K whose weights give Pareto k, one of --iwae-ks (default 1000)")
    p.add_argument("--ais-steps", type=STEPS.arg(), default=None,
                   help="AIS intermediate distributions (default 100)")
    p.add_argument("--ais-chains", type=CHAINS.arg(), default=None, help="AIS chains per image (default 8)")
    p.add_argument("--local-steps", type=STEPS.arg(), default=None,
                   help="SVI steps fitting the per-image Gaussian q* (default 300)")
    p.add_argument("--elbo-samples", type=SAMPLES.arg(), default=None,
                   help="samples of each ELBO estimate (default 500)")
    p.add_argument("--bdmc-images", type=CHAINS0.arg(), default=None,
                   help="images simulated from the model for BDMC, 0 to skip (default 8)")
    p.add_argument("--bdmc-steps", type=STEPS.arg(), nargs="+", default=None,
                   help="BDMC schedule lengths (default 10 30 100)")
    p.add_argument("--holdout-split", type=FRACTION.arg(), default=None,
                   help="holdout = this random fraction of the training set (as when training)")
    _device_option(p)
    p.set_defaults(func=cmd_bounds)

    p = sub.add_parser("report", help="the main job: train or reuse every model, write the HTML report")
    _common(p)
    p.add_argument("--quick", action="store_true",
                   help="a first look in a few minutes: few epochs, small subsets")
    p.add_argument("--cache-dir", type=_nonempty("--cache-dir"), default=None,
                   help="checkpoints and results to reuse (default ~/.cache/probnn/report)")
    # each worker holds its own copy of MNIST and a model (about 2 GB while training): more
    # workers than cores only share the cores, and 100 of them would exhaust the memory
    p.add_argument("--jobs", type=int_between(1, max(2, os.cpu_count() or 1)).arg(), default=None,
                   help="worker processes, at most the number of cores (default 2 on a machine "
                        "with 2+ cores); 1: in this process")
    _device_option(p)
    p.add_argument("--scheduler", type=_nonempty("--scheduler"),
                   default=os.environ.get("PROBNN_SCHEDULER") or None, metavar="ADDRESS",
                   help="run the jobs on this running Dask cluster (e.g. tcp://host:8786; default "
                        "$PROBNN_SCHEDULER) instead of worker processes on this machine: every "
                        "worker must read and write --cache-dir at the same path (README: More "
                        "than one machine)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser(
        "estimators", help="ELBO-estimator study: bias and spread, gradient SNR, objectives",
        description="Bias, spread and cost of the ELBO, ELBO-MC and IWAE-K estimators on "
                    "holdout images; gradient signal-to-noise ratio of Trace_ELBO, "
                    "TraceMeanField_ELBO, STL, IWAE-K and DReG-IWAE-K (Rainforth et al. 2018); "
                    "and one VAE trained "
                    "per objective, compared on the same holdout IWAE bound. Sizes come from "
                    "--preset; any size option overrides it. Times per conv checkpoint on 2 "
                    "shared CPU cores: quick ~5 s, full ~2 min, issue (default, the issue's "
                    "sizes) many hours: the bias/spread part alone is 1-2 h (1000 images x 5 "
                    "repeats x ~6,200 samples) and training is 5 epochs of 60,000 images per "
                    "objective (~1.5 h for IWAE-50 alone).")
    _common(p)
    p.add_argument("--checkpoint", required=True, action="extend", nargs="+",
                   help="VAE checkpoint(s); repeat or list several")
    p.add_argument("--preset", choices=["issue", "full", "quick"], default="issue",
                   help="sizes: issue (default; hours), full (~2 min per conv model), quick (~5 s)")
    p.add_argument("--holdout-images", type=COUNT, default=None,
                   help="holdout images for the bias/spread part (issue 1000, full 6)")
    p.add_argument("--repeats", type=DRAWS.arg(), default=None,
                   help="independent repeats of every estimate, 2 at least (issue 5, full 3)")
    p.add_argument("--ks", type=SAMPLES.arg(), nargs="+", default=None,
                   help="IWAE sample sizes K (default 1 10 100 1000 5000)")
    p.add_argument("--elbo-mc-k", type=SAMPLES0.arg(), default=None,
                   help="samples of ELBO-MC, 0 to skip it (default 100)")
    p.add_argument("--snr-objectives", type=OBJECTIVE.arg(), nargs="+", default=None,
                   metavar="OBJ",
                   help="objectives for the gradient SNR: trace, meanfield, stl, iwae, "
                        "dreg-iwae, each with -K for K particles (default: all five at "
                        "K = 1, 5, 50)")
    p.add_argument("--snr-samples", type=DRAWS.arg(), default=None,
                   help="gradient draws per objective, 2 at least (issue 100, full 10)")
    p.add_argument("--snr-images", type=COUNT, default=None,
                   help="training images in the fixed minibatch (issue 100, full 8)")
    p.add_argument("--train-objectives", type=OBJECTIVE.arg(), nargs="+", default=None,
                   metavar="OBJ",
                   help="objectives to train a VAE with (default trace meanfield stl iwae-5 "
                        "dreg-iwae-5 iwae-50 dreg-iwae-50)")
    p.add_argument("--no-train", dest="train", action="store_false",
                   help="skip training a VAE per objective")
    p.add_argument("--train-images", type=COUNT, default=None,
                   help="first N training images to train on (issue: all 60,000; full 800)")
    p.add_argument("--epochs", type=EPOCHS_ARG, default=None, help="training epochs (issue 5, full 1)")
    p.add_argument("--batch-size", type=COUNT, default=None,
                   help="training batch size (issue 100, full 40)")
    p.add_argument("--eval-k", type=SAMPLES.arg(), default=None,
                   help="IWAE K scoring the trained models (issue 5000, full 200)")
    p.add_argument("--eval-images", type=COUNT, default=None,
                   help="holdout images scoring the trained models (issue 1000, full 20)")
    p.add_argument("--seeds", type=SEEDS.arg(), default=None,
                   help="train every objective from this many seeds (seed, seed+1, ...; "
                        "issue and full 3, quick 2)")
    p.add_argument("--holdout-split", type=FRACTION.arg(), default=None,
                   help="holdout = this random fraction of the training set (as when training)")
    _device_option(p)
    p.set_defaults(func=cmd_estimators)

    p = sub.add_parser(
        "objectives", help="train one VAE per objective and compare them on one holdout bound",
        description="Train a fresh VAE with each objective from the same initialisation and the "
                    "same batches, and score every model with the same holdout IWAE bound "
                    "(the report's objectives job: --architecture mlp --latent-dim 20).")
    _common(p)
    p.add_argument("--objectives", type=OBJECTIVE.arg(), nargs="+", default=None,
                   metavar="OBJ",
                   help="trace, meanfield, stl, iwae-K, dreg-iwae-K (default trace meanfield "
                        "stl iwae-5 dreg-iwae-5 iwae-50 dreg-iwae-50)")
    _vae_model_options(p)
    p.add_argument("--train-images", type=COUNT, default=None,
                   help="first N training images to train on (default: all 60,000)")
    p.add_argument("--epochs", type=EPOCHS_ARG, default=None, help="training epochs (default 1)")
    p.add_argument("--batch-size", type=COUNT, default=None, help="batch size (default 100)")
    p.add_argument("--eval-k", type=SAMPLES.arg(), default=None, help="IWAE K of the yardstick (default 5000)")
    p.add_argument("--eval-images", type=COUNT, default=None,
                   help="first N holdout images to score on (default: all)")
    p.add_argument("--seeds", type=SEEDS.arg(), default=None,
                   help="train every objective from this many seeds (default 3)")
    p.add_argument("--holdout-split", type=FRACTION.arg(), default=None,
                   help="holdout = this random fraction of the training set")
    _device_option(p)
    p.set_defaults(func=cmd_objectives)
    return parser


def _train_options(p) -> None:
    _common(p)
    _vae_model_options(p)
    p.add_argument("--epochs", type=EPOCHS_ARG, default=5)
    p.add_argument("--batch-size", type=COUNT, default=100)
    p.add_argument("--lr", type=RATE, default=1e-3)
    p.add_argument("--elbo", choices=["trace", "meanfield", "stl", "iwae", "dreg-iwae"],
                   default="trace",
                   help="trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL); stl: "
                        "the ELBO without the guide's score term (sticking the landing); iwae: "
                        "importance-weighted bound with --particles samples; dreg-iwae: the "
                        "same bound with doubly reparameterised guide gradients")
    p.add_argument("--particles", type=SAMPLES.arg(), default=1)
    p.add_argument("--holdout-split", type=FRACTION.arg(), default=None,
                   help="hold out this random fraction of the training set (coursework: 0.1) "
                        "instead of using the official test set")
    p.add_argument("--train-images", type=COUNT, default=None,
                   help="train on the first N training images only (quick runs)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    p.add_argument("--force", action="store_true",
                   help="train anew over an existing checkpoint (replaced when the new training "
                        "has finished)")
    _device_option(p)
    _precision_option(p, TRAIN_PRECISION, "training")
    p.set_defaults(func=cmd_vae_train)


def _estimator_options(p) -> None:
    _precision_option(p, EVAL_PRECISION, "the estimators")
    p.add_argument("--k", type=SAMPLES.arg(), default=100, help="samples per image for ELBO-MC and IWAE")
    p.add_argument("--large-k", type=SAMPLES0.arg(), default=1000, help="a tighter IWAE bound; 0 to skip")
    p.add_argument("--large-k-images", type=COUNT, default=1000,
                   help="random holdout images for the --large-k bound")
    p.add_argument("--holdout-images", type=COUNT, default=None, help="default: the whole holdout set")
    p.add_argument("--holdout-split", type=FRACTION.arg(), default=None,
                   help="holdout = this random fraction of the training set (as when training)")


def _vae_model_options(p) -> None:
    p.add_argument("--latent-dim", type=LATENT.arg(), default=4)
    p.add_argument("--likelihood", choices=["bernoulli", "continuous_bernoulli"], default="bernoulli")
    p.add_argument("--architecture", choices=["conv", "mlp"], default="conv",
                   help="conv: the coursework's networks; mlp: the PyTorch example VAE's")
    p.add_argument("--binarize", action="store_true", help="train on dynamically binarised images")


def _stop_as_interrupt():
    """While a command runs, SIGINT (Ctrl-C), SIGTERM (``kill``) and SIGHUP (a closed terminal)
    all stop it as Ctrl-C does: a training saves its checkpoint (:func:`probnn.inference.train.fit`
    handles them itself while it trains), the report's workers stop and save, and the command
    exits 130 with one line instead of dying without a word."""
    from probnn.inference.train import handling
    return handling(STOP_SIGNALS, signal.default_int_handler)


def _out_of_memory(e: BaseException) -> bool:
    """torch reports a failed allocation as a RuntimeError ("DefaultCPUAllocator: can't
    allocate memory", "CUDA out of memory"); Python as MemoryError."""
    text = str(e)
    return isinstance(e, MemoryError) or "can't allocate memory" in text or "out of memory" in text


def main(argv: list[str] | None = None) -> int:
    """Run one command; return its exit status: 0 done, 2 bad input (argparse's usage errors
    exit 2 themselves), 1 an internal error, 130 interrupted. Every error is one line on
    stderr; ``--debug`` shows the traceback instead."""
    args = build_parser().parse_args(argv)
    debug = getattr(args, "debug", False)
    from probnn.datasets import DataFormatError, DataNotFoundError
    from probnn.inference.checkpoint import CheckpointError
    from probnn.runner import JobBusy, SchedulerUnreachable
    try:
        with _stop_as_interrupt():
            if getattr(args, "device", None) and not getattr(args, "scheduler", None):
                # a device this machine lacks: refused before any work (on a cluster of one's
                # own, the workers' devices count, not this machine's)
                _device(args.device)
            return args.func(args)
    except KeyboardInterrupt as e:  # TrainingInterrupted and the runner's Interrupted say how to go on
        print(f"\nprobnn: {str(e) or 'interrupted'}", file=sys.stderr)
        return 130
    except (DataNotFoundError, DataFormatError, CheckpointError, ConfigError, UsageError,
            JobBusy, SchedulerUnreachable) as e:
        if debug:
            raise
        print(f"probnn: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # a training that diverged says where
        if debug:
            raise
        print(f"probnn: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # a full disk, a folder that became unwritable: the OS's words
        if debug:
            raise
        # os.replace(tmp, target) fails naming both: the target is the file the user knows
        where = f": {e.filename2 or e.filename}" if (e.filename2 or e.filename) else ""
        print(f"probnn: {e.strerror or e}{where}", file=sys.stderr)
        return 1
    except Exception as e:  # a safety net: bad input is caught above, with its own message
        if debug:
            raise
        if _out_of_memory(e):
            print("probnn: not enough memory for this run (" + " ".join(str(e).split())[:160]
                  + "): use smaller sizes (e.g. --batch-size, --particles, --k)", file=sys.stderr)
            return 1
        first = next(iter(str(e).splitlines()), "")
        print(f"probnn: internal error: {type(e).__name__}: {first} "
              "(run with --debug for the traceback)", file=sys.stderr)
        return 1
    finally:
        if AS_PROGRAM:  # done: a signal during the interpreter's shutdown changes nothing
            for sig in STOP_SIGNALS:
                signal.signal(sig, signal.SIG_IGN)


if __name__ == "__main__":
    sys.exit(main())
