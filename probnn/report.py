"""The main job: train (or reuse) every model of the coursework and write the HTML report.

Notebook use::

    from probnn.report import make_report
    run = make_report("out/report", quick=True)     # -> run.index: out/report/index.html

The pipeline is a small graph of jobs. A *train* job's artifact is a training checkpoint;
an *evaluate* job's artifact is a file of results computed from its parents' checkpoints.
Every artifact lives in a cache folder under a name that ends in a digest of everything that
determines it: the job's settings, the seed, the digests of the jobs it reads, the data
file it reads (for the xkcd data) and :data:`CACHE_VERSION`. So

- a job whose artifact exists is *cached* and not run (a second report takes seconds),
- a changed setting makes a new digest, a new file, and a fresh run, and never silently
  reuses the old result (which stays in the cache),
- an interrupted training leaves its checkpoint behind and the next report *resumes* it
  (exactly, see :func:`probnn.inference.train.fit`).

Jobs run in ``jobs`` worker processes (one torch thread each when ``jobs`` > 1), ordered so
that long trainings start first; the main process shows one progress bar for the whole
pipeline, its ETA scaled by how fast the finished jobs went against their estimates, then
renders the report from the artifacts (:mod:`probnn.analysis.report`).

This module sits beside the CLI, above :mod:`probnn.analysis` and :mod:`probnn.inference`:
it trains and it plots, so it belongs to neither.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

import torch

CACHE_VERSION = 1
"""Bump when a change to the code changes what a job computes from the same settings."""

COURSEWORK_SEED = 309


# ----------------------------------------------------------------------------- settings
def settings(quick: bool = False) -> dict[str, dict[str, Any]]:
    """The report's settings, per stage: the coursework's in full mode; tiny in quick mode.

    Full-mode evaluation sizes are chosen to keep the whole report under 25 minutes on a
    2-core laptop; ``probnn vae compare``, ``probnn cvae figures`` and ``probnn estimators``
    run the same computations at full size.
    """
    if quick:
        return {
            "regression": dict(epochs=3000, lr=1e-3, checkpoint_every=1000),
            "cures": dict(sigma_floor=0.05, beta=0.5),
            "vae": dict(epochs=1, batch_size=100, train_images=6000),
            "mlp": dict(epochs=1, batch_size=128, train_images=6000),
            "cvae": dict(epochs=1, batch_size=100, train_images=6000),
            "figures": dict(rank_subset=500, rank_k=50),
            "compare": dict(holdout_images=300, k=50, large_k=200, large_k_images=50,
                            train_images=300),
            "cvae_eval": dict(holdout_images=300, k=50, large_k=200, large_k_images=50,
                              classify_images=100),
            "estimators": _estimator_sizes(quick=True),
            "bayes": _bayes_sizes(quick=True),
            "objectives": dict(objectives=("trace", "iwae-5"), latent_dim=20, architecture="mlp",
                               train_images=1000, epochs=1, batch_size=100, eval_k=50,
                               eval_images=50),
        }
    return {
        "regression": dict(epochs=50_000, lr=1e-3, checkpoint_every=5000),
        "cures": dict(sigma_floor=0.05, beta=0.5),
        "vae": dict(epochs=5, batch_size=100, train_images=None),
        "mlp": dict(epochs=10, batch_size=128, train_images=None),
        "cvae": dict(epochs=5, batch_size=100, train_images=None),
        "figures": dict(rank_subset=5000, rank_k=100),
        "compare": dict(holdout_images=2000, k=100, large_k=1000, large_k_images=200,
                        train_images=2000),
        "cvae_eval": dict(holdout_images=2000, k=100, large_k=1000, large_k_images=200,
                          classify_images=500),
        "estimators": _estimator_sizes(quick=False),
        "bayes": _bayes_sizes(quick=False),
        # Every objective trains the PyTorch example's MLP VAE: IWAE with K=50 costs about 50
        # decoder passes a step, which the conv VAE cannot afford in the report's budget.
        "objectives": dict(objectives=("trace", "meanfield", "iwae-5", "iwae-50"), latent_dim=20,
                           architecture="mlp", train_images=20_000, epochs=1, batch_size=100,
                           eval_k=1000, eval_images=200),
    }


def _bayes_sizes(quick: bool) -> dict:
    from probnn.inference.bayes_regression import FULL, QUICK
    return dict(QUICK if quick else FULL)


def _estimator_sizes(quick: bool) -> dict:
    """The estimator study's bias/spread and gradient-SNR sizes (its preset, minus training,
    which the report runs as a job of its own)."""
    from probnn.inference.estimator_study import FULL, QUICK
    training = ("train_objectives", "train_images", "epochs", "batch_size", "eval_k", "eval_images")
    sizes = {k: v for k, v in (QUICK if quick else FULL).items() if k not in training}
    if not quick:  # one worker does FULL's sizes in ~13 s a model: afford steadier numbers
        sizes.update(holdout_images=12, repeats=5, snr_samples=20, snr_images=16)
    return sizes


# ----------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """One step of the pipeline: ``run(spec, artifact, parents, data_dir)`` makes ``artifact``."""
    name: str
    kind: str                      # "train" (artifact: checkpoint) or "evaluate"
    spec: dict[str, Any]
    run: Callable
    estimate: float                # seconds on an idle 2-core machine, for the ETA
    needs: tuple[str, ...] = ()
    digest: str = ""
    artifact: Path | None = None
    status: str = "pending"        # then: cached, trained, resumed, evaluated, failed
    seconds: float = 0.0

    @property
    def suffix(self) -> str:
        return ".ckpt" if self.kind == "train" else ".pt"


def _digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _file_digest(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:12]


def _checkpoint_done(path: Path, epochs: int) -> bool:
    from probnn.inference.checkpoint import CheckpointError, read_checkpoint
    try:
        extra = read_checkpoint(path)["extra"]
    except CheckpointError:
        return False
    return extra.get("epoch") == epochs and extra.get("batch") == 0


def is_complete(job: Job) -> bool:
    """Whether the job's artifact is in the cache and finished."""
    if job.artifact is None or not job.artifact.is_file():
        return False
    return _checkpoint_done(job.artifact, job.spec["epochs"]) if job.kind == "train" else True


