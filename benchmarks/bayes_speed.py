"""Speed of the Bayesian regression's NUTS reference posterior, against references measured in
the same run.

References: (1) a plain-PyTorch gradient of the same log joint (VectorisedMLP on the 31 xkcd
points plus the Gaussian prior; no Pyro), and (2) the potential-energy gradient Pyro's
``jit_compile=True`` NUTS calls at every leapfrog step. Printed: ms per gradient for both, and
for the sampler's measured ms per leapfrog step (wall time of a chain / its gradient
evaluations) the ratio against each reference, i.e. how much of NUTS's time is the model and
how much is Pyro's tree building; the FLOP count of a gradient and the rate it reaches.
Then the task itself (:func:`probnn.tasks.bayes_regression.run`) with the chosen preset(s),
split into NUTS per model, diagnostics, exact LOO refits and each variational guide, with the
whole NUTS + diagnostics + LOO time against the issue's budgets (5 minutes full, 30 s quick).

    OMP_NUM_THREADS=1 python benchmarks/bayes_speed.py [--preset quick|full|both] [--data-dir D]
"""
from __future__ import annotations

import argparse
import time

import torch

BUDGET = {"full": 300.0, "quick": 30.0}


def gradient_flops(sizes, n: int) -> float:
    """Multiply-adds of the forward pass, x2 for FLOPs, x3 for forward + backward."""
    macs = sum(i * o for i, o in zip(sizes[:-1], sizes[1:])) * n
    return 3 * 2 * macs


def time_call(fn, repeats: int = 300) -> float:
    for _ in range(10):
        fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000 * (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--preset", choices=("quick", "full", "both"), default="quick")
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--seed", type=int, default=309)
    ap.add_argument("--parallel", action="store_true",
                    help="also time 2 chains of the homoscedastic model run one after the other "
                         "against the same 2 chains in two spawned processes (same draws)")
    ap.add_argument("--out", default=None,
                    help="also write each preset's report section (figures, tables) to OUT/<preset>")
    args = ap.parse_args()
    torch.set_num_threads(1)

    from pyro.infer.mcmc.util import initialize_model
    from pyro.ops.integrator import potential_grad
    from probnn.models.bayes_regression import BayesianHomoscedasticRegression, WIGGLE_SIZES
    from probnn.tasks import bayes_regression as tb
    from probnn.tasks.inputs import Inputs

    x, y = Inputs(args.data_dir).xkcd()
    model = BayesianHomoscedasticRegression().standardise_to(x, y)
    xs, ys = (x - model.x_loc) / model.x_scale, (y - model.y_loc) / model.y_scale
    w = (0.1 * torch.randn(model.f.num_weights)).requires_grad_()
    ls = torch.tensor(-1.0, requires_grad=True)
    sd = model.f_prior_sd

    def plain():
        f = model.f(xs, w)
        lp = (torch.distributions.Normal(f, ls.exp()).log_prob(ys).sum()
              + torch.distributions.Normal(0.0, sd).log_prob(w).sum()
              + torch.distributions.Normal(-1.0, 1.0).log_prob(ls))
        torch.autograd.grad(lp, (w, ls))
    ms_plain = time_call(plain)
    _, potential_fn, _, _ = initialize_model(model, (x, y), jit_compile=True,
                                             skip_jit_warnings=True)
    z = {"f.w": w.detach(), "log_sigma": ls.detach()}
    ms_pyro = time_call(lambda: potential_grad(potential_fn, z))
    flops = gradient_flops(WIGGLE_SIZES, len(x))
    print(f"gradient of the log joint (homoscedastic, {model.f.num_weights + 1} latents, "
          f"{len(x)} points, 1 thread): plain torch {ms_plain:.3f} ms, Pyro jit potential "
          f"{ms_pyro:.3f} ms ({ms_pyro / ms_plain:.2f}x); ~{flops / 1e3:.0f} kFLOP per gradient "
          f"= {flops / ms_plain / 1e6:.2f} GFLOP/s (one Zen 4 core peaks near 100 GFLOP/s "
          "in fp32: the cost is per-op overhead, not arithmetic)")

    if args.parallel:
        import numpy as np
        from probnn.inference import bayes_nuts as bn
        kw = dict(chains=2, warmup=100, draws=100, max_tree_depth=8, seed=args.seed)
        times, fits = {}, {}
        for parallel in (False, True):
            t0 = time.perf_counter()
            fits[parallel] = bn.nuts_fit("homoscedastic", x, y, parallel=parallel, **kw)
            times[parallel] = time.perf_counter() - t0
        same = all(np.array_equal(fits[False].draws[k], fits[True].draws[k])
                   for k in fits[False].draws)
        print(f"2 chains x 200 iterations, homoscedastic: one after the other "
              f"{times[False]:.1f} s, two spawned processes {times[True]:.1f} s "
              f"({times[False] / times[True]:.2f}x faster in parallel); same draws: {same}")

    for preset in (("quick", "full") if args.preset == "both" else (args.preset,)):
        config = tb.Config.preset(preset, seed=args.seed)
        t0 = time.perf_counter()
        r = tb.run(config, Inputs(args.data_dir))
        wall = time.perf_counter() - t0
        t = r.timings
        print(f"\n{preset} preset: {wall:.1f} s for the whole task")
        for row in t.itertuples():
            print(f"  {row.model:16s} {row.stage:12s} {row.seconds:7.1f} s")
        core = t[t["stage"].isin(("nuts", "diagnostics", "exact-loo"))]["seconds"].sum()
        print(f"  NUTS + diagnostics + exact LOO: {core:.1f} s against the {BUDGET[preset]:.0f} s "
              f"budget ({core / BUDGET[preset]:.2f}x)")
        vi = t[t["stage"].str.startswith("vi-")]["seconds"].sum()
        print(f"  variational fits: {vi:.1f} s; NUTS / VI time {core / max(vi, 1e-9):.2f}x")
        for d in r.diagnostics.itertuples():
            print(f"  {d.model:16s} {d.leapfrogs_per_draw:6.1f} leapfrogs per iteration, "
                  f"{d.ms_per_leapfrog:.3f} ms per leapfrog = {d.ms_per_leapfrog / ms_plain:.2f}x "
                  f"the plain gradient, {d.ms_per_leapfrog / ms_pyro:.2f}x Pyro's potential "
                  f"gradient")
        for l in r.loo:
            print(f"  {l.name:16s} exact refits: {l.refitted} of {l.flagged} flagged points in "
                  f"{l.refit_seconds:.1f} s")
        if args.out:
            from pathlib import Path
            from probnn.analysis.bayes_regression import result_section
            from probnn.analysis.outputs import save
            folder = Path(args.out) / preset
            folder.mkdir(parents=True, exist_ok=True)
            save(result_section(r), folder, "bayes-summary.md")


if __name__ == "__main__":
    main()
