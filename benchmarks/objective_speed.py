"""Cost of a training step with the doubly reparameterised IWAE gradient, against IWAE's
measured in the same run.

One SVI step (loss, backward, Adam) of the coursework's conv VAE (or ``--architecture mlp``)
on a batch of MNIST training images, for ``iwae`` and ``dreg-iwae`` at each K. The two
objectives alternate step by step on the same model, so machine load hits both alike; the
median over ``--steps`` steps after ``--warmup`` untimed ones is reported. Goal: DReG costs
no more than 1.3x IWAE per step (Tucker et al.'s estimator needs no extra network pass here:
its w~^2 weighting is a gradient hook on the latent samples).

    python benchmarks/objective_speed.py [--ks 5 50] [--steps 12] [--batch-size 100]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch


def step_timer(objective: str, k: int, model, guide, x: torch.Tensor):
    from probnn.inference.elbos import make_elbo
    from probnn.inference.train import LossModule
    loss_fn = LossModule(make_elbo(objective, k), model, guide)
    opt = torch.optim.Adam(list(model.parameters()) + list(guide.parameters()), lr=1e-3)

    def step() -> float:
        t0 = time.perf_counter()
        loss = loss_fn(x) / len(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return time.perf_counter() - t0
    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--ks", type=int, nargs="+", default=[5, 50])
    ap.add_argument("--steps", type=int, default=12)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=100)
    ap.add_argument("--architecture", choices=["conv", "mlp"], default="conv")
    ap.add_argument("--latent-dim", type=int, default=4)
    ap.add_argument("--seed", type=int, default=309)
    args = ap.parse_args()

    from probnn.datasets import load_mnist
    from probnn.inference.vae import build_vae
    x = load_mnist(train=True)[0][:args.batch_size]
    torch.manual_seed(args.seed)
    model, guide = build_vae(args.latent_dim, architecture=args.architecture)
    print(f"{args.architecture} VAE d={args.latent_dim}, batch {args.batch_size}, "
          f"{torch.get_num_threads()} torch threads; median of {args.steps} steps")
    print(f"{'K':>4} {'iwae ms/step':>13} {'dreg-iwae ms/step':>18} {'ratio':>6}  goal <= 1.30")
    for k in args.ks:
        timers = {o: step_timer(o, k, model, guide, x) for o in ("iwae", "dreg-iwae")}
        times = {o: [] for o in timers}
        for i in range(args.warmup + args.steps):
            for o, step in timers.items():
                t = step()
                if i >= args.warmup:
                    times[o].append(t)
        med = {o: statistics.median(v) for o, v in times.items()}
        ratio = med["dreg-iwae"] / med["iwae"]
        print(f"{k:>4} {1000 * med['iwae']:>13.1f} {1000 * med['dreg-iwae']:>18.1f} "
              f"{ratio:>6.2f}  {'ok' if ratio <= 1.3 else 'OVER'}")


if __name__ == "__main__":
    main()
