"""Checkpoints that restore a training run exactly: weights, optimiser, position and RNG states.

A checkpoint is written by :func:`~probnn.inference.serialization.save` and read with
``torch.load(weights_only=True)`` (:func:`~probnn.inference.serialization.load`): nothing in
it is unpickled, so a crafted file cannot run code. :func:`read_checkpoint` then checks the
whole structure, so a file with the right ``format`` but missing or mistyped fields is a
:class:`CheckpointError` naming them rather than a ``KeyError`` somewhere later. The checks
are small composable functions (:func:`of_type`, :func:`record`, ...) that the readers of a
checkpoint's ``extra`` (the training loop, the model loaders) use for their own fields.

Format 2 (this one) stores plain data; format 1 (before it) stored pickled objects and is
refused without being unpickled.
"""
from __future__ import annotations

import os
import pickletools
import random
import zipfile
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pyro
import torch

from . import serialization
from .param_store import param_store_state, restore_param_store
from .serialization import UnreadableFile

FORMAT_VERSION = 2
"""2: written by :mod:`probnn.inference.serialization` (weights-only readable).
1: ``torch.save`` of pickled objects (NumPy RNG states, constraint objects)."""


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: unreadable, malformed, or written for a different model."""


def module_of(fn) -> torch.nn.Module:
    """The module whose weights a model or guide holds: itself, the ``self`` of a bound
    method (``vae.model``), or an empty module for a plain function (whose parameters live in
    Pyro's param store, which checkpoints save beside)."""
    for m in (fn, getattr(fn, "__self__", None)):
        if isinstance(m, torch.nn.Module):
            return m
    return torch.nn.Module()


def describe(module) -> dict[str, Any]:
    """A module's identity for checkpoint checks: class name plus its ``config`` if it has one
    (for a bound method or function: that of :func:`module_of`)."""
    module = module_of(module)
    cfg = getattr(module, "config", None)
    return {"class": type(module).__name__, "config": dict(cfg) if cfg else {}}


def _fmt(desc: dict) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in sorted(desc.get("config", {}).items()))
    return f"{desc.get('class')}({args})"


def rng_state() -> dict[str, Any]:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


# ----------------------------------------------------------------------------- structure checks
Check = Callable[[Any, str], list]
"""``check(value, where) -> problems``: an empty list when ``value`` is as expected, else
sentences such as ``"field extra.epoch is str, expected an int"``."""


def _kind(v) -> str:
    return "None" if v is None else type(v).__name__


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def _wrong(v, where: str, expected: str) -> list[str]:
    return [f"field {where} is {_kind(v)}, expected {expected}"]


def of_type(*types: type, expected: str, when: Callable[[Any], bool] | None = None) -> Check:
    """``isinstance(value, types)`` (a bool is not taken for an int unless ``bool`` is among
    them), and ``when(value)`` if given."""
    def check(v, where):
        if isinstance(v, bool) and bool not in types or not isinstance(v, types):
            return _wrong(v, where, expected)
        if when is not None and not when(v):
            return [f"field {where} is {_short(v)}, expected {expected}"]
        return []
    return check


def optional(check: Check) -> Check:
    return lambda v, where: [] if v is None else check(v, where)


def dict_of(value: Check, expected: str = "a dict with str keys") -> Check:
    """A dict with ``str`` keys whose every value passes ``value``."""
    def check(v, where):
        if not isinstance(v, dict) or not all(isinstance(k, str) for k in v):
            return _wrong(v, where, expected)
        return [p for k, x in v.items() for p in value(x, f"{where}[{k!r}]")]
    return check


def list_of(item: Check, expected: str = "a list") -> Check:
    def check(v, where):
        if not isinstance(v, (list, tuple)):
            return _wrong(v, where, expected)
        return [p for i, x in enumerate(v) for p in item(x, f"{where}[{i}]")]
    return check


def sequence(*items: Check, expected: str) -> Check:
    """A tuple or list of exactly ``len(items)`` values, each passing its check."""
    def check(v, where):
        if not isinstance(v, (list, tuple)) or len(v) != len(items):
            return _wrong(v, where, expected)
        return [p for i, (x, c) in enumerate(zip(v, items)) for p in c(x, f"{where}[{i}]")]
    return check


