"""The main job end to end: ``probnn report --quick`` writes the HTML report with every figure;
a second run reuses the cache and trains nothing; changed settings are never served stale."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import golden_tables
from conftest import _resolve_data_dir
from probnn import jobs as jb
from probnn import report as rp
from probnn import dask_engine, runner
from probnn.cli import main

GOLDEN, TIMING = golden_tables.GOLDEN, golden_tables.TIMING


@pytest.fixture(scope="module")
def data() -> Path:
    path = _resolve_data_dir()
    if not path.is_dir():
        pytest.skip(f"data folder {path} not found")
    return path


@pytest.fixture(scope="module")
def quick(data, tmp_path_factory):
    """One quick report through the CLI, on a Dask LocalCluster of two worker processes as a
    user runs it, with one torch thread each on any machine (the machine's cores shared out
    would give more on a larger one, and another order of every sum split across threads)."""
    root = tmp_path_factory.mktemp("report")
    out, cache = root / "out", root / "cache"
    capture = pytest.MonkeyPatch()
    capture.setattr(dask_engine, "worker_threads", lambda workers: 1)
    import io
    import sys
    err, std = io.StringIO(), io.StringIO()
    capture.setattr(sys, "stderr", err)
    capture.setattr(sys, "stdout", std)
    try:
        code = main(["report", "--quick", "--data-dir", str(data), "--out", str(out),
                     "--cache-dir", str(cache), "--seed", "309"])
    finally:
        capture.undo()
    return {"code": code, "out": out, "cache": cache, "stderr": err.getvalue(),
            "stdout": std.getvalue()}


@pytest.fixture(scope="module")
def quick_here(data, tmp_path_factory):
    """The same quick report run in this process (``--jobs 1``), from an empty cache of its own,
    with one torch thread as each worker of the cluster has: with two, torch splits its sums
    differently, which moves the last digits (and, through AIS, more than that)."""
    import torch
    root = tmp_path_factory.mktemp("report-here")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        run = rp.make_report(root / "out", data_dir=data, quick=True, seed=309,
                             cache=root / "cache", workers=1, progress=False)
    finally:
        torch.set_num_threads(threads)
    return {"run": run, "out": root / "out"}


def test_quick_report_on_a_local_cluster_equals_the_one_in_this_process(quick, quick_here):
    """The job graph on Dask (two worker processes) computes the same artifacts, bit for bit,
    as one process running the jobs one after the other: every table is equal, timings aside."""
    assert quick["code"] == 0, quick["stderr"][-2000:]
    assert set(quick_here["run"].statuses().values()) <= {"trained", "evaluated"}
    tables = sorted(p.relative_to(quick["out"]) for p in quick["out"].rglob("*.csv"))
    assert len(tables) >= 23
    assert tables == sorted(p.relative_to(quick_here["out"]) for p in quick_here["out"].rglob("*.csv"))
    for rel in tables:
        a, b = (pd.read_csv(run["out"] / rel) for run in (quick, quick_here))
        if rel.name == "provenance.csv":  # when and how long aside: the same jobs, same artifacts
            a, b = a[["job", "status", "artifact", "settings"]], b[["job", "status", "artifact", "settings"]]
        else:
            a, b = (t.drop(columns=[c for c in TIMING if c in t]) for t in (a, b))
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=str(rel))


def test_quick_report_writes_html_with_every_figure(quick):
    assert quick["code"] == 0, quick["stderr"][-3000:]
    index = quick["out"] / "index.html"
    assert quick["stdout"].strip().splitlines()[-1] == f"report: {index.resolve()}"
    html = index.read_text()
    images = re.findall(r"<img src='([^']+)'", html)
    assert len(images) >= 18
    for src in images:
        assert (quick["out"] / src).stat().st_size > 1000, src
    for section in ("regression-a", "regression-b", "regression-seeds", "regression-cures",
                    "regression-bayes",
                    "vae-c", "vae-d", "vae-e", "cvae-f", "bounds", "estimators", "provenance"):
        assert f"id='{section}'" in html, section
    # the theory answers are there, and the generated ones carry measured numbers
    assert "+∞" in html and "p(z | x, y)" in html
    assert re.search(r"By the importance-weighted bound with K=\d+ on the same \d+ held-out images "
                     r"\([^)]*\), the best model is vae-[\w-]+: [\d.]+ ± [\d.]+ nats above", html)


def test_quick_report_tables_hold_finite_numbers(quick):
    out = quick["out"]
    # table -> columns that every row must fill with a finite number (tables that set models
    # side by side leave a cell empty where a model has no such estimate)
    must = {"regression/summary.csv": r"final_loglik|sigma_\w+|lowest_loglik_after_100",
            "regression/cures.csv": r"final_loglik_\w+|lowest_after_100_\w+",
            "regression/seeds.csv": r"final_loglik_\w+|lowest_after_100_\w+",
            "compare/comparison.csv": r"elbo|elbo_mc|reconstruction|kl|iwae_\d+|train_elbo",
            "cvae/cvae-d4-evaluation.csv": r"elbo|elbo_mc|kl|iwae_50",
            "vae/vae-d4-bound-by-digit.csv": r".*",
            "vae/vae-d4-noise-bounds.csv": r".*",
            "bayes/bayes-loo.csv": r"psis_elpd|psis_se|p_loo|elpd|se",
            "bayes/bayes-vi-vs-nuts.csv": r"lppd_per_point|elpd_loo|sigma_\w+|f_band_overlap",
            "estimators/vae-d4-estimators-bias-spread.csv": r"mean|per_image_sd",
            "estimators/objectives.csv": r"holdout_elbo|holdout_iwae"}
    for name, pattern in must.items():
        df = pd.read_csv(out / name, index_col=0)
        cols = [c for c in df.select_dtypes("number") if re.fullmatch(pattern, c)]
        assert cols, name
        assert np.isfinite(df[cols].to_numpy(dtype=float)).all(), (name, df[cols])
        assert not np.isinf(df.select_dtypes("number").drop(
            columns=["sup_loglik_rich_f"], errors="ignore").to_numpy(dtype=float)).any(), name
    # the one infinity in the report is the theory answer: the heteroscedastic supremum
    summary = pd.read_csv(out / "regression/summary.csv", index_col=0)
    assert summary.at["heteroscedastic", "sup_loglik_rich_f"] == np.inf


def test_progress_names_stages_and_eta(quick):
    err = quick["stderr"]
    assert "jobs to run" in err and "ETA" in err
    for job in ("regression-heteroscedastic", "vae-d4", "compare-vae-d20", "evaluate-cvae-d4"):
        assert re.search(rf"{job}: (trained|evaluated) in \d+:\d\d", err), job


def test_second_run_reuses_the_cache_and_trains_nothing(quick, data, tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a cached job ran again")

    monkeypatch.setattr(runner, "execute", refuse)
    before = {p.name: p.stat().st_mtime_ns for p in quick["cache"].iterdir()}
    run = rp.make_report(tmp_path / "again", data_dir=data, quick=True, cache=quick["cache"],
                         workers=1, progress=False)
    assert set(run.statuses().values()) == {"cached"}
    assert {p.name: p.stat().st_mtime_ns for p in quick["cache"].iterdir()} == before
    # the same artifacts give the same numbers
    for name in ("compare/comparison.csv", "regression/summary.csv"):
        a = pd.read_csv(quick["out"] / name, index_col=0).drop(columns="seconds", errors="ignore")
        b = pd.read_csv(tmp_path / "again" / name, index_col=0).drop(columns="seconds", errors="ignore")
        pd.testing.assert_frame_equal(a, b)
    prov = pd.read_csv(tmp_path / "again" / "provenance.csv", index_col=0)
    assert (prov["status"] == "cached").all()
    # what the first run recorded beside each artifact: how long it took to make
    first = pd.read_csv(quick["out"] / "provenance.csv", index_col=0)
    assert (first["status"] != "cached").all()
    assert np.allclose(prov["made_in_seconds"], first["seconds"], atol=0.06)


def test_changed_settings_get_new_artifacts_and_parents_propagate(data, tmp_path):
    from dataclasses import replace

    def placed(**kw):
        jobs = rp.build_jobs(**kw)
        jb.place(jobs, tmp_path, data)
        return {n: j.artifact.name for n, j in jobs.items()}

    quick, other_seed, full = placed(quick=True), placed(quick=True, seed=1), placed(quick=False)
    assert quick == placed(quick=True)  # deterministic
    assert not set(quick.values()) & set(other_seed.values())
    assert not set(quick.values()) & set(full.values())
    # an evaluation's digest depends on its parent's: change only vae-d4's settings
    jobs = rp.build_jobs(quick=True)
    jobs["vae-d4"].config = replace(jobs["vae-d4"].config, epochs=2)
    jb.place(jobs, tmp_path, data)
    names = {n: j.artifact.name for n, j in jobs.items()}
    assert names["figures-vae-d4"] != quick["figures-vae-d4"]
    assert names["compare-vae-d20"] == quick["compare-vae-d20"]


def test_every_question_reads_tasks_the_roster_runs_and_every_task_is_read():
    from probnn.questions import QUESTIONS
    ran = {e.task.__name__.rsplit(".", 1)[-1] for e in rp.ROSTER}
    read = {t for q in QUESTIONS for t in q.tasks}
    assert read == ran - {"vae_training"}  # the trained models are read through their jobs
    assert len({q.folder for q in QUESTIONS}) == len(QUESTIONS)


def test_a_changed_copy_of_the_data_gets_new_artifacts(data, tmp_path):
    """The cache key reads the data files' bytes: one changed MNIST pixel renames every job
    that reads MNIST and none that reads xkcd.csv (and a changed xkcd.csv the reverse)."""
    import shutil

    copy = tmp_path / "data"
    shutil.copytree(data, copy)

    def placed():
        jobs = rp.build_jobs(quick=True)
        jb.place(jobs, tmp_path / "cache", copy)
        return {n: (j.module.DATA, j.artifact.name) for n, j in jobs.items()}

    before = placed()
    images = copy / "MNIST" / "raw" / "t10k-images-idx3-ubyte"
    raw = bytearray(images.read_bytes())
    raw[-1] ^= 1  # the last pixel of the last test image
    images.write_bytes(bytes(raw))
    after = placed()
    assert {n for n in before if before[n] != after[n]} == {
        n for n, (kind, _) in before.items() if kind == "mnist"}
    with open(copy / "xkcd.csv", "a") as f:
        f.write("\n")
    again = placed()
    assert {n for n in after if after[n] != again[n]} == {
        n for n, (kind, _) in after.items() if kind == "xkcd"}


def test_an_interrupted_training_is_resumed(data, tmp_path, one_thread):
    """Bit for bit, with one torch thread throughout (the job trains with one)."""
    from dataclasses import replace

    from probnn.datasets import load_xkcd
    from probnn.inference.regression import fit_ensemble
    job = rp.build_jobs(quick=True)["regression-homoscedastic"]
    job.config = replace(job.config, epochs=160, checkpoint_every=10)
    jobs = {job.name: job}
    jb.place(jobs, tmp_path, data)
    x, y = load_xkcd(data)
    seeds = job.config.member_seeds
    # what Ctrl-C leaves behind: a checkpoint part of the way through (past epoch 100, where
    # the members' dip windows are being kept)
    fit_ensemble("homoscedastic", x, y, epochs=120, seeds=seeds, checkpoint=job.artifact,
                 checkpoint_every=10, progress=False)
    assert not jb.is_complete(job)
    runner.run_jobs(jobs, data, workers=1, progress=False)
    assert job.status == "resumed" and jb.is_complete(job)
    straight = fit_ensemble("homoscedastic", x, y, epochs=160, seeds=seeds, progress=False)
    resumed = jb.load(job, jobs, data)  # read from the checkpoint, not trained again
    np.testing.assert_array_equal(resumed.loglik(), straight.loglik())
    for seed in seeds:
        np.testing.assert_array_equal(resumed.member(seed).f, straight.member(seed).f)
        np.testing.assert_array_equal(resumed.member(seed).sigma, straight.member(seed).sigma)


def test_report_without_data_is_one_clear_error(tmp_path, isolated_cache, capsys, monkeypatch):
    monkeypatch.setattr("probnn.datasets.xkcd._download",
                        lambda url, dest: (_ for _ in ()).throw(OSError("no network")))
    code = main(["report", "--quick", "--data-dir", str(tmp_path / "none"),
                 "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c")])
    assert code == 2
    err = capsys.readouterr().err
    assert "xkcd.csv" in err and "PROBNN_DATA" in err
    assert not (tmp_path / "c").exists()  # nothing started


def test_the_mnist_jobs_compute_on_the_device_and_the_xkcd_jobs_on_the_cpu():
    jobs = rp.build_jobs(quick=True)
    rp.place_on(jobs, "cuda")
    devices = {name: job.device for name, job in jobs.items()}
    on_xkcd = ("regression-homoscedastic", "regression-heteroscedastic", "bayes-homoscedastic",
               "bayes-heteroscedastic")
    assert {devices[n] for n in on_xkcd} == {"cpu"}
    on_mnist = [n for n, j in jobs.items() if j.module.DATA == "mnist"]
    assert len(on_mnist) == len(jobs) - 4 and {devices[n] for n in on_mnist} == {"cuda"}


def test_schedule_starts_the_longest_chain_first():
    def job(name, estimate, needs=()):
        return jb.Job(name, "regression", None, estimate, needs)
    jobs = [job("long", 100), job("gating", 90), job("child", 20, ("gating",)), job("short", 5)]
    assert [j.name for j in runner.schedule(jobs)] == ["gating", "long", "child", "short"]
    # the full report starts the d=4 VAE first: its evaluations wait on it
    full = list(rp.build_jobs(quick=False).values())
    assert runner.schedule(full)[0].name == "vae-d4"


def test_quick_report_numbers_are_the_golden_ones(quick):
    """Every table of the seed-309 quick report against the golden one (tests/golden/README.md):
    exact where the computation is deterministic on any x86-64 CPU, within the quantity's own
    standard error where it comes from a model whose training sums in a CPU-dependent order,
    and by properties (range, consistency with the rest of the report) where the trajectory is
    chaotic (golden_specs.py says which column is which, and why)."""
    assert quick["code"] == 0, quick["stderr"][-2000:]
    assert len(list(GOLDEN.rglob("*.csv"))) == 25
    assert golden_tables.unclassified() == []
    assert golden_tables.compare(quick["out"]) == []


def _planted(quick, tmp_path, rel, change):
    """A copy of the quick report's tables with one of them changed by ``change(frame)``."""
    import shutil
    out = tmp_path / "planted"
    for csv in quick["out"].rglob("*.csv"):
        (out / csv.relative_to(quick["out"])).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(csv, out / csv.relative_to(quick["out"]))
    table = pd.read_csv(out / rel)
    change(table)
    table.to_csv(out / rel, index=False)
    return golden_tables.compare(out)


