"""Every CLI command, end to end with tiny arguments (as Pyro/numpyro test their examples)."""
import pandas as pd
import pytest

from probnn.cli import main


def run(*args) -> int:
    return main([str(a) for a in args])


def test_regression_command_writes_its_files(data_dir, tmp_path, capsys):
    out = tmp_path / "reg"
    assert run("regression", "--model", "both", "--epochs", 300, "--seed", 1,
               "--data-dir", data_dir, "--out", out, "--quiet") == 0
    for name in ["ribbon_homoscedastic.png", "ribbon_heteroscedastic.png", "loglik.png",
                 "summary.txt", "summary.csv", "history_heteroscedastic.csv"]:
        assert (out / name).is_file(), name
    hist = pd.read_csv(out / "history_heteroscedastic.csv")
    assert len(hist) == 300 and hist["loglik"].notna().all()
    assert "+∞" in (out / "summary.txt").read_text() or "inf" in (out / "summary.txt").read_text()


def test_regression_same_seed_same_numbers(data_dir, tmp_path):
    for d in ("a", "b"):
        assert run("regression", "--model", "homoscedastic", "--epochs", 200, "--seed", 5,
                   "--data-dir", data_dir, "--out", tmp_path / d, "--quiet") == 0
    a = pd.read_csv(tmp_path / "a" / "history_homoscedastic.csv")
    b = pd.read_csv(tmp_path / "b" / "history_homoscedastic.csv")
    pd.testing.assert_series_equal(a["loglik"], b["loglik"])


def test_missing_data_is_one_clear_error(tmp_path, isolated_cache, capsys, monkeypatch):
    monkeypatch.setattr("probnn.datasets.xkcd._download",
                        lambda url, dest: (_ for _ in ()).throw(OSError("no network")))
    code = run("regression", "--epochs", 10, "--data-dir", tmp_path / "empty", "--out", tmp_path / "o")
    err = capsys.readouterr().err
    assert code == 2
    assert "xkcd.csv" in err and "--data-dir" in err and "PROBNN_DATA" in err and "no network" in err


@pytest.fixture
def trained_vae(data_dir, tmp_path):
    out = tmp_path / "vae"
    assert run("vae", "train", "--architecture", "mlp", "--latent-dim", 3, "--epochs", 1,
               "--train-images", 300, "--data-dir", data_dir, "--out", out, "--quiet") == 0
    return out / "vae-mlp-d3.ckpt"


def test_vae_train_refuses_to_overwrite_and_resumes(trained_vae, data_dir, capsys):
    out = trained_vae.parent
    assert run("vae", "train", "--architecture", "mlp", "--latent-dim", 3, "--epochs", 1,
               "--train-images", 300, "--data-dir", data_dir, "--out", out, "--quiet") == 2
    assert "--resume" in capsys.readouterr().err
    assert run("vae", "train", "--architecture", "mlp", "--latent-dim", 3, "--epochs", 2,
               "--train-images", 300, "--data-dir", data_dir, "--out", out, "--quiet",
               "--resume") == 0
    assert len(pd.read_csv(out / "vae-mlp-d3-history.csv")) == 2


def test_vae_figures_and_compare(trained_vae, data_dir, tmp_path):
    out = tmp_path / "figs"
    assert run("vae", "figures", "--checkpoint", trained_vae, "--rank-subset", 40,
               "--rank-k", 10, "--data-dir", data_dir, "--out", out, "--quiet") == 0
    for suffix in ["reconstructions.png", "noise.png", "prior-samples.png", "interpolation.png",
                   "likely-unlikely.png", "likelihood-features.png", "bounds.csv", "summary.md"]:
        assert (out / f"vae-mlp-d3-{suffix}").is_file(), suffix
    bounds = pd.read_csv(out / "vae-mlp-d3-bounds.csv")
    assert len(bounds) == 40 and bounds["bound"].lt(0).all()
    assert run("vae", "compare", "--checkpoints", trained_vae, "--k", 5, "--large-k", 10,
               "--large-k-images", 10, "--holdout-images", 50, "--train-images", 50,
               "--data-dir", data_dir, "--out", out, "--quiet") == 0
    table = pd.read_csv(out / "comparison.csv", index_col=0)
    row = table.loc["vae-mlp-d3"]
    assert row["iwae_10"] < 0 and row["elbo"] <= row["iwae_5"] + 1.0


def test_cvae_train_and_figures(data_dir, tmp_path):
    out = tmp_path / "cvae"
    assert run("cvae", "train", "--architecture", "mlp", "--latent-dim", 2, "--epochs", 1,
               "--train-images", 300, "--data-dir", data_dir, "--out", out, "--quiet") == 0
    ckpt = out / "cvae-mlp-d2.ckpt"
    assert run("cvae", "figures", "--checkpoint", ckpt, "--k", 5, "--large-k", 0,
               "--classify-images", 20, "--holdout-images", 40, "--data-dir", data_dir,
               "--out", out, "--quiet") == 0
    for suffix in ["style-sets.png", "digit-samples.png", "style-transfer.png", "confusion.png",
                   "evaluation.csv", "summary.md"]:
        assert (out / f"cvae-mlp-d2-{suffix}").is_file(), suffix
    assert "p(z | x, y)" in (out / "cvae-mlp-d2-summary.md").read_text()


def test_cvae_figures_reject_an_unconditional_checkpoint(trained_vae, data_dir, tmp_path, capsys):
    assert run("cvae", "figures", "--checkpoint", trained_vae, "--data-dir", data_dir,
               "--out", tmp_path) == 2
    err = capsys.readouterr().err
    assert "holds an unconditional VAE" in err and "Traceback" not in err


def test_regression_ctrl_c_saves_both_fits_and_says_how_to_resume(data_dir, tmp_path):
    """Ctrl-C in a terminal reaches the command and its two Dask worker processes (the
    shared runner's LocalCluster), which ignore it: the command asks both trainings to stop,
    both save a checkpoint, the command exits 130 naming --resume."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from probnn.inference.checkpoint import read_checkpoint
    out = tmp_path / "reg"
    epochs = 40_000
    proc = subprocess.Popen(
        [sys.executable, "-m", "probnn.cli", "regression", "--model", "both", "--epochs",
         str(epochs), "--checkpoint-every", "300", "--data-dir", str(data_dir), "--out", str(out),
         "--quiet"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    ckpts = [out / "homoscedastic.ckpt", out / "heteroscedastic.ckpt"]
    deadline = time.monotonic() + 120
    while not all(p.exists() for p in ckpts) and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoints after 2 minutes"
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGINT)  # what the terminal does on Ctrl-C
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "--resume" in err and "Traceback" not in err
    for p in ckpts:
        extra = read_checkpoint(p)["extra"]
        assert 300 <= extra["epoch"] < epochs, (p, extra["epoch"])
