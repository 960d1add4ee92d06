"""Peak resident memory of the per-image estimators against the number of images and K.

Each measurement runs in a fresh Python process (peak RSS, ``ru_maxrss``, only grows within a
process), on the MNIST training images and an untrained VAE of the given architecture
(memory does not depend on the weights):

- ``base``: the process after importing probnn, reading MNIST and building the model;
- ``iwae``: :func:`probnn.inference.estimators.iwae_bound` with diagnostics (the log-weights
  kept) over the first N images at K;
- ``figures``: :func:`probnn.inference.vae.compute_results`, the ``vae figures`` task's
  computation, ranking a random N of the training images at K (``--rank-subset N``;
  ``vae figures``' default ranks all 60,000).

Printed per row: the peak, and the peak above ``base`` in the same row's own process. Memory
independent of the data size means the ``above base`` column stays flat as N grows (at fixed
K) apart from the kept per-image results (N x K log-weights, 4 bytes each).

    python benchmarks/memory.py [--images 1000 4000 16000] [--ks 100] [--architecture conv]
        [--what iwae figures] [--threads 1]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, sys
import torch
args = json.loads(sys.argv[1])
torch.set_num_threads(args["threads"])
from probnn.datasets import mnist_splits
from probnn.inference.vae import build_vae
(train_x, train_y, _), _ = mnist_splits(None, None)
model, guide = build_vae(4, architecture=args["architecture"])
from probnn.inference.estimators import iwae_bound
from probnn.inference.vae import compute_results
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
if args["what"] == "iwae":
    iwae_bound(model, guide, (train_x[: args["images"]],), args["k"], diagnostics=True,
               pareto=False)
else:  # the figures' images are fixed training images: all are passed, N of them ranked
    compute_results(model, guide, train_x, train_y, rank_subset=args["images"],
                    rank_k=args["k"], progress=False)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"base_mb": base / 1024, "peak_mb": peak / 1024}))
"""


def measure(what: str, images: int, k: int, architecture: str, threads: int) -> dict:
    arg = json.dumps({"what": what, "images": images, "k": k, "architecture": architecture,
                      "threads": threads})
    out = subprocess.run([sys.executable, "-c", CHILD, arg], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, nargs="+", default=[1000, 4000, 16000])
    p.add_argument("--ks", type=int, nargs="+", default=[100])
    p.add_argument("--architecture", default="conv", choices=["conv", "mlp"])
    p.add_argument("--what", nargs="+", default=["iwae", "figures"], choices=["iwae", "figures"])
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    print(f"{'what':8} {'images':>7} {'K':>5} {'peak MB':>9} {'above base MB':>14} "
          f"{'kept log-weights MB':>20}")
    for what in a.what:
        for k in a.ks:
            for n in a.images:
                r = measure(what, n, k, a.architecture, a.threads)
                kept = n * k * 4 / 2**20
                print(f"{what:8} {n:7d} {k:5d} {r['peak_mb']:9.0f} "
                      f"{r['peak_mb'] - r['base_mb']:14.0f} {kept:20.1f}", flush=True)


if __name__ == "__main__":
    main()