@pytest.mark.parametrize("rel, change, expected", [
    # a mean over 300 images moved by 5 nats, beyond its standard error (~2.9)
    ("compare/comparison.csv", lambda t: t.__setitem__("elbo", t["elbo"] + 5.0),
     "elbo: 3 values moved beyond standard error"),
    # data and settings are exact
    ("compare/comparison.csv", lambda t: t.__setitem__("images", t["images"] + 1),
     "images: 3 values differ"),
    ("regression/dip_low.csv", lambda t: t.__setitem__("y", t["y"] + 1e-3), "y: 31 values differ"),
    # chaotic numbers are held to the report's own consistency
    ("regression/summary.csv", lambda t: t.__setitem__("final_loglik", t["final_loglik"] - 0.1),
     "final_loglik is not the history's last"),
    ("regression/history_homoscedastic.csv",
     lambda t: t.__setitem__("loglik", t["loglik"].where(t["epoch"] != 50, np.nan)),
     "homoscedastic history: not finite"),
    ("bayes/bayes-pointwise_homoscedastic.csv",
     lambda t: t.__setitem__("psis_elpd_i", t["psis_elpd_i"] - 0.5),
     "homoscedastic psis_elpd != sum of psis_elpd_i"),
    ("bayes/bayes-diagnostics.csv", lambda t: t.__setitem__("rhat_max", 0.5),
     "rhat_max below 0.99"),
    ("cvae/cvae-d4-confusion.csv", lambda t: t.__setitem__("0", t["0"] + 1),
     "confusion total != classify_images"),
    ("vae/vae-d4-bounds.csv", lambda t: t.__setitem__("bound", t["bound"].sample(
        frac=1, random_state=0).to_numpy()), "rank correlation"),
])
def test_the_golden_comparison_catches_a_planted_change(quick, tmp_path, rel, change, expected):
    problems = _planted(quick, tmp_path, rel, change)
    assert any(expected in p for p in problems), problems