def _save_result(obj, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)  # a half-written result never looks finished


def load_result(path: Path):
    return torch.load(path, map_location="cpu", weights_only=False)


@contextmanager
def _threads(n: int):
    old = torch.get_num_threads()
    torch.set_num_threads(min(n, old))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@lru_cache(maxsize=2)
def _splits(data_dir):
    from probnn.datasets import mnist_splits
    return mnist_splits(data_dir)


# The job bodies run in worker processes: module-level functions of (spec, artifact, parents,
# data_dir), reading their inputs from files and writing one artifact.
def _train_regression(spec, artifact, parents, data_dir):
    from probnn.datasets import load_xkcd
    from probnn.inference.regression import fit_regression
    x, y = load_xkcd(data_dir)
    with _threads(1):  # 31 points: a second thread only adds synchronisation
        fit_regression(spec["model"], x, y, epochs=spec["epochs"], seed=spec["seed"],
                       lr=spec["lr"], checkpoint=artifact,
                       checkpoint_every=spec["checkpoint_every"], resume=True, progress=False,
                       sigma_floor=spec["sigma_floor"], beta=spec["beta"])


def _bayes_regression(spec, artifact, parents, data_dir):
    from probnn.datasets import load_xkcd
    from probnn.inference.bayes_regression import run_bayes_regression
    x, y = load_xkcd(data_dir)
    sizes = {k: v for k, v in spec.items() if k not in ("seed", "data")}
    with _threads(1):
        fits, compare = run_bayes_regression(x, y, seed=spec["seed"], progress=False, **sizes)
    _save_result({"fits": fits, "compare": compare}, artifact)


def _train_vae(spec, artifact, parents, data_dir):
    from probnn.inference.vae import train_vae
    (x, y, _), _ = _splits(data_dir)
    train_vae(spec["latent_dim"], x=x, y=y, conditional=spec["conditional"],
              architecture=spec["architecture"], epochs=spec["epochs"],
              batch_size=spec["batch_size"], train_images=spec["train_images"], seed=spec["seed"],
              checkpoint=artifact, resume=True, progress=False)


def _vae_figures(spec, artifact, parents, data_dir):
    from probnn.inference.vae import compute_results, history_from_checkpoint, load_vae, vae_name
    (ckpt,) = parents
    model, guide = load_vae(ckpt)
    (train_x, train_y, _), _ = _splits(data_dir)
    results = compute_results(model, guide, train_x, train_y, name=vae_name(model),
                              rank_subset=spec["rank_subset"], rank_k=spec["rank_k"],
                              seed=spec["seed"], progress=False,
                              history=history_from_checkpoint(ckpt))
    _save_result(results, artifact)


