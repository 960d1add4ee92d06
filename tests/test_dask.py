"""The job graph on Dask distributed: an existing cluster given by its address runs the jobs
(parents first) to the same artifacts as this process; a job's error reaches the command as
itself; a scheduler that cannot be reached is one line."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from probnn.cli import main
from probnn.jobs import Job, load, place
from probnn.runner import SchedulerUnreachable, run_jobs


def _graph():
    from probnn.tasks import regression, vae_figures, vae_training
    return {
        "homo": Job("homo", "regression", regression.Config(
            model="homoscedastic", epochs=300, checkpoint_every=100), 1),
        "vae": Job("vae", "vae_training", vae_training.Config(
            latent_dim=2, architecture="mlp", epochs=1, batch_size=100, train_images=300), 2),
        "figures": Job("figures", "vae_figures", vae_figures.Config(rank_subset=100, rank_k=5),
                       1, ("vae",)),
    }


def test_jobs_run_on_a_cluster_given_by_its_address_as_in_this_process(data_dir, tmp_path,
                                                                      one_thread):
    """Bit for bit: both sides sum with one torch thread (the cluster's worker has one, as
    Dask's nanny sets OMP_NUM_THREADS=1; this process is set to one by ``one_thread``), so the
    same kernels run in the same order. With two threads here, torch splits some sums
    differently on some CPUs, which moved IWAE bounds by up to 3e-4 nats."""
    from distributed import LocalCluster
    here = _graph()
    place(here, tmp_path / "here", data_dir)
    run_jobs(here, data_dir, workers=1, progress=False)
    # someone's cluster: a scheduler and one worker process, running before the command
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None,
                      scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
                      silence_logs=logging.CRITICAL) as cluster:
        there = _graph()
        place(there, tmp_path / "there", data_dir)
        run_jobs(there, data_dir, progress=False, scheduler=cluster.scheduler_address)
        assert {n: j.status for n, j in there.items()} == {
            "homo": "trained", "vae": "trained", "figures": "evaluated"}
        assert cluster.scheduler_address and len(cluster.workers) == 1  # still up for the next
    for name in here:
        assert here[name].artifact.name == there[name].artifact.name
    a, b = load(here["homo"], here, data_dir), load(there["homo"], there, data_dir)
    np.testing.assert_array_equal(a.loglik(), b.loglik())
    a, b = load(here["figures"], here, data_dir), load(there["figures"], there, data_dir)
    np.testing.assert_array_equal(a.rank_bounds, b.rank_bounds)


def test_a_jobs_error_on_a_worker_is_raised_as_itself(data_dir, tmp_path, capsys):
    """A job that fails on a worker process (here: a malformed data file) raises its own error
    in the command, which prints it as one line; Dask's log of it is not shown."""
    from probnn.datasets import DataFormatError
    from probnn.tasks import regression
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "xkcd.csv").write_text("x,y\n1,oops\n")
    jobs = {n: Job(n, "regression", regression.Config(model=n, epochs=300, checkpoint_every=100), 1)
            for n in ("homoscedastic", "heteroscedastic")}
    place(jobs, tmp_path / "cache", data_dir)
    with pytest.raises(DataFormatError, match="non-numeric value 'oops'"):
        run_jobs(jobs, bad, workers=2, progress=False)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "distributed" not in err, err


def test_a_scheduler_that_cannot_be_reached_is_one_line(data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PROBNN_SCHEDULER", "no-such-address")
    code = main(["report", "--quick", "--data-dir", str(data_dir), "--out", str(tmp_path / "o"),
                 "--cache-dir", str(tmp_path / "c"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1, err
    assert "cannot run the jobs on the Dask scheduler 'no-such-address'" in err
    with pytest.raises(SchedulerUnreachable):
        run_jobs(_placed(tmp_path / "d", data_dir), data_dir, scheduler="tcp://127.0.0.1:1:2")


def _placed(cache, data_dir):
    jobs = _graph()
    place(jobs, cache, data_dir)
    return jobs
