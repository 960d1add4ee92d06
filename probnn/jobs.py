"""Jobs and their content-addressed cache.

A :class:`Job` is one run of a task (:mod:`probnn.tasks`) with a config: a *train* task's
artifact is its training checkpoint, an *evaluate* task's artifact is its result, saved with
:func:`probnn.inference.serialization.save` (read back without unpickling). In a cache folder
every artifact is named by a digest of everything that determines it: the task, its config,
the digests of the jobs it reads, the data files the task reads (``xkcd.csv``, or the four
raw MNIST files),
:data:`CACHE_VERSION` and the task module's ``VERSION`` where it sets one (bumped when that
task alone computes something new, so the other tasks' artifacts stay valid). So an artifact that exists is reused, a changed setting makes a new
file (the old one stays), and an interrupted training leaves a checkpoint that the next run
resumes (exactly, see :func:`probnn.inference.train.fit`).
"""
from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from probnn.inference import serialization
from probnn.tasks.inputs import Inputs

try:
    import fcntl
except ImportError:  # Windows: no cross-process locks
    fcntl = None

CACHE_VERSION = 3
"""Bump when a change to the code changes what a job computes from the same settings, or
how its artifact is stored.
2: configs are the tasks' dataclasses: same numbers, new digests.
3: artifacts are written without pickle (:mod:`probnn.inference.serialization`; checkpoint
format 2): the older, pickled ones are never read."""


@dataclass
class Job:
    """One task run: ``probnn.tasks.<task>.run(config, inputs)`` makes ``artifact``, reading
    the artifacts (checkpoints) of the jobs named in ``needs``."""
    name: str
    task: str                      # a module of probnn.tasks, e.g. "holdout"
    config: Any                    # that module's Config
    estimate: float = 1.0          # seconds on an idle 2-core machine, for ordering and the ETA
    needs: tuple[str, ...] = ()
    artifact: Path | None = None
    digest: str = ""
    resume: bool = True            # train jobs: continue an existing checkpoint
    device: str = "cpu"            # where the worker computes it (not part of the digest);
    #                                "auto": the worker's GPU if it has one, else its CPU
    status: str = "pending"        # then: cached, trained, resumed, evaluated, failed, interrupted
    seconds: float = 0.0
    result: Any = field(default=None, repr=False, compare=False)  # a cached result, once loaded

    @property
    def module(self):
        return importlib.import_module(f"probnn.tasks.{self.task}")

    @property
    def kind(self) -> str:
        return self.module.KIND

    @property
    def suffix(self) -> str:
        return ".ckpt" if self.kind == "train" else ".pt"

    def settings(self) -> dict[str, Any]:
        return dataclasses.asdict(self.config)


def digest(payload: dict) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12]


def file_digest(path: Path, length: int = 12) -> str:
    """The SHA-256 of a file's bytes (read in blocks), its first ``length`` hex digits."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            h.update(block)
    return h.hexdigest()[:length]


def data_digest(kind: str, data_dir=None) -> str:
    """A digest of the bytes of the data files a task of ``DATA = kind`` reads: ``xkcd.csv``,
    or the four raw MNIST files, so a changed copy of the data makes new artifacts."""
    from probnn.datasets import find_xkcd, mnist_files
    files = (find_xkcd(data_dir),) if kind == "xkcd" else mnist_files(data_dir)
    return digest({f.name: file_digest(f) for f in files})


def place(jobs: dict[str, Job], cache: Path, data_dir=None) -> None:
    """Give every job its digest and artifact path in ``cache`` (parents before children)."""
    data: dict[str, str] = {}

    def visit(job: Job) -> str:
        if not job.digest:
            parents = [visit(jobs[n]) for n in job.needs]
            payload = {"version": CACHE_VERSION, "name": job.name, "task": job.task,
                       "config": job.settings(), "parents": parents}
            if getattr(job.module, "VERSION", 0):  # a task's own version, where it has one
                payload["task_version"] = job.module.VERSION
            kind = job.module.DATA
            if kind not in data:
                data[kind] = data_digest(kind, data_dir)
            payload["data"] = data[kind]
            job.digest = digest(payload)
            job.artifact = cache / f"{job.name}-{job.digest}{job.suffix}"
        return job.digest
    for job in jobs.values():
        visit(job)


class ArtifactLock:
    """An exclusive lock on one artifact, held by the run computing it (``<artifact>.lock``,
    there only while it is held).

    ``fcntl.flock`` locks belong to the open file: the operating system releases them when the
    holder exits, however it exits (even killed), so a lock is never left stale. Two reports on
    one cache therefore compute each artifact once: the second waits for the first's lock, then
    finds the artifact finished. Where ``fcntl`` is missing (Windows) runs do not lock.
    """

    def __init__(self, artifact: Path):
        self.path = artifact.with_name(artifact.name + ".lock")
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Take the lock if no other process holds it; never blocks."""
        if fcntl is None:
            return True
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the holder before us may have removed the file between our open and our lock:
            # then we hold a lock nobody else can see; count it as busy and try again later
            if os.fstat(fd).st_ino != os.stat(self.path).st_ino:
                raise BlockingIOError
        except (BlockingIOError, FileNotFoundError):
            os.close(fd)
            return False
        self._fd = fd
        return True

    def release(self) -> None:
        """Remove the lock file (still holding it, so no one locks a removed file) and unlock."""
        if self._fd is not None:
            self.path.unlink(missing_ok=True)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


