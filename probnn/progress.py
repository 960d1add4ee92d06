"""The progress of a run of jobs: one status line for all of them, and the order to start
them in (the longest chain of work first)."""
from __future__ import annotations

import sys
import time

from .jobs import Job


def fmt_seconds(s: float) -> str:
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
            self._line(f"{label}: {len(jobs)} jobs to run in {where}, estimated {fmt_seconds(self.total / workers)} "
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
                f"{', '.join(running) or '-'} | elapsed {fmt_seconds(time.monotonic() - self.t0)}"
                f" | ETA {fmt_seconds(eta) if eta is not None else '?'}")

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
            self._line(f"  {job.name}: {job.status} in {fmt_seconds(job.seconds)}"
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
