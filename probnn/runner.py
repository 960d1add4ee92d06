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
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path

import torch

from probnn.inference.train import handling

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


def schedule(jobs: list[Job]) -> list[Job]:
    """Jobs in the order to start them: the longest chain of work first (a job's estimate
    plus its dependants'), so trainings that gate evaluations are not left to the end."""
    chain = {j.name: j.estimate + sum(c.estimate for c in jobs if j.name in c.needs) for j in jobs}
    return sorted(jobs, key=lambda j: -chain[j.name])


class JobBusy(RuntimeError):
    """Another run holds the lock of an artifact this run must recompute (not reuse)."""


class _Inline:
    """The executor of ``workers=1``: runs each job in this process when it is submitted and
    returns a finished future, so that one scheduling loop serves both cases."""

    def submit(self, fn, *args) -> Future:
        fut = Future()
        try:
            fut.set_result(fn(*args))
        except BaseException as e:  # KeyboardInterrupt included: the loop decides
            fut.set_exception(e)
        return fut

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


class _Stop:
    """How this run is being stopped: SIGINT, SIGTERM or SIGHUP while jobs run.

    In-process (one worker) a signal raises KeyboardInterrupt where the run is, as Ctrl-C
    does; a training catches it itself (:func:`probnn.inference.train.fit`) and saves. With
    worker processes, the workers sit in their own process groups (a terminal's Ctrl-C reaches
    this process only) and this process forwards one SIGINT to each: every training saves
    its checkpoint, every job stops, and the run then raises :class:`Interrupted`. So any way
    of stopping the run (Ctrl-C, ``kill``, ``kill -INT`` of this process alone, a closed
    terminal) stops its workers and saves; if this process is killed outright, the workers get
    SIGTERM from the kernel (``PR_SET_PDEATHSIG``) and save too.
    """
    SIGNALS = tuple(getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))

    def __init__(self, pool: bool):
        self.pool, self.hit = pool, 0
        self._handling = handling(self.SIGNALS, self._handle)

    def __enter__(self):
        self._handling.__enter__()
        return self

    def _handle(self, signum, frame):
        self.hit += 1
        if not self.pool:
            raise KeyboardInterrupt
        self.forward()

    @staticmethod
    def forward() -> None:
        """Ask every worker to stop (a training saves first)."""
        import multiprocessing as mp
        for child in mp.active_children():  # the pool's workers
            try:
                os.kill(child.pid, signal.SIGINT)
            except ProcessLookupError:
                pass

    def __exit__(self, *exc):
        return self._handling.__exit__(*exc)


_busy = False      # in a worker process: whether a job is running
_stopping = False  # in a worker process: a stop request arrived while it was idle
_parent = 0        # in a worker process: the pid of the run that started it


def _orphaned() -> bool:
    return os.getppid() != _parent


def _worker_signal(signum, frame):
    global _stopping
    if _busy:  # as Ctrl-C: a training saves its checkpoint, any other job stops
        raise KeyboardInterrupt
    if signum == signal.SIGTERM and _orphaned():  # idle and orphaned: go quietly
        os._exit(0)
    _stopping = True  # idle (or still starting): the job it is about to get must not start


def _worker_init(threads: int) -> None:
    global _parent
    _parent = os.getppid()
    torch.set_num_threads(threads)
    os.setpgrp()  # out of the terminal's process group: the parent forwards Ctrl-C once
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _worker_signal)
    try:  # Linux: if the parent is killed outright, stop (and save) rather than run on
        import ctypes
        ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    # signals were blocked from the spawn on (see _submit): deliver the ones that came since
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _Stop.SIGNALS)


def _in_worker(job: Job, parents: list[Path], data_dir):
    global _busy
    if _stopping:
        raise KeyboardInterrupt
    _busy = True
    try:
        return execute(job, parents, data_dir)
    finally:
        _busy = False
        if _orphaned():
            # the run was killed (the kernel's SIGTERM stopped this job, which saved): nobody
            # reads a result, and the pool's pipes, held open by the other workers, would
            # keep this process waiting for work forever
            os._exit(0)