def _vae_compare(spec, artifact, parents, data_dir):
    from probnn.inference.vae import comparison_row, load_vae
    (ckpt,) = parents
    model, guide = load_vae(ckpt)
    (train_x, _, _), (holdout_x, _, _) = _splits(data_dir)
    row = comparison_row(model, guide, holdout_x, train_x, k=spec["k"], large_k=spec["large_k"],
                         large_k_images=spec["large_k_images"],
                         holdout_images=spec["holdout_images"], train_images=spec["train_images"],
                         seed=spec["seed"])
    _save_result(row, artifact)


def _cvae_evaluate(spec, artifact, parents, data_dir):
    from probnn.inference.cvae import cvae_results
    from probnn.inference.batching import random_subset
    from probnn.inference.vae import load_vae
    (ckpt,) = parents
    model, guide = load_vae(ckpt)
    _, (hx, hy, _) = _splits(data_dir)
    evaluate_kw = {k: spec[k] for k in ("k", "large_k", "large_k_images", "classify_images")}
    _save_result(cvae_results(model, guide, hx, hy, seed=spec["seed"],
                              eval_index=random_subset(len(hx), spec["holdout_images"], spec["seed"]),
                              **evaluate_kw), artifact)


def _estimators(spec, artifact, parents, data_dir):
    from probnn.inference.estimator_study import run_estimator_study
    from probnn.inference.vae import load_vae, vae_name
    (ckpt,) = parents
    model, guide = load_vae(ckpt)
    (train_x, _, _), (holdout_x, _, _) = _splits(data_dir)
    sizes = {k: v for k, v in spec.items() if k != "seed"}
    study = run_estimator_study(model, guide, holdout_x, train_x, name=vae_name(model),
                                train_objectives=None, seed=spec["seed"], progress=False, **sizes)
    _save_result(study, artifact)


def _objectives(spec, artifact, parents, data_dir):
    from probnn.inference.estimator_study import objective_comparison
    (train_x, _, _), (holdout_x, _, _) = _splits(data_dir)
    table = objective_comparison(train_x, holdout_x, spec["objectives"], spec["epochs"],
                                 spec["latent_dim"], spec["eval_k"], spec["seed"],
                                 architecture=spec["architecture"],
                                 train_images=spec["train_images"],
                                 eval_images=spec["eval_images"], batch_size=spec["batch_size"])
    _save_result(table, artifact)


VAE_MODELS = {  # report name -> (latent_dim, architecture, conditional, settings key)
    "vae-d4": (4, "conv", False, "vae"),
    "vae-d20": (20, "conv", False, "vae"),
    "vae-mlp-d20": (20, "mlp", False, "mlp"),
    "cvae-d4": (4, "conv", True, "cvae"),
}
REGRESSION_FITS = {  # report name -> (model, cure settings used)
    "homoscedastic": ("homoscedastic", ()),
    "heteroscedastic": ("heteroscedastic", ()),
    "heteroscedastic-floor": ("heteroscedastic", ("sigma_floor",)),
    "heteroscedastic-beta": ("heteroscedastic", ("beta",)),
}


# Seconds each job takes in one worker (one torch thread) on an idle 2-core machine with the
# other worker busy, full and quick mode (measured on the full run of 2026-11-22): only for
# ordering the jobs and for the ETA, which rescales them as it goes.
ESTIMATES = {
    "regression-homoscedastic": (100, 6), "regression-heteroscedastic": (125, 7),
    "regression-heteroscedastic-floor": (125, 7), "regression-heteroscedastic-beta": (125, 7),
    "vae-d4": (510, 14), "vae-d20": (555, 15), "vae-mlp-d20": (85, 3), "cvae-d4": (555, 15),
    "figures-vae-d4": (70, 8), "compare-vae-d4": (57, 8), "compare-vae-d20": (56, 8),
    "compare-vae-mlp-d20": (10, 2), "evaluate-cvae-d4": (115, 12),
    "bayes-regression": (27, 8), "estimators-vae-d4": (60, 8), "estimators-vae-d20": (60, 8),
    "objectives-vae-mlp-d20": (110, 6),
}


