"""Speed of the main job, ``probnn report``, against references measured in the same run.

1. Workers: the quick report from an empty cache in one process (two torch threads) against
   the default two worker processes (one thread each). Goal: two workers no slower.
2. Cache: the same report again with every artifact cached, against the fresh run. Goal:
   the cached run well under a minute (it only loads results and renders the HTML).

Each run is a fresh ``probnn report`` process, timed from start to exit.

    python benchmarks/report_speed.py [--full]   # --full: the full report (about 25 minutes)
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="time the full report (skips the 1-worker run)")
    args = ap.parse_args()
    quick = not args.full
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        if quick:
            one = timed_report(tmp / "one", tmp / "cache-one", quick, jobs=1)
            rows.append(("fresh, 1 process (2 threads)", one))
        two = timed_report(tmp / "two", tmp / "cache-two", quick, jobs=None)
        rows.append(("fresh, 2 worker processes", two))
        cached = timed_report(tmp / "again", tmp / "cache-two", quick, jobs=None)
        rows.append(("cached, 2 worker processes", cached))
    mode = "quick" if quick else "full"
    print(f"probnn report ({mode}):")
    for name, seconds in rows:
        print(f"  {name:32s} {seconds:7.1f} s")
    if quick:
        print(f"  workers speed-up (1 process / 2 workers): {one / two:.2f}x (goal >= 1)")
    print(f"  cached / fresh: {cached / two:.3f} (cached run {cached:.0f} s; goal < 60 s)")


if __name__ == "__main__":
    main()
