"""Nothing lost, no traceback: resumes that check their data, a cache shared by concurrent
runs, and reports stopped by signals."""
from __future__ import annotations

import pytest

from probnn.cli import main


def run(*args) -> int:
    return main([str(a) for a in args])


VAE = ("vae", "train", "--architecture", "mlp", "--latent-dim", 2, "--quiet")


@pytest.mark.parametrize("change, named", [
    (("--train-images", 200), "train_images is 300 in the checkpoint but 200 now"),
    (("--train-images", 300, "--holdout-split", 0.1), "holdout_split is None in the checkpoint but 0.1 now"),
    (("--train-images", 300, "--seed", 5), "seed is 309 in the checkpoint but 5 now"),
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
