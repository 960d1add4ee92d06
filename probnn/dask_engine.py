"""Running jobs on Dask distributed workers: a ``LocalCluster`` of worker processes on this
machine, or an existing cluster.

Every job is one task (:func:`job_on_worker`) whose arguments include its parents' futures,
so the scheduler starts it once they are done; its priority is the length of the chain of
work it starts (:func:`~probnn.progress.chains`), so trainings that gate evaluations go first.
A worker runs :func:`~probnn.jobs.execute` under the artifact's lock and writes the artifact
to the cache folder, which every worker must be able to read and write (on several machines:
a shared file system); the client reads the artifacts from there. Workers tell the client
when a job starts (and any note) through the scheduler's event log, which drives the
progress line.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any
import queue
import signal
import time
import uuid
from pathlib import Path

import torch

from probnn.inference.signals import STOP_SIGNALS
from probnn.inference.train import stop_requests

from .jobs import OK, Job, execute, take, waiting_note
from .progress import PipelineProgress, chains, schedule


class SchedulerUnreachable(RuntimeError):
    """The Dask scheduler given to run the jobs on cannot be reached (or is no address)."""


SCHEDULER_ENV = "PROBNN_SCHEDULER"
"""The environment variable naming a running Dask scheduler (``tcp://host:8786``) to run the
report's jobs on, as ``probnn report --scheduler`` does."""


def stop_name(run: str) -> str:
    return f"probnn-stop-{run}"


def topic(run: str) -> str:
    return f"probnn-{run}"


def job_on_worker(job: Job, parents: list[Path], data_dir, reuse: bool, run: str,
                   threads: int | None, *parent_outcomes) -> tuple[str, float, str]:
    """One job on a Dask worker: ``(status, seconds, message)``. Never raises
    KeyboardInterrupt (which would take the worker down): an interrupted training is the
    status ``interrupted`` with its message, a job not started because the run stops (or a
    parent did not finish) ``stopped``. Errors propagate as they are (the client re-raises them)."""
    from distributed import Event, get_worker, rejoin, secede
    worker = get_worker()
    stop = Event(stop_name(run))
    if stop.is_set() or any(o[0] not in OK for o in parent_outcomes):
        return "stopped", 0.0, ""
    if threads:
        torch.set_num_threads(threads)
    state, lock, note = take(job, reuse)
    if state == "busy":
        # another run (maybe on another cluster) computes it: leave this worker's thread to
        # other jobs while waiting for the lock, then reuse what that run wrote
        worker.log_event(topic(run), {"note": waiting_note(job)})
        secede()
        try:
            while state == "busy":
                if stop.is_set():
                    return "stopped", 0.0, ""
                time.sleep(1.0)
                state, lock, note = take(job, reuse)
        finally:
            rejoin()
    if state == "cached":
        return "cached", 0.0, ""
    try:
        if note:
            worker.log_event(topic(run), {"note": note})
        worker.log_event(topic(run), {"start": job.name})
        with stop_requests(stop.is_set):
            status, seconds = execute(job, parents, data_dir)
    except KeyboardInterrupt as e:  # TrainingInterrupted: it saved its checkpoint
        return "interrupted", 0.0, str(e)
    finally:
        lock.release()
    return status, seconds, ""


def worker_threads(workers: int) -> int:
    """Torch threads for each of ``workers`` local worker processes: the machine's cores
    shared out among them."""
    return max(1, (os.cpu_count() or 1) // workers)


def quiet_dask() -> None:
    """Dask's own log lines (workers joining and leaving, a job's error, which this run
    reports itself as one line) are not this command's output."""
    for name in ("distributed", "bokeh", "tornado"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def local_cluster(workers: int):
    """A ``LocalCluster`` of ``workers`` worker processes, one thread each, no dashboard.

    Its worker processes are started with SIGINT and SIGHUP blocked (the mask is inherited
    through fork and exec, and Python then never sees them): a terminal's Ctrl-C or hang-up
    reaches every process of its group, but only this one must act on it (see :class:`probnn.runner.StopRequest`).
    """
    import dask
    from distributed import LocalCluster
    from multiprocessing import resource_tracker
    # multiprocessing starts its resource tracker with the first process it spawns, and
    # *unblocks* SIGINT in the spawning thread afterwards: start it first, so the mask holds
    resource_tracker.ensure_running()
    quiet = tuple(s for s in STOP_SIGNALS if s != signal.SIGTERM)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, quiet)
    try:
        # one job per worker thread at a time: the scheduler keeps the rest and hands them out
        # by priority (the longest chain first), rather than queueing them on busy workers
        # and no statistical profiler sampling every job's stack 100 times a second (the
        # dashboard's profile page, which this cluster does not have); the worker processes
        # take this configuration with them
        # Nor Dask's MALLOC_TRIM_THRESHOLD_=65536 for its workers: setting it turns off glibc's
        # adaptive mmap threshold, so every large tensor is a fresh mmap, zeroed page by page;
        # torch jobs ran 2-2.5x slower for it (measured: the same job in this process with and
        # without the variable, and on a worker)
        with dask.config.set({"distributed.scheduler.worker-saturation": 1.0,
                              "distributed.worker.profile.enabled": False,
                              "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}):
            return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                host="127.0.0.1", dashboard_address=None,
                                # no dashboard; its bare HTTP server (health checks) on any free
                                # port, not on 8787 with a warning when another cluster has it
                                scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                                silence_logs=logging.CRITICAL)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


@dataclass
class DaskRun:
    """One run's jobs on a Dask client: submitted with their parents' futures and their
    priority (:meth:`submit_all`), then followed (:meth:`follow`): the progress line, errors
    and stop requests."""
    client: Any
    jobs: dict
    todo: list
    data_dir: Any
    reuse: bool
    threads: int | None
    stop: Any
    """The run's :class:`~probnn.runner.StopRequest` (``hit``: a stop signal arrived)."""
    bar: PipelineProgress
    interrupted: list
    run: str = field(default_factory=lambda: uuid.uuid4().hex[:12])

    def __post_init__(self):
        from distributed import Event
        self.stop_event = Event(stop_name(self.run), client=self.client)
        self.events: queue.SimpleQueue = queue.SimpleQueue()
        self.client.subscribe_topic(topic(self.run), lambda event: self.events.put(event[1]))
        self.by_name = {j.name: j for j in self.todo}
        self.futures: dict[str, Any] = {}
        self.pending: dict = {}
        self.error = None
        self.stopping_since = None

    def submit(self, j: Job):
        if j.name not in self.futures:
            parents = [self.submit(self.by_name[n]) for n in j.needs if n in self.by_name]
            self.futures[j.name] = self.client.submit(
                job_on_worker, j, [self.jobs[n].artifact for n in j.needs], self.data_dir,
                self.reuse, self.run, self.threads, *parents,
                key=f"probnn-{self.run}-{j.name}-{j.digest}",
                priority=round(self.chain[j.name] * 10), pure=False)
        return self.futures[j.name]

    def submit_all(self) -> None:
        # Keys share their prefix up to the run id ("probnn-<run>-<job>-<digest>"): Dask
        # counts them as one group, larger than the cluster, so its scheduler queues them and
        # hands them to workers as they free up, highest priority (longest chain) first,
        # instead of assigning them all at once to workers that would then run them in their
        # own order. Submitted longest chain first, so those handed out before the group is
        # large are the first ones anyway.
        self.chain = chains(self.todo)
        for j in schedule(self.todo):
            self.submit(j)
        self.pending = {self.futures[j.name]: j for j in self.todo}

    def begin_stop(self) -> None:
        """Every training saves and stops; what has not started never will."""
        if self.stopping_since is not None:
            return
        self.stopping_since = time.monotonic()
        self.stop_event.set()
        # a training is asked through the event and waited for: a running one saves, one not
        # started yet returns at once when it reaches a worker (so a training that has started
        # but whose start has not reached us yet is not killed unsaved). Other jobs are
        # cancelled: a running evaluation is abandoned (its worker process is closed with the
        # cluster; on someone's cluster it finishes and writes its artifact, for the next run)
        drop = [f for f, j in self.pending.items() if j.kind != "train"]
        self.client.cancel(drop)
        for f in drop:
            self.pending.pop(f)

    def read_events(self) -> None:
        while True:
            try:
                msg = self.events.get_nowait()
            except queue.Empty:
                return
            if "note" in msg:
                self.bar.note(msg["note"])
            elif (j := self.by_name.get(msg.get("start"))) is not None and j.status == "pending":
                self.bar.start(j)

    def collect(self, fut, job: Job) -> None:
        """A finished (or failed, or cancelled) job's outcome."""
        if fut.status == "error":
            job.status = "failed"
            if self.error is None:
                self.error = fut
            self.begin_stop()
            return
        if fut.status != "finished":  # cancelled
            return
        status, seconds, message = fut.result()
        if status == "stopped":
            job.status = "pending"
            return
        if job.status == "pending" and status != "cached":
            self.bar.start(job)
        if status == "interrupted":
            job.status = "interrupted"
            self.interrupted.append(KeyboardInterrupt(message))
            self.begin_stop()
            return
        job.status, job.seconds = status, seconds
        self.bar.finish(job)

    def follow(self) -> None:
        last = 0.0
        while self.pending:
            self.read_events()
            if self.stop.hit:
                self.begin_stop()
            for fut in [f for f in self.pending if f.done()]:
                self.collect(fut, self.pending.pop(fut))
            now = time.monotonic()
            if self.stopping_since is not None and (now - self.stopping_since > 300 or (
                    now - last >= 1.0 and not self.client.nthreads())):
                break  # no worker left to save anything, or a training that has not saved in 5 min
            time.sleep(0.1)
            if time.monotonic() - last >= 1.0:
                last = time.monotonic()
                self.bar.refresh()
        if self.error is not None:
            self.error.result()  # raises the job's exception, as it was raised on the worker


def _client(scheduler: str | None, workers: int):
    """``(cluster, client, threads, workers)``: a new ``LocalCluster`` of ``workers`` (or
    None) and its client, or a client of the running cluster at ``scheduler``."""
    from distributed import Client
    if scheduler is None:
        cluster = local_cluster(workers)
        return cluster, Client(cluster), worker_threads(workers), workers
    try:
        client = Client(scheduler, timeout="20s")
    except (OSError, ValueError, TypeError) as e:
        raise SchedulerUnreachable(
            f"cannot run the jobs on the Dask scheduler {scheduler!r} (--scheduler or "
            f"${SCHEDULER_ENV}): {e}") from None
    # each machine's workers use their own setting (OMP_NUM_THREADS)
    return None, client, None, max(1, sum(client.nthreads().values()))


def run_on_dask(jobs: dict[str, Job], todo: list[Job], data_dir, options: "DaskOptions",
                stop, interrupted: list) -> None:
    """Run ``todo`` on a new local cluster or the one at ``options.scheduler``."""
    quiet_dask()
    cluster = client = bar = None
    try:
        cluster, client, threads, workers = _client(options.scheduler, options.workers)
        quiet_dask()
        bar = PipelineProgress(todo, workers, options.progress, label=options.label)
        run = DaskRun(client, jobs, todo, data_dir, options.reuse, threads, stop, bar,
                      interrupted)
        run.submit_all()
        run.follow()
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


@dataclass(frozen=True)
class DaskOptions:
    """How :func:`run_on_dask` runs: ``workers`` local processes, or the cluster at
    ``scheduler``; ``progress`` and its ``label``; ``reuse`` finished artifacts."""
    workers: int
    progress: bool
    label: str
    reuse: bool
    scheduler: str | None