def build_jobs(quick: bool = False, seed: int = COURSEWORK_SEED, data_dir=None) -> dict[str, Job]:
    """The report's jobs, by name, with their settings (not yet placed in a cache)."""
    from probnn.datasets import find_xkcd
    s = settings(quick)
    xkcd = _file_digest(find_xkcd(data_dir))
    jobs: list[Job] = []

    def add(name, kind, spec, run, needs=()):
        jobs.append(Job(name, kind, spec, run, ESTIMATES[name][quick], needs))

    for name, (model, cures) in REGRESSION_FITS.items():
        add(f"regression-{name}", "train",
            dict(model=model, seed=seed, data=xkcd, **s["regression"],
                 sigma_floor=s["cures"]["sigma_floor"] if "sigma_floor" in cures else 0.0,
                 beta=s["cures"]["beta"] if "beta" in cures else 0.0), _train_regression)
    add("bayes-regression", "evaluate", dict(seed=seed, data=xkcd, **s["bayes"]), _bayes_regression)
    for name, (d, arch, conditional, key) in VAE_MODELS.items():
        add(name, "train", dict(latent_dim=d, architecture=arch, conditional=conditional,
                                seed=seed, **s[key]), _train_vae)
    add("figures-vae-d4", "evaluate", dict(seed=seed, **s["figures"]), _vae_figures, ("vae-d4",))
    for name in ("vae-d4", "vae-d20", "vae-mlp-d20"):
        add(f"compare-{name}", "evaluate", dict(seed=seed, **s["compare"]), _vae_compare, (name,))
    add("evaluate-cvae-d4", "evaluate", dict(seed=seed, **s["cvae_eval"]), _cvae_evaluate,
        ("cvae-d4",))
    for name in ("vae-d4", "vae-d20"):
        add(f"estimators-{name}", "evaluate", dict(seed=seed, **s["estimators"]), _estimators,
            (name,))
    add("objectives-vae-mlp-d20", "evaluate", dict(seed=seed, **s["objectives"]), _objectives)
    return {j.name: j for j in jobs}


def place(jobs: dict[str, Job], cache: Path) -> None:
    """Give every job its digest and artifact path in ``cache`` (parents before children)."""
    def visit(job: Job) -> str:
        if not job.digest:
            parents = [visit(jobs[n]) for n in job.needs]
            job.digest = _digest({"version": CACHE_VERSION, "name": job.name, "kind": job.kind,
                                  "spec": job.spec, "parents": parents})
            job.artifact = cache / f"{job.name}-{job.digest}{job.suffix}"
        return job.digest
    for job in jobs.values():
        visit(job)


# ----------------------------------------------------------------------------- running
class ReportInterrupted(KeyboardInterrupt):
    """Ctrl-C during a report: finished jobs are cached, trainings saved checkpoints."""

    def __str__(self) -> str:
        return ("report interrupted: finished jobs are cached and interrupted trainings saved "
                "their checkpoints; run the same command again to continue where it stopped")


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)
    import probnn  # noqa: F401  (module-local params in the worker too)


def _record_path(job: Job) -> Path:
    return job.artifact.with_name(job.artifact.name + ".json")


def read_record(job: Job) -> dict:
    """What the run that made the artifact recorded: status, seconds, when, threads."""
    try:
        return json.loads(_record_path(job).read_text())
    except (OSError, ValueError):
        return {}


def _run_job(job: Job, parents: list[Path], data_dir) -> tuple[str, float]:
    t0 = time.perf_counter()
    resumed = job.kind == "train" and job.artifact.is_file()
    job.run(job.spec, job.artifact, parents, data_dir)
    status = ("resumed" if resumed else "trained") if job.kind == "train" else "evaluated"
    seconds = time.perf_counter() - t0
    # beside the artifact, so a report that reuses it can still say what it cost
    _record_path(job).write_text(json.dumps(
        {"job": job.name, "status": status, "seconds": round(seconds, 1),
         "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "torch_threads": torch.get_num_threads(),
         "spec": job.spec}, default=str, indent=1))
    return status, seconds


def _fmt_seconds(s: float) -> str:
    s = int(round(s))
    return f"{s // 60}:{s % 60:02d}"


