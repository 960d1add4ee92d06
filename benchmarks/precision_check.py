"""Does bf16 mixed precision change the VAE's numbers? The check behind the ``--precision``
defaults (issue 14).

1. Training: the conv VAE (d=4 and d=20) trained from ``--seeds`` seeds in fp32 and in bf16
   (:mod:`probnn.inference.precision`: the networks under bfloat16 autocast; likelihood
   sums, KL, parameters and Adam state fp32), then every model scored the same way, in
   fp32: the one-sample ELBO and IWAE K=``--k`` on the first ``--holdout-images`` holdout
   images (the same images for all; the same evaluation seed). Printed per model and as
   mean and spread (sd, min-max) over seeds, with the MC standard error of each number
   (sd over images / sqrt(images)).
   Rule (issue 14): bf16 becomes the training default only if its mean sits within the fp32
   seed spread (the min-max of the fp32 seeds) for both d and both numbers.
2. Evaluation: the per-image IWAE K=``--k`` bound of one checkpoint (the fp32 model of the
   first seed, d=``--eval-d``) evaluated in fp32 and in bf16 with the same seed (the same
   random draws), max and mean |difference| per image; for scale, the same between two
   fp32 evaluations with different seeds (the MC noise of one bound).
   Rule: bf16 becomes the evaluation default only if the per-image bounds agree within
   0.05 nats (max |difference|).

Results go to ``--out`` as JSON lines as they come (an interrupted run keeps what it had).
The numbers of the report (issue 14) came from::

    OMP_NUM_THREADS=1 python benchmarks/precision_check.py --train-images 30000 --epochs 1 \
        --seeds 3 --holdout-images 1000 --k 100

Full size (the coursework's training): ``--train-images 60000 --epochs 5 --holdout-images 10000``.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path

import numpy as np
import torch


def score(model, guide, hx, k: int, seed: int, precision: str = "fp32") -> dict:
    import pyro
    from probnn.inference.estimators import elbo_mc, iwae_bound
    pyro.set_rng_seed(seed)
    elbo = elbo_mc(model, guide, (hx,), 1, precision=precision).elbo
    iwae = iwae_bound(model, guide, (hx,), k, diagnostics=False, precision=precision).bound
    n = len(hx)
    return {"elbo": float(elbo.mean()), "elbo_se": float(elbo.std() / math.sqrt(n)),
            "iwae": float(iwae.mean()), "iwae_se": float(iwae.std() / math.sqrt(n)),
            "per_image_iwae": iwae.tolist()}


def summary(rows: list[dict]) -> None:
    print("\nsummary (evaluated in fp32; mean over seeds, sd, [min, max]):")
    verdict = []
    for d in sorted({r["d"] for r in rows}):
        for what in ("elbo", "iwae"):
            vals = {p: [r[what] for r in rows if r["d"] == d and r["precision"] == p]
                    for p in ("fp32", "bf16")}
            if not vals["fp32"] or not vals["bf16"]:
                continue
            f, b = np.array(vals["fp32"]), np.array(vals["bf16"])
            inside = f.min() <= b.mean() <= f.max()
            verdict.append(inside)
            print(f"  d={d:2d} {what:4s}  fp32 {f.mean():9.3f} sd {f.std(ddof=1) if len(f) > 1 else 0:.3f} "
                  f"[{f.min():.3f}, {f.max():.3f}]   bf16 {b.mean():9.3f} sd "
                  f"{b.std(ddof=1) if len(b) > 1 else 0:.3f} [{b.min():.3f}, {b.max():.3f}]   "
                  f"bf16 mean within the fp32 seed range: {'yes' if inside else 'NO'}")
    if verdict:
        print(f"training rule: bf16 default {'allowed' if all(verdict) else 'NOT allowed'} "
              f"({sum(verdict)}/{len(verdict)} comparisons inside the fp32 spread)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dims", type=int, nargs="+", default=[4, 20])
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--first-seed", type=int, default=309)
    p.add_argument("--train-images", type=int, default=30_000)
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--holdout-images", type=int, default=1000)
    p.add_argument("--k", type=int, default=100)
    p.add_argument("--eval-d", type=int, default=20)
    p.add_argument("--eval-seed", type=int, default=0)
    p.add_argument("--out", default="precision_check.jsonl")
    p.add_argument("--skip-training", action="store_true")
    args = p.parse_args()

    from probnn.datasets import mnist_splits
    from probnn.inference.vae import train_vae
    (tx, _, _), (hx, _, _) = mnist_splits()
    tx, hx = tx[:args.train_images], hx[:args.holdout_images]
    out = Path(args.out)
    out.write_text("")
    rows, keep = [], {}
    print(f"{torch.get_num_threads()} threads; training {args.epochs} epoch(s) on {len(tx)} "
          f"images, batch 100; scoring on {len(hx)} holdout images, K={args.k}")
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for d in args.dims:
            for precision in ("fp32", "bf16"):
                t = time.perf_counter()
                fit = train_vae(d, x=tx, epochs=args.epochs, seed=seed, precision=precision,
                                progress=False)
                secs = time.perf_counter() - t
                s = score(fit.model, fit.guide, hx, args.k, args.eval_seed)
                row = {"d": d, "seed": seed, "precision": precision, "train_seconds": secs,
                       "train_elbo": float(fit.history.elbo.iloc[-1]),
                       **{k: v for k, v in s.items() if k != "per_image_iwae"}}
                rows.append(row)
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(f"d={d:2d} seed {seed} {precision}: train {secs:6.1f} s, holdout ELBO "
                      f"{row['elbo']:.3f} ± {row['elbo_se']:.3f}, IWAE-{args.k} {row['iwae']:.3f} "
                      f"± {row['iwae_se']:.3f}", flush=True)
                if d == args.eval_d and precision == "fp32" and seed == args.first_seed:
                    keep["model"] = (fit.model, fit.guide)
    summary(rows)

    if "model" in keep:
        model, guide = keep["model"]
        a = np.array(score(model, guide, hx, args.k, args.eval_seed, "fp32")["per_image_iwae"])
        b = np.array(score(model, guide, hx, args.k, args.eval_seed, "bf16")["per_image_iwae"])
        c = np.array(score(model, guide, hx, args.k, args.eval_seed + 1, "fp32")["per_image_iwae"])
        diff, noise = np.abs(a - b), np.abs(a - c)
        row = {"eval_check": True, "d": args.eval_d, "seed": args.first_seed,
               "images": len(hx), "k": args.k, "max_abs_diff": float(diff.max()),
               "mean_abs_diff": float(diff.mean()), "mean_diff": float((b - a).mean()),
               "mc_max_abs_diff": float(noise.max()), "mc_mean_abs_diff": float(noise.mean())}
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        print(f"\nper-image IWAE-{args.k}, d={args.eval_d} (fp32-trained, seed {args.first_seed}), "
              f"{len(hx)} images, same draws: bf16 - fp32 max |diff| {diff.max():.4f}, mean "
              f"|diff| {diff.mean():.4f}, mean diff {(b - a).mean():+.4f} nats; two fp32 seeds "
              f"(MC noise) max {noise.max():.3f}, mean {noise.mean():.3f}")
        print(f"evaluation rule (max |diff| <= 0.05 nats): bf16 default "
              f"{'allowed' if diff.max() <= 0.05 else 'NOT allowed'}")


if __name__ == "__main__":
    import probnn  # noqa: F401
    main()
