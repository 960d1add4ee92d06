"""Nothing lost, no traceback: resumes that check their data, a cache shared by concurrent
runs, and reports stopped by signals."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from probnn.cli import main


def run(*args) -> int:
    return main([str(a) for a in args])


VAE = ("vae", "train", "--architecture", "mlp", "--latent-dim", 2, "--quiet")


@pytest.mark.parametrize("change, named", [
    (("--train-images", 200), "train_images is 300 in the checkpoint but 200 now"),
    (("--train-images", 300, "--holdout-split", 0.1), "holdout_split is None in the checkpoint but 0.1 now"),
    (("--train-images", 300, "--seed", 5), "seed is 309 in the checkpoint but 5 now"),
    (("--train-images", 300, "--batch-size", 50), "batch_size is 100 in the checkpoint but 50 now"),
    (("--train-images", 300, "--elbo", "meanfield"), "elbo is 'trace' in the checkpoint but 'meanfield' now"),
    (("--train-images", 300, "--lr", 0.01), "lr is 0.001 in the checkpoint but 0.01 now"),
])
def test_vae_resume_names_the_data_setting_that_differs(data_dir, tmp_path, capsys, change, named):
    out = tmp_path / "vae"
    assert run(*VAE, "--epochs", 1, "--train-images", 300, "--data-dir", data_dir, "--out", out) == 0
    before = (out / "vae-mlp-d2.ckpt").read_bytes()
    capsys.readouterr()
    code = run(*VAE, "--epochs", 2, *change, "--resume", "--data-dir", data_dir, "--out", out)
    err = capsys.readouterr().err
    assert code == 2 and named in err and "Traceback" not in err
    assert (out / "vae-mlp-d2.ckpt").read_bytes() == before  # nothing lost


# ----------------------------------------------------------------------------- a shared cache
RUN_TINY_GRAPH = r"""
import json, sys
from probnn.jobs import Job, place
from probnn.runner import run_jobs
from probnn.tasks import bayes_regression, regression
cache, data = sys.argv[1], sys.argv[2]
jobs = {
    "homo": Job("homo", "regression", regression.Config(model="homoscedastic", epochs=3000, checkpoint_every=500), 3),
    "hetero": Job("hetero", "regression", regression.Config(model="heteroscedastic", epochs=3000, checkpoint_every=500), 3),
    "bayes": Job("bayes", "bayes_regression", bayes_regression.Config.preset("quick", epochs=60, draws=30, map_steps=20), 3),
}
from pathlib import Path
place(jobs, Path(cache), data)
run_jobs(jobs, data, workers=int(sys.argv[3]), progress=False)
print(json.dumps({n: j.status for n, j in jobs.items()}))
"""


def _tiny_graph(cache, data_dir, workers=1):
    import subprocess
    import sys
    return subprocess.Popen([sys.executable, "-c", RUN_TINY_GRAPH, str(cache), str(data_dir),
                             str(workers)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _artifacts(cache):
    return sorted(p.name for p in cache.iterdir())


@pytest.mark.parametrize("workers", [1, 2], ids=["in-process", "local-clusters"])
def test_two_runs_on_one_cache_compute_each_artifact_once(data_dir, tmp_path, workers):
    """Two runs started together on one cache both finish; every artifact is computed by one
    of them and reused by the other; a third run is fully cached and gives equal results. On
    Dask, a job whose lock the other run holds waits on its worker (seceded: the worker's
    thread runs other jobs meanwhile)."""
    import json
    cache = tmp_path / "cache"
    procs = [_tiny_graph(cache, data_dir, workers) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err[-3000:]
    statuses = [json.loads(out.strip().splitlines()[-1]) for out, _ in outs]
    for name in ("homo", "hetero", "bayes"):
        made = sorted(s[name] for s in statuses)
        assert made in (["cached", "trained"], ["cached", "evaluated"]), (name, made)
    files = _artifacts(cache)
    assert not [f for f in files if ".tmp" in f or "unreadable" in f], files
    assert len([f for f in files if f.endswith((".ckpt", ".pt"))]) == 3, files
    third = _tiny_graph(cache, data_dir)
    out, err = third.communicate(timeout=120)
    assert third.returncode == 0, err[-3000:]
    assert set(json.loads(out.strip().splitlines()[-1]).values()) == {"cached"}
    assert _artifacts(cache) == files


def test_an_unreadable_artifact_is_set_aside_and_computed_again(data_dir, tmp_path, capsys):
    from probnn.jobs import Job, load, place
    from probnn.runner import run_jobs
    from probnn.tasks import bayes_regression, regression
    jobs = {"homo": Job("homo", "regression", regression.Config(
                model="homoscedastic", epochs=200, checkpoint_every=100), 1),
            "bayes": Job("bayes", "bayes_regression", bayes_regression.Config.preset(
                "quick", epochs=20, draws=10, map_steps=10), 1)}
    place(jobs, tmp_path, data_dir)
    run_jobs(jobs, data_dir, progress=False)
    good = {n: load(j, jobs, data_dir) for n, j in jobs.items()}
    for j in jobs.values():  # what a run killed while writing, or a crafted file, leaves
        j.artifact.write_bytes(j.artifact.read_bytes()[:100])
        j.status, j.result = "pending", None
    capsys.readouterr()
    run_jobs(jobs, data_dir, progress=False)
    err = capsys.readouterr().err
    assert {j.status for j in jobs.values()} == {"trained", "evaluated"}
    assert err.count("could not be read; kept it as") == 2
    assert len(list(tmp_path.glob("*.unreadable-*"))) == 2  # kept, not deleted
    again = {n: load(j, jobs, data_dir) for n, j in jobs.items()}
    assert np.array_equal(again["homo"].loglik(), good["homo"].loglik())
    # the variational fits of these 20-epoch settings may be marked failed (then there is no
    # LOO comparison): the recomputed table says the same as the first, fit for fit
    timing = ["seconds"]
    pd.testing.assert_frame_equal(again["bayes"].vi_vs_nuts.drop(columns=timing),
                                  good["bayes"].vi_vs_nuts.drop(columns=timing))
    assert (again["bayes"].compare is None) == (good["bayes"].compare is None)


# ----------------------------------------------------------------------------- signals
def _children(pid: int) -> list[int]:
    from pathlib import Path
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    from pathlib import Path
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.skipif(not __import__("pathlib").Path("/proc/self/stat").exists(), reason="needs /proc")
@pytest.mark.parametrize("how", ["SIGTERM", "SIGINT-to-parent-only", "SIGKILL"])
def test_a_stopped_run_stops_its_workers_and_they_save(data_dir, tmp_path, how):
    """However the parent is stopped, its worker processes stop (they held ~2 GB each in the
    report). Stopped by a signal, each interrupted training saves a checkpoint (mid-epoch,
    ``batch`` 1: only a stop request writes one there; the periodic ones are at epoch ends).
    Killed outright, the parent cannot ask: Dask's worker processes exit at once when their
    parent dies, and the trainings keep their last periodic checkpoint, which is whole."""
    import signal
    import subprocess
    import sys
    import time

    from probnn.inference.checkpoint import read_checkpoint
    out = tmp_path / "reg"
    ckpts = [out / "homoscedastic.ckpt", out / "heteroscedastic.ckpt"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "probnn.cli", "regression", "--model", "both", "--epochs",
         "200000", "--checkpoint-every", "500", "--data-dir", str(data_dir), "--out", str(out),
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 120
    while not all(p.exists() for p in ckpts):  # both trainings under way
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    workers = [p for p in _children(proc.pid) if "spawn_main" in open(f"/proc/{p}/cmdline").read()]
    assert len(workers) == 2
    proc.send_signal({"SIGTERM": signal.SIGTERM, "SIGINT-to-parent-only": signal.SIGINT,
                      "SIGKILL": signal.SIGKILL}[how])
    _, err = proc.communicate(timeout=60)
    deadline = time.monotonic() + 60
    while any(_alive(w) for w in workers):
        assert time.monotonic() < deadline, f"workers still running after the parent stopped: {workers}"
        time.sleep(0.2)
    if how != "SIGKILL":
        assert proc.returncode == 130, err[-2000:]
        assert "--resume" in err and "Traceback" not in err
    for p in ckpts:
        extra = read_checkpoint(p)["extra"]
        assert 0 < extra["epoch"] < 200000, (p, extra["epoch"])
        assert extra["batch"] == (0 if how == "SIGKILL" else 1), (p, extra["epoch"], extra["batch"])


# ----------------------------------------------------------------------------- diverging data
def test_data_far_from_the_models_scale_is_one_clear_line(data_dir, tmp_path, capsys):
    """x in the thousands: the heteroscedastic maximum-likelihood model's scale underflows at
    the first step (a Pyro traceback before); now one line with the data's scale and a remedy."""
    import pandas as pd
    d = tmp_path / "data"
    d.mkdir()
    xkcd = pd.read_csv(data_dir / "xkcd.csv")
    xkcd.assign(x=xkcd["x"] * 1000).to_csv(d / "xkcd.csv", index=False)
    code = run("regression", "--model", "heteroscedastic", "--epochs", 50, "--data-dir", d,
               "--out", tmp_path / "o", "--quiet")
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "rescale" in err and "epoch 1" in err