def test_the_golden_comparison_lets_a_move_within_its_error_pass(quick, tmp_path):
    """A digit's mean bound moved by a fifth of its standard error (std_bound / sqrt(count))."""
    def move(t):
        t["mean_bound"] += 0.2 * t["std_bound"] / np.sqrt(t["count"])
    assert _planted(quick, tmp_path, "vae/vae-d4-bound-by-digit.csv", move) == []


def _section_text(html: str, section: str) -> str:
    """The text of one report section, tags and tables removed."""
    import html as h
    chunk = html[html.index(f"id='{section}'"):]
    chunk = chunk[:chunk.find("<section", 10)] if "<section" in chunk[10:] else chunk
    chunk = re.sub(r"<table.*?</table>", " ", chunk, flags=re.S)
    return " ".join(h.unescape(re.sub(r"<[^>]+>", " ", chunk)).split())


def test_written_answers_quote_their_own_tables(quick):
    """The numbers of chaotic computations are not compared with the golden ones; the answers
    written from them must still say what their tables hold, and name a winner only beyond
    two standard errors."""
    out = quick["out"]
    html = (out / "index.html").read_text()
    bayes = _section_text(html, "regression-bayes")
    loo = pd.read_csv(out / "bayes/bayes-loo.csv", index_col=0)
    for model, row in loo.iterrows():
        assert f"{model} {row['elpd']:.1f} ± {row['se']:.1f}" in bayes, model
    diff = pd.read_csv(out / "bayes/bayes-loo-difference.csv", index_col=0).loc["corrected"]
    assert f"{diff['difference']:.1f} ± {diff['se']:.1f} nats" in bayes
    assert ("within two standard errors" in bayes) == (abs(diff["z"]) <= 2)
    diag = pd.read_csv(out / "bayes/bayes-diagnostics.csv", index_col=0)
    for model, row in diag.iterrows():
        assert f"R-hat at most {row['rhat_max']:.3f}" in bayes, model
        assert f"{int(row['divergences'])} divergent transitions" in bayes, model
    seeds = _section_text(html, "regression-seeds")
    for run, row in pd.read_csv(out / "regression/seeds.csv", index_col=0).iterrows():
        assert (f"final mean log-likelihood median {row['final_loglik_median']:.3f} (range "
                f"{row['final_loglik_min']:.3f} to {row['final_loglik_max']:.3f})") in seeds, run
        assert f"ends at {row['coursework_seed_final']:.3f}" in seeds, run