class PipelineProgress:
    """Progress of the whole pipeline: which jobs run, how many are done, elapsed time, ETA.

    On a terminal, one status line redrawn every second; in a log (not a terminal), one line
    per finished job. The ETA is the estimated work left times the ratio of actual to
    estimated seconds so far (running jobs count their elapsed time, capped at their
    estimate), so it adapts to how fast this machine turns out to be.
    """

    def __init__(self, jobs: list[Job], workers: int, enabled: bool = True, stream=None):
        self.jobs, self.workers, self.enabled = jobs, workers, enabled
        self.total = sum(j.estimate for j in jobs)
        self.t0 = time.monotonic()
        self.started: dict[str, float] = {}
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0
        if enabled:
            self._line(f"report: {len(jobs)} jobs to run in {workers} process"
                       f"{'es' if workers > 1 else ''}, estimated {_fmt_seconds(self.total / workers)} "
                       "on an idle 2-core machine")

    def _done_estimate(self) -> float:
        now = time.monotonic()
        done = sum(j.estimate for j in self.jobs if j.status not in ("pending", "running"))
        return done + sum(min(now - self.started[j.name], 0.95 * j.estimate)
                          for j in self.jobs if j.status == "running")

    def eta(self) -> float | None:
        done = self._done_estimate()
        if done <= 0:
            return None
        return (self.total - done) * ((time.monotonic() - self.t0) / done)

    def status(self) -> str:
        finished = sum(j.status not in ("pending", "running") for j in self.jobs)
        running = [j.name for j in self.jobs if j.status == "running"]
        eta = self.eta()
        pct = 100 * self._done_estimate() / max(self.total, 1e-9)
        return (f"report {pct:3.0f}% | {finished}/{len(self.jobs)} jobs | running: "
                f"{', '.join(running) or '-'} | elapsed {_fmt_seconds(time.monotonic() - self.t0)}"
                f" | ETA {_fmt_seconds(eta) if eta is not None else '?'}")

    def _line(self, text: str) -> None:
        if self.tty:  # wipe the status line, print, and let refresh() redraw it
            self.stream.write("\r" + " " * self._width + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def start(self, job: Job) -> None:
        job.status = "running"
        self.started[job.name] = time.monotonic()
        self.refresh()

    def finish(self, job: Job) -> None:
        if self.enabled:
            self._line(f"  {job.name}: {job.status} in {_fmt_seconds(job.seconds)}"
                       + ("" if self.tty else f"   [{self.status()}]"))
        self.refresh()

    def refresh(self) -> None:
        if self.enabled and self.tty:
            text = self.status()
            self.stream.write("\r" + text.ljust(self._width))
            self.stream.flush()
            self._width = len(text)

    def close(self) -> None:
        if self.enabled and self.tty:
            self.stream.write("\n")
            self.stream.flush()


def schedule(jobs: list[Job]) -> list[Job]:
    """Jobs in the order to start them: the longest chain of work first (a job's estimate
    plus its dependants'), so trainings that gate evaluations are not left to the end."""
    chain = {j.name: j.estimate + sum(c.estimate for c in jobs if j.name in c.needs) for j in jobs}
    return sorted(jobs, key=lambda j: -chain[j.name])


def run_jobs(jobs: dict[str, Job], data_dir=None, workers: int = 1, progress: bool = True) -> None:
    """Run every job whose artifact is not cached, parents first, in ``workers`` processes
    (in this process when ``workers`` is 1). Cached jobs are marked and skipped."""
    for job in jobs.values():
        job.artifact.parent.mkdir(parents=True, exist_ok=True)
        if is_complete(job):
            job.status = "cached"
    todo = [j for j in jobs.values() if j.status != "cached"]
    if not todo:
        return
    bar = PipelineProgress(todo, workers, progress)
    todo = schedule(todo)

    def ready(j: Job) -> bool:
        return j.status == "pending" and all(
            jobs[n].status in ("cached", "trained", "resumed") for n in j.needs)

    def parents(j: Job) -> list[Path]:
        return [jobs[n].artifact for n in j.needs]

    try:
        if workers <= 1:
            while (nxt := next((j for j in todo if ready(j)), None)) is not None:
                bar.start(nxt)
                try:
                    nxt.status, nxt.seconds = _run_job(nxt, parents(nxt), data_dir)
                except KeyboardInterrupt as e:  # a training saved its checkpoint first
                    nxt.status = "interrupted"
                    raise ReportInterrupted() from e
                bar.finish(nxt)
        else:
            _run_pool(todo, jobs, data_dir, workers, bar, ready, parents)
    finally:
        bar.close()
    stuck = [j.name for j in todo if j.status == "pending"]
    if stuck:
        raise RuntimeError(f"jobs never became ready: {stuck}")


def _run_pool(todo, jobs, data_dir, workers, bar, ready, parents) -> None:
    import multiprocessing as mp

    from probnn.inference.train import TrainingInterrupted
    threads = max(1, (os.cpu_count() or 1) // workers)
    # Ctrl-C reaches the workers too: a training saves its checkpoint and returns
    # TrainingInterrupted. The parent ignores it meanwhile, so the pool is not torn down
    # half-way and every interrupted training leaves a checkpoint to resume.
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    interrupted = []
    try:
        with ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                                 initializer=_worker_init, initargs=(threads,)) as pool:
            running = {}
            while True:
                while len(running) < workers and not interrupted and (
                        nxt := next((j for j in todo if ready(j)), None)) is not None:
                    bar.start(nxt)
                    running[pool.submit(_run_job, nxt, parents(nxt), data_dir)] = nxt
                if not running:
                    break
                done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                for fut in done:
                    job = running.pop(fut)
                    try:
                        job.status, job.seconds = fut.result()
                    except (TrainingInterrupted, KeyboardInterrupt) as e:
                        job.status = "interrupted"
                        interrupted.append(e)
                        continue
                    except BaseException:
                        job.status = "failed"
                        for f in running:
                            f.cancel()
                        raise
                    bar.finish(job)
                bar.refresh()
    finally:
        signal.signal(signal.SIGINT, old)
    if interrupted:
        raise ReportInterrupted() from interrupted[0]


# ----------------------------------------------------------------------------- the report
@dataclass
class ReportRun:
    index: Path
    jobs: dict[str, Job]
    seconds: float
    quick: bool
    seed: int
    cache: Path

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
                         "settings": ", ".join(f"{k}={v}" for k, v in j.spec.items() if k != "data")})
        return pd.DataFrame(rows).set_index("job")


