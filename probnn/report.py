"""The main job: train (or reuse) every model of the coursework and write the HTML report.

Notebook use::

    from probnn.report import make_report
    run = make_report("out/report", quick=True)     # -> run.index: out/report/index.html

The report is a graph of jobs (:mod:`probnn.roster`: every job's task, configs and parents),
cached by content (:mod:`probnn.jobs`) and run on Dask workers (:mod:`probnn.runner`).
Its sections are then built from the jobs' results by the same builders the ``probnn``
subcommands use (:mod:`probnn.analysis`) and rendered in memory (:mod:`probnn.analysis.html`).
"""
from __future__ import annotations

import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from probnn.analysis.html import render_html
from probnn.analysis.invariants import check_report
from probnn.analysis.outputs import Section
from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference.serialization import write_atomically

from .jobs import Job, load, place, read_record
from .questions import QUESTIONS, Found
from .roster import ROSTER
from .runner import default_workers, run_jobs

TITLE = "probnn: Probabilistic Neural Networks, every answer"
QUICK_WARNING = ("Quick mode: every model is trained for a few epochs on a subset and evaluated "
                 "on small subsets. This checks the pipeline and shows what the report looks "
                 "like; its numbers are not the coursework's answers (run without --quick for "
                 "those).")


def build_jobs(quick: bool = False, seed: int = COURSEWORK_SEED) -> dict[str, Job]:
    """The report's jobs, by name, from the roster (not yet placed in a cache)."""
    return {e.name: e.job(quick, seed) for e in ROSTER
            if (e.quick if quick else e.full) is not None}


def sections(jobs: dict[str, Job], results: dict[str, Any], train_x
             ) -> list[tuple[str, list[Section]]]:
    """Every section of the report, built from the jobs' results (job name -> result) by
    each question of :data:`~probnn.questions.QUESTIONS`, as ``(folder, sections)`` pairs;
    ``train_x``: the training images figure (d) indexes."""
    found = Found(jobs, results, train_x)
    return [(q.folder, q.build(found)) for q in QUESTIONS]


def invariant_failures(jobs: dict[str, Job], results: dict[str, Any], groups) -> list[str]:
    """:func:`~probnn.analysis.invariants.check_report` on the report's sections and the
    results of its question (e) and bounds jobs: one line per violated invariant."""
    found = Found(jobs, results)
    return check_report([s for _, ss in groups for s in ss], found.of("holdout"),
                        found.of("bounds"))


@dataclass
class ReportRun:
    """What :func:`make_report` returns: the report's ``index.html``, its jobs by name, the
    run's wall time in seconds, whether it was quick, its seed and its cache folder."""
    index: Path
    jobs: dict[str, Job]
    seconds: float
    quick: bool
    seed: int
    cache: Path
    broken: list = None
    """The invariant checks that failed (:func:`invariant_failures`); empty when all hold."""

    def statuses(self) -> dict[str, str]:
        return {n: j.status for n, j in self.jobs.items()}

    def provenance(self):
        """One row per job: what this run did with it (status, seconds) and when and how fast
        its artifact was made (which a cached job would otherwise not show)."""
        import pandas as pd
        rows = []
        for n, j in self.jobs.items():
            made = read_record(j)
            rows.append({"job": n, "status": j.status, "seconds": round(j.seconds, 1),
                         "made": made.get("finished", ""), "made_in_seconds": made.get("seconds"),
                         "artifact": j.artifact.name,
                         "settings": ", ".join(f"{k}={v}" for k, v in j.settings().items())})
        return pd.DataFrame(rows).set_index("job")


