"""Checkpoints that restore a training run exactly: weights, optimiser, position and RNG states."""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pyro
import torch

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint cannot be used: unreadable, or written for a different model."""


def describe(module: torch.nn.Module) -> dict[str, Any]:
    """A module's identity for checkpoint checks: class name plus its ``config`` if it has one."""
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


def save_checkpoint(path: str | os.PathLike, *, model, guide, optimizer=None, extra=None) -> Path:
    """Write a checkpoint atomically (a temporary file renamed into place).

    An interruption while writing leaves the previous checkpoint intact.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": FORMAT_VERSION,
        "model": describe(model), "model_state": model.state_dict(),
        "guide": describe(guide), "guide_state": guide.state_dict(),
        "optimizer_state": optimizer.state_dict() if optimizer is not None else None,
        "param_store": pyro.get_param_store().get_state(),
        "rng": rng_state(),
        "extra": extra or {},
    }
    tmp = path.with_name(path.name + ".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)
    return path


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # truncated or foreign file
        raise CheckpointError(f"{path} is not a readable probnn checkpoint ({e})") from e
    if not isinstance(state, dict) or state.get("format") != FORMAT_VERSION:
        raise CheckpointError(f"{path} is not a probnn checkpoint (format {FORMAT_VERSION})")
    return state


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
    different model (another class or another configuration, e.g. latent_dim 4 vs 20).
    """
    state = read_checkpoint(path)
    check_compatible(state, path, model, guide)
    try:
        model.load_state_dict(state["model_state"])
        guide.load_state_dict(state["guide_state"])
    except RuntimeError as e:
        raise CheckpointError(f"{path} does not fit this model: {e}") from e
    if state["param_store"]["params"]:
        pyro.get_param_store().set_state(state["param_store"])
    if optimizer is not None and state["optimizer_state"] is not None:
        optimizer.load_state_dict(state["optimizer_state"])
    return state["extra"]
