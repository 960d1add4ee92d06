"""The built package, not the checkout: ``python -m build`` makes an sdist and a wheel from it,
and the wheel installed into a fresh venv (no editable install, the checkout not on the path)
runs the command line and the notebook's first lines. The venv reuses the installed
dependencies through a ``.pth`` file (offline, seconds), which adds their folders to the path
without running their ``.pth`` files, so this checkout's editable install stays out."""
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUBPACKAGES = ["probnn", "probnn.datasets", "probnn.models", "probnn.guides", "probnn.inference",
               "probnn.tasks", "probnn.analysis"]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    pytest.importorskip("build")
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
                   check=True, capture_output=True, text=True, cwd=out)
    wheels, sdists = list(out.glob("probnn-*.whl")), list(out.glob("probnn-*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return wheels[0]


@pytest.fixture(scope="module")
def venv(built, tmp_path_factory):
    root = tmp_path_factory.mktemp("wheel-venv")
    env_dir = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(env_dir)], check=True)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    deps = [p for p in sys.path if p.endswith("site-packages") and Path(p).is_dir()]
    (site / "zz-installed-dependencies.pth").write_text("\n".join(deps) + "\n")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet",
                    "--no-deps", "--no-index", str(built)], check=True)
    return env_dir


def run(venv, *args, cwd):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{venv / 'bin'}:{env.get('PATH', '')}"
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=600)


def test_the_wheel_holds_every_subpackage(built):
    import zipfile
    names = zipfile.ZipFile(built).namelist()
    for pkg in SUBPACKAGES:
        assert f"{pkg.replace('.', '/')}/__init__.py" in names, pkg
    assert not [n for n in names if n.startswith(("tests/", "docs/", "examples/"))]


def test_the_installed_wheel_runs_without_the_checkout(venv, data_dir, tmp_path):
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    where = run(venv, venv / "bin" / "python", "-c",
                "import probnn, probnn.models, probnn.analysis; "
                "print(probnn.__file__); print(probnn.models.__file__)", cwd=tmp_path)
    assert where.returncode == 0, where.stderr
    for line in where.stdout.split():
        assert line.startswith(str(venv)) and not line.startswith(str(ROOT)), line

    assert run(venv, "probnn", "--help", cwd=tmp_path).stdout.count("vae") >= 1
    v = run(venv, "probnn", "--version", cwd=tmp_path)
    assert v.returncode == 0 and v.stdout.strip() == f"probnn {version}"

    out = tmp_path / "vae"
    t = run(venv, "probnn", "vae", "train", "--architecture", "mlp", "--latent-dim", 3, "--epochs", 1,
            "--train-images", 300, "--data-dir", data_dir, "--out", out, "--quiet", cwd=tmp_path)
    assert t.returncode == 0, t.stderr
    assert (out / "vae-mlp-d3.ckpt").is_file()

    nb = json.loads((ROOT / "examples" / "tour.ipynb").read_text())
    first = "".join(next(c for c in nb["cells"] if c["cell_type"] == "code")["source"])
    assert "from probnn" in first
    cell = run(venv, venv / "bin" / "python", "-c", first + "\nprint('tour ok', CHECKPOINT)",
               cwd=tmp_path)
    assert cell.returncode == 0 and "tour ok" in cell.stdout, cell.stderr


def test_a_bad_command_in_the_installed_wheel_is_one_line(venv, tmp_path):
    r = run(venv, "probnn", "vae", "train", "--epochs", 0, cwd=tmp_path)
    assert r.returncode == 2 and "epochs" in r.stderr and "Traceback" not in r.stderr