# ----------------------------------------------------------------------------- exact resume
def test_regression_resume_with_the_default_jit_is_exact(data_dir, tmp_path):
    """``probnn regression`` compiles its loss by default; a run stopped at epoch 300 and
    resumed to 600 writes the same history, bit for bit, as one run of 600 epochs (the
    compiled losses drifted in the last bits from the resume on)."""
    import pandas as pd
    common = ("--model", "heteroscedastic", "--checkpoint-every", 100, "--data-dir", data_dir,
              "--quiet")
    assert run("regression", "--epochs", 600, "--out", tmp_path / "a", *common) == 0
    assert run("regression", "--epochs", 300, "--out", tmp_path / "b", *common) == 0
    assert run("regression", "--epochs", 600, "--out", tmp_path / "b", "--resume", *common) == 0
    a = pd.read_csv(tmp_path / "a" / "history_heteroscedastic.csv")
    b = pd.read_csv(tmp_path / "b" / "history_heteroscedastic.csv")
    pd.testing.assert_frame_equal(a.drop(columns="seconds"), b.drop(columns="seconds"),
                                  check_exact=True)


def test_sigterm_to_a_one_process_command_saves_and_says_so(data_dir, tmp_path):
    """One model: the fit runs in the command's own process; ``kill`` (SIGTERM) saves it
    mid-epoch like Ctrl-C and the command exits 130 with one line (it died silently)."""
    import signal
    import subprocess
    import sys
    import time

    from probnn.inference.checkpoint import read_checkpoint
    out = tmp_path / "reg"
    proc = subprocess.Popen(
        [sys.executable, "-m", "probnn.cli", "regression", "--model", "homoscedastic", "--epochs",
         "200000", "--checkpoint-every", "500", "--data-dir", str(data_dir), "--out", str(out),
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "homoscedastic.ckpt").exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "--resume" in err and "Traceback" not in err, err[-2000:]
    assert read_checkpoint(out / "homoscedastic.ckpt")["extra"]["batch"] == 1


def test_a_second_training_of_the_same_checkpoint_is_refused(data_dir, tmp_path, capsys):
    from probnn.jobs import ArtifactLock
    out = tmp_path / "vae"
    out.mkdir()
    held = ArtifactLock(out / "vae-mlp-d2.ckpt")  # what a run training it holds
    assert held.acquire()
    try:
        code = run(*VAE, "--epochs", 1, "--train-images", 100, "--data-dir", data_dir, "--out", out)
    finally:
        held.release()
    err = capsys.readouterr().err
    assert code == 2 and "another probnn run is training" in err and "Traceback" not in err
    assert not (out / "vae-mlp-d2.ckpt").exists()
    assert run(*VAE, "--epochs", 1, "--train-images", 100, "--data-dir", data_dir, "--out", out) == 0


@pytest.mark.parametrize("sig", ["SIGINT", "SIGTERM", "SIGHUP"])
def test_a_signal_while_the_command_starts_is_one_line(data_dir, tmp_path, sig):
    """Stopped during the imports, before any work: exit 130 and one line (SIGINT gave a
    KeyboardInterrupt traceback from inside torch's imports, SIGTERM a silent death)."""
    import signal
    import subprocess
    import sys
    import time
    proc = subprocess.Popen(
        [sys.executable, "-m", "probnn.cli", "vae", "train", "--architecture", "mlp",
         "--latent-dim", "2", "--epochs", "1", "--train-images", "100", "--data-dir",
         str(data_dir), "--out", str(tmp_path / "o"), "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(0.3)
    proc.send_signal(getattr(signal, sig))
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    assert err.strip().splitlines() == ["probnn: interrupted"] or "saved to" in err


# ----------------------------------------------------------------------------- altered checkpoints
@pytest.fixture
def tiny_vae(data_dir, tmp_path):
    out = tmp_path / "vae"
    assert run(*VAE, "--epochs", 1, "--train-images", 100, "--data-dir", data_dir, "--out", out) == 0
    return out / "vae-mlp-d2.ckpt"


def _altered(ckpt, change):
    from probnn.inference import serialization
    from probnn.inference.checkpoint import read_checkpoint
    state = read_checkpoint(ckpt)
    change(state)
    path = ckpt.with_name("altered.ckpt")
    serialization.save(state, path)
    return path


def _nan_weight(state):
    name = next(iter(state["model_state"]))
    state["model_state"][name] = state["model_state"][name] * float("nan")


def _int_weight(state):
    name = next(iter(state["guide_state"]))
    state["guide_state"][name] = state["guide_state"][name].long()


@pytest.mark.parametrize("change, named", [
    (_nan_weight, "holds NaN or infinite values"),
    (_int_weight, "not floating point"),
    (lambda s: s["extra"]["history"][0].pop("epoch"), "missing field(s) extra.history[0].epoch"),
    (lambda s: s["extra"]["history"][0].update(loss=float("inf")), "a finite number"),
    (lambda s: s["extra"].update(history=[]), "history has 0 rows but it says 1 epochs are done"),
], ids=["nan-weight", "int-weight", "row-without-epoch", "inf-loss", "history-short"])
@pytest.mark.parametrize("command", ["figures", "compare", "resume"])
def test_an_altered_checkpoint_is_refused_in_one_line(tiny_vae, data_dir, tmp_path, capsys,
                                                     change, named, command):
    """NaN or integer weights gave NaN figures or a torch error deep inside; a history row
    without its epoch a KeyError; a history that does not match the epoch count was resumed.
    Figures and compare read no training position: a short history is only drawn shorter."""
    path = _altered(tiny_vae, change)
    if command == "resume":
        path.replace(tiny_vae)
        path = tiny_vae
        argv = [*VAE, "--epochs", 2, "--train-images", 100, "--resume", "--out", tiny_vae.parent]
    elif command == "figures":
        argv = ["vae", "figures", "--checkpoint", path, "--rank-subset", 20, "--rank-k", 2,
                "--out", tmp_path / "f", "--quiet"]
    else:
        argv = ["vae", "compare", "--checkpoints", path, "--holdout-images", 10, "--k", 2,
                "--large-k", 0, "--train-images", 10, "--out", tmp_path / "c", "--quiet"]
    before = path.read_bytes()
    capsys.readouterr()
    code = run(*argv, "--data-dir", data_dir)
    err = capsys.readouterr().err
    if command != "resume" and "0 rows" in named:
        assert code == 0, err
    else:
        assert code == 2 and named in err and "Traceback" not in err, err
    assert path.read_bytes() == before  # nothing written over it


def test_a_full_disk_is_the_os_error_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    """torch's writer says "[enforce fail at inline_container.cc] unexpected pos" on a full
    disk (seen on a 2 MB tmpfs): the command printed it as an internal error."""
    import errno
    import shutil
    from collections import namedtuple

    from probnn.inference import serialization

    def full(f):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 3803200")
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("U", "total used free")(1, 1, 0))
    with pytest.raises(OSError) as info:
        serialization.write_atomically(tmp_path / "a.pt", full)
    assert info.value.errno == errno.ENOSPC and "no space left" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, named", [
    (b"", "cannot be read as a CSV table"),
    (b"\xd4\x00\xff garbage", "cannot be read as a CSV table"),
    (b'model,elbo,iwae_100\n"vae-d4,1,2\n', "cannot be read as a CSV table"),
    (b"model,a,b\nvae-d4,1,2\n", "is not a comparison table"),
    (b"model,elbo,iwae_100\n", "is not a comparison table"),
    (b"model,elbo,iwae_100\nvae-d4,high,-90\n", "hold values that are not numbers"),
    (b"model," + b",".join(b"iwae_%d" % i for i in range(5000)) + b",elbo\nvae-d4"
     + b",1" * 5001 + b"\n", "is not a comparison table"),
], ids=["empty", "binary", "open-quote", "other-columns", "header-only", "text-values", "wide"])
def test_a_bad_comparison_table_is_refused_before_any_work(tmp_path, capsys, content, named):
    """``cvae figures --compare``: pandas errors were internal errors, other columns were
    silently ignored, and a table of 5,000 columns ran for minutes."""
    table = tmp_path / "comparison.csv"
    table.write_bytes(content)
    ckpt = tmp_path / "cvae.ckpt"
    ckpt.write_bytes(b"checked after the table")
    code = run("cvae", "figures", "--checkpoint", ckpt, "--compare", table, "--out", tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 2 and named in err and err.count("\n") == 1, err


def test_another_jobs_valid_file_in_an_artifacts_place_is_not_used(data_dir, tmp_path, capsys):
    """A finished checkpoint or result copied over another job's (both valid files) was used
    silently under the wrong name; a foreign partial checkpoint stopped every later run."""
    from probnn.jobs import Job, load, place
    from probnn.runner import run_jobs
    from probnn.tasks import bayes_regression, regression

    def jobs():
        reg = {n: Job(n, "regression", regression.Config(model=n, epochs=100,
                                                         checkpoint_every=50), 1)
               for n in ("homoscedastic", "heteroscedastic")}
        bay = {f"bayes-{s}": Job(f"bayes-{s}", "bayes_regression", bayes_regression.Config.preset(
            "quick", epochs=20, draws=10, map_steps=5, seed=s), 1) for s in (1, 2)}
        js = {**reg, **bay}
        place(js, tmp_path, data_dir)
        return js
    first = jobs()
    run_jobs(first, data_dir, progress=False)
    right = {n: load(j, first, data_dir) for n, j in first.items()}
    a = first
    a["heteroscedastic"].artifact.write_bytes(a["homoscedastic"].artifact.read_bytes())
    a["bayes-2"].artifact.write_bytes(a["bayes-1"].artifact.read_bytes())
    capsys.readouterr()
    second = jobs()
    run_jobs(second, data_dir, progress=False)
    err = capsys.readouterr().err
    assert err.count("is not the file this job wrote") == 2, err
    assert second["heteroscedastic"].status == "trained" and second["bayes-2"].status == "evaluated"
    assert {second[n].status for n in ("homoscedastic", "bayes-1")} == {"cached"}
    again = {n: load(j, second, data_dir) for n, j in second.items()}
    assert np.array_equal(again["heteroscedastic"].loglik(), right["heteroscedastic"].loglik())
    assert again["bayes-2"].compare.table["elpd_loo"].equals(right["bayes-2"].compare.table["elpd_loo"])
    # a foreign partial checkpoint: set aside, trained from the start
    for j in second.values():
        j.status = "pending"
    from probnn.datasets import load_xkcd
    from probnn.inference.regression import fit_regression
    x, y = load_xkcd(data_dir)
    het = second["heteroscedastic"]
    het.artifact.unlink()
    fit_regression("homoscedastic", x, y, epochs=50, checkpoint=het.artifact, progress=False)
    capsys.readouterr()
    run_jobs({"heteroscedastic": het}, data_dir, progress=False)
    assert "cannot continue" in capsys.readouterr().err and het.status == "trained"
    assert np.array_equal(load(het, second, data_dir).loglik(), right["heteroscedastic"].loglik())


@pytest.mark.parametrize("argv, option", [
    (["vae", "compare", "--checkpoints", "m.ckpt", "--k", "1000000000"], "--k"),
    (["vae", "compare", "--checkpoints", "m.ckpt", "--large-k", "1000000000000"], "--large-k"),
    (["vae", "figures", "--checkpoint", "m.ckpt", "--rank-k", "1000000000"], "--rank-k"),
    (["bounds", "--checkpoint", "m.ckpt", "--bdmc-images", "1000000000"], "--bdmc-images"),
    (["bounds", "--checkpoint", "m.ckpt", "--ais-steps", "1000000000000"], "--ais-steps"),
    (["bounds", "--checkpoint", "m.ckpt", "--iwae-ks", "1", "1000000000000"], "--iwae-ks"),
    (["bayes-regression", "--draws", "1000000000"], "--draws"),
    (["bayes-regression", "--particles", "1000000"], "--particles"),
    (["regression", "--epochs", "1000000000000"], "--epochs"),
    (["estimators", "--checkpoint", "m.ckpt", "--repeats", "1000000000"], "--repeats"),
    (["estimators", "--checkpoint", "m.ckpt", "--snr-objectives", "iwae-1000000000"],
     "--snr-objectives"),
    (["objectives", "--seeds", "1000000000"], "--seeds"),
    (["vae", "train", "--latent-dim", "1000000000"], "--latent-dim"),
    (["report", "--jobs", "1000"], "--jobs"),  # a process of ~2 GB each
])
def test_sizes_that_would_run_for_hours_or_fill_memory_are_refused(argv, option, capsys):
    """A mistyped 10**9 ran for hours (vae compare --k) or was killed for 22 GB of memory
    (bounds --bdmc-images); each size now has a generous upper bound."""
    with pytest.raises(SystemExit) as info:
        run(*argv)
    err = capsys.readouterr().err
    assert info.value.code == 2 and f"argument {option}: must be" in err and err.count("\n") == 1


def test_outputs_are_replaced_only_once_all_are_written(tmp_path):
    """A run whose publishing failed half-way had already replaced some of the previous
    outputs (comparison.csv new, the rest old)."""
    import pandas as pd

    from probnn.analysis.outputs import Section, Table, save
    old = Section("s", "S", "?", tables=[Table("a", pd.DataFrame({"v": [1]}), index=False),
                                         Table("b", pd.DataFrame({"v": [1]}), index=False)])
    save(old, tmp_path)
    new = Section("s", "S", "?", tables=[Table("a", pd.DataFrame({"v": [2]}), index=False),
                                         Table("b", pd.DataFrame({"v": [2]}), index=False)])
    (tmp_path / "s.md").mkdir()  # the summary cannot be written over a folder
    with pytest.raises(OSError):
        save(new, tmp_path, "s.md")
    assert [pd.read_csv(tmp_path / f)["v"][0] for f in ("a.csv", "b.csv")] == [1, 1]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "s.md"]
    (tmp_path / "s.md").rmdir()
    save(new, tmp_path, "s.md")
    assert [pd.read_csv(tmp_path / f)["v"][0] for f in ("a.csv", "b.csv")] == [2, 2]