def precision_used(jobs: dict[str, Job]) -> str:
    """The VAE networks' precision in training and in evaluation, from the jobs' configs (the
    ``precision`` field of :mod:`probnn.tasks.vae_training`, ``holdout`` and ``cvae``), e.g.
    ``"VAE training fp32, evaluation fp32"``; the likelihood sums, KL and optimiser state are
    fp32 either way (:mod:`probnn.inference.precision`)."""
    def used(kinds):
        found = sorted({getattr(j.config, "precision") for j in jobs.values()
                        if j.task in kinds and hasattr(j.config, "precision")})
        return "/".join(found) or "fp32"
    return (f"VAE training {used({'vae_training'})}, evaluation {used({'holdout', 'cvae'})} "
            "(sums, KL and optimiser state fp32)")


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/probnn/report`` (``~/.cache/probnn/report``): shared by every report."""
    from probnn.datasets import cache_dir
    return cache_dir().parent / "report"


def place_on(jobs: dict[str, Job], device: str) -> None:
    """Set each job's device: ``device`` for the jobs on MNIST, the CPU for those on the 31
    xkcd points. A network of a few hundred weights on 31 points is bound by the time to launch
    each kernel on a GPU, not by arithmetic, so its thousands of small steps run faster on
    the CPU (CHANGELOG.md gives the measurement); a user who wants them on the GPU runs
    ``probnn regression --device cuda``. ``"auto"`` is resolved by each worker
    (:func:`~probnn.jobs.worker_device`)."""
    for job in jobs.values():
        job.device = str(device) if job.module.DATA == "mnist" else "cpu"


def make_report(out="out/report", *, data_dir=None, quick: bool = False,
                seed: int = COURSEWORK_SEED, cache=None, workers: int | None = None,
                progress: bool = True, device: str = "cpu",
                scheduler: str | None = None) -> ReportRun:
    """Train or reuse every model, evaluate them, and write ``out/index.html`` with its figures.

    ``cache``: the artifact folder (default :func:`default_cache`); ``workers``: Dask worker
    processes on this machine to run jobs in (default: 2 on a machine with 2 or more cores,
    else 1; 1 runs them in this process); ``scheduler``: the address of a running Dask
    cluster to run them on instead (its workers must read and write ``cache`` at the same path);
    ``device``: where the MNIST jobs compute (each worker loads its models and data there;
    ``"auto"``: the GPU of the worker a job runs on, if it has one); the xkcd jobs stay on the
    CPU (:func:`place_on`). Where a job ran does not change its artifact's name: a result
    computed on a GPU is reused by a run on the CPU.
    """
    from probnn.tasks.inputs import Inputs
    t0 = time.monotonic()
    out = Path(out)
    cache = Path(cache) if cache is not None else default_cache()
    inputs = Inputs(data_dir)
    inputs.xkcd()  # fail fast with the data error, before any process starts
    (train_x, _, _), _ = inputs.mnist()
    jobs = build_jobs(quick, seed)
    place_on(jobs, device)
    place(jobs, cache, data_dir)
    run_jobs(jobs, data_dir, default_workers() if workers is None else workers, progress,
             scheduler=scheduler)
    if progress:
        print("report: writing figures and HTML ...", file=sys.stderr)
    results = {n: load(j, jobs, data_dir) for n, j in jobs.items()}
    groups = sections(jobs, results, train_x)
    broken = invariant_failures(jobs, results, groups)
    run = ReportRun(out / "index.html", jobs, time.monotonic() - t0, quick, seed, cache, broken)
    meta = [("mode", "quick (a first look: few epochs, small subsets)" if quick
             else "full (the coursework's settings)"),
            ("seed", str(seed)), ("precision", precision_used(jobs)),
            ("written", time.strftime("%Y-%m-%d %H:%M")),
            ("pipeline", f"{run.seconds:.0f} s before rendering"),
            ("cache", str(cache)), ("python", platform.python_version())]
    provenance = run.provenance()
    out.mkdir(parents=True, exist_ok=True)
    write_atomically(out / "provenance.csv", lambda f: provenance.to_csv(f))
    warning = " ".join(([QUICK_WARNING] if quick else [])
                       + ([f"{len(broken)} check(s) of the numbers failed: " + "; ".join(broken)]
                          if broken else []))
    render_html(TITLE, groups, meta, provenance, out, warning or None)
    run.seconds = time.monotonic() - t0
    return run