def _submit(pool, *args) -> Future:
    """``pool.submit(*args)`` with the stop signals blocked: a worker process it spawns starts
    with them blocked (the mask survives fork and exec) until :func:`_worker_init` has its
    handlers in place, so a signal forwarded while a worker is still importing is not a
    KeyboardInterrupt traceback that breaks the pool."""
    if isinstance(pool, _Inline):
        return pool.submit(*args)
    old = signal.pthread_sigmask(signal.SIG_BLOCK, _Stop.SIGNALS)
    try:
        return pool.submit(*args)
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_jobs(jobs: dict[str, Job], data_dir=None, workers: int = 1, progress: bool = True, *,
             reuse: bool = True, label: str = "report", hint: str | None = None) -> None:
    """Run every job, parents first, in ``workers`` processes (one torch thread each on a
    2-core machine; in this process when ``workers`` is 1). With ``reuse`` a job whose
    artifact is complete is marked cached and skipped, and an unreadable one is set aside
    (:func:`~probnn.jobs.set_aside`) and computed again.

    Runs may share a cache: each job is computed under its artifact's lock
    (:class:`~probnn.jobs.ArtifactLock`); a job another run is computing waits for it and is
    then reused (without ``reuse``, :class:`JobBusy` is raised instead). Ctrl-C, SIGTERM or
    SIGHUP raise :class:`Interrupted` once every worker has saved, saying ``hint`` (how to go
    on; default: run the same command again).
    """
    for job in jobs.values():
        job.artifact.parent.mkdir(parents=True, exist_ok=True)
        if reuse and artifact_state(job) == "complete":
            job.status = "cached"
    todo = [j for j in jobs.values() if j.status != "cached"]
    if not todo:
        return
    bar = PipelineProgress(todo, workers, progress, label=label)
    todo = schedule(todo)
    locks: dict[str, ArtifactLock] = {}
    waiting: set[str] = set()

    def ready(j: Job) -> bool:
        return j.status == "pending" and all(
            jobs[n].status in ("cached", "trained", "resumed") for n in j.needs)

    def claim(j: Job) -> bool:
        """Lock j's artifact for this run; False if another run holds it. Under the lock, an
        artifact another run finished meanwhile is reused, an unreadable one set aside."""
        lock = ArtifactLock(j.artifact)
        if not lock.acquire():
            if not reuse:
                raise JobBusy(f"another probnn run is writing {j.artifact}; wait for it to "
                              "finish, or use another output folder")
            if j.name not in waiting:
                waiting.add(j.name)
                bar.note(f"  {j.name}: another run is computing it; waiting to reuse it")
            return False
        state = artifact_state(j) if reuse else "missing"
        if state == "complete":
            lock.release()
            j.status = "cached"
            bar.finish(j)
            return False
        if state in ("unreadable", "foreign"):
            aside = set_aside(j)
            why = ("could not be read" if state == "unreadable" else
                   "is not the file this job wrote (its digest differs from the job's record)")
            bar.note(f"  {j.name}: {j.artifact.name} {why}; kept it as {aside.name} and "
                     "computing it again")
        locks[j.name] = lock
        return True

    def release(j: Job) -> None:
        if (lock := locks.pop(j.name, None)) is not None:
            lock.release()

    threads = max(1, (os.cpu_count() or 1) // workers)
    interrupted: list[BaseException] = []
    try:
        with _Stop(pool=workers > 1) as stop, _executor(workers, threads) as pool:
            running: dict[Future, Job] = {}
            try:
                while True:
                    while len(running) < workers and not stop.hit and not interrupted and (
                            nxt := next((j for j in todo if ready(j) and claim(j)), None)):
                        bar.start(nxt)
                        running[_submit(pool, execute if workers <= 1 else _in_worker, nxt,
                                        [jobs[n].artifact for n in nxt.needs], data_dir)] = nxt
                    if not running:
                        if stop.hit or interrupted or not any(ready(j) for j in todo):
                            break
                        time.sleep(1.0)  # every ready job is another run's: poll its lock
                        bar.refresh()
                        continue
                    done, _ = wait(running, timeout=1.0, return_when=FIRST_COMPLETED)
                    for fut in done:
                        job = running.pop(fut)
                        release(job)
                        try:
                            job.status, job.seconds = fut.result()
                        except KeyboardInterrupt as e:  # TrainingInterrupted: it saved
                            job.status = "interrupted"
                            interrupted.append(e)
                            continue
                        except BaseException:
                            job.status = "failed"
                            if running and workers > 1:  # the others save and stop, not run on
                                stop.forward()
                            raise
                        bar.finish(job)
                    bar.refresh()
            except KeyboardInterrupt as e:  # in-process: the signal arrived between jobs
                interrupted.append(e)
            finally:
                for j in list(running.values()):
                    release(j)
                for name in list(locks):
                    locks.pop(name).release()
            if stop.hit and not interrupted:
                interrupted.append(KeyboardInterrupt())
    finally:
        bar.close()
    if interrupted:
        raise (Interrupted(hint) if hint else Interrupted()) from interrupted[0]
    stuck = [j.name for j in todo if j.status == "pending"]
    if stuck:
        raise RuntimeError(f"jobs never became ready: {stuck}")


def _executor(workers: int, threads: int):
    if workers <= 1:
        return _Inline()
    import multiprocessing as mp
    return ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"),
                               initializer=_worker_init, initargs=(threads,))
