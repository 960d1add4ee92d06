"""Two quick reports started together on one cache folder, then a third (issue 10).

What must hold: both concurrent runs finish (exit 0); the cache holds one copy of each
artifact (no temporary, unreadable or lock files left); every job was computed by exactly one
of the two runs (the other waited for it and reused it); the third run is fully cached; and
all three wrote the same tables. Before the per-artifact locks, both runs wrote the same
fixed ``<artifact>.tmp``: the loser's rename failed and left a half-written file on which
every later report failed.

Also printed: the wall time of the pair against one quick report alone, measured in the same
run (with 2 workers each on 2 cores, the pair shares the machine: about 1x is the goal, since
each job is computed once).

    python benchmarks/concurrent_reports.py [--seed 309]
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

TIMING = ("seconds", "ms_per_image", "train_seconds", "eval_seconds", "made_in_seconds", "status", "made")


def report(out: Path, cache: Path, seed: int) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "probnn.cli", "report", "--quick", "--seed", str(seed), "--out",
         str(out), "--cache-dir", str(cache), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(procs: list[subprocess.Popen]) -> float:
    t0 = time.perf_counter()
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            sys.exit(f"a report failed (exit {p.returncode}):\n{err[-3000:]}")
    return time.perf_counter() - t0


def tables(out: Path) -> dict[str, pd.DataFrame]:
    return {str(p.relative_to(out)): pd.read_csv(p).drop(columns=list(TIMING), errors="ignore")
            for p in sorted(out.rglob("*.csv")) if p.name != "provenance.csv"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=309)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        finish([report(tmp / "alone", tmp / "cache-alone", args.seed)])
        alone = time.perf_counter() - t0
        t0 = time.perf_counter()
        finish([report(tmp / "a", tmp / "cache", args.seed), report(tmp / "b", tmp / "cache", args.seed)])
        pair = time.perf_counter() - t0
        t0 = time.perf_counter()
        finish([report(tmp / "c", tmp / "cache", args.seed)])
        third = time.perf_counter() - t0

        files = sorted(p.name for p in (tmp / "cache").iterdir())
        stray = [f for f in files if f.endswith((".tmp", ".lock")) or ".unreadable-" in f]
        artifacts = [f for f in files if f.endswith((".ckpt", ".pt"))]
        expected = len([f for f in (tmp / "cache-alone").iterdir() if f.name.endswith((".ckpt", ".pt"))])
        prov = {r: pd.read_csv(tmp / r / "provenance.csv", index_col=0)["status"] for r in "abc"}
        made_twice = [j for j in prov["a"].index if "cached" not in (prov["a"][j], prov["b"][j])]
        made_by = {r: int((prov[r] != "cached").sum()) for r in "ab"}
        same = all(tables(tmp / r).keys() == tables(tmp / "alone").keys() and all(
            t.equals(tables(tmp / "alone")[k]) for k, t in tables(tmp / r).items()) for r in "abc")

        print(f"one quick report alone:         {alone:6.1f} s")
        print(f"two started together (wall):    {pair:6.1f} s  ({pair / alone:.2f}x one alone)")
        print(f"jobs computed by run a / run b: {made_by['a']} / {made_by['b']} "
              f"(of {len(prov['a'])}); computed by both: {made_twice or 'none'}")
        print(f"third run:                      {third:6.1f} s, statuses {sorted(set(prov['c']))}")
        print(f"cache: {len(artifacts)} artifacts (one run alone makes {expected}), "
              f"stray files: {stray or 'none'}")
        print(f"tables of runs a, b, c equal to the run alone (timings aside): {same}")
        ok = (not stray and len(artifacts) == expected and not made_twice
              and set(prov["c"]) == {"cached"} and same)
        print("PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