def default_cache() -> Path:
    """``$XDG_CACHE_HOME/probnn/report`` (``~/.cache/probnn/report``): shared by every report."""
    from probnn.datasets import cache_dir
    return cache_dir().parent / "report"


def make_report(out="out/report", *, data_dir=None, quick: bool = False,
                seed: int = COURSEWORK_SEED, cache=None, workers: int | None = None,
                progress: bool = True) -> ReportRun:
    """Train or reuse every model, evaluate them, and write ``out/index.html`` with its figures.

    ``cache``: the artifact folder (default :func:`default_cache`); ``workers``: processes to
    run jobs in (default: 2 on a machine with 2 or more cores, else 1).
    """
    from probnn.analysis.report import write_report
    from probnn.datasets import load_xkcd
    t0 = time.monotonic()
    out = Path(out)
    cache = Path(cache) if cache is not None else default_cache()
    load_xkcd(data_dir)  # fail fast with the data error, before any process starts
    _splits(data_dir)
    jobs = build_jobs(quick, seed, data_dir)
    place(jobs, cache)
    if workers is None:
        workers = 2 if (os.cpu_count() or 1) >= 2 else 1
    run_jobs(jobs, data_dir, workers, progress)
    if progress:
        print("report: writing figures and HTML ...", file=sys.stderr)
    run = ReportRun(out / "index.html", jobs, 0.0, quick, seed, cache)
    results = load_results(jobs, data_dir)
    run.seconds = time.monotonic() - t0
    write_report(results, out, run)
    run.seconds = time.monotonic() - t0
    return run


def load_results(jobs: dict[str, Job], data_dir=None) -> dict[str, Any]:
    """Everything the report shows, read back from the job artifacts (no training)."""
    from probnn.datasets import load_xkcd
    from probnn.inference.regression import fit_regression
    from probnn.inference.vae import history_from_checkpoint
    x, y = load_xkcd(data_dir)
    fits = {}
    for name in REGRESSION_FITS:
        j = jobs[f"regression-{name}"]
        s = j.spec
        # resuming a finished checkpoint trains 0 epochs and returns the stored record
        fits[name] = fit_regression(s["model"], x, y, epochs=s["epochs"], seed=s["seed"],
                                    lr=s["lr"], checkpoint=j.artifact, resume=True, progress=False,
                                    sigma_floor=s["sigma_floor"], beta=s["beta"])
    (train_x, train_y, _), _ = _splits(data_dir)
    return {
        "regression": fits,
        "bayes": load_result(jobs["bayes-regression"].artifact),
        "histories": {n: history_from_checkpoint(jobs[n].artifact) for n in VAE_MODELS},
        "vae_figures": load_result(jobs["figures-vae-d4"].artifact),
        "train_x": train_x,
        "compare": {n: load_result(jobs[f"compare-{n}"].artifact)
                    for n in ("vae-d4", "vae-d20", "vae-mlp-d20")},
        "cvae": load_result(jobs["evaluate-cvae-d4"].artifact),
        "estimators": {n: load_result(jobs[f"estimators-{n}"].artifact)
                       for n in ("vae-d4", "vae-d20")},
        "objectives": load_result(jobs["objectives-vae-mlp-d20"].artifact),
    }
