"""Bad input at the edge: every numeric option and every task config has a range, refused
before any work with one line and exit status 2; --out is checked first; one overwrite rule
(--resume / --force, the old checkpoint replaced only once the new training has finished);
an unexpected error is one line too (--debug shows the traceback)."""
from __future__ import annotations

import pytest

from probnn.cli import UsageError, main
from probnn.tasks import (bayes_regression, bounds, cvae, estimators, holdout, objectives,
                          regression, vae_figures, vae_training)
from probnn.tasks.validation import ConfigError

CKPT = "model.ckpt"  # the commands below fail before reading it
VT = ["vae", "train", "--architecture", "mlp", "--latent-dim", "2"]
BAD_OPTIONS = [
    (["regression", "--epochs", "0"], "--epochs"),
    (["regression", "--epochs", "-5"], "--epochs"),
    (["regression", "--epochs", "1.5"], "--epochs"),
    (["regression", "--checkpoint-every", "0"], "--checkpoint-every"),
    (["regression", "--lr", "-1"], "--lr"),
    (["regression", "--lr", "0"], "--lr"),
    (["regression", "--lr", "nan"], "--lr"),
    (["regression", "--lr", "inf"], "--lr"),
    (["regression", "--seed", "-1"], "--seed"),
    (["regression", "--seed", str(2**32)], "--seed"),
    (["regression", "--sigma-floor", "-0.1"], "--sigma-floor"),
    (["regression", "--beta-nll", "1.5"], "--beta-nll"),
    (["regression", "--beta-nll", "-0.5"], "--beta-nll"),
    (["bayes-regression", "--epochs", "0"], "--epochs"),
    (["bayes-regression", "--draws", "0"], "--draws"),
    (["bayes-regression", "--draws", "1"], "--draws"),
    (["bayes-regression", "--particles", "0"], "--particles"),
    (["bayes-regression", "--prior-scale", "0"], "--prior-scale"),
    (["bayes-regression", "--prior-scale", "-1"], "--prior-scale"),
    (["bayes-regression", "--lr", "-0.1"], "--lr"),
    (["bayes-regression", "--map-steps", "-1"], "--map-steps"),
    (["bayes-regression", "--sampler", "hmc"], "--sampler"),
    (["bayes-regression", "--chains", "0"], "--chains"),
    (["bayes-regression", "--chains", "17"], "--chains"),
    (["bayes-regression", "--warmup", "0"], "--warmup"),
    (["bayes-regression", "--nuts-draws", "3"], "--nuts-draws"),
    (["bayes-regression", "--loo-draws", "3"], "--loo-draws"),
    (["bayes-regression", "--max-tree-depth", "13"], "--max-tree-depth"),
    (["bayes-regression", "--loo-max-refits", "-1"], "--loo-max-refits"),
    (VT + ["--epochs", "0"], "--epochs"),
    (VT + ["--batch-size", "0"], "--batch-size"),
    (VT + ["--latent-dim", "0"], "--latent-dim"),
    (VT + ["--particles", "0"], "--particles"),
    (VT + ["--lr", "-1"], "--lr"),
    (VT + ["--train-images", "0"], "--train-images"),
    (VT + ["--train-images", "-5"], "--train-images"),
    (VT + ["--holdout-split", "0"], "--holdout-split"),
    (VT + ["--holdout-split", "1"], "--holdout-split"),
    (VT + ["--holdout-split", "1.5"], "--holdout-split"),
    (VT + ["--seed", "-1"], "--seed"),
    (["cvae", "train", "--epochs", "0"], "--epochs"),
    (["vae", "figures", "--checkpoint", CKPT, "--rank-k", "0"], "--rank-k"),
    (["vae", "figures", "--checkpoint", CKPT, "--rank-subset", "-3"], "--rank-subset"),
    (["vae", "compare", "--checkpoints", CKPT, "--k", "0"], "--k"),
    (["vae", "compare", "--checkpoints", CKPT, "--large-k", "-1"], "--large-k"),
    (["vae", "compare", "--checkpoints", CKPT, "--large-k-images", "0"], "--large-k-images"),
    (["vae", "compare", "--checkpoints", CKPT, "--holdout-images", "0"], "--holdout-images"),
    (["vae", "compare", "--checkpoints", CKPT, "--train-images", "0"], "--train-images"),
    (["vae", "compare", "--checkpoints", CKPT, "--holdout-split", "2"], "--holdout-split"),
    (["cvae", "figures", "--checkpoint", CKPT, "--classify-images", "0"], "--classify-images"),
    (["bounds", "--checkpoint", CKPT, "--images", "0"], "--images"),
    (["bounds", "--checkpoint", CKPT, "--iwae-ks", "10", "0"], "--iwae-ks"),
    (["bounds", "--checkpoint", CKPT, "--iwae-ks"], "--iwae-ks"),
    (["bounds", "--checkpoint", CKPT, "--ais-steps", "0"], "--ais-steps"),
    (["bounds", "--checkpoint", CKPT, "--ais-chains", "0"], "--ais-chains"),
    (["bounds", "--checkpoint", CKPT, "--local-steps", "0"], "--local-steps"),
    (["bounds", "--checkpoint", CKPT, "--elbo-samples", "0"], "--elbo-samples"),
    (["bounds", "--checkpoint", CKPT, "--bdmc-images", "-1"], "--bdmc-images"),
    (["bounds", "--checkpoint", CKPT, "--bdmc-steps", "0"], "--bdmc-steps"),
    (["report", "--jobs", "0"], "--jobs"),
    (["report", "--seed", "-1"], "--seed"),
    (["estimators", "--checkpoint", CKPT, "--ks", "0"], "--ks"),
    (["estimators", "--checkpoint", CKPT, "--repeats", "1"], "--repeats"),
    (["estimators", "--checkpoint", CKPT, "--snr-objectives", "iwae-0"], "--snr-objectives"),
    (["estimators", "--checkpoint", CKPT, "--snr-objectives", "foo"], "--snr-objectives"),
    (["estimators", "--checkpoint", CKPT, "--snr-objectives"], "--snr-objectives"),
    (["estimators", "--checkpoint", CKPT, "--train-objectives", "trace", "iwae-x"],
     "--train-objectives"),
    (["estimators", "--checkpoint", CKPT, "--snr-samples", "1"], "--snr-samples"),
    (["estimators", "--checkpoint", CKPT, "--epochs", "0"], "--epochs"),
    (["estimators", "--checkpoint", CKPT, "--batch-size", "0"], "--batch-size"),
    (["estimators", "--checkpoint", CKPT, "--seeds", "0"], "--seeds"),
    (["estimators", "--checkpoint", CKPT, "--eval-k", "0"], "--eval-k"),
    (["estimators", "--checkpoint", CKPT, "--elbo-mc-k", "-1"], "--elbo-mc-k"),
    (["objectives", "--objectives", "iwae-0"], "--objectives"),
    (["objectives", "--objectives", "dreg-iwae-"], "--objectives"),
    (["objectives", "--latent-dim", "0"], "--latent-dim"),
    (["objectives", "--seeds", "0"], "--seeds"),
    (["objectives", "--eval-images", "0"], "--eval-images"),
    (["objectives", "--seed", str(2**32)], "--seed"),
    (VT + ["--device", "gpu"], "--device"),
    (["vae", "compare", "--checkpoints", CKPT, "--device", "cuda:x"], "--device"),
    (["bounds", "--checkpoint", CKPT, "--device", ""], "--device"),
]

