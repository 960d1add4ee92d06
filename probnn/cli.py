"""The ``probnn`` command line: a thin layer over the library.

Every command is a few library calls that a notebook can make directly; see README.md.
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path


def _common(p: argparse.ArgumentParser, seed: int = 309) -> None:
    p.add_argument("--seed", type=int, default=seed, help=f"random seed (default {seed})")
    p.add_argument("--data-dir", default=None,
                   help="data folder (default: $PROBNN_DATA, then ~/.cache/probnn/data)")
    p.add_argument("--out", default=None, help="output folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _device(name: str):
    import torch
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("probnn: --device cuda requested but no CUDA device is available")
    return torch.device(name)


# ----------------------------------------------------------------------------- regression
def _regression_worker(kw: dict):
    import torch
    torch.set_num_threads(1)  # one model per core
    from probnn.datasets import load_xkcd
    from probnn.inference.regression import fit_regression
    x, y = load_xkcd(kw.pop("data_dir"))
    return fit_regression(x=x, y=y, **kw)


def cmd_regression(args) -> int:
    from concurrent.futures import ProcessPoolExecutor
    import multiprocessing as mp

    from probnn.analysis import regression as ra
    from probnn.datasets import load_xkcd
    from probnn.inference.train import TrainingInterrupted

    out = Path(args.out or "out/regression")
    out.mkdir(parents=True, exist_ok=True)
    load_xkcd(args.data_dir)  # fail fast, with the data error, before starting workers
    names = ["homoscedastic", "heteroscedastic"] if args.model == "both" else [args.model]
    jobs = [dict(name=n, data_dir=args.data_dir, epochs=args.epochs, seed=args.seed, lr=args.lr,
                 progress=not args.quiet, jit=not args.no_jit, resume=args.resume,
                 checkpoint=out / f"{n}.ckpt", checkpoint_every=args.checkpoint_every,
                 **({"sigma_floor": args.sigma_floor, "beta": args.beta_nll}
                    if n == "heteroscedastic" else {}))
            for n in names]
    if len(jobs) > 1 and (os.cpu_count() or 1) > 1:
        # Ctrl-C reaches the workers too: each saves its checkpoint and returns
        # TrainingInterrupted. The parent ignores it meanwhile (workers inherit that until
        # training installs its handler), so the pool is never torn down half-way.
        old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            with ProcessPoolExecutor(len(jobs), mp_context=mp.get_context("spawn")) as pool:
                futures = [pool.submit(_regression_worker, j) for j in jobs]
                errors = [f.exception() for f in futures]
        finally:
            signal.signal(signal.SIGINT, old)
        if any(isinstance(e, TrainingInterrupted) for e in errors):
            for e in errors:
                print(f"probnn: {e}", file=sys.stderr)
            return 130
        if any(errors):
            raise next(e for e in errors if e)
        fits = [f.result() for f in futures]
    else:
        fits = [_regression_worker(dict(j)) for j in jobs]
    written = ra.write_regression_outputs(fits, out)
    print((out / "summary.txt").read_text())
    print(f"wrote {len(written)} files to {out}")
    return 0


def cmd_bayes_regression(args) -> int:
    from probnn.analysis.bayes_regression import write_bayes_outputs
    from probnn.datasets import load_xkcd
    from probnn.inference import bayes_regression as br

    out = Path(args.out or "out/regression")
    preset = br.QUICK if args.quick else br.FULL
    x, y = load_xkcd(args.data_dir)
    settings = dict(preset)
    settings.update({k: v for k, v in (("epochs", args.epochs), ("draws", args.draws),
                                       ("lr", args.lr), ("map_steps", args.map_steps),
                                       ("num_particles", args.particles)) if v is not None})
    fits, compare = br.run_bayes_regression(
        x, y, seed=args.seed, progress=not args.quiet, prior_scale=args.prior_scale, **settings)
    written = write_bayes_outputs(fits, compare, out, draws=min(args.draws or preset["draws"], 500),
                                  seed=args.seed)
    print((out / "bayes-summary.md").read_text())
    print(f"wrote {len(written)} files to {out}")
    return 0


# ----------------------------------------------------------------------------- vae
def cmd_vae_train(args) -> int:
    from probnn.inference.vae import build_vae, train_vae, vae_name

    out = Path(args.out or "out/vae")
    out.mkdir(parents=True, exist_ok=True)
    conditional = args.command == "cvae"
    stem = vae_name(build_vae(args.latent_dim, args.likelihood, args.architecture, args.binarize,
                              conditional)[0])
    ckpt = out / f"{stem}.ckpt"
    if ckpt.exists() and not args.resume and not args.force:
        raise SystemExit(f"probnn: {ckpt} exists; pass --resume to continue it or --force to retrain")
    if args.force and ckpt.exists():
        ckpt.unlink()
    result = train_vae(args.latent_dim, conditional=conditional, data_dir=args.data_dir,
                       epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed, elbo=args.elbo,
                       num_particles=args.particles, likelihood=args.likelihood,
                       architecture=args.architecture, binarize=args.binarize, checkpoint=ckpt,
                       resume=args.resume, progress=not args.quiet,
                       holdout_split=args.holdout_split, train_images=args.train_images,
                       device=_device(args.device))
    result.history.to_csv(out / f"{stem}-history.csv", index=False)
    last = result.history.iloc[-1]
    print(f"{stem}: {int(last.epoch)} epochs, last-epoch mean train ELBO {last.elbo:.2f} nats/image, "
          f"{last.seconds:.0f} s of training")
    print(f"checkpoint: {ckpt}")
    return 0


def _load_splits(args):
    from probnn.datasets import mnist_splits
    return mnist_splits(args.data_dir, args.holdout_split)


def _load_pair(path, conditional: bool):
    """Load a VAE checkpoint, refusing the other kind with the command that fits it."""
    from probnn.inference.vae import load_vae
    from probnn.models.cvae import ConditionalVAE
    model, guide = load_vae(path)
    if isinstance(model, ConditionalVAE) != conditional:
        kind, command = (("an unconditional", "vae") if conditional else ("a conditional", "cvae"))
        raise SystemExit(f"probnn: {path} holds {kind} VAE; use 'probnn {command} figures' for it")
    return model, guide


def cmd_vae_figures(args) -> int:
    from probnn.analysis.vae import write_vae_outputs
    from probnn.inference.vae import compute_results, history_from_checkpoint, vae_name

    out = Path(args.out or "out/vae")
    model, guide = _load_pair(args.checkpoint, conditional=False)
    (train_x, train_y, _), _ = _load_splits(args)
    results = compute_results(model, guide, train_x, train_y, name=vae_name(model),
                              rank_subset=args.rank_subset, rank_k=args.rank_k, seed=args.seed,
                              progress=not args.quiet,
                              history=history_from_checkpoint(args.checkpoint))
    written = write_vae_outputs(results, train_x, out)
    print((out / f"{results.name}-summary.md").read_text())
    print(f"wrote {len(written)} files to {out}")
    return 0


def cmd_vae_compare(args) -> int:
    from probnn.analysis.vae import write_comparison_outputs
    from probnn.inference.vae import comparison_row, history_from_checkpoint, vae_name

    out = Path(args.out or "out/vae")
    (train_x, _, _), (holdout_x, _, _) = _load_splits(args)
    rows, histories = {}, {}
    for path in args.checkpoints:
        model, guide = _load_pair(path, conditional=False)
        name = vae_name(model)
        if not args.quiet:
            print(f"evaluating {name} ...", file=sys.stderr)
        rows[name] = comparison_row(model, guide, holdout_x, train_x, k=args.k,
                                    large_k=args.large_k or None, large_k_images=args.large_k_images,
                                    holdout_images=args.holdout_images,
                                    train_images=args.train_images, seed=args.seed)
        histories[name] = history_from_checkpoint(path)
    written = write_comparison_outputs(rows, out, histories)
    print((out / "comparison.md").read_text())
    print(f"wrote {len(written)} files to {out}")
    return 0


def cmd_cvae_figures(args) -> int:
    import pandas as pd

    from probnn.analysis.cvae import write_cvae_outputs
    from probnn.inference.cvae import cvae_results
    from probnn.inference.vae import history_from_checkpoint, vae_name

    out = Path(args.out or "out/cvae")
    model, guide = _load_pair(args.checkpoint, conditional=True)
    _, (hx, hy, _) = _load_splits(args)
    res = cvae_results(model, guide, hx, hy, seed=args.seed,
                       eval_index=slice(None, args.holdout_images) if args.holdout_images else None,
                       k=args.k, large_k=args.large_k or None, large_k_images=args.large_k_images,
                       classify_images=args.classify_images, progress=not args.quiet)
    unconditional = {}
    if args.compare and Path(args.compare).is_file():
        table = pd.read_csv(args.compare, index_col=0)
        unconditional = {n: r.dropna().to_dict() for n, r in table.iterrows()}
    written = write_cvae_outputs(vae_name(model), res["styles"], res["digits"], res["transfer"],
                                 res["evaluation"], out, unconditional,
                                 history_from_checkpoint(args.checkpoint))
    print((out / f"{vae_name(model)}-summary.md").read_text())
    print(f"wrote {len(written)} files to {out}")
    return 0


# ----------------------------------------------------------------------------- report
def cmd_report(args) -> int:
    from collections import Counter

    from probnn.report import ReportInterrupted, make_report

    try:
        run = make_report(args.out or "out/report", data_dir=args.data_dir, quick=args.quick,
                          seed=args.seed, cache=args.cache_dir, workers=args.jobs,
                          progress=not args.quiet)
    except ReportInterrupted as e:
        print(f"\nprobnn: {e}", file=sys.stderr)
        return 130
    counts = Counter(run.statuses().values())
    print(f"{len(run.jobs)} jobs (" + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
          + f") in {run.seconds:.0f} s")
    print(f"report: {run.index.resolve()}")
    return 0


# ----------------------------------------------------------------------------- estimators
def cmd_estimators(args) -> int:
    from probnn.analysis.estimator_study import write_estimator_outputs
    from probnn.inference.estimator_study import PRESETS, run_estimator_study
    from probnn.inference.vae import vae_name

    out = Path(args.out or "out/estimators")
    sizes = dict(PRESETS[args.preset])
    sizes.update({k: getattr(args, k) for k in sizes if getattr(args, k, None) is not None})
    if not args.train:
        sizes["train_objectives"] = ()
    (train_x, _, _), (holdout_x, _, _) = _load_splits(args)
    for path in args.checkpoint:
        model, guide = _load_pair(path, conditional=False)
        name = vae_name(model)
        if not args.quiet:
            print(f"estimator study of {name} ...", file=sys.stderr)
        study = run_estimator_study(model, guide, holdout_x, train_x, name=name, seed=args.seed,
                                    progress=not args.quiet, **sizes)
        written = write_estimator_outputs(study, out)
        print((out / f"{name}-estimators.md").read_text())
        print(f"wrote {len(written)} files to {out}")
    return 0


# ----------------------------------------------------------------------------- main
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="probnn", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("regression", help="fit the xkcd regression models (questions a-b)")
    _common(p)
    p.add_argument("--model", choices=["homoscedastic", "heteroscedastic", "both"], default="both")
    p.add_argument("--epochs", type=int, default=50_000)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--checkpoint-every", type=int, default=5000)
    p.add_argument("--resume", action="store_true", help="continue from the checkpoints in --out")
    p.add_argument("--no-jit", action="store_true", help="do not compile the loss")
    p.add_argument("--sigma-floor", type=float, default=0.0,
                   help="heteroscedastic: sigma(x) = floor + softplus(g(x)), a cure for the dips")
    p.add_argument("--beta-nll", type=float, default=0.0,
                   help="heteroscedastic: train with the beta-NLL loss (Seitzer et al. 2022)")
    p.set_defaults(func=cmd_regression)

    p = sub.add_parser("bayes-regression",
                       help="Bayesian versions of the regression models, compared by PSIS-LOO")
    _common(p)
    p.add_argument("--epochs", type=int, default=None, help="SVI steps per model (default: preset)")
    p.add_argument("--draws", type=int, default=None,
                   help="posterior draws for PSIS-LOO (default: preset)")
    p.add_argument("--quick", action="store_true", help="the QUICK preset instead of FULL")
    p.add_argument("--prior-scale", type=float, default=1.0,
                   help="prior sd of the biases, and of the weights times sqrt(fan-in)")
    p.add_argument("--lr", type=float, default=None, help="SVI learning rate (default 0.01)")
    p.add_argument("--map-steps", type=int, default=None,
                   help="MAP steps before SVI, whose weights start the guide (default: preset)")
    p.add_argument("--particles", type=int, default=None,
                   help="vectorised ELBO particles per SVI step (default 4)")
    p.set_defaults(func=cmd_bayes_regression)

    vae = sub.add_parser("vae", help="Bernoulli-image VAE on MNIST (questions c-e)")
    vsub = vae.add_subparsers(dest="vae_command", required=True)
    p = vsub.add_parser("train", help="train a VAE by SVI")
    _train_options(p)

    p = vsub.add_parser("figures", help="figures and tables of questions (c)-(e) for one model")
    _common(p)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--rank-subset", type=int, default=None,
                   help="score a random subset of this many training images (default: all 60,000)")
    p.add_argument("--rank-k", type=int, default=100, help="samples per image for the bound")
    p.set_defaults(func=cmd_vae_figures, holdout_split=None)

    p = vsub.add_parser("compare", help="holdout comparison of trained VAEs (question e)")
    _common(p)
    p.add_argument("--checkpoints", nargs="+", required=True)
    _estimator_options(p)
    p.add_argument("--train-images", type=int, default=10_000)
    p.set_defaults(func=cmd_vae_compare)

    cvae = sub.add_parser("cvae", help="label-conditioned VAE (question f)")
    csub = cvae.add_subparsers(dest="cvae_command", required=True)
    p = csub.add_parser("train", help="train a conditional VAE by SVI")
    _train_options(p)
    p = csub.add_parser("figures", help="figures, holdout evaluation and classifier")
    _common(p)
    p.add_argument("--checkpoint", required=True)
    _estimator_options(p)
    p.add_argument("--classify-images", type=int, default=1000,
                   help="holdout images for log p(x) and the classifier (10 bounds each)")
    p.add_argument("--compare", default=None,
                   help="comparison.csv of 'probnn vae compare', to set the unconditional models beside")
    p.set_defaults(func=cmd_cvae_figures)

    p = sub.add_parser("report", help="the main job: train or reuse every model, write the HTML report")
    _common(p)
    p.add_argument("--quick", action="store_true",
                   help="a first look in a few minutes: few epochs, small subsets")
    p.add_argument("--cache-dir", default=None,
                   help="checkpoints and results to reuse (default ~/.cache/probnn/report)")
    p.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default 2 on a machine with 2+ cores)")
    p.set_defaults(func=cmd_report)
    p = sub.add_parser(
        "estimators", help="ELBO-estimator study: bias and spread, gradient SNR, objectives",
        description="Bias, spread and cost of the ELBO, ELBO-MC and IWAE-K estimators on "
                    "holdout images; gradient signal-to-noise ratio of Trace_ELBO, "
                    "TraceMeanField_ELBO and IWAE-K (Rainforth et al. 2018); and one VAE trained "
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
    p.add_argument("--holdout-images", type=int, default=None,
                   help="holdout images for the bias/spread part (issue 1000, full 6)")
    p.add_argument("--repeats", type=int, default=None,
                   help="independent repeats of every estimate (issue 5, full 3)")
    p.add_argument("--ks", type=int, nargs="+", default=None,
                   help="IWAE sample sizes K (default 1 10 100 1000 5000)")
    p.add_argument("--elbo-mc-k", type=int, default=None, help="samples of ELBO-MC (default 100)")
    p.add_argument("--snr-objectives", nargs="+", default=None, metavar="OBJ",
                   help="objectives for the gradient SNR: trace, meanfield, iwae-K "
                        "(default trace meanfield iwae-1 iwae-5 iwae-50)")
    p.add_argument("--snr-samples", type=int, default=None,
                   help="gradient draws per objective (issue 100, full 10)")
    p.add_argument("--snr-images", type=int, default=None,
                   help="training images in the fixed minibatch (issue 100, full 8)")
    p.add_argument("--train-objectives", nargs="+", default=None, metavar="OBJ",
                   help="objectives to train a VAE with (default trace meanfield iwae-5 iwae-50)")
    p.add_argument("--no-train", dest="train", action="store_false",
                   help="skip training a VAE per objective")
    p.add_argument("--train-images", type=int, default=None,
                   help="first N training images to train on (issue: all 60,000; full 800)")
    p.add_argument("--epochs", type=int, default=None, help="training epochs (issue 5, full 1)")
    p.add_argument("--batch-size", type=int, default=None,
                   help="training batch size (issue 100, full 40)")
    p.add_argument("--eval-k", type=int, default=None,
                   help="IWAE K scoring the trained models (issue 5000, full 200)")
    p.add_argument("--eval-images", type=int, default=None,
                   help="holdout images scoring the trained models (issue 1000, full 20)")
    p.add_argument("--holdout-split", type=float, default=None,
                   help="holdout = this random fraction of the training set (as when training)")
    p.set_defaults(func=cmd_estimators)
    return parser


def _train_options(p) -> None:
    _common(p)
    _vae_model_options(p)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--elbo", choices=["trace", "meanfield", "iwae"], default="trace",
                   help="trace: Trace_ELBO; meanfield: TraceMeanField_ELBO (analytic KL); "
                        "iwae: importance-weighted bound with --particles samples")
    p.add_argument("--particles", type=int, default=1)
    p.add_argument("--holdout-split", type=float, default=None,
                   help="hold out this random fraction of the training set (coursework: 0.1) "
                        "instead of using the official test set")
    p.add_argument("--train-images", type=int, default=None,
                   help="train on the first N training images only (quick runs)")
    p.add_argument("--resume", action="store_true")
    p.add_argument("--force", action="store_true", help="overwrite an existing checkpoint")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.set_defaults(func=cmd_vae_train)


def _estimator_options(p) -> None:
    p.add_argument("--k", type=int, default=100, help="samples per image for ELBO-MC and IWAE")
    p.add_argument("--large-k", type=int, default=1000, help="a tighter IWAE bound; 0 to skip")
    p.add_argument("--large-k-images", type=int, default=1000,
                   help="random holdout images for the --large-k bound")
    p.add_argument("--holdout-images", type=int, default=None, help="default: the whole holdout set")
    p.add_argument("--holdout-split", type=float, default=None,
                   help="holdout = this random fraction of the training set (as when training)")


def _vae_model_options(p) -> None:
    p.add_argument("--latent-dim", type=int, default=4)
    p.add_argument("--likelihood", choices=["bernoulli", "continuous_bernoulli"], default="bernoulli")
    p.add_argument("--architecture", choices=["conv", "mlp"], default="conv",
                   help="conv: the coursework's networks; mlp: the PyTorch example VAE's")
    p.add_argument("--binarize", action="store_true", help="train on dynamically binarised images")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from probnn.datasets import DataFormatError, DataNotFoundError
    from probnn.inference.checkpoint import CheckpointError
    from probnn.inference.train import TrainingInterrupted
    try:
        return args.func(args)
    except (DataNotFoundError, DataFormatError, CheckpointError) as e:
        print(f"probnn: {e}", file=sys.stderr)
        return 2
    except TrainingInterrupted as e:
        print(f"\nprobnn: {e}", file=sys.stderr)
        return 130
    except KeyboardInterrupt:
        print("\nprobnn: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
