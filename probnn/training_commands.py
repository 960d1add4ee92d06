"""The commands that train into ``--out``: ``probnn regression``, ``probnn vae train`` and
``probnn cvae train``, each under the one overwrite rule of
:func:`~probnn.commandline.check_overwrite` (``--resume`` continues, ``--force`` replaces
only once the new training has finished)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

from probnn.tasks import regression, vae_training

from .commandline import (UsageError, aside, aside_hint, check_overwrite, common_options,
                          device_option, discard, exclusive, folder, publish, put_in_place,
                          task_inputs, torch_device)
from .options import add_settings, given

CURES = ("sigma_floor", "beta", "cure")
"""The heteroscedastic model's dip cures among the regression settings."""


def overwrite_options(p, what: str = "the checkpoints") -> None:
    p.add_argument("--resume", action="store_true", help=f"continue from {what} in --out")
    p.add_argument("--force", action="store_true",
                   help=f"train anew over {what} in --out (replaced when the new training "
                        "has finished)")


# ----------------------------------------------------------------------------- regression
def add_regression(sub) -> None:
    p = sub.add_parser("regression", help="fit the xkcd regression models (questions a-b)")
    common_options(p)
    p.add_argument("--model", choices=["homoscedastic", "heteroscedastic", "both"], default="both")
    add_settings(p, regression.Config, skip={"model", "seed"})
    overwrite_options(p)
    device_option(p)
    p.set_defaults(func=cmd_regression)


def _regression_configs(args) -> dict:
    names = ["homoscedastic", "heteroscedastic"] if args.model == "both" else [args.model]
    settings = given(args, regression.Config, skip={"model", "seed"})
    cures = {k: settings.pop(k) for k in CURES if k in settings}
    if names == ["homoscedastic"] and (cures.get("sigma_floor") or cures.get("beta")
                                       or cures.get("cure", "none") != "none"):
        raise UsageError("--sigma-floor, --beta-nll and --cure are cures of the heteroscedastic "
                         "model: use them with --model heteroscedastic or both")
    if cures.get("cure", "none") != "none" and (cures.get("sigma_floor") or cures.get("beta")):
        raise UsageError(f"--cure {cures['cure']} does not combine with --sigma-floor or --beta-nll")
    return {n: regression.Config(model=n, seed=args.seed, **settings,
                                 **(cures if n == "heteroscedastic" else {}))
            for n in names}


def cmd_regression(args) -> int:
    from probnn.analysis.regression import regression_sections, seeds_section
    from probnn.jobs import Job, load
    from probnn.runner import default_workers, run_jobs

    configs = _regression_configs(args)
    out = folder(args.out or "out/regression")
    ckpts = {n: out / f"{n}.ckpt" for n in configs}
    check_overwrite(args, ckpts.values())
    task_inputs(args).xkcd()  # fail fast, with the data error, before starting workers
    moved = {ckpts[n]: aside(ckpts[n]) for n in configs if args.force and ckpts[n].exists()}
    # ~2.5 ms an epoch on one core: only for the progress line's ETA
    jobs = {n: Job(n, "regression", c, estimate=2.5e-3 * c.epochs,
                   artifact=moved.get(ckpts[n], ckpts[n]), resume=args.resume,
                   device=str(torch_device(args.device))) for n, c in configs.items()}
    try:
        run_jobs(jobs, args.data_dir, min(len(jobs), default_workers()), not args.quiet,
                 reuse=False, label="regression",
                 hint=aside_hint(moved) if moved else "run again with --resume to continue")
    except KeyboardInterrupt:
        raise  # the partial trainings stay where the hint says
    except BaseException:
        for new in moved.values():
            discard(new)
        raise
    for n in configs:  # every new training finished: replace the old checkpoints
        if ckpts[n] in moved:
            put_in_place(moved[ckpts[n]], ckpts[n])
            jobs[n].artifact = ckpts[n]
    runs = {n: load(j, jobs, args.data_dir) for n, j in jobs.items()}
    fits = [r.member(args.seed) for r in runs.values()]
    return publish(regression_sections(fits) + [seeds_section(runs)], out, "summary.txt")


# ----------------------------------------------------------------------------- vae
def add_vae_train(sub, conditional: bool) -> None:
    p = sub.add_parser("train", help=f"train a {'conditional ' if conditional else ''}VAE by SVI")
    common_options(p)
    add_settings(p, vae_training.Config, skip={"seed"})
    overwrite_options(p, "the checkpoint")
    device_option(p)
    p.set_defaults(func=cmd_vae_train)


def cmd_vae_train(args) -> int:
    config = vae_training.Config(conditional=args.command == "cvae", seed=args.seed,
                                 **given(args, vae_training.Config, skip={"seed"}))
    out = folder(args.out or "out/vae")
    dev = torch_device(args.device)
    stem = config.name()
    ckpt, history = out / f"{stem}.ckpt", out / f"{stem}-history.csv"
    check_overwrite(args, [ckpt])
    if history.exists() and not history.is_file():
        raise UsageError(f"{history} is in the way: it is a folder, where the history goes")
    inputs = task_inputs(args)
    vae_training.check_data(config, inputs)  # the data and the sizes that depend on it
    out.mkdir(parents=True, exist_ok=True)
    with exclusive(ckpt):
        check_overwrite(args, [ckpt])  # again, now that no other run can be writing it
        return _train_vae(args, config, inputs, dev, ckpt, history)


def _train_vae(args, config, inputs, dev, ckpt: Path, history: Path) -> int:
    from probnn.inference.train import TrainingInterrupted

    target = aside(ckpt) if args.force and ckpt.exists() else ckpt
    try:
        result = vae_training.run(config, inputs, checkpoint=target, resume=args.resume,
                                  progress=not args.quiet, device=dev)
    except TrainingInterrupted as e:
        if target == ckpt:
            raise
        raise KeyboardInterrupt(f"training interrupted in epoch {e.epoch + 1}: "
                                f"{aside_hint({ckpt: target})}") from e
    except BaseException:
        if target != ckpt:
            discard(target)
            print(f"probnn: {ckpt} is unchanged (the failed new training was removed)",
                  file=sys.stderr)
        raise
    new_history = history.with_name(history.name + ".new")
    result.history.to_csv(new_history, index=False)
    if target != ckpt:  # the new training has finished: now it replaces the old one
        put_in_place(target, ckpt)
    os.replace(new_history, history)
    last = result.history.iloc[-1]
    print(f"{config.name()}: {int(last.epoch)} epochs, last-epoch mean train ELBO "
          f"{last.elbo:.2f} nats/image, {last.seconds:.0f} s of training")
    print(f"checkpoint: {ckpt}")
    return 0