def record(fields: dict[str, Check], expected: str = "a dict", closed: bool = False) -> Check:
    """A dict holding every key of ``fields``, each value passing its check; all missing keys
    are named at once. ``closed``: no other keys either."""
    def check(v, where):
        if not isinstance(v, dict):
            return _wrong(v, where, expected)
        name = (lambda k: f"{where}.{k}") if where else (lambda k: k)
        missing = [name(k) for k in fields if k not in v]
        problems = [f"missing field(s) {', '.join(missing)}"] if missing else []
        extra = [name(k) for k in v if k not in fields] if closed else []
        problems += [f"unexpected field(s) {', '.join(map(str, extra))}"] if extra else []
        return problems + [p for k, c in fields.items() if k in v for p in c(v[k], name(k))]
    return check


def require(value, check: Check, path, where: str = "") -> None:
    """Raise :class:`CheckpointError` ``"<path>: <every problem>"`` unless ``value`` passes."""
    problems = check(value, where)
    if problems:
        raise CheckpointError(f"{path}: " + "; ".join(problems))


def _sizes_match(numel: int) -> Callable[[torch.Tensor], bool]:
    return lambda t: t.dtype == torch.uint8 and t.dim() == 1 and t.numel() == numel


INT = of_type(int, expected="an int")
COUNT = of_type(int, expected="an int >= 0", when=lambda n: n >= 0)
NUMBER = of_type(int, float, np.floating, np.integer, expected="a number")
TENSOR = of_type(torch.Tensor, expected="a tensor")
ARRAY = of_type(np.ndarray, expected="a NumPy array")
RNG = record({
    "torch": of_type(torch.Tensor, expected=f"a uint8 tensor of {torch.get_rng_state().numel()} "
                     "bytes", when=_sizes_match(torch.get_rng_state().numel())),
    "numpy": sequence(of_type(str, expected="'MT19937'", when=lambda s: s == "MT19937"),
                      of_type(np.ndarray, expected="624 uint32 words",
                              when=lambda a: a.dtype == np.uint32 and a.shape == (624,)),
                      of_type(int, expected="a position in 0..624", when=lambda n: 0 <= n <= 624),
                      INT, of_type(float, expected="a float"),
                      expected="NumPy's (name, keys, pos, has_gauss, cached_gaussian)"),
    "python": sequence(INT, of_type(tuple, expected="625 ints", when=lambda t: len(t) == 625
                                    and all(type(n) is int for n in t)),
                       optional(of_type(float, expected="None or a float")),
                       expected="random.getstate()'s (version, state, gauss)"),
}, expected="a dict of torch, numpy and python RNG states")
"""The states :func:`rng_state` returns (what :func:`set_rng_state` accepts)."""

DESCRIPTION = record({"class": of_type(str, expected="a class name"),
                      "config": dict_of(lambda v, where: [])},
                     expected="a dict {'class': ..., 'config': ...}")
STATE_DICT = dict_of(TENSOR, expected="a state_dict (parameter name -> tensor)")
OPTIMIZER_STATE = optional(record({"state": of_type(dict, expected="a dict"),
                                   "param_groups": list_of(of_type(dict, expected="a dict"))},
                                  expected="None or an optimizer's state_dict"))
PARAM_STORE = record({"params": STATE_DICT, "constraints": dict_of(of_type(
    str, expected="a constraint's name"))}, expected="a dict {'params': ..., 'constraints': ...}")
CHECKPOINT = record({
    "model": DESCRIPTION, "model_state": STATE_DICT,
    "guide": DESCRIPTION, "guide_state": STATE_DICT,
    "optimizer_state": OPTIMIZER_STATE, "param_store": PARAM_STORE,
    "rng": RNG, "extra": of_type(dict, expected="a dict"),
})
"""The fields of a checkpoint and what each holds."""


# ----------------------------------------------------------------------------- param store
def _restore_param_store(state: dict, path, modules=()) -> None:
    try:
        restore_param_store(state, modules)
    except KeyError as e:
        raise CheckpointError(f"{path}: {e.args[0]} in param_store") from None


