"""Nothing probnn reads is unpickled: the codec's exact round trips, every evaluate task's result
through save/load, crafted files (pickles that would run code, malformed checkpoints) refused
with one clear error, and no unsafe load left in the library."""
from __future__ import annotations

import ast
import dataclasses
import math
import os
import pickle
import sys
import tomllib
import warnings
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import xarray as xr

from probnn import jobs as jb
from probnn import roster
from probnn.cli import main
from probnn.inference import serialization as ser
from probnn.inference.bayes_regression import BayesianRegressionFit, posterior_predictive
from probnn.inference.checkpoint import CheckpointError, read_checkpoint, save_checkpoint
from probnn.inference.regression import fit_regression, load_regression
from probnn.inference.vae import build_vae, history_from_checkpoint, load_vae, train_vae
from probnn.tasks import (bayes_regression, bounds, cvae, estimators, holdout, objectives,
                          vae_figures)
from probnn.tasks.inputs import Inputs

PROJECT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- helpers
def round_trip(obj, tmp_path: Path, name: str = "obj.pt"):
    return ser.load(ser.save(obj, tmp_path / name))


def assert_same(a, b, where: str = "result") -> None:
    """``b`` is ``a`` rebuilt exactly: same types, dtypes, values (NaN equal to NaN), column
    order and indexes, field by field."""
    assert type(a) is type(b), f"{where}: {type(a).__name__} became {type(b).__name__}"
    if isinstance(a, BayesianRegressionFit):
        for f in ("name", "history", "x", "y", "seed", "map_history"):
            assert_same(getattr(a, f), getattr(b, f), f"{where}.{f}")
        for role in ("model", "guide"):
            ma, mb = getattr(a, role), getattr(b, role)
            assert type(ma) is type(mb) and ma.config == mb.config, f"{where}.{role}"
            assert ma.training == mb.training, f"{where}.{role}.training"
            assert_same(dict(ma.state_dict()), dict(mb.state_dict()), f"{where}.{role}")
    elif dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            assert_same(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, pd.DataFrame):
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=where)
        assert a.attrs == b.attrs, where
    elif isinstance(a, pd.Series):  # arviz's ELPDData too: values of many types
        pd.testing.assert_index_equal(a.index, b.index, exact=True, obj=f"{where}.index")
        assert a.dtype == b.dtype and a.name == b.name, where
        for k in a.index:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, xr.DataArray):
        xr.testing.assert_identical(a, b)
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=where)
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype and a.shape == b.shape, where
        np.testing.assert_array_equal(a, b, err_msg=where)
    elif isinstance(a, dict):
        assert list(a) == list(b), where
        for k in a:
            assert_same(a[k], b[k], f"{where}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, (float, np.floating)) and math.isnan(a):
        assert math.isnan(b), where
    else:
        assert a == b, (where, a, b)


class Evil:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# ----------------------------------------------------------------------------- the codec
ARRAYS = [np.arange(6, dtype=np.uint32).reshape(2, 3), np.array([1.5, np.nan, -np.inf]),
          np.array([[True, False]]), np.zeros((0, 4), np.float32), np.array(7, dtype=np.int16),
          np.arange(3, dtype=">i8"), np.array([1 + 2j], np.complex64), np.array(["ab", "c"]),
          np.array(["2024-01-01"], dtype="datetime64[ns]"), np.arange(12.0)[::3]]


@pytest.mark.parametrize("a", ARRAYS, ids=[f"{a.dtype}{a.shape}" for a in ARRAYS])
def test_arrays_keep_dtype_shape_and_values(a, tmp_path):
    assert_same(a, round_trip(a, tmp_path))


def test_scalars_paths_and_containers(tmp_path):
    obj = {"f64": np.float64(0.1), "i64": np.int64(-3), "u8": np.uint8(255), "b": np.bool_(True),
           "f32": np.float32(np.nan), "py": [1, 2.5, "s", True, None, b"\x00\xff", 3 + 4j],
           "tuple": (1, (2, [3])), "path": Path("/runs/vae-d4.ckpt"),
           "int_keys": {3: 0.5, 59289: -1.0}, "tuple_keys": {(1, 2): "x"},
           "odict": OrderedDict(b=torch.ones(2), a=torch.zeros(1, dtype=torch.int64)),
           "tensor": torch.tensor([1.0, float("nan")]), "param": torch.nn.Parameter(torch.ones(3))}
    obj["odict"]._metadata = OrderedDict({"": {"version": 1}})
    back = round_trip(obj, tmp_path)
    assert_same(obj, back)
    assert type(back["odict"]) is OrderedDict and back["odict"]._metadata == {"": {"version": 1}}
    assert type(back["param"]) is torch.nn.Parameter and back["param"].requires_grad


def test_bytes_are_saved_as_tensors_and_raw_bytes_still_load(tmp_path):
    """Pickled ``bytes`` need ``_codecs.encode``, which torch 2.4's weights_only unpickler
    refuses: probnn saves them as uint8 tensors, and reads raw ``bytes`` where a newer torch
    allows them in older files."""
    data = {"empty": b"", "all": bytes(range(256))}
    saved = torch.load(ser.save(data, tmp_path / "b.pt"), weights_only=True)
    assert all(type(v) is dict and v[ser.TAG] == "bytes" for v in saved.values())
    assert round_trip(data, tmp_path) == data
    torch.save({"raw": b"\x00\xff"}, tmp_path / "raw.pt")
    try:
        torch.load(tmp_path / "raw.pt", weights_only=True)
    except pickle.UnpicklingError:  # torch 2.4: no pickled bytes at all
        with pytest.raises(ser.UnreadableFile):
            ser.load(tmp_path / "raw.pt")
        return
    assert ser.load(tmp_path / "raw.pt") == {"raw": b"\x00\xff"}


FRAMES = {
    "numeric": pd.DataFrame({"epoch": [1, 2], "loss": [0.5, np.nan], "ok": [True, False],
                             "n": np.array([3, 4], np.uint32), "f32": np.array([1, 2], np.float32)}),
    "strings": pd.DataFrame({"model": ["vae", None], "mixed": ["a", 1.5], "objs": [None, True]},
                            index=["r1", "r2"]),
    "int-index": pd.DataFrame({"x": [1.0, 2.0]}, index=pd.Index([10, 20], name="point")),
    "range-index": pd.DataFrame({"x": [1, 2, 3]}, index=pd.RangeIndex(5, 11, 2)),
    "multi-index": pd.DataFrame({"v": [1.0, 2.0]}, index=pd.MultiIndex.from_tuples(
        [("trace", 0), ("iwae-5", 1)], names=["objective", "seed"])),
    "int-columns": pd.DataFrame({0: [1], 5: [2]}),
    "duplicate-columns": pd.DataFrame([[1, 2.0]], columns=["a", "a"]),
    "empty": pd.DataFrame(),
    "no-rows": pd.DataFrame({"lower": pd.Series([], dtype=float), "name": pd.Series([], dtype=object)}),
}


@pytest.mark.parametrize("name", FRAMES)
def test_dataframes_round_trip_exactly(name, tmp_path):
    df = FRAMES[name].copy()
    df.attrs["note"] = "kept"
    assert_same(df, round_trip(df, tmp_path))


def test_series_index_and_dataarray(tmp_path):
    s = pd.Series([1.5, 2.5], index=["a", "b"], name="k")
    idx = pd.Index(["x", None], name="i")
    da = xr.DataArray(np.arange(3.0), dims=["point"], coords={"point": np.arange(3)},
                      name="loo_i", attrs={"unit": "nats"})
    back = round_trip({"s": s, "idx": idx, "da": da}, tmp_path)
    assert_same(s, back["s"])
    pd.testing.assert_index_equal(idx, back["idx"], exact=True)
    xr.testing.assert_identical(da, back["da"])


@dataclasses.dataclass
class NotListed:
    value: int


@ser.serializable
@dataclasses.dataclass(frozen=True)
class Listed:
    value: int
    table: pd.DataFrame
    late: str = dataclasses.field(default="x", init=False)


def test_only_allow_listed_classes_are_saved_or_rebuilt(tmp_path):
    obj = Listed(3, FRAMES["numeric"])
    object.__setattr__(obj, "late", "changed")
    assert_same(obj, round_trip(obj, tmp_path))
    with pytest.raises(TypeError, match=r"NotListed at dict\['r'\]\[1\]: .*not allow-listed"):
        ser.encode({"r": [1, NotListed(2)]})
    # a file naming a class that is not listed is refused, and its module is never imported
    for name in ("os.system", "never_imported_module_xyz.Payload"):
        data = {ser.TAG: "dataclass", "class": name, "fields": {}}
        with pytest.raises(ser.SerializationError, match="not on the allow-list"):
            ser.decode(data)
    assert "never_imported_module_xyz" not in sys.modules
    with pytest.raises(ser.SerializationError, match="has no field"):
        ser.decode({**ser.encode(Listed(1, pd.DataFrame())), "fields": {"value": 1, "evil": 2}})


@pytest.mark.parametrize("obj, where", [
    ({"model": torch.nn.Linear(1, 1)}, r"Linear at dict\['model'\]"),
    ({"s": {1, 2}}, r"set at dict\['s'\]"),
    ([np.array([object(), 1], dtype=object)], r"dtype object at list\[0\]"),
    (pd.DataFrame({"c": pd.Categorical(["a"])}), r"category at DataFrame\['c'\]"),
    ({"fn": len}, r"builtin_function_or_method at dict\['fn'\]"),
])
def test_unsupported_types_fail_at_save_time_naming_type_and_place(obj, where, tmp_path):
    with pytest.raises(TypeError, match=where):
        ser.save(obj, tmp_path / "x.pt")
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_the_reserved_key_is_refused_in_plain_dicts():
    with pytest.raises(ser.SerializationError, match="reserved"):
        ser.encode({"rows": [{ser.TAG: "dataframe"}]})
    with pytest.raises(ser.SerializationError, match="unknown encoded type"):
        ser.decode({ser.TAG: "pickle", "data": b""})


def test_save_is_atomic_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "r.pt"
    ser.save({"v": 1}, path)
    umask = os.umask(0)
    os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask)  # as a plain open() makes it
    names = []
    real_mkstemp = ser.tempfile.mkstemp

    def spy(**kw):
        fd, name = real_mkstemp(**kw)
        names.append(name)
        return fd, name
    monkeypatch.setattr(ser.tempfile, "mkstemp", spy)
    ser.save({"v": 2}, path)
    ser.save({"v": 3}, path)
    assert len(set(names)) == 2 and all(Path(n).parent == tmp_path for n in names)
    assert all(Path(n).name.startswith("r.pt.") and n.endswith(".tmp") for n in names)

    def broken(data, f):
        f.write(b"half")
        raise OSError("disk full")
    monkeypatch.setattr(ser.torch, "save", broken)
    with pytest.raises(OSError, match="disk full"):
        ser.save({"v": 4}, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.pt"]
    assert ser.load(path) == {"v": 3}


# ----------------------------------------------------------------------------- crafted files
@pytest.fixture
def crafted(tmp_path):
    """``(path, marker)`` makers: a pickle whose loading would create ``marker``, written by
    ``torch.save`` (a zip) or by plain ``pickle.dump``."""
    marker = tmp_path / "PWNED"

    def make(name: str, how: str = "torch") -> Path:
        path = tmp_path / name
        payload = {"format": 2, "model": Evil(marker)}
        if how == "torch":
            torch.save(payload, path)
        else:
            path.write_bytes(pickle.dumps(payload, protocol=2))
        return path
    make.marker = marker
    return make


@pytest.mark.parametrize("how", ["torch", "pickle"])
def test_a_crafted_checkpoint_is_refused_without_running_it(crafted, how):
    path = crafted("crafted.ckpt", how)
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    msg = str(info.value)
    assert str(path) in msg and "pickled" in msg and "\n" not in msg
    with pytest.raises(CheckpointError):
        load_vae(path)
    assert not crafted.marker.exists()


def test_a_crafted_cached_result_is_refused_without_running_it(crafted):
    path = crafted("evaluate-cvae-d4-0123456789ab.pt")
    with pytest.raises(ser.UnreadableFile) as info:
        jb.load_result(path)
    assert info.value.path == path and "pickled" in info.value.reason
    assert isinstance(info.value, ValueError)
    assert not crafted.marker.exists()


def test_cli_refuses_a_crafted_checkpoint_with_one_line(crafted, data_dir, tmp_path, capsys):
    path = crafted("crafted.ckpt")
    code = main(["vae", "figures", "--checkpoint", str(path), "--data-dir", str(data_dir),
                 "--out", str(tmp_path / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("probnn: ") and str(path) in err
    assert not crafted.marker.exists()


@pytest.mark.parametrize("cut", ["truncated", "empty", "text"])
def test_damaged_files_are_one_clear_error(cut, tmp_path):
    path = tmp_path / "r.pt"
    ser.save({"table": FRAMES["numeric"]}, path)
    data = path.read_bytes()
    path.write_bytes({"truncated": data[: len(data) // 2], "empty": b"", "text": b"hello"}[cut])
    with pytest.raises(ser.UnreadableFile) as info:
        ser.load(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_library_never_loads_unsafely():
    dirs = tomllib.loads((PROJECT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    files = [f for d in set(dirs.values()) for f in (PROJECT / d).rglob("*.py")]
    assert len(files) > 40
    loads = []
    for f in files:
        text = f.read_text()
        assert "weights_only=False" not in text, f
        assert "pickle.load" not in text and "allow_pickle" not in text, f
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "torch.load":
                loads.append((f.relative_to(PROJECT).as_posix(),
                              {k.arg: ast.unparse(k.value) for k in node.keywords}))
    # the one load of the library, and it is weights-only
    assert loads == [("inference/serialization.py", {"map_location": "'cpu'", "weights_only": "True"})]


# ----------------------------------------------------------------------------- checkpoints
@pytest.fixture
def checkpoint(tiny_regression, tmp_path):
    """A real checkpoint of a 2-epoch regression fit, and its decoded content."""
    x, y = tiny_regression
    path = tmp_path / "run.ckpt"
    fit_regression("homoscedastic", x, y, epochs=2, checkpoint=path, checkpoint_every=1,
                   progress=False, jit=False)
    return path, ser.load(path)


def rewrite(path: Path, state) -> Path:
    ser.save(state, path)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda s: {"format": 2}, "missing field(s) model, model_state, guide, guide_state, "
                              "optimizer_state, param_store, rng, extra"),
    (lambda s: {k: v for k, v in s.items() if k not in ("rng", "guide_state")},
     "missing field(s) guide_state, rng"),
    (lambda s: {**s, "extra": [1, 2]}, "field extra is list, expected a dict"),
    (lambda s: {**s, "model_state": {"w": "weights"}}, "field model_state['w'] is str, expected a tensor"),
    (lambda s: {**s, "model": {"class": "HomoscedasticRegression"}}, "missing field(s) model.config"),
    (lambda s: {**s, "rng": {**s["rng"], "numpy": ("MT19937", np.zeros(3, np.uint32), 0, 0, 0.0)}},
     "field rng.numpy[1] is array"),
    (lambda s: {**s, "optimizer_state": "adam"}, "field optimizer_state is str"),
    (lambda s: {**s, "format": 3}, "format 3; this probnn reads format 2"),
    (lambda s: {**s, "format": 1}, "older probnn (format 1) that stored pickled objects; retrain"),
    (lambda s: [s], "not a probnn checkpoint"),
], ids=["empty", "missing", "extra-type", "state-dict", "description", "rng", "optimizer",
        "newer", "format-1-data", "not-a-dict"])
def test_checkpoint_structure_is_validated(checkpoint, change, message):
    path, state = checkpoint
    rewrite(path, change(state))
    with pytest.raises(CheckpointError) as info:
        read_checkpoint(path)
    assert str(info.value).startswith(str(path)) and message in str(info.value)


def test_an_old_pickled_checkpoint_is_named_and_not_unpickled(tmp_path, crafted):
    """What probnn wrote before format 2: torch.save of a dict holding NumPy RNG states."""
    path = tmp_path / "old.ckpt"
    torch.save({"format": 1, "model": {"class": "VAE", "config": {"latent_dim": 4}},
                "rng": {"numpy": np.random.get_state()}, "hook": Evil(crafted.marker)}, path)
    with pytest.raises(CheckpointError, match=r"older probnn \(format 1\).*retrain"):
        read_checkpoint(path)
    assert main(["vae", "figures", "--checkpoint", str(path), "--out", str(tmp_path)]) == 2
    assert not crafted.marker.exists()


def test_resume_validates_the_training_state(checkpoint, tiny_regression):
    path, state = checkpoint
    x, y = tiny_regression

    def resume():
        return fit_regression("homoscedastic", x, y, epochs=4, checkpoint=path, resume=True,
                              progress=False, jit=False)
    good = dict(state["extra"])
    rewrite(path, {**state, "extra": {k: v for k, v in good.items() if k not in ("epoch", "rng_now")}})
    with pytest.raises(CheckpointError, match=r"missing field\(s\) extra\.epoch, extra\.rng_now"):
        resume()
    rewrite(path, {**state, "extra": {**good, "epoch": "2", "history": 5}})
    with pytest.raises(CheckpointError) as info:
        resume()
    assert "field extra.epoch is str, expected an int >= 0" in str(info.value)
    assert "field extra.history is int, expected a list of rows" in str(info.value)
    rewrite(path, {**state, "extra": {**good, "batch": 3, "epoch_rng": None}})
    with pytest.raises(CheckpointError, match="epoch_rng is None"):
        resume()
    with pytest.raises(CheckpointError, match="epoch_rng is None"):
        load_regression("homoscedastic", x, y, path)
    opt = state["optimizer_state"]
    rewrite(path, {**state, "optimizer_state": {**opt, "param_groups": opt["param_groups"] * 2}})
    with pytest.raises(CheckpointError, match="optimizer_state does not fit"):
        resume()
    rewrite(path, {**state, "param_store": {"params": {"p": torch.ones(1)},
                                            "constraints": {"p": "os.system"}}})
    with pytest.raises(CheckpointError, match=r"unknown constraint\(s\) os\.system"):
        resume()
    rewrite(path, state)
    assert len(resume().history) == 4  # the untouched checkpoint still resumes


@pytest.fixture
def vae_checkpoint(tmp_path):
    path = tmp_path / "vae.ckpt"
    x = torch.rand(16, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    train_vae(2, x=x, epochs=1, batch_size=8, architecture="mlp", checkpoint=path, progress=False)
    return path, ser.load(path)


@pytest.mark.parametrize("change, message", [
    (lambda c: {k: v for k, v in c.items() if k != "latent_dim"}, "missing field(s) model.config.latent_dim"),
    (lambda c: {**c, "latent_dim": "2"}, "field model.config.latent_dim is str, expected an int from 1 to 10,000"),
    (lambda c: {**c, "latent_dim": 0}, "field model.config.latent_dim is 0, expected an int from 1 to 10,000"),
    (lambda c: {**c, "latent_dim": 10**9},
     "field model.config.latent_dim is 1000000000, expected an int from 1 to 10,000"),
    (lambda c: {**c, "architecture": "transformer"}, "model.config.architecture is 'transformer'"),
    (lambda c: {**c, "binarize": 1}, "field model.config.binarize is int, expected a bool"),
    (lambda c: {**c, "hidden": 400}, "unexpected field(s) model.config.hidden"),
], ids=["no-latent-dim", "str", "zero", "huge", "architecture", "binarize", "unknown"])
def test_vae_config_is_validated(vae_checkpoint, change, message):
    path, state = vae_checkpoint
    model = {**state["model"], "config": change(state["model"]["config"])}
    rewrite(path, {**state, "model": model})
    with pytest.raises(CheckpointError) as info:
        load_vae(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_vae_checkpoint_with_wrong_shapes_or_class(vae_checkpoint):
    path, state = vae_checkpoint
    other, _ = build_vae(3, architecture="mlp")
    rewrite(path, {**state, "model_state": other.state_dict()})
    with pytest.raises(CheckpointError, match="does not fit this model.*size mismatch"):
        load_vae(path)
    rewrite(path, {**state, "model": {"class": "Popen", "config": {}}})
    with pytest.raises(CheckpointError, match="holds a Popen, not a VAE"):
        load_vae(path)
    rewrite(path, {**state, "extra": {**state["extra"], "history": [1, 2]}})
    with pytest.raises(CheckpointError, match=r"extra\.history\[0\] is int"):
        history_from_checkpoint(path)


# ----------------------------------------------------------------------------- every result type
@dataclasses.dataclass(frozen=True)
class SyntheticInputs(Inputs):
    """Tiny MNIST-like and xkcd-like data in memory, so every evaluate task runs in seconds."""

    def mnist(self, holdout_split=None):
        g = torch.Generator().manual_seed(11)
        x = torch.rand(140, 1, 28, 28, generator=g)
        x[:, :, :3] = 0.0
        y = torch.arange(140) % 10
        return (x[:80], y[:80], torch.arange(80)), (x[80:], y[80:], torch.arange(60))

    def xkcd(self):
        x = torch.linspace(-2.0, 2.0, 20).unsqueeze(-1)
        return x, 2.0 * x + 0.3 * torch.randn(20, 1, generator=torch.Generator().manual_seed(4))


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """SyntheticInputs with a trained unconditional and conditional MLP VAE checkpoint each."""
    out = tmp_path_factory.mktemp("models")
    (x, y, _), _ = SyntheticInputs().mnist()
    paths = {}
    for kind, conditional in (("vae", False), ("cvae", True)):
        paths[kind] = out / f"{kind}.ckpt"
        train_vae(2, x=x, y=y, conditional=conditional, epochs=2, batch_size=40,
                  architecture="mlp", checkpoint=paths[kind], progress=False)
    return {k: SyntheticInputs(checkpoints=(p,)) for k, p in paths.items()} | {
        None: SyntheticInputs()}


# (task, tiny config, which checkpoint it reads)
RESULTS = [
    (vae_figures, vae_figures.Config(rank_subset=30, rank_k=10), "vae"),
    (holdout, holdout.Config(k=5, large_k=10, large_k_images=10, holdout_images=20,
                             train_images=20), "vae"),
    (cvae, cvae.Config(k=5, large_k=10, large_k_images=10, classify_images=20,
                       holdout_images=30), "cvae"),
    (estimators, estimators.Config.preset(
        "quick", holdout_images=3, ks=(1, 10), elbo_mc_k=5, snr_samples=3, snr_images=4,
        snr_objectives=("trace", "iwae-2"), snr_bootstrap=10, train_objectives=("trace",),
        train_images=20, epochs=1, batch_size=10, eval_k=5, eval_images=5, seeds=1), "vae"),
    (bounds, bounds.Config(images=3, iwae_ks=(1, 10), pareto_k_at=10, ais_steps=3, ais_chains=2,
                           local_steps=5, elbo_samples=5, bdmc_images=2, bdmc_steps=(2, 4)), "cvae"),
    (objectives, objectives.Config(objectives=("trace", "iwae-2"), architecture="mlp",
                                   latent_dim=2, train_images=20, batch_size=10, eval_k=5,
                                   eval_images=5, seeds=2), None),
    (bayes_regression, bayes_regression.Config(epochs=5, map_steps=5, draws=10, seed=2,
                                               warmup=4, nuts_draws=4, max_tree_depth=2,
                                               loo_warmup=2, loo_draws=4, loo_max_refits=1,
                                               vi_guides=("normal", "lowrank")), None),
]


def test_every_cached_task_is_covered():
    cached = {e.task.__name__ for e in roster.ROSTER if e.task.KIND == "evaluate"}
    assert cached == {t.__name__ for t, _, _ in RESULTS}


@pytest.mark.parametrize("task, config, reads", RESULTS, ids=[t.__name__.rsplit(".")[-1]
                                                              for t, _, _ in RESULTS])
def test_every_result_type_round_trips_exactly(task, config, reads, synthetic, tmp_path,
                                               monkeypatch):
    # the coursework's figure images are indices into MNIST's 60,000: point them at ours
    monkeypatch.setattr("probnn.inference.vae.FIGURE_IMAGES", (1, 2, 3, 4))
    monkeypatch.setattr("probnn.inference.vae.NOISE_IMAGE", 3)
    monkeypatch.setattr("probnn.inference.vae.INTERPOLATION_IMAGES", (2, 4))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k and arviz warnings of tiny samples
        result = task.run(config, synthetic[reads])
    jb.save_result(result, tmp_path / "result.pt")
    loaded = jb.load_result(tmp_path / "result.pt")
    assert_same(result, loaded)
    if task is bayes_regression:
        assert_bayes_analysis_is_unchanged(result, loaded)


def assert_bayes_analysis_is_unchanged(result, loaded):
    """The report's analysis of a decoded result gives the same numbers: posterior-predictive
    draws, and ``compare.loo``'s fields read by attribute."""
    from probnn.analysis.bayes_regression import loo_table
    grid = torch.linspace(-2.5, 2.5, 9).unsqueeze(-1)
    state = torch.get_rng_state()
    for a, b in zip(result.fits, loaded.fits):
        pa, pb = posterior_predictive(a, grid, 30, seed=1), posterior_predictive(b, grid, 30, seed=1)
        for k in pa:
            np.testing.assert_array_equal(pa[k], pb[k])
    for name, loo in result.compare.loo.items():
        back = loaded.compare.loo[name]
        for attr in ("elpd_loo", "se", "p_loo", "warning"):
            assert getattr(back, attr) == getattr(loo, attr), attr
        np.testing.assert_array_equal(np.asarray(back.pareto_k), np.asarray(loo.pareto_k))
        np.testing.assert_array_equal(np.asarray(back.loo_i), np.asarray(loo.loo_i))
    pd.testing.assert_frame_equal(loo_table(result.compare), loo_table(loaded.compare),
                                  check_exact=True)
    torch.set_rng_state(state)


def test_decoding_a_bayesian_fit_leaves_the_rngs_alone(synthetic, tmp_path):
    result = bayes_regression.run(bayes_regression.Config(epochs=2, map_steps=0, draws=5,
                                                          sampler="vi"), synthetic[None])
    path = ser.save(result.fits[0], tmp_path / "fit.pt")
    torch.manual_seed(7)
    np.random.seed(7)
    expected = torch.rand(3), np.random.rand(3)
    torch.manual_seed(7)
    np.random.seed(7)
    ser.load(path)
    np.testing.assert_array_equal(torch.rand(3).numpy(), expected[0].numpy())
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