def test_wide_tables_scroll_instead_of_running_off_the_page(quick):
    html = (quick["out"] / "index.html").read_text()
    tables = html.count("<table")
    assert tables >= 10 and html.count("<div class='table-wrap'><table") == tables
    assert re.search(r"\.table-wrap \{[^}]*overflow-x: auto", html)
    assert ">NaN<" not in html  # a missing value is an empty cell
    # the conditional VAE's active units are computed (given y), not left empty
    cvae = pd.read_csv(quick["out"] / "cvae" / "cvae-d4-evaluation.csv", index_col=0)
    assert np.isfinite(cvae.loc["cvae-d4", "active_units"])


def test_quick_report_passes_its_invariant_checks(quick):
    """analysis.invariants.check_report over the quick report's own results finds nothing
    (tests/test_invariants.py plants the violations it must find), and question (e)'s gap is
    the paired one on the large-K subset."""
    assert "check failed" not in quick["stderr"]
    assert "check(s) of the numbers failed" not in (quick["out"] / "index.html").read_text()
    t = pd.read_csv(quick["out"] / "compare" / "comparison.csv", index_col="model")
    assert np.isfinite(t[["gap_200", "gap_200_se", "elbo_mc_subset"]].to_numpy()).all()
    assert (t["gap_200_se"] > 0).all()