def artifact_state(job: Job) -> str:
    """``missing``; ``complete`` (a result that loads, or a checkpoint at its last epoch);
    ``partial`` (a readable training checkpoint part of the way: resumed); or ``unreadable``
    (truncated, foreign or crafted: see :func:`set_aside`). A result that loads is kept on
    the job, so the report does not read it twice."""
    from probnn.inference.checkpoint import CheckpointError, read_checkpoint
    if job.artifact is None or not job.artifact.exists():
        return "missing"
    if not job.artifact.is_file():  # a folder or a pipe in its place: moved aside too
        return "unreadable"
    if job.kind != "train":
        try:
            result = load_result(job.artifact)
        except Exception:  # whatever is wrong with the file, it is recomputed
            return "unreadable"
        if not _as_recorded(job):
            return "foreign"
        job.result = result
        return "complete"
    try:
        extra = read_checkpoint(job.artifact)["extra"]
    except CheckpointError:
        return "unreadable"
    done = extra.get("epoch") == job.config.epochs and extra.get("batch") == 0
    if done and not _as_recorded(job):
        return "foreign"
    return "complete" if done else "partial"


def _as_recorded(job: Job) -> bool:
    """Whether the finished artifact is the very file its job wrote: the digest of its bytes
    equals the one in the record written beside it. A valid file of another job copied in its
    place (or a record lost) would otherwise be used silently, under this job's name."""
    return read_record(job).get("sha256") == file_digest(job.artifact, 64)


def is_complete(job: Job) -> bool:
    """Whether the job's artifact exists and is finished (a checkpoint at its last epoch)."""
    return artifact_state(job) == "complete"


def set_aside(job: Job) -> Path:
    """Rename an unreadable artifact to ``<artifact>.unreadable-<time>`` (kept for inspection,
    never deleted) so that the job is computed afresh; return the new name."""
    aside = job.artifact.with_name(
        f"{job.artifact.name}.unreadable-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}")
    os.replace(job.artifact, aside)
    return aside


def save_result(obj, path: Path) -> None:
    """Write an evaluate job's result atomically (a half-written result never looks finished),
    without pickle: see :mod:`probnn.inference.serialization`."""
    serialization.save(obj, path)


def load_result(path: Path):
    """The result :func:`save_result` wrote, read with ``weights_only=True``; raises
    :class:`~probnn.inference.serialization.UnreadableFile` when the file is not one."""
    return serialization.load(path)


def record_path(job: Job) -> Path:
    return job.artifact.with_name(job.artifact.name + ".json")


def read_record(job: Job) -> dict:
    """What the run that made the artifact recorded: status, seconds, when, threads."""
    try:
        return json.loads(record_path(job).read_text())
    except (OSError, ValueError):
        return {}


def worker_device(device: str) -> str:
    """``device`` as the process that runs a job sees it: ``"auto"`` is resolved there, so on a
    cluster whose workers differ each job uses the GPU of the worker it lands on, if any."""
    if device != "auto":
        return device
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def execute(job: Job, parents: list[Path], data_dir) -> tuple[str, float]:
    """Run the job's task and write its artifact (and a record beside it); return the status
    and seconds. Runs in a worker process or in this one."""
    from probnn.inference.checkpoint import CheckpointError
    t0 = time.perf_counter()
    inputs = Inputs(data_dir, tuple(parents), worker_device(job.device))
    if job.kind == "train":
        resumed = job.resume and job.artifact.is_file()
        try:
            job.module.run(job.config, inputs, checkpoint=job.artifact, resume=job.resume)
        except CheckpointError as e:
            if not (resumed and str(job.artifact) in str(e)):
                raise
            # its partial checkpoint cannot be continued (another model's, other settings):
            # kept aside, and the training starts afresh
            aside = set_aside(job)
            print(f"  {job.name}: cannot continue {job.artifact.name} ({e}); kept it as "
                  f"{aside.name} and training from the start", file=sys.stderr)
            job.module.run(job.config, inputs, checkpoint=job.artifact, resume=False)
            resumed = False
        status = "resumed" if resumed else "trained"
    else:
        save_result(job.module.run(job.config, inputs), job.artifact)
        status = "evaluated"
    seconds = time.perf_counter() - t0
    # beside the artifact, so a run that reuses it can still say what it cost
    record = json.dumps(
        {"job": job.name, "task": job.task, "status": status, "seconds": round(seconds, 1),
         "finished": time.strftime("%Y-%m-%d %H:%M:%S"), "torch_threads": torch.get_num_threads(),
         "config": job.settings(), "sha256": file_digest(job.artifact, 64)}, default=str, indent=1)
    serialization.write_atomically(record_path(job), lambda f: f.write(record.encode()))
    return status, seconds


def load(job: Job, jobs: dict[str, Job], data_dir=None):
    """The job's result from its finished artifact, without running it: the task's ``load``
    for a checkpoint, the saved object otherwise."""
    if job.kind == "train":
        parents = tuple(jobs[n].artifact for n in job.needs)
        return job.module.load(job.config, Inputs(data_dir, parents), job.artifact)
    return job.result if job.result is not None else load_result(job.artifact)


class JobBusy(RuntimeError):
    """Another run holds the lock of an artifact this run must recompute (not reuse)."""


OK = ("cached", "trained", "resumed", "evaluated")
"""The statuses of a job whose artifact is there for its dependants."""


def take(job: Job, reuse: bool) -> tuple[str, ArtifactLock | None, str | None]:
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


def waiting_note(job: Job) -> str:
    return f"  {job.name}: another run is computing it; waiting to reuse it"
