"""Running jobs: parents first, longest chain of work first, on Dask distributed workers (a
``LocalCluster`` of worker processes on this machine, or an existing cluster) or in this
process, with one progress line for all of them and Ctrl-C that lets every training save its
checkpoint.

The one runner of the project: ``probnn report`` runs its job graph with it, and
``probnn regression`` its two fits.

On Dask, every job is one task (``_job_on_worker``) whose arguments include its parents'
futures, so the scheduler starts it once they are done; its priority is the length of the
chain of work it starts (:func:`chains`), so trainings that gate evaluations go first. A
worker runs :func:`~probnn.jobs.execute` under the artifact's lock and writes the artifact to
the cache folder, which every worker must be able to read and write (on several machines: a
shared file system); the client reads the artifacts from there. Workers tell the client when
a job starts (and any note) through the scheduler's event log, which drives the progress line.
"""
from __future__ import annotations

import logging
import os
import queue
import signal
import sys
import time
import uuid
from pathlib import Path

import torch

from probnn.inference.train import handling, stop_requests

from .jobs import ArtifactLock, Job, artifact_state, execute, set_aside


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
            where = "this process" if workers <= 1 else f"{workers} worker processes"
            self._line(f"{label}: {len(jobs)} jobs to run in {where}, estimated {_fmt_seconds(self.total / workers)} "
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

    def note(self, text: str) -> None:
        """A line that matters even with progress off (e.g. a cache file set aside)."""
        self._line(text)
        self.refresh()

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


def chains(jobs: list[Job]) -> dict[str, float]:
    """Each job's chain of work: its estimate plus its dependants' (seconds)."""
    return {j.name: j.estimate + sum(c.estimate for c in jobs if j.name in c.needs) for j in jobs}


def schedule(jobs: list[Job]) -> list[Job]:
    """Jobs in the order to start them: the longest chain of work first (a job's estimate
    plus its dependants'), so trainings that gate evaluations are not left to the end."""
    chain = chains(jobs)
    return sorted(jobs, key=lambda j: -chain[j.name])


class JobBusy(RuntimeError):
    """Another run holds the lock of an artifact this run must recompute (not reuse)."""


class SchedulerUnreachable(RuntimeError):
    """The Dask scheduler given to run the jobs on cannot be reached (or is no address)."""


SCHEDULER_ENV = "PROBNN_SCHEDULER"
"""The environment variable naming a running Dask scheduler (``tcp://host:8786``) to run the
report's jobs on, as ``probnn report --scheduler`` does."""

OK = ("cached", "trained", "resumed", "evaluated")
STOP_SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))


def _take(job: Job, reuse: bool) -> tuple[str, ArtifactLock | None, str | None]:
    """Lock ``job``'s artifact for this run: ``("busy", None, None)`` if another run holds it
    (:class:`JobBusy` without ``reuse``); ``("cached", None, None)`` if, under the lock, it
    finds the artifact finished by another run meanwhile; else ``("claimed", lock, note)``,
    where an unreadable or foreign artifact was set aside and ``note`` says so."""
    lock = ArtifactLock(job.artifact)
    if not lock.acquire():
        if not reuse:
            raise JobBusy(f"another probnn run is writing {job.artifact}; wait for it to "
                          "finish, or use another output folder")
        return "busy", None, None
    state = artifact_state(job) if reuse else "missing"
    if state == "complete":
        lock.release()
        return "cached", None, None
    note = None
    if state in ("unreadable", "foreign"):
        aside = set_aside(job)
        why = ("could not be read" if state == "unreadable" else
               "is not the file this job wrote (its digest differs from the job's record)")
        note = (f"  {job.name}: {job.artifact.name} {why}; kept it as {aside.name} and "
                "computing it again")
    return "claimed", lock, note


def _waiting(job: Job) -> str:
    return f"  {job.name}: another run is computing it; waiting to reuse it"


