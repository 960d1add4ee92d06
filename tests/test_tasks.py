"""One computation per question: each ``probnn`` subcommand and the report's job for the same
question call the same task (:mod:`probnn.tasks`), and give equal results for the same config."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pandas as pd
import pytest
import torch

from probnn import jobs as jb
from probnn import report as rp
from probnn.cli import main
from probnn.tasks import (bayes_regression, bounds, cvae, estimators, holdout, objectives,
                          regression,
                          vae_figures, vae_training)

TIMING = {"seconds", "ms_per_image", "train_seconds", "eval_seconds", "ms_per_leapfrog",
          "refit_seconds"}


def same(a, b, where: str = "result") -> None:
    """``a`` and ``b`` hold equal numbers, field by field (timings and file paths aside)."""
    if dataclasses.is_dataclass(a) and not isinstance(a, type):
        assert type(a) is type(b), where
        for f in dataclasses.fields(a):
            if f.name not in TIMING and f.name != "checkpoint":
                same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, pd.DataFrame):
        drop = [c for c in a.columns if c in TIMING]
        pd.testing.assert_frame_equal(a.drop(columns=drop), b.drop(columns=drop),
                                      check_exact=True, obj=where)
    elif isinstance(a, pd.Series):  # arviz's ELPDData too
        assert list(a.index) == list(b.index), where
        for k in a.index:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, torch.nn.Module):
        same(a.state_dict(), b.state_dict(), where)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        keys = [k for k in a if k not in TIMING]
        assert keys == [k for k in b if k not in TIMING], where
        for k in keys:
            same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]")
    elif isinstance(a, np.ndarray) or hasattr(a, "values") and hasattr(a, "dims"):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=where)
    elif isinstance(a, float):
        assert a == b or (math.isnan(a) and math.isnan(b)), (where, a, b)
    else:
        assert a == b, (where, a, b)


@pytest.fixture
def spy(monkeypatch):
    """``spy(module)`` records every ``module.run(config, inputs, ...)``: (config, result)."""
    def install(module):
        calls, original = [], module.run

        def recorded(config, inputs, **kw):
            result = original(config, inputs, **kw)
            calls.append((config, result))
            return result
        monkeypatch.setattr(module, "run", recorded)
        return calls
    return install


def as_report_job(name: str, config, parents, tmp_path, data_dir):
    """Run ``config`` as the report runs its job ``name`` (same task, the runner's
    :func:`~probnn.jobs.execute`, the artifact read back by :func:`~probnn.jobs.load`)."""
    job = rp.build_jobs(quick=True)[name]
    job = jb.Job(job.name, job.task, config, needs=tuple(f"parent{i}" for i in range(len(parents))))
    job.artifact = tmp_path / f"report-{name}{job.suffix}"
    jobs = {job.name: job}
    for i, p in enumerate(parents):
        jobs[f"parent{i}"] = jb.Job(f"parent{i}", "vae_training", None, artifact=p)
    jb.execute(job, list(parents), data_dir)
    return job, jb.load(job, jobs, data_dir)


def cli(*args) -> None:
    assert main([str(a) for a in args]) == 0


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    from conftest import _resolve_data_dir
    data = _resolve_data_dir()
    if not data.is_dir():
        pytest.skip(f"data folder {data} not found")
    out = tmp_path_factory.mktemp("ckpt")
    for kind in ("vae", "cvae"):
        cli(kind, "train", "--architecture", "mlp", "--latent-dim", 2, "--epochs", 1,
            "--train-images", 200, "--data-dir", data, "--out", out, "--quiet")
    return {"vae": out / "vae-mlp-d2.ckpt", "cvae": out / "cvae-mlp-d2.ckpt"}


# (task, report job, CLI arguments, checkpoint the CLI reads or None)
QUESTIONS = [
    (regression, "regression-heteroscedastic",
     ["regression", "--model", "heteroscedastic", "--epochs", 40, "--checkpoint-every", 20,
      "--sigma-floor", 0.05, "--seed", 3], None),
    (bayes_regression, "bayes-heteroscedastic",
     ["bayes-regression", "--epochs", 5, "--map-steps", 5, "--draws", 10, "--seed", 2,
      "--chains", 2, "--warmup", 4, "--nuts-draws", 4, "--max-tree-depth", 2, "--loo-warmup", 2,
      "--loo-draws", 4, "--loo-max-refits", 1, "--vi-guides", "normal"], None),
    (vae_figures, "figures-vae-d4",
     ["vae", "figures", "--rank-subset", 40, "--rank-k", 10], "vae"),
    (holdout, "compare-vae-d4",
     ["vae", "compare", "--k", 5, "--large-k", 10, "--large-k-images", 10, "--holdout-images",
      50, "--train-images", 50, "--checkpoints"], "vae"),
    (cvae, "evaluate-cvae-d4",
     ["cvae", "figures", "--k", 5, "--large-k", 10, "--large-k-images", 10,
      "--classify-images", 20, "--holdout-images", 40], "cvae"),
    (estimators, "estimators-vae-d4",
     ["estimators", "--holdout-images", 3, "--repeats", 2, "--ks", 1, 10, "--elbo-mc-k", 5,
      "--snr-samples", 3, "--snr-images", 4, "--snr-objectives", "trace", "iwae-2",
      "--no-train", "--checkpoint"], "vae"),
    (bounds, "bounds-cvae-d4",
     ["bounds", "--images", 3, "--iwae-ks", 1, 10, "--pareto-k-at", 10, "--ais-steps", 3,
      "--ais-chains", 2, "--local-steps", 5, "--elbo-samples", 5, "--bdmc-images", 2,
      "--bdmc-steps", 2, 4, "--checkpoint"], "cvae"),
    (objectives, "objectives-vae-mlp-d20-seed0",
     ["objectives", "--objectives", "trace", "iwae-2", "--architecture", "mlp", "--latent-dim", 2,
      "--train-images", 20, "--batch-size", 10, "--eval-k", 5, "--eval-images", 5,
      "--seeds", 2], None),
]


@pytest.mark.parametrize("task, job_name, args, checkpoint", QUESTIONS,
                         ids=[q[1] for q in QUESTIONS])
def test_subcommand_and_report_job_run_the_same_task(task, job_name, args, checkpoint, spy,
                                                     checkpoints, data_dir, tmp_path):
    assert rp.build_jobs()[job_name].module is task  # the report's job for this question
    calls = spy(task)
    parents = [checkpoints[checkpoint]] if checkpoint else []
    extra = ["--checkpoint"] if checkpoint and args[-1] not in ("--checkpoints", "--checkpoint") \
        else []
    cli(*args, *extra, *parents, "--data-dir", data_dir, "--out", tmp_path / "cli", "--quiet")
    assert len(calls) == 1, "the subcommand ran the task once"
    config, from_cli = calls[0]
    assert isinstance(config, task.Config)
    _, from_report = as_report_job(job_name, config, parents, tmp_path, data_dir)
    same(from_cli, from_report)


def test_vae_training_subcommand_and_report_job(spy, data_dir, tmp_path):
    calls = spy(vae_training)
    for name in ("vae-d4", "vae-mlp-d20", "cvae-d4"):
        assert rp.build_jobs()[name].module is vae_training
    cli("cvae", "train", "--architecture", "mlp", "--latent-dim", 2, "--epochs", 1,
        "--train-images", 100, "--batch-size", 50, "--seed", 4, "--data-dir", data_dir,
        "--out", tmp_path, "--quiet")
    (config, from_cli), = calls
    assert config.conditional and config.train_images == 100
    _, from_report = as_report_job("cvae-d4", config, [], tmp_path, data_dir)
    same(from_cli, from_report)


def test_a_notebook_runs_a_task_in_two_lines(checkpoints):
    from probnn.tasks.inputs import Inputs
    est = holdout.run(holdout.Config(k=3, large_k=0, holdout_images=5, train_images=5),
                      Inputs(checkpoints=[checkpoints["vae"]]))
    assert est.name == "vae-mlp-d2" and est.row["images"] == 5 and est.row["iwae_3"] < 0
    assert "unreliable_3" not in est.row  # no Pareto k from 3 weights (it used to crash)


def test_every_roster_entry_names_a_task_with_its_config():
    import importlib
    for job in rp.build_jobs().values():
        module = importlib.import_module(f"probnn.tasks.{job.task}")
        assert isinstance(job.config, module.Config), job.name
        assert module.KIND in ("train", "evaluate") and module.DATA in ("xkcd", "mnist")
        assert (module.KIND == "train") == hasattr(module, "load"), job.name


def test_the_report_s_per_model_bayes_jobs_merge_into_the_two_model_result(data_dir):
    """The report runs one Bayesian-regression job per model; merged, they equal one run of
    both models (the LOO comparison, which needs both, computed by the merge)."""
    from probnn.tasks.inputs import Inputs
    tiny = dict(epochs=5, map_steps=5, draws=10, chains=2, warmup=4, nuts_draws=4,
                max_tree_depth=2, loo_warmup=2, loo_draws=4, loo_max_refits=1,
                vi_guides=("normal",), seed=2)
    inputs = Inputs(data_dir)
    both = bayes_regression.run(bayes_regression.Config(**tiny), inputs)
    parts = [bayes_regression.run(bayes_regression.Config(**tiny, models=(m,)), inputs)
             for m in ("heteroscedastic", "homoscedastic")]
    assert all(p.compare is None for p in parts)
    same(bayes_regression.merge(parts), both)
    with pytest.raises(ValueError, match="different settings"):
        bayes_regression.merge([parts[0], bayes_regression.run(
            bayes_regression.Config(**{**tiny, "seed": 3}, models=("homoscedastic",)), inputs)])


def test_the_report_s_per_seed_objectives_jobs_merge_into_the_all_seeds_result(data_dir):
    """The report runs the objectives study as one job per seed; merged, they equal one run
    over all the seeds (each seed's paired differences are against that seed's best)."""
    from probnn.tasks.inputs import Inputs
    tiny = dict(objectives=("trace", "iwae-2"), architecture="mlp", latent_dim=2,
                train_images=20, batch_size=10, eval_k=5, eval_images=5)
    inputs = Inputs(data_dir)
    both = objectives.run(objectives.Config(**tiny, seeds=2, seed=7), inputs)
    parts = [objectives.run(objectives.Config(**tiny, seeds=1, seed=s), inputs) for s in (7, 8)]
    same(objectives.merge(parts), both)
    jobs = rp.build_jobs()
    split = [j for j in jobs.values() if j.task == "objectives"]
    assert [j.config.seed for j in split] == [jobs["vae-d4"].config.seed + i for i in range(3)]
    assert len([j for j in rp.build_jobs(quick=True).values() if j.task == "objectives"]) == \
        objectives.Config.preset("quick").seeds