# every command that computes with a model takes --device (and refuses one this machine lacks)
DEVICE_COMMANDS = [VT, ["cvae", "train"], ["vae", "figures", "--checkpoint", CKPT],
                   ["vae", "compare", "--checkpoints", CKPT],
                   ["cvae", "figures", "--checkpoint", CKPT], ["bounds", "--checkpoint", CKPT],
                   ["estimators", "--checkpoint", CKPT], ["objectives"], ["report"], ["regression"]]


@pytest.mark.parametrize("argv,option", BAD_OPTIONS, ids=[" ".join(a) for a, _ in BAD_OPTIONS])
def test_a_bad_option_is_one_usage_line(argv, option, tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv + ["--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert e.value.code == 2
    assert "Traceback" not in err and f"argument {option}" in err, err
    assert not (tmp_path / "out").exists()  # refused before anything was made


BAD_CONFIGS = [
    (regression.Config, dict(epochs=0), "epochs"),
    (regression.Config, dict(lr=float("nan")), "lr"),
    (regression.Config, dict(checkpoint_every=0), "checkpoint_every"),
    (regression.Config, dict(beta=1.5), "beta"),
    (regression.Config, dict(sigma_floor=-1.0), "sigma_floor"),
    (regression.Config, dict(seed=-1), "seed"),
    (regression.Config, dict(model="linear"), "model"),
    (regression.Config, dict(model="homoscedastic", beta=0.5), "heteroscedastic model only"),
    (bayes_regression.Config, dict(draws=1), "draws"),
    (bayes_regression.Config, dict(num_particles=0), "num_particles"),
    (bayes_regression.Config, dict(prior_scale=0.0), "prior_scale"),
    (bayes_regression.Config, dict(map_steps=-1), "map_steps"),
    (vae_training.Config, dict(epochs=0), "epochs"),
    (vae_training.Config, dict(epochs=2.5), "epochs"),
    (vae_training.Config, dict(latent_dim=0), "latent_dim"),
    (vae_training.Config, dict(batch_size=0), "batch_size"),
    (vae_training.Config, dict(num_particles=0), "num_particles"),
    (vae_training.Config, dict(lr=-1e-3), "lr"),
    (vae_training.Config, dict(train_images=0), "train_images"),
    (vae_training.Config, dict(holdout_split=0.0), "holdout_split"),
    (vae_training.Config, dict(elbo="foo"), "elbo"),
    (vae_training.Config, dict(seed=2**32), "seed"),
    (vae_figures.Config, dict(rank_k=0), "rank_k"),
    (vae_figures.Config, dict(rank_subset=0), "rank_subset"),
    (holdout.Config, dict(k=0), "k"),
    (holdout.Config, dict(large_k=-1), "large_k"),
    (holdout.Config, dict(holdout_images=0), "holdout_images"),
    (cvae.Config, dict(classify_images=0), "classify_images"),
    (cvae.Config, dict(holdout_split=1.0), "holdout_split"),
    (bounds.Config, dict(images=0), "images"),
    (bounds.Config, dict(iwae_ks=()), "iwae_ks"),
    (bounds.Config, dict(iwae_ks=(10, 0)), "iwae_ks"),
    (bounds.Config, dict(pareto_k_at=7), "pareto_k_at"),
    (bounds.Config, dict(ais_steps=0), "ais_steps"),
    (bounds.Config, dict(bdmc_images=-1), "bdmc_images"),
    (bounds.Config, dict(bdmc_steps=(0,)), "bdmc_steps"),
    (estimators.Config, dict(repeats=1), "repeats"),
    (estimators.Config, dict(ks=()), "ks"),
    (estimators.Config, dict(snr_objectives=("iwae-0",)), "snr_objectives"),
    (estimators.Config, dict(train_objectives=("foo",)), "train_objectives"),
    (estimators.Config, dict(snr_samples=1), "snr_samples"),
    (objectives.Config, dict(objectives=()), "objectives"),
    (objectives.Config, dict(objectives=("iwae-x",)), "objectives"),
    (objectives.Config, dict(seeds=0), "seeds"),
    (objectives.Config, dict(architecture="resnet"), "architecture"),
]


@pytest.mark.parametrize("cls,kwargs,field", BAD_CONFIGS,
                         ids=[f"{c.__module__.rsplit('.', 1)[-1]}-{k}" for c, k, _ in BAD_CONFIGS])
def test_a_bad_config_names_the_field_and_the_range(cls, kwargs, field):
    with pytest.raises(ConfigError, match=field) as e:
        cls(**kwargs)
    assert isinstance(e.value, ValueError)  # what a notebook catches
    message = str(e.value)
    if message.startswith(f"{field} must be"):  # a field's own range: its value is named too
        assert ", got " in message


def test_the_option_and_the_config_say_the_same():
    with pytest.raises(ConfigError) as e:
        regression.Config(epochs=0)
    assert str(e.value) == "epochs must be an integer from 1 to 1,000,000, got 0"


def test_zero_still_means_skip_where_it_always_did():
    assert holdout.Config(large_k=0).large_k == 0
    assert bounds.Config(bdmc_images=0).bdmc_images == 0
    assert bayes_regression.Config(map_steps=0).map_steps == 0
    assert estimators.Config(train_objectives=(), elbo_mc_k=0).train_objectives == ()
    assert bounds.Config(iwae_ks=(1, 10), pareto_k_at=10, seed=2**32 - 1).seed == 2**32 - 1


def test_a_rule_between_options_is_one_line(tmp_path, capsys):
    assert main(["bounds", "--checkpoint", CKPT, "--pareto-k-at", "7",
                 "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("probnn: pareto_k_at = 7 must be one of") and "Traceback" not in err
    assert not (tmp_path / "out").exists()
    assert main(["regression", "--model", "homoscedastic", "--beta-nll", "0.5",
                 "--out", str(tmp_path / "out")]) == 2
    assert "heteroscedastic" in capsys.readouterr().err


@pytest.mark.parametrize("argv,field", [
    (VT + ["--train-images", str(10**9)], "train_images = 1000000000 is more than the 60000"),
    (["vae", "compare", "--checkpoints", CKPT, "--holdout-images", "20000"],
     "holdout_images = 20000 is more than the 10000 holdout images"),
    (["vae", "figures", "--checkpoint", CKPT, "--rank-subset", "60001"],
     "rank_subset = 60001 is more than the 60000 training images"),
    (["bounds", "--checkpoint", CKPT, "--images", "6001", "--holdout-split", "0.1"],
     "images = 6001 is more than the 6000 holdout images of holdout_split = 0.1"),
    (["objectives", "--eval-images", "10001"], "eval_images = 10001 is more than the 10000"),
])
def test_sizes_beyond_the_data_fail_before_any_work(argv, field, data_dir, tmp_path, capsys):
    fake = tmp_path / "in" / CKPT  # checked before it is read
    fake.parent.mkdir()
    fake.write_bytes(b"not read")
    argv = [str(fake) if a == CKPT else a for a in argv]
    out = tmp_path / "out"
    assert main(argv + ["--data-dir", str(data_dir), "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("argv", [
    ["vae", "figures", "--checkpoint"], ["vae", "compare", "--checkpoints", "{ok}"],
    ["cvae", "figures", "--checkpoint"], ["bounds", "--checkpoint", "{ok}"],
    ["estimators", "--checkpoint", "{ok}"],
])
def test_every_missing_checkpoint_is_found_before_any_work(argv, tmp_path, capsys):
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(b"not read")
    missing = tmp_path / "missing.ckpt"
    argv = [a.format(ok=ok) for a in argv] + [str(missing), "--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"probnn: no checkpoint at {missing}\n"


def test_cvae_figures_compare_file_must_exist(tmp_path, capsys):
    ok = tmp_path / "ok.ckpt"
    ok.write_bytes(b"not read")
    assert main(["cvae", "figures", "--checkpoint", str(ok), "--compare",
                 str(tmp_path / "comparison.csv")]) == 2
    assert "no comparison table (--compare) at" in capsys.readouterr().err


# ----------------------------------------------------------------------------- --out
@pytest.mark.parametrize("argv", [
    ["regression"], VT, ["vae", "figures", "--checkpoint", CKPT],
    ["bounds", "--checkpoint", CKPT], ["objectives"], ["report"],
])
@pytest.mark.parametrize("where", ["file", "under a file"])
def test_out_that_cannot_be_a_folder_fails_first(argv, where, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("keep me")
    out = afile if where == "file" else afile / "sub"
    assert main(argv + ["--out", str(out), "--data-dir", str(tmp_path / "no-data")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"--out {out}" in err and ("is a file" in err)
    assert afile.read_text() == "keep me"


def test_report_cache_dir_is_checked_first(tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    assert main(["report", "--out", str(tmp_path / "r"), "--cache-dir", str(afile)]) == 2
    assert "--cache-dir" in capsys.readouterr().err


# ----------------------------------------------------------------------------- overwriting
OLD = b"the old, finished checkpoint"


def _old(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(OLD)
    return path


def _vae(data_dir, out, *extra):
    return main(VT + ["--epochs", "1", "--train-images", "100", "--data-dir", str(data_dir),
                      "--out", str(out), "--quiet", *extra])


def test_vae_train_refuses_to_overwrite(data_dir, tmp_path, capsys):
    ckpt = _old(tmp_path / "vae-mlp-d2.ckpt")
    assert _vae(data_dir, tmp_path) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--force" in err and "Traceback" not in err
    assert ckpt.read_bytes() == OLD
    assert _vae(data_dir, tmp_path, "--force", "--resume") == 2
    assert "contradict" in capsys.readouterr().err and ckpt.read_bytes() == OLD


def test_vae_train_force_keeps_the_old_checkpoint_when_the_new_training_fails(
        data_dir, tmp_path, capsys, monkeypatch):
    from probnn.inference import vae
    ckpt = _old(tmp_path / "vae-mlp-d2.ckpt")
    history = tmp_path / "vae-mlp-d2-history.csv"
    history.write_text("old history")

    def fails_half_way(*args, **kw):  # trains (writing the checkpoint it was given), then fails
        vae.train_vae(*args, **kw)
        raise RuntimeError("the disk is full")
    monkeypatch.setattr("probnn.tasks.vae_training.train_vae", fails_half_way)
    assert _vae(data_dir, tmp_path, "--force") == 1
    err = capsys.readouterr().err
    assert "internal error: RuntimeError: the disk is full" in err and "--debug" in err
    assert "Traceback" not in err and f"{ckpt} is unchanged" in err
    assert ckpt.read_bytes() == OLD and history.read_text() == "old history"
    assert sorted(p.name for p in tmp_path.iterdir()) == [history.name, ckpt.name]


def test_vae_train_force_interrupted_keeps_the_old_and_says_where_the_new_is(
        data_dir, tmp_path, capsys, monkeypatch):
    from probnn.inference.train import TrainingInterrupted
    ckpt = _old(tmp_path / "vae-mlp-d2.ckpt")

    def interrupted(*args, checkpoint, **kw):
        checkpoint.write_bytes(b"partial")
        raise TrainingInterrupted(checkpoint, 0, 3)
    monkeypatch.setattr("probnn.tasks.vae_training.train_vae", interrupted)
    assert _vae(data_dir, tmp_path, "--force") == 130
    err = capsys.readouterr().err
    new = tmp_path / "vae-mlp-d2.ckpt.new"
    assert str(new) in err and "--force" in err and "unchanged" in err
    assert ckpt.read_bytes() == OLD and new.read_bytes() == b"partial"


def test_vae_train_force_replaces_only_once_finished(data_dir, tmp_path, capsys):
    from probnn.inference.checkpoint import read_checkpoint
    ckpt = _old(tmp_path / "vae-mlp-d2.ckpt")
    (tmp_path / "vae-mlp-d2.ckpt.new").write_bytes(b"a stale partial run")  # not picked up
    assert _vae(data_dir, tmp_path, "--force") == 0
    assert read_checkpoint(ckpt)["extra"]["epoch"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vae-mlp-d2-history.csv",
                                                          "vae-mlp-d2.ckpt"]


@pytest.mark.skipif("__import__('torch').cuda.is_available()")
def test_vae_train_force_with_a_missing_device_keeps_the_checkpoint(data_dir, tmp_path, capsys):
    ckpt = _old(tmp_path / "vae-mlp-d2.ckpt")
    assert _vae(data_dir, tmp_path, "--force", "--device", "cuda") == 2
    assert "no CUDA device" in capsys.readouterr().err and ckpt.read_bytes() == OLD


@pytest.mark.skipif("__import__('torch').cuda.is_available()")
@pytest.mark.parametrize("argv", DEVICE_COMMANDS, ids=[" ".join(a[:2]) for a in DEVICE_COMMANDS])
def test_every_computing_command_refuses_a_missing_device_in_one_line(argv, tmp_path, capsys):
    code = main(argv + ["--device", "cuda:1", "--out", str(tmp_path / "out"),
                        "--data-dir", str(tmp_path / "no-data")])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert "no CUDA device" in err, err  # checked first: before the checkpoint and the data
    assert not (tmp_path / "out").exists()


def test_resume_without_a_checkpoint_starts_fresh_with_a_note(data_dir, tmp_path, capsys):
    assert _vae(data_dir, tmp_path, "--resume") == 0
    assert "no checkpoint at" in capsys.readouterr().err
    assert (tmp_path / "vae-mlp-d2.ckpt").is_file()


def _regression(data_dir, out, *extra):
    return main(["regression", "--model", "homoscedastic", "--epochs", "5", "--no-jit",
                 "--data-dir", str(data_dir), "--out", str(out), "--quiet", *extra])


def test_regression_refuses_to_overwrite_its_checkpoints(data_dir, tmp_path, capsys):
    ckpt = _old(tmp_path / "homoscedastic.ckpt")
    assert _regression(data_dir, tmp_path) == 2
    err = capsys.readouterr().err
    assert str(ckpt) in err and "--resume" in err and "--force" in err and "Traceback" not in err
    assert ckpt.read_bytes() == OLD


def test_regression_force_keeps_the_old_checkpoint_when_the_new_fit_fails(
        data_dir, tmp_path, capsys, monkeypatch):
    ckpt = _old(tmp_path / "homoscedastic.ckpt")

    def fails(*args, **kw):
        raise FloatingPointError("homoscedastic: loss is nan")
    monkeypatch.setattr("probnn.tasks.regression.fit_ensemble", fails)
    assert _regression(data_dir, tmp_path, "--force") == 1
    assert capsys.readouterr().err == "probnn: homoscedastic: loss is nan; try a lower --lr\n"
    assert ckpt.read_bytes() == OLD and [p.name for p in tmp_path.iterdir()] == [ckpt.name]


def test_regression_force_replaces_and_resume_continues(data_dir, tmp_path):
    from probnn.inference.checkpoint import read_checkpoint
    ckpt = _old(tmp_path / "homoscedastic.ckpt")
    assert _regression(data_dir, tmp_path, "--force") == 0
    assert read_checkpoint(ckpt)["extra"]["epoch"] == 5
    assert (tmp_path / "homoscedastic.ckpt.json").is_file()
    assert not list(tmp_path.glob("*.new*"))
    assert _regression(data_dir, tmp_path, "--resume", "--epochs", "8") == 0
    assert read_checkpoint(ckpt)["extra"]["epoch"] == 8


# ----------------------------------------------------------------------------- the safety net
def test_an_unexpected_error_is_one_line_and_debug_shows_it(tmp_path, capsys, monkeypatch):
    def broken(self, *a, **kw):
        raise KeyError("surprise")
    monkeypatch.setattr("probnn.tasks.inputs.Inputs.xkcd", broken)
    argv = ["bayes-regression", "--quick", "--out", str(tmp_path)]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err == ("probnn: internal error: KeyError: 'surprise' "
                   "(run with --debug for the traceback)\n")
    with pytest.raises(KeyError):
        main(["--debug"] + argv)
    with pytest.raises(KeyError):
        main(argv + ["--debug"])


def test_debug_shows_a_usage_error_raised(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(UsageError):
        main(["--debug", "regression", "--out", str(afile)])


@pytest.mark.skipif("__import__('os').geteuid() == 0", reason="root may write anywhere")
def test_out_in_a_read_only_folder_fails_first(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert main(["regression", "--out", str(ro / "sub")]) == 2
        assert "permission denied" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)
