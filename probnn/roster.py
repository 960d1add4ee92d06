"""The report's roster: every job, with its task, its full and quick configs, its parents and
how long it takes. The one place where the report's settings live; the questions that read
the jobs' results are :data:`probnn.questions.QUESTIONS`.

Full mode is the coursework's settings, with evaluation sizes chosen to keep the whole report
within a laptop's lunch break (``benchmarks/report_speed.py`` times it; ``probnn vae compare``,
``probnn cvae figures`` and ``probnn estimators`` run the same tasks at any size); quick mode
is a first look.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from probnn.tasks import (bayes_regression, bounds, cvae, estimators, holdout, objectives,
                          regression,
                          vae_figures, vae_training)

from .jobs import Job


@dataclass(frozen=True)
class Entry:
    """One job of the report: ``task`` (a module of :mod:`probnn.tasks`) run with ``full`` or
    ``quick`` (None: not in that report), reading the checkpoints of ``needs``.
    ``estimate``: seconds (full, quick) in
    one worker (one torch thread) on an idle 2-core machine with the other worker busy, for
    ordering the jobs and the ETA (measured on full and quick reports; CHANGELOG.md)."""
    name: str
    task: Any
    full: Any
    quick: Any
    estimate: tuple[float, float]
    needs: tuple[str, ...] = ()
    seed_offset: int = 0
    """The job's seed is the report's plus this (a study split into one job per seed)."""

    def job(self, quick: bool, seed: int) -> Job:
        config = replace(self.quick if quick else self.full,
                         seed=(seed + self.seed_offset) % 2**32)
        return Job(self.name, self.task.__name__.rsplit(".", 1)[-1], config,
                   self.estimate[quick], self.needs)


def _regression(name: str, estimate, **cure) -> Entry:
    """A maximum-likelihood regression job: an ensemble of 8 seeds (the report's seed and the
    next 7) trained at once, at 1.0-1.4x the cost of one network per epoch (CPU,
    benchmarks/regression_speed.py); with ``cures``, those cures too, in the same batch."""
    model = "heteroscedastic" if cure else name
    return Entry(f"regression-{name}", regression,
                 regression.Config(model=model, epochs=50_000, checkpoint_every=5000, seeds=8,
                                   **cure),
                 regression.Config(model=model, epochs=3000, checkpoint_every=1000, seeds=8,
                                   **cure),
                 estimate)


def _vae(name: str, estimate, **model) -> Entry:
    mlp = model.get("architecture") == "mlp"
    batch = 128 if mlp else 100
    return Entry(name, vae_training,
                 vae_training.Config(**model, epochs=10 if mlp else 5, batch_size=batch),
                 vae_training.Config(**model, epochs=1, batch_size=batch, train_images=6000),
                 estimate)


def _estimator_sizes(quick: bool) -> estimators.Config:
    """The study's bias/spread and gradient-SNR sizes; no training (a job of its own)."""
    return estimators.Config.preset("quick" if quick else "standard", train_objectives=())


COMPARE = (holdout.Config(holdout_images=2000, k=100, large_k=1000, large_k_images=200,
                          train_images=2000),
           holdout.Config(holdout_images=300, k=50, large_k=200, large_k_images=50,
                          train_images=300))
"""Question (e)'s (full, quick) configs; the bounds jobs draw their images from its subset."""


def _within(config: holdout.Config) -> tuple[int, int]:
    return config.holdout_images, config.large_k_images


_FULL_SEEDS = objectives.Config.preset("standard").seeds
_QUICK_SEEDS = objectives.Config.preset("quick").seeds

ROSTER: tuple[Entry, ...] = (
    # the heteroscedastic model and its four cures, 8 seeds each, as one batch of 40 networks
    # (cheaper than five separate 8-seed jobs: CHANGELOG.md)
    _regression("homoscedastic", (65, 7)),
    _regression("heteroscedastic", (125, 14),
                cures=("sigma_floor=0.05", "beta=0.5", "faithful", "natural")),
    # NUTS, exact refits and two SVI fits per model (benchmarks/bayes_speed.py), one job per
    # model so that the two run side by side; the report merges them (bayes_regression.merge)
    *(Entry(f"bayes-{name}", bayes_regression,
            bayes_regression.Config.preset("full", models=(name,)),
            bayes_regression.Config.preset("quick", models=(name,)), estimate)
      for name, estimate in (("homoscedastic", (115, 10)), ("heteroscedastic", (170, 10)))),
    _vae("vae-d4", (270, 14), latent_dim=4),
    _vae("vae-d20", (260, 15), latent_dim=20),
    _vae("vae-mlp-d20", (55, 3), latent_dim=20, architecture="mlp"),
    _vae("cvae-d4", (265, 15), latent_dim=4, conditional=True),
    Entry("figures-vae-d4", vae_figures, vae_figures.Config(rank_subset=5000, rank_k=100),
          vae_figures.Config(rank_subset=500, rank_k=50), (30, 8), ("vae-d4",)),
    *(Entry(f"compare-{name}", holdout, *COMPARE, estimate, (name,))
      for name, estimate in (("vae-d4", (25, 8)), ("vae-d20", (25, 8)), ("vae-mlp-d20", (7, 2)))),
    Entry("evaluate-cvae-d4", cvae,
          cvae.Config(holdout_images=2000, k=100, large_k=1000, large_k_images=200,
                      classify_images=500),
          cvae.Config(holdout_images=300, k=50, large_k=200, large_k_images=50,
                      classify_images=100), (55, 12), ("cvae-d4",)),
    # Question (e), further: AIS, BDMC and the gaps on the same 16 holdout images per model
    # drawn from question (e)'s large-K subset (``within``), so both sections pair up
    *(Entry(f"bounds-{name}", bounds, bounds.Config(within=_within(COMPARE[0])),
            bounds.Config(images=4, iwae_ks=(1, 10, 100), pareto_k_at=100, ais_steps=10,
                          ais_chains=2, local_steps=20, elbo_samples=20, bdmc_images=2,
                          bdmc_steps=(3, 10), within=_within(COMPARE[1])),
            estimate, (name,))
      for name, estimate in (("vae-d4", (85, 4)), ("vae-d20", (85, 4)), ("vae-mlp-d20", (16, 2)),
                             ("cvae-d4", (85, 4)))),
    *(Entry(f"estimators-{name}", estimators, _estimator_sizes(False), _estimator_sizes(True),
            (60, 8), (name,)) for name in ("vae-d4", "vae-d20")),
    # one job per seed (seed, seed + 1, ...: as the study's own seeds), merged by the report
    # (objectives.merge); the quick report has fewer seeds (None: not in it)
    *(Entry(f"objectives-vae-mlp-d20-seed{j}", objectives,
            objectives.Config.preset("standard", seeds=1),
            objectives.Config.preset("quick", seeds=1) if j < _QUICK_SEEDS else None,
            (85, 5), seed_offset=j) for j in range(_FULL_SEEDS)),
)
