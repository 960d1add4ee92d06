"""Speed of the main job, ``probnn report``, against references measured in the same run.

1. Workers: the quick report from an empty cache in this process (``--jobs 1``, two torch
   threads) against the default: the job graph on a Dask ``LocalCluster`` of two worker
   processes, one thread each. Goal: the cluster no slower.
2. Cache: the same report again with every artifact cached, against the fresh run. Goal:
   the cached run within 20 s (it only loads results and renders the HTML; no cluster is
   started when every artifact is cached).
3. Dask's own cost: starting a ``LocalCluster`` of two worker processes, running one
   trivial task on each and closing it, as the runner does (:func:`probnn.runner.local_cluster`).

Each report is a fresh ``probnn report`` process, timed from start to exit.

    python benchmarks/report_speed.py [--full]   # --full: the full report (goal <= 10 minutes)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed_report(out: Path, cache: Path, quick: bool, jobs: int | None) -> float:
    cmd = [sys.executable, "-m", "probnn.cli", "report", "--out", str(out), "--cache-dir",
           str(cache), "--quiet"] + (["--quick"] if quick else []) + (
        ["--jobs", str(jobs)] if jobs else [])
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t0


def dask_overhead(workers: int = 2) -> tuple[float, float, float]:
    """Seconds to start a LocalCluster and connect, to run a first task on every worker
    (importing probnn and torch there), and to close it."""
    from distributed import Client

    from probnn.runner import local_cluster, quiet_dask
    quiet_dask()
    t0 = time.perf_counter()
    cluster = local_cluster(workers)
    client = Client(cluster)
    t1 = time.perf_counter()
    client.run(lambda: __import__("probnn.runner") and None)
    t2 = time.perf_counter()
    client.close()
    cluster.close()
    return t1 - t0, t2 - t1, time.perf_counter() - t2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="time the full report (skips the 1-process run)")
    args = ap.parse_args()
    quick = not args.full
    start, first, close = dask_overhead()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        if quick:
            one = timed_report(tmp / "one", tmp / "cache-one", quick, jobs=1)
            rows.append(("fresh, this process (--jobs 1)", one))
        two = timed_report(tmp / "two", tmp / "cache-two", quick, jobs=None)
        rows.append(("fresh, LocalCluster of 2 workers", two))
        cached = timed_report(tmp / "again", tmp / "cache-two", quick, jobs=None)
        rows.append(("cached (no cluster started)", cached))
    mode = "quick" if quick else "full"
    print(f"probnn report ({mode}):")
    for name, seconds in rows:
        print(f"  {name:34s} {seconds:7.1f} s")
    if quick:
        print(f"  cluster speed-up (1 process / 2 workers): {one / two:.2f}x (goal >= 1)")
    else:
        print(f"  fresh full report: {two / 60:.1f} min (goal <= 10 min)")
    print(f"  cached / fresh: {cached / two:.3f} (cached run {cached:.1f} s; goal <= 20 s)")
    print(f"  Dask LocalCluster(2): start {start:.1f} s, first task on each worker {first:.1f} s, "
          f"close {close:.1f} s ({(start + first + close) / two:.1%} of the fresh run)")


if __name__ == "__main__":
    main()
