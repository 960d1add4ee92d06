"""Size and write time of the regression ensembles' checkpoints (the report's cached artifacts).

Trains the report's heteroscedastic batch (no cure, sigma floor 0.05, beta-NLL 0.5, faithful,
natural parameters x ``--seeds`` seeds; ``fit_family``) for ``--epochs`` epochs with its dip
record (:class:`~probnn.inference.regression.DipRecorder`), then, with that model and
optimiser, writes two checkpoints as if ``--full-epochs`` epochs (the report's 50,000) were
done:

* ``every epoch`` (the reference, what the ensembles kept before the dip record): ``f`` and
  ``sigma`` of every member, point and epoch, float32 arrays (epochs, members, n, 1);
* ``dip record``: the recorder's state (the loglik curves (epochs, members) in float64, the
  windows around each member's deepest dip, highest and last epoch).

For each: the file size, the time to write it (``save_checkpoint``, median of ``--repeats``),
to read it back and to SHA-256 it (as the job cache does for every artifact), and the ratios.
It also times the recorder's per-epoch update against a training epoch of the same run.

    python benchmarks/regression_checkpoint.py [--epochs 2000] [--full-epochs 50000] [--seeds 8]

Measured (2,000 epochs trained, 50,000 written, 3 repeats, shared 2-core VM): every epoch
502 MB, written in 1.53 s, SHA-256 0.57 s; dip record 21.5 MB (0.043x), written in 0.04 s
(0.024x), SHA-256 0.02 s; the recorder's update 43 us per epoch, 0.011x a training epoch.
The report's full batch wrote its checkpoint 10 times (every 5,000 epochs), growing to the
full size: ~2.8 GB written in all before, ~0.2 GB now.
"""
from __future__ import annotations

import argparse
import hashlib
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.guides.regression import MaximumLikelihoodGuide
from probnn.inference.checkpoint import read_checkpoint, save_checkpoint
from probnn.inference.regression import DipRecorder, builder, fit_family
from probnn.inference.train import one_thread
from probnn.tasks.inputs import Inputs
from probnn.tasks.regression import parse_cure

CURES = ("sigma_floor=0.05", "beta=0.5", "faithful", "natural")


def timed(fn, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2000)
    p.add_argument("--full-epochs", type=int, default=50_000)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    x, y = Inputs().xkcd()
    specs = [builder("heteroscedastic")] + [builder("heteroscedastic", **parse_cure(c))
                                            for c in CURES]
    seeds = tuple(range(COURSEWORK_SEED, COURSEWORK_SEED + args.seeds))
    members, n = len(specs) * len(seeds), len(x)
    with tempfile.TemporaryDirectory() as tmp, one_thread():
        ckpt = Path(tmp) / "family.ckpt"
        t0 = time.perf_counter()
        fits = fit_family(x, y, specs=specs, seeds=seeds, epochs=args.epochs, checkpoint=ckpt,
                          checkpoint_every=args.epochs, progress=False)
        train_s = time.perf_counter() - t0
        per_epoch = 1e3 * train_s / args.epochs
        print(f"trained {len(specs)} cures x {len(seeds)} seeds = {members} networks for "
              f"{args.epochs} epochs in {train_s:.1f} s ({per_epoch:.2f} ms/epoch)"
              f"; its checkpoint: {ckpt.stat().st_size / 1e6:.2f} MB")
        state = read_checkpoint(ckpt)
        extra = state["extra"]
        model, opt_state = fits[0].model, state["optimizer_state"]

        # the dip record as after --full-epochs epochs: the curves grown to that length
        rec = extra["recorder"]
        grown = np.resize(rec["loglik"], (args.full_epochs, members))
        kept = {**extra, "recorder": {**rec, "loglik": grown}}
        # the reference: f and sigma at every epoch, as the records of inference/train.py::fit
        rng = np.random.default_rng(0)
        site = rng.standard_normal((args.full_epochs, members, n, 1)).astype(np.float32)
        every = {**extra, "records": {"f": site, "sigma": np.abs(site) + 0.1}}

        class Opt:  # save_checkpoint calls optimizer.state_dict()
            def state_dict(self):
                return opt_state

        rows = {}
        for label, ex in (("every epoch", every), ("dip record", kept)):
            path = Path(tmp) / f"{label.replace(' ', '-')}.ckpt"

            def write(path=path, ex=ex):
                save_checkpoint(path, model=model, guide=MaximumLikelihoodGuide(),
                                optimizer=Opt(), extra=ex)
            w = timed(write, args.repeats)
            r = timed(lambda: read_checkpoint(path), args.repeats)
            h = timed(lambda: hashlib.sha256(path.read_bytes()).hexdigest(), args.repeats)
            rows[label] = (path.stat().st_size / 1e6, w, r, h)
        ref = rows["every epoch"]
        print(f"\ncheckpoint of {members} networks after {args.full_epochs:,} epochs "
              f"(median of {args.repeats}):")
        print(f"{'':12} {'MB':>9} {'write s':>8} {'read s':>8} {'sha256 s':>9}  "
              "ratios to every epoch")
        for label, (mb, w, r, h) in rows.items():
            print(f"{label:12} {mb:9.1f} {w:8.2f} {r:8.2f} {h:9.2f}  size {mb / ref[0]:.3f}, "
                  f"write {w / ref[1]:.3f}, read {r / ref[2]:.3f}, sha256 {h / ref[3]:.3f}")

        # the recorder's cost per epoch against the training epoch measured above
        f = rng.standard_normal((args.epochs, members, n)).astype(np.float32)
        s = (np.abs(f) + 0.1).astype(np.float32)
        recorder = DipRecorder(y, args.epochs, members)
        t0 = time.perf_counter()
        for e in range(args.epochs):
            recorder.add(e, f[e], s[e])
        upd = (time.perf_counter() - t0) / args.epochs
        print(f"\nrecorder update: {1e6 * upd:.0f} us/epoch, "
              f"{upd / (train_s / args.epochs):.3f} of a training epoch of the run above")


if __name__ == "__main__":
    main()
