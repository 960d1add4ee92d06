"""Running jobs: parents first, longest chain of work first, in worker processes, with one
progress line for all of them and Ctrl-C that lets every training save its checkpoint.

The one runner of the project: ``probnn report`` runs its job graph with it, and
``probnn regression`` its two fits.
"""
from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from .jobs import Job, execute, is_complete


class Interrupted(KeyboardInterrupt):
    """Ctrl-C while jobs ran: finished jobs kept their artifacts, interrupted trainings saved
    their checkpoints."""

    def __init__(self, hint: str = "run the same command again to continue where it stopped"):
        super().__init__(hint)
        self.hint = hint

    def __str__(self) -> str:
        return ("interrupted: finished jobs are saved and interrupted trainings saved their "
                f"checkpoints; {self.hint}")

    def __reduce__(self):
        return type(self), (self.hint,)


def default_workers() -> int:
    """2 worker processes on a machine with 2 or more cores, else 1."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


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

    def __init__(self, jobs: list[Job], workers: int, enabled: bool = True, stream=None,
                 label: str = "report"):
        self.jobs, self.workers, self.enabled, self.label = jobs, workers, enabled, label
        self.total = sum(j.estimate for j in jobs)
        self.t0 = time.monotonic()
        self.started: dict[str, float] = {}
        self.stream = stream or sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._width = 0
        if enabled:
            self._line(f"{label}: {len(jobs)} jobs to run in {workers} process"
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
        return (f"{self.label} {pct:3.0f}% | {finished}/{len(self.jobs)} jobs | running: "
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


def run_jobs(jobs: dict[str, Job], data_dir=None, workers: int = 1, progress: bool = True, *,
             reuse: bool = True, label: str = "report", hint: str | None = None) -> None:
    """Run every job, parents first, in ``workers`` processes (one torch thread each on a
    2-core machine; in this process when ``workers`` is 1). With ``reuse`` a job whose
    artifact is complete is marked cached and skipped. Ctrl-C (or a training interrupted in a
    worker) raises :class:`Interrupted` once every worker has saved, saying ``hint`` (how to
    go on; default: run the same command again)."""
    for job in jobs.values():
        job.artifact.parent.mkdir(parents=True, exist_ok=True)
        if reuse and is_complete(job):
            job.status = "cached"
    todo = [j for j in jobs.values() if j.status != "cached"]
    if not todo:
        return
    bar = PipelineProgress(todo, workers, progress, label=label)
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
                    nxt.status, nxt.seconds = execute(nxt, parents(nxt), data_dir)
                except KeyboardInterrupt as e:  # a training saved its checkpoint first
                    nxt.status = "interrupted"
                    raise (Interrupted(hint) if hint else Interrupted()) from e
                bar.finish(nxt)
        else:
            _run_pool(todo, jobs, data_dir, workers, bar, ready, parents, hint)
    finally:
        bar.close()
    stuck = [j.name for j in todo if j.status == "pending"]
    if stuck:
        raise RuntimeError(f"jobs never became ready: {stuck}")


def _run_pool(todo, jobs, data_dir, workers, bar, ready, parents, hint) -> None:
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
                    running[pool.submit(execute, nxt, parents(nxt), data_dir)] = nxt
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
        raise (Interrupted(hint) if hint else Interrupted()) from interrupted[0]