class _Stop:
    """How this run is being stopped: SIGINT, SIGTERM or SIGHUP while jobs run.

    In this process (``workers=1``) a signal raises KeyboardInterrupt where the run is, as
    Ctrl-C does; a training catches it itself (:func:`probnn.inference.train.fit`) and saves.
    On Dask the signal only counts (``hit``): the run loop then sets the run's stop event,
    which every training polls (:func:`probnn.inference.train.stop_requests`), saves and stops
    on; it cancels the jobs not started and waits for the trainings to save. Worker processes
    of a ``LocalCluster`` ignore a terminal's Ctrl-C and SIGHUP (:func:`local_cluster`), so a
    stop always goes through this one path.
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
    then reused (without ``reuse``, :class:`JobBusy` is raised instead). Ctrl-C, SIGTERM or
    SIGHUP raise :class:`Interrupted` once every running training has saved, saying ``hint``
    (how to go on; default: run the same command again).
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
        with _Stop(inline=scheduler is None and workers <= 1) as stop:
            if scheduler is None and workers <= 1:
                bar = PipelineProgress(todo, 1, progress, label=label)
                _run_here(jobs, schedule(todo), data_dir, bar, reuse, interrupted)
            else:
                _run_on_dask(jobs, todo, data_dir, workers, progress, label, reuse, scheduler,
                             stop, interrupted)
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
        state, lock, note = _take(j, reuse)
        if state == "busy" and j.name not in waiting:
            waiting.add(j.name)
            bar.note(_waiting(j))
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


# ----------------------------------------------------------------------------- on Dask
def _stop_name(run: str) -> str:
    return f"probnn-stop-{run}"


def _topic(run: str) -> str:
    return f"probnn-{run}"


def _job_on_worker(job: Job, parents: list[Path], data_dir, reuse: bool, run: str,
                   threads: int | None, *parent_outcomes) -> tuple[str, float, str]:
    """One job on a Dask worker: ``(status, seconds, message)``. Never raises
    KeyboardInterrupt (which would take the worker down): an interrupted training is the
    status ``interrupted`` with its message, a job not started because the run stops (or a
    parent did not finish) ``stopped``. Errors propagate as they are (the client re-raises them)."""
    from distributed import Event, get_worker, rejoin, secede
    worker = get_worker()
    stop = Event(_stop_name(run))
    if stop.is_set() or any(o[0] not in OK for o in parent_outcomes):
        return "stopped", 0.0, ""
    if threads:
        torch.set_num_threads(threads)
    state, lock, note = _take(job, reuse)
    if state == "busy":
        # another run (maybe on another cluster) computes it: leave this worker's thread to
        # other jobs while waiting for the lock, then reuse what that run wrote
        worker.log_event(_topic(run), {"note": _waiting(job)})
        secede()
        try:
            while state == "busy":
                if stop.is_set():
                    return "stopped", 0.0, ""
                time.sleep(1.0)
                state, lock, note = _take(job, reuse)
        finally:
            rejoin()
    if state == "cached":
        return "cached", 0.0, ""
    try:
        if note:
            worker.log_event(_topic(run), {"note": note})
        worker.log_event(_topic(run), {"start": job.name})
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
    reaches every process of its group, but only this one must act on it (see ``_Stop``).
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


def _run_on_dask(jobs: dict[str, Job], todo: list[Job], data_dir, workers: int,
                 progress: bool, label: str, reuse: bool, scheduler: str | None, stop: _Stop,
                 interrupted: list) -> None:
    from distributed import Client, Event
    quiet_dask()
    cluster = None
    client = None
    bar = None
    try:
        if scheduler is None:
            cluster = local_cluster(workers)
            client = Client(cluster)
            threads = worker_threads(workers)
        else:
            try:
                client = Client(scheduler, timeout="20s")
            except (OSError, ValueError, TypeError) as e:
                raise SchedulerUnreachable(
                    f"cannot run the jobs on the Dask scheduler {scheduler!r} (--scheduler or "
                    f"${SCHEDULER_ENV}): {e}") from None
            threads = None  # each machine's workers use their own setting (OMP_NUM_THREADS)
            workers = max(1, sum(client.nthreads().values()))
        quiet_dask()
        bar = PipelineProgress(todo, workers, progress, label=label)
        run = uuid.uuid4().hex[:12]
        stop_event = Event(_stop_name(run), client=client)
        events: queue.SimpleQueue = queue.SimpleQueue()
        client.subscribe_topic(_topic(run), lambda event: events.put(event[1]))
        _drive(client, jobs, todo, data_dir, reuse, run, threads, stop, stop_event, events, bar,
               interrupted)
    finally:
        if bar is not None:
            bar.close()
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()


def _drive(client, jobs, todo, data_dir, reuse, run, threads, stop, stop_event, events, bar,
           interrupted) -> None:
    """Submit every job with its parents' futures and its priority, then follow them: the
    progress line, errors and stop requests."""
    # Keys share their prefix up to the run id ("probnn-<run>-<job>-<digest>"): Dask counts
    # them as one group, larger than the cluster, so its scheduler queues them and hands them
    # to workers as they free up, highest priority (longest chain) first, instead of
    # assigning them all at once to workers that would then run them in their own order.
    # Submitted longest chain first, so those handed out before the group is large are the
    # first ones anyway.
    by_name = {j.name: j for j in todo}
    chain = chains(todo)
    futures: dict[str, object] = {}

    def submit(j: Job):
        if j.name not in futures:
            parents = [submit(by_name[n]) for n in j.needs if n in by_name]
            futures[j.name] = client.submit(
                _job_on_worker, j, [jobs[n].artifact for n in j.needs], data_dir, reuse, run,
                threads, *parents, key=f"probnn-{run}-{j.name}-{j.digest}",
                priority=round(chain[j.name] * 10), pure=False)
        return futures[j.name]

    for j in schedule(todo):
        submit(j)
    pending = {futures[j.name]: j for j in todo}
    error = None
    stopping_since = None

    def begin_stop():
        """Every training saves and stops; what has not started never will."""
        nonlocal stopping_since
        if stopping_since is not None:
            return
        stopping_since = time.monotonic()
        stop_event.set()
        # a training is asked through the event and waited for: a running one saves, one not
        # started yet returns at once when it reaches a worker (so a training that has started
        # but whose start has not reached us yet is not killed unsaved). Other jobs are
        # cancelled: a running evaluation is abandoned (its worker process is closed with the
        # cluster; on someone's cluster it finishes and writes its artifact, for the next run)
        drop = [f for f, j in pending.items() if j.kind != "train"]
        client.cancel(drop)
        for f in drop:
            pending.pop(f)

    last = 0.0
    while pending:
        while True:
            try:
                msg = events.get_nowait()
            except queue.Empty:
                break
            if "note" in msg:
                bar.note(msg["note"])
            elif (j := by_name.get(msg.get("start"))) is not None and j.status == "pending":
                bar.start(j)
        if stop.hit:
            begin_stop()
        for fut in [f for f in pending if f.done()]:
            job = pending.pop(fut)
            if fut.status == "error":
                job.status = "failed"
                if error is None:
                    error = fut
                begin_stop()
                continue
            if fut.status != "finished":  # cancelled
                continue
            status, seconds, message = fut.result()
            if status == "stopped":
                job.status = "pending"
                continue
            if job.status == "pending" and status != "cached":
                bar.start(job)
            if status == "interrupted":
                job.status = "interrupted"
                interrupted.append(KeyboardInterrupt(message))
                begin_stop()
                continue
            job.status, job.seconds = status, seconds
            bar.finish(job)
        if stopping_since is not None and (time.monotonic() - stopping_since > 300 or (
                time.monotonic() - last >= 1.0 and not client.nthreads())):
            break  # no worker left to save anything, or a training that has not saved in 5 min
        time.sleep(0.1)
        if time.monotonic() - last >= 1.0:
            last = time.monotonic()
            bar.refresh()
    if error is not None:
        error.result()  # raises the job's exception, as it was raised on the worker
