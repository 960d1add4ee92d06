"""Running jobs: parents first, longest chain of work first, on Dask distributed workers (a
``LocalCluster`` of worker processes on this machine, or an existing cluster:
:mod:`probnn.dask_engine`) or in this process, with one progress line for all of them
(:mod:`probnn.progress`) and Ctrl-C that lets every training save its checkpoint.

The one runner of the project: ``probnn report`` runs its job graph with it, and
``probnn regression`` its two fits.
"""
from __future__ import annotations

import os
import time

from probnn.inference.signals import STOP_SIGNALS
from probnn.inference.train import handling

from .dask_engine import (SCHEDULER_ENV, DaskOptions, SchedulerUnreachable,  # noqa: F401
                          local_cluster, quiet_dask, run_on_dask, worker_threads)
from .jobs import JobBusy  # noqa: F401  (raised from here)
from .jobs import OK, ArtifactLock, Job, artifact_state, execute, take, waiting_note
from .progress import PipelineProgress, schedule


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


class StopRequest:
    """How this run is being stopped: SIGINT, SIGTERM or SIGHUP while jobs run.

    In this process (``workers=1``) a signal raises KeyboardInterrupt where the run is, as
    Ctrl-C does; a training catches it itself (:func:`probnn.inference.train.fit`) and saves.
    On Dask the signal only counts (``hit``): the run loop then sets the run's stop event,
    which every training polls (:func:`probnn.inference.train.stop_requests`), saves and stops
    on; it cancels the jobs not started and waits for the trainings to save. Worker processes
    of a ``LocalCluster`` ignore a terminal's Ctrl-C and SIGHUP
    (:func:`~probnn.dask_engine.local_cluster`), so a stop always goes through this one path.
    """

    def __init__(self, inline: bool):
        self.inline, self.hit = inline, 0
        self._handling = handling(STOP_SIGNALS, self._handle)

    def __enter__(self):
        self._handling.__enter__()
        return self

    def _handle(self, signum, frame):
        self.hit += 1
        if self.inline:
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        return self._handling.__exit__(*exc)


def run_jobs(jobs: dict[str, Job], data_dir=None, workers: int = 1, progress: bool = True, *,
             reuse: bool = True, label: str = "report", hint: str | None = None,
             scheduler: str | None = None) -> None:
    """Run every job, parents first: on an existing Dask cluster if ``scheduler`` (its
    address) is given, else in ``workers`` worker processes of a Dask ``LocalCluster`` (one
    thread each; in this process when ``workers`` is 1). With ``reuse`` a job whose artifact
    is complete is marked cached and skipped (no cluster is started when all are), and an
    unreadable one is set aside (:func:`~probnn.jobs.set_aside`) and computed again.

    Runs may share a cache: each job is computed under its artifact's lock
    (:class:`~probnn.jobs.ArtifactLock`); a job another run is computing waits for it and is
    then reused (without ``reuse``, :class:`~probnn.jobs.JobBusy` is raised instead). Ctrl-C,
    SIGTERM or SIGHUP raise :class:`Interrupted` once every running training has saved, saying
    ``hint`` (how to go on; default: run the same command again).
    """
    for job in jobs.values():
        job.artifact.parent.mkdir(parents=True, exist_ok=True)
        if reuse and artifact_state(job) == "complete":
            job.status = "cached"
    todo = [j for j in jobs.values() if j.status != "cached"]
    if not todo:
        return
    interrupted: list[BaseException] = []
    bar = None
    try:
        with StopRequest(inline=scheduler is None and workers <= 1) as stop:
            if scheduler is None and workers <= 1:
                bar = PipelineProgress(todo, 1, progress, label=label)
                _run_here(jobs, schedule(todo), data_dir, bar, reuse, interrupted)
            else:
                run_on_dask(jobs, todo, data_dir,
                            DaskOptions(workers, progress, label, reuse, scheduler), stop,
                            interrupted)
            if stop.hit and not interrupted:
                interrupted.append(KeyboardInterrupt())
    finally:
        if bar is not None:
            bar.close()
    if interrupted:
        raise (Interrupted(hint) if hint else Interrupted()) from interrupted[0]
    stuck = [j.name for j in todo if j.status == "pending"]
    if stuck:
        raise RuntimeError(f"jobs never became ready: {stuck}")


def _run_here(jobs: dict[str, Job], todo: list[Job], data_dir, bar: PipelineProgress,
              reuse: bool, interrupted: list) -> None:
    """Run the jobs one after the other in this process, in the order given (a ready job
    another run is computing is left for later)."""
    waiting: set[str] = set()

    def ready(j: Job) -> bool:
        return j.status == "pending" and all(jobs[n].status in OK for n in j.needs)

    def claim(j: Job) -> ArtifactLock | None:
        state, lock, note = take(j, reuse)
        if state == "busy" and j.name not in waiting:
            waiting.add(j.name)
            bar.note(waiting_note(j))
        elif state == "cached":
            j.status = "cached"
            bar.finish(j)
        elif note:
            bar.note(note)
        return lock

    try:
        while True:
            nxt, lock = None, None
            for j in todo:
                if ready(j) and (lock := claim(j)) is not None:
                    nxt = j
                    break
            if nxt is None:
                if not any(ready(j) for j in todo):
                    return
                time.sleep(1.0)  # every ready job is another run's: poll its lock
                bar.refresh()
                continue
            bar.start(nxt)
            try:
                nxt.status, nxt.seconds = execute(nxt, [jobs[n].artifact for n in nxt.needs],
                                                  data_dir)
            except KeyboardInterrupt as e:  # a training saved (TrainingInterrupted), or Ctrl-C
                nxt.status = "interrupted"
                interrupted.append(e)
                return
            except BaseException:
                nxt.status = "failed"
                raise
            finally:
                lock.release()
            bar.finish(nxt)
    except KeyboardInterrupt as e:  # the signal arrived between jobs
        interrupted.append(e)


