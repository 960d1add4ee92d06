"""Cost and tightness of AIS against IWAE at the same number of decoder evaluations, measured
in the same run on a trained VAE checkpoint.

For each schedule length T: AIS with C chains costs ``C * (T + (T - 1) * (L + 1))`` decoder
evaluations per image (L leapfrog steps, most with a gradient); IWAE gets exactly as many
samples. Printed per T: evaluations per image, seconds per image for each, evaluations per
second for each, and the mean of (AIS - IWAE) over the images (positive: AIS is tighter,
both being stochastic lower bounds of log p(x)), with its standard error paired over images.

    python benchmarks/ais_speed.py --checkpoint runs/cache-full/vae-d4-*.ckpt [--images 16]
"""
from __future__ import annotations

import argparse
import math
import time

import numpy as np
import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", required=True, nargs="+")
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--steps", type=int, nargs="+", default=[10, 30, 100])
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--seed", type=int, default=309)
    args = ap.parse_args()

    from probnn.datasets import load_mnist
    from probnn.inference.ais import ais_log_likelihood
    from probnn.inference.estimators import iwae_bound
    from probnn.inference.vae import load_vae, vae_name
    x = load_mnist(train=False)[0][:args.images]
    print(f"{args.images} test images, {args.chains} chains, {torch.get_num_threads()} torch threads")
    for path in args.checkpoint:
        model, guide = load_vae(path)
        print(f"\n{vae_name(model)}")
        print(f"{'T':>5} {'evals/img':>10} {'AIS s/img':>10} {'IWAE s/img':>11} "
              f"{'AIS evals/s':>12} {'IWAE evals/s':>13} {'AIS - IWAE (nats)':>20}")
        for t in args.steps:
            t0 = time.perf_counter()
            ais = ais_log_likelihood(model, guide, (x,), steps=t, chains=args.chains,
                                     seed=args.seed)
            t_ais = time.perf_counter() - t0
            k = ais.evaluations
            t0 = time.perf_counter()
            iw = iwae_bound(model, guide, (x,), k, batch_size=max(1, min(100, 20_000 // k)),
                            diagnostics=False).bound
            t_iw = time.perf_counter() - t0
            d = ais.log_likelihood - iw
            se = d.std(ddof=1) / math.sqrt(len(d))
            n = len(x)
            print(f"{t:>5} {k:>10} {t_ais / n:>10.2f} {t_iw / n:>11.2f} {k * n / t_ais:>12.0f} "
                  f"{k * n / t_iw:>13.0f} {np.mean(d):>+13.2f} ± {se:.2f}")


if __name__ == "__main__":
    main()