# ----------------------------------------------------------------------------- files
def save_checkpoint(path: str | os.PathLike, *, model, guide, optimizer=None, extra=None) -> Path:
    """Write a checkpoint atomically (a temporary file renamed into place).

    An interruption while writing leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT_VERSION,
        "model": describe(model), "model_state": module_of(model).state_dict(),
        "guide": describe(guide), "guide_state": module_of(guide).state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "param_store": param_store_state(),
        "rng": rng_state(),
        "extra": extra or {},
    }
    return serialization.save(state, path)


def _pickled_format(path: Path) -> int | None:
    """The ``format`` of a checkpoint that ``torch.save`` pickled (format 1), read from the
    pickle's opcodes without running them; None if the file is not such a checkpoint."""
    try:
        with zipfile.ZipFile(path) as z:
            name = next((n for n in z.namelist() if n.endswith("/data.pkl")), None)
            if name is None or z.getinfo(name).file_size > 64 << 20:
                return None
            data = z.read(name)
        last = None
        for op, arg, _ in pickletools.genops(data):
            if "PUT" in op.name or op.name == "MEMOIZE":
                continue  # memo bookkeeping between a key and its value
            if last == "format" and isinstance(arg, int) and not isinstance(arg, bool) \
                    and "INT" in op.name:
                return arg
            last = arg if isinstance(arg, str) else None
    except Exception:  # not a zip, or a malformed pickle: not an old checkpoint either
        return None
    return None


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The checkpoint at ``path``, read without unpickling and checked field by field
    (:data:`CHECKPOINT`); any problem is a :class:`CheckpointError` that says what it is."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = serialization.load(path)
    except UnreadableFile as e:
        old = _pickled_format(path)
        if old is not None and old < FORMAT_VERSION:
            raise CheckpointError(_old_format(path, old)) from e
        raise CheckpointError(f"{path} is not a readable probnn checkpoint: {e.reason}") from e
    except OSError as e:
        raise CheckpointError(f"{path} cannot be read ({e})") from e
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a probnn checkpoint (it has no format field)")
    fmt = state["format"]
    if fmt != FORMAT_VERSION:
        if isinstance(fmt, int) and not isinstance(fmt, bool) and fmt < FORMAT_VERSION:
            raise CheckpointError(_old_format(path, fmt))
        raise CheckpointError(f"{path} is a checkpoint of format {fmt!r}; this probnn reads "
                              f"format {FORMAT_VERSION}")
    require(state, CHECKPOINT, path)
    return state


def _old_format(path: Path, fmt: int) -> str:
    return (f"{path} was written by an older probnn (format {fmt}) that stored pickled objects; "
            "retrain, or read it with the probnn version that wrote it if you trust the file "
            "(this version never unpickles checkpoints)")


def check_compatible(state: dict, path, model, guide) -> None:
    for role, module in (("model", model), ("guide", guide)):
        want, have = describe(module), state[role]
        if want != have:
            raise CheckpointError(
                f"{path} holds a {role} {_fmt(have)} but this {role} is {_fmt(want)}: "
                f"build the {role} with the checkpoint's settings, or train a new one")


def load_checkpoint(path, model, guide, optimizer=None) -> dict[str, Any]:
    """Load weights (and optimiser state) into ``model``/``guide``; return the checkpoint's ``extra``.

    Raises :class:`CheckpointError` with both descriptions when the checkpoint was written for a
    different model (another class or another configuration, e.g. latent_dim 4 vs 20), and
    when its weights or optimiser state do not fit.
    """
    state = read_checkpoint(path)
    check_compatible(state, path, model, guide)
    modules = module_of(model), module_of(guide)
    for role, module in zip(("model", "guide"), modules):
        _check_weights(state[f"{role}_state"], module.state_dict(), path, role)
    try:
        for role, module in zip(("model", "guide"), modules):
            module.load_state_dict(state[f"{role}_state"])
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit this model: {_one_line(e)}") from e
    if state["param_store"]["params"]:
        _restore_param_store(state["param_store"], path, modules)
    if optimizer is not None and state["optimizer_state"] is not None:
        try:
            optimizer.load_state_dict(state["optimizer_state"])
        except (ValueError, KeyError, TypeError, IndexError, RuntimeError) as e:
            raise CheckpointError(f"{path}: its optimizer_state does not fit this optimiser "
                                  f"({type(e).__name__}: {_one_line(e)})") from e
    return state["extra"]


def _check_weights(saved: dict, own: dict, path, role: str) -> None:
    """Weights a model can compute with: a floating tensor where the module has one, and no NaN
    or infinity (which a finished training never saves: it stops on a non-finite loss), so a
    damaged or altered file is refused instead of giving NaN figures or a torch error."""
    for name, t in saved.items():
        mine = own.get(name)
        if not isinstance(t, torch.Tensor) or mine is None or not mine.is_floating_point():
            continue  # unknown names and shapes: load_state_dict names them
        if not t.is_floating_point():
            raise CheckpointError(f"{path}: {role} weight {name} is {t.dtype}, not floating "
                                  "point: the file was not written by probnn")
        if not bool(torch.isfinite(t).all()):
            raise CheckpointError(f"{path}: {role} weight {name} holds NaN or infinite values: "
                                  "the training diverged or the file was altered")


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split())