def test_a_stale_processed_folder_is_not_read_instead_of_the_checked_raw_files(data_dir, tmp_path):
    """torchvision's MNIST prefers MNIST/processed/*.pt over raw/: float images or 100 labels
    for 60,000 images trained silently from there, past every check of the raw files."""
    import torch

    from probnn.datasets import load_mnist
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for f in (data_dir / "MNIST" / "raw").iterdir():
        if not f.name.endswith(".gz"):
            (raw / f.name).symlink_to(f)
    processed = tmp_path / "MNIST" / "processed"
    processed.mkdir()
    for name, n in (("training.pt", 60000), ("test.pt", 10000)):
        torch.save((torch.rand(n, 28, 28), torch.full((100,), 200)), processed / name)
    x, y = load_mnist(tmp_path, train=True, download=False)
    assert x.shape == (60000, 1, 28, 28) and y.shape == (60000,) and int(y.max()) == 9


@pytest.mark.parametrize("option", ["--out", "--data-dir"])
def test_an_empty_folder_option_is_refused(option, capsys):
    """``--out ''`` silently wrote to the default folder."""
    with pytest.raises(SystemExit) as info:
        run("regression", option, "")
    assert info.value.code == 2 and f"argument {option}: must name a folder" in capsys.readouterr().err


def test_a_folder_where_the_checkpoint_goes_is_refused_before_training(data_dir, tmp_path, capsys):
    """--force trained, then failed to rename over the folder, leaving .new files."""
    out = tmp_path / "vae"
    (out / "vae-mlp-d2.ckpt").mkdir(parents=True)
    code = run(*VAE, "--epochs", 1, "--train-images", 100, "--force", "--data-dir", data_dir,
               "--out", out)
    assert code == 2 and "is in the way" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["vae-mlp-d2.ckpt"]


def test_a_folder_in_an_artifacts_place_is_moved_aside(data_dir, tmp_path, capsys):
    from probnn.jobs import Job, place
    from probnn.runner import run_jobs
    from probnn.tasks import bayes_regression
    jobs = {"b": Job("b", "bayes_regression", bayes_regression.Config.preset(
        "quick", epochs=20, draws=10, map_steps=5), 1)}
    place(jobs, tmp_path, data_dir)
    jobs["b"].artifact.mkdir()
    run_jobs(jobs, data_dir, progress=False)
    assert jobs["b"].status == "evaluated" and jobs["b"].artifact.is_file()
    assert "could not be read; kept it as" in capsys.readouterr().err
