"""Where a task's inputs come from: the data folder and the checkpoints it reads."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import pandas as pd
import torch

from probnn.datasets import load_xkcd, mnist_splits
from probnn.inference.checkpoint import CheckpointError
from probnn.inference.vae import history_from_checkpoint, load_vae
from probnn.models.cvae import ConditionalVAE

from .validation import ConfigError, check_size


@lru_cache(maxsize=2)
def _mnist_cpu(data_dir, split):
    return mnist_splits(data_dir, split)


@lru_cache(maxsize=2)
def _mnist(data_dir, split, device: str = "cpu"):
    """The splits on ``device``, moved there once per process (tasks index them there)."""
    splits = _mnist_cpu(data_dir, split)
    if torch.device(device).type == "cpu":
        return splits
    return tuple((x.to(device), y.to(device), idx) for x, y, idx in splits)


@dataclass(frozen=True)
class Inputs:
    """The data folder (``None``: ``$PROBNN_DATA``, then the user cache), the checkpoints
    (trained models) a task reads, in order, and the ``device`` the task computes on: models
    are loaded there and the MNIST images moved there once.

    The device is where a task runs, not what it computes, so it is here and not in the tasks'
    configs (whose digests key the report's cache): a result computed on a GPU serves a run on
    the CPU. Precision, which does change the numbers, is a config field.
    """
    data_dir: str | Path | None = None
    checkpoints: Sequence[str | Path] = ()
    device: str = "cpu"

    def xkcd(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The xkcd data ``(x, y)``, each (31, 1)."""
        return load_xkcd(self.data_dir)

    def mnist(self, holdout_split: float | None = None):
        """``((train_x, train_y, idx), (holdout_x, holdout_y, idx))`` of
        :func:`~probnn.datasets.mnist.mnist_splits` (read once per process)."""
        splits = _mnist(None if self.data_dir is None else str(self.data_dir), holdout_split,
                        str(self.device))
        if holdout_split and not (len(splits[0][0]) and len(splits[1][0])):
            raise ConfigError(f"holdout_split = {holdout_split} leaves "
                              f"{len(splits[0][0])} training and {len(splits[1][0])} holdout "
                              "images: both need one at least")
        return splits

    def check_sizes(self, holdout_split: float | None = None, *, train: dict | None = None,
                    holdout: dict | None = None) -> None:
        """Settings that count images (``{name: value}``, None: all) against the MNIST
        training images (``train``) and holdout images (``holdout``) of ``holdout_split``:
        :class:`~probnn.tasks.validation.ConfigError` when one asks for more than there are."""
        (tx, _, _), (hx, _, _) = self.mnist(holdout_split)
        where = (f" of holdout_split = {holdout_split}" if holdout_split
                 else " (the official test set)")
        for name, value in (train or {}).items():
            check_size(name, value, len(tx), "training images" + (
                f" left by holdout_split = {holdout_split}" if holdout_split else ""))
        for name, value in (holdout or {}).items():
            check_size(name, value, len(hx), "holdout images" + where)

    def checkpoint(self, i: int = 0) -> Path:
        if i >= len(self.checkpoints):
            raise ValueError(f"this task reads checkpoint {i + 1} but {len(self.checkpoints)} "
                             "were given")
        return Path(self.checkpoints[i])

    def vae(self, i: int = 0, conditional: bool | None = False):
        """The model and guide of checkpoint ``i`` on :attr:`device`, which must hold a
        conditional VAE when ``conditional`` is true, an unconditional one when it is false,
        and may hold either when it is ``None``."""
        path = self.checkpoint(i)
        model, guide = load_vae(path, device=self.device)
        if conditional is not None and isinstance(model, ConditionalVAE) != conditional:
            have, want = (("an unconditional", "a conditional") if conditional
                          else ("a conditional", "an unconditional"))
            raise CheckpointError(f"{path} holds {have} VAE; this question needs {want} one")
        return model, guide

    def history(self, i: int = 0) -> pd.DataFrame:
        """The per-epoch training history stored in checkpoint ``i``."""
        return history_from_checkpoint(self.checkpoint(i))
