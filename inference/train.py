"""A generic SVI training loop for any model/guide pair of this project.

``fit`` minimises an ELBO of ``(model, guide)`` with a torch optimiser over the modules' own
parameters (``module_local_params``, the PyTorch-style interface of :class:`pyro.infer.ELBO`),
full batch or in mini-batches, with a per-epoch history, a progress bar, checkpoints and exact
resume.

Exact resume: a checkpoint stores weights, optimiser state, the position (epoch and batch),
the RNG states at the start of the epoch and at the moment of saving, the loss accumulated so
far in the epoch, the history and any recorded sites. Resuming replays the epoch's shuffle
from the saved RNG state, skips the batches already done and continues with the saved RNG
state, so an interrupted run ends with the same numbers as an uninterrupted one.
"""
from __future__ import annotations

import math
import re
from contextlib import contextmanager
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
import pandas as pd
import pyro
import pyro.poutine as poutine
import torch
from tqdm.auto import tqdm

from .batching import TensorBatches, as_tuple, fingerprint
from .checkpoint import (COUNT, NUMBER, RNG, CheckpointError, dict_of, list_of, load_checkpoint,
                         of_type, optional, read_checkpoint, record, require, rng_state,
                         save_checkpoint, sequence, set_rng_state)
from .elbos import make_elbo
from .structure import ModelError, parameters
from .precision import autocast, check_precision
from .signals import STOP_SIGNALS


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C once a checkpoint of the interrupted run has been written."""

    def __init__(self, checkpoint: Path | None, epoch: int, batch: int):
        self.checkpoint, self.epoch, self.batch = checkpoint, epoch, batch
        where = (f"saved to {checkpoint}; run again with resume=True (--resume) to continue"
                 if checkpoint else "no checkpoint path was given, so nothing was saved")
        super().__init__(f"training interrupted in epoch {epoch + 1} after batch {batch}: {where}")

    def __reduce__(self):  # picklable, so it can cross from a worker process
        return type(self), (self.checkpoint, self.epoch, self.batch)


@dataclass
class FitResult:
    history: pd.DataFrame
    """One row per epoch: ``epoch`` (1-based), ``loss`` (mean negative ELBO per data point over
    the epoch's steps), ``elbo`` (its negative), ``seconds`` (cumulative training time), plus
    any columns the callback returns."""
    records: dict[str, np.ndarray] = field(default_factory=dict)
    """For each site in ``record``: its value at every epoch, shape (epochs, \\*site_shape), taken
    in the same pass that computed that epoch's loss (so at the same parameters)."""
    checkpoint: Path | None = None
    resumed_from_epoch: int = 0


@contextmanager
def one_thread():
    """Run torch on one intra-op thread, then restore the setting.

    For small problems (the regression models: 31 points; the Bayesian ones). The tensors of
    the Bayesian regression are tiny (31 points, widths <= 20, at most 1,000 draws), so a second
    thread only adds synchronisation; on the shared 2-core machine, with other jobs running,
    the default 2 threads made an SVI step ~108 ms instead of ~4 ms (2,500 steps: 164 s
    against 10 s, measured).
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _live_item(x):
    return x.detach() if isinstance(x, torch.Tensor) else x


# Pyro's ELBOs modules that turn tensors into Python numbers with ``torch_item``.
_ITEM_USERS = ("pyro.infer.trace_elbo", "pyro.infer.trace_mean_field_elbo")


@contextmanager
def live_loss_values():
    """Run Pyro's ELBOs with ``torch_item`` returning a detached tensor instead of a number.

    Trace_ELBO computes its loss value as ``float(log p) - float(log q)`` and returns
    ``loss + (surrogate - surrogate.item())``. Traced by :class:`TracedLoss`, both numbers are
    frozen into the graph at trace time, so a compiled step reports the current loss plus a
    constant rounding error of the step it was traced at. A resumed run traces at another step,
    so its history drifted from an uninterrupted run's in the last bits (gradients did not).
    With detached tensors the value is recomputed on every call, the same in eager and traced
    mode: ``float32(log p - log q)``, which for one particle is bitwise the number Pyro's double
    arithmetic rounds to (the difference of two float32 numbers is exact in double). Only
    used while tracing: eager steps keep Pyro's own arithmetic, so eager numbers are unchanged.
    """
    import importlib
    mods = [importlib.import_module(m) for m in _ITEM_USERS]
    old = [m.torch_item for m in mods]
    for m in mods:
        m.torch_item = _live_item
    try:
        yield
    finally:
        for m, f in zip(mods, old):
            m.torch_item = f


class LossModule(torch.nn.Module):
    """``elbo.differentiable_loss(model, guide, *args)`` as a module, optionally also returning
    the values of some of the model's sites from the same pass (detached)."""

    def __init__(self, elbo: pyro.infer.ELBO, model, guide, record: Sequence[str] = ()):
        super().__init__()
        self.model, self.guide, self.elbo, self.record = model, guide, elbo, tuple(record)
        self._traced_model = poutine.trace(model) if self.record else model

    def forward(self, *args):
        loss = self.elbo.differentiable_loss(self._traced_model, self.guide, *args)
        if not self.record:
            return loss
        nodes = self._traced_model.msngr.trace.nodes
        missing = [s for s in self.record if s not in nodes]
        if missing:
            raise KeyError(f"cannot record {missing}: the model has no such sites ({list(nodes)})")
        return (loss,) + tuple(nodes[s]["value"].detach() for s in self.record)


class TracedLoss:
    """A :class:`LossModule` compiled with ``torch.jit.trace``, once per input shape.

    This is what :class:`pyro.infer.JitTrace_ELBO` does, for module-local parameters (Pyro's
    version reads parameters from the global param store and fails with
    ``module_local_params``). Valid for models with static structure, which all models here
    have: Python control flow and checks run once while tracing, random draws are recorded as
    ops and drawn afresh on every call. Traced with validation off; ``fit`` runs the first
    step eagerly with validation on, so bad shapes or values are still caught.
    """

    def __init__(self, loss_module: torch.nn.Module):
        self.loss_module = loss_module
        self._traced: dict = {}

    def __call__(self, *args: torch.Tensor):
        key = tuple((tuple(a.shape), a.dtype, a.device) for a in args)
        traced = self._traced.get(key)
        if traced is None:
            # Tracing runs the loss once; put the RNG back so that compiling draws no random
            # numbers (otherwise a stochastic model's draws would depend on when shapes are first
            # seen, and a resumed run, which traces afresh, would diverge from an uninterrupted one).
            state = rng_state()
            try:
                with warnings.catch_warnings(), pyro.validation_enabled(False), live_loss_values():
                    warnings.simplefilter("ignore", category=torch.jit.TracerWarning)
                    warnings.simplefilter("ignore", category=FutureWarning)  # jit.trace deprecation
                    traced = torch.jit.trace(self.loss_module, args, check_trace=False)
            finally:
                set_rng_state(state)
            self._traced[key] = traced
        # TorchScript's optimising executor differentiates the graph itself once the first call has
        # been profiled, with gradients that differ from autograd's in the last bits, so a resumed
        # run (whose new trace is still on its first call) would drift from an uninterrupted one.
        # With the plain executor every call is differentiated by autograd, as in eager mode: the
        # gradients equal the eager ones on every call (and it is no slower for these models).
        with torch.jit.optimized_execution(False):
            return traced(*args)


@contextmanager
def handling(signals, handler):
    """Run the block with ``handler`` for each of ``signals``, then put the old handlers back.
    Signal handlers can only be set in the main thread: elsewhere the block runs unchanged."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.signal(sig, handler) for sig in signals}
    try:
        yield
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


_requests = threading.local()


class _Poll:
    """``asked()`` at most once every ``every`` seconds; true from the first time it is."""

    def __init__(self, asked: Callable[[], bool], every: float):
        self.asked, self.every, self.last, self.hit = asked, every, float("-inf"), False

    def __call__(self) -> bool:
        if not self.hit and (now := time.monotonic()) - self.last >= self.every:
            self.last = now
            try:
                self.hit = bool(self.asked())
            except Exception:  # the one asking is unreachable for a moment: train on
                self.hit = False
        return self.hit


@contextmanager
def stop_requests(asked: Callable[[], bool], every: float = 1.0):
    """While the block runs, :func:`fit` in this thread also stops as it does on Ctrl-C (saves
    its checkpoint, raises :class:`TrainingInterrupted`) once ``asked()`` is true. ``asked`` is
    called at most once every ``every`` seconds, between steps, so it may cost a round trip
    over the network: this is how a job runner asks a training in a worker process, possibly
    on another machine, to stop where its signals cannot reach (:mod:`probnn.runner`)."""
    before = getattr(_requests, "poll", None)
    _requests.poll = _Poll(asked, every)
    try:
        yield
    finally:
        _requests.poll = before


class _SigintFlag:
    """Turns Ctrl-C (SIGINT), SIGTERM and SIGHUP into a flag checked between optimisation steps, so a
    step is never cut in half and a checkpoint is saved. A second signal a second or more
    after the first aborts at once; one sooner is the same request arriving twice (e.g. sent to
    the process group and forwarded by a parent)."""

    SIGNALS = STOP_SIGNALS

    def __init__(self):
        self.hit = False
        self._first = 0.0
        self._handling = handling(self.SIGNALS, self._handle)

    def __enter__(self):
        self._handling.__enter__()
        return self

    def _handle(self, signum, frame):
        if self.hit and time.monotonic() - self._first >= 1.0:
            raise KeyboardInterrupt
        if not self.hit:
            self.hit, self._first = True, time.monotonic()

    def __exit__(self, *exc):
        return self._handling.__exit__(*exc)


TRAIN_KEYS = ("elbo", "num_particles", "lr", "batch_size", "record")

FINITE = of_type(int, float, np.floating, np.integer, expected="a finite number",
                 when=lambda v: math.isfinite(v))
HISTORY = list_of(record({"epoch": of_type(int, np.integer, expected="an epoch number >= 1",
                                           when=lambda n: n >= 1),
                          "loss": FINITE, "elbo": FINITE, "seconds": FINITE},
                         expected="a dict (one epoch's row: epoch, loss, elbo, seconds, ...)"),
                  expected="a list of rows")
TRAINING_STATE = record({
    "epoch": COUNT, "batch": COUNT,
    "acc": sequence(NUMBER, NUMBER, expected="(loss sum, data points) of the epoch so far"),
    "history": HISTORY,
    "records": dict_of(of_type(np.ndarray, expected="an array (epochs, \\*site_shape)",
                               when=lambda a: a.ndim >= 1 and a.dtype.kind == "f")),
    "seconds": NUMBER,
    "epoch_rng": optional(RNG),
    "rng_now": RNG,
    "train_config": dict_of(lambda v, where: []),
}, expected="the training loop's state (a dict)")
RECORDER_STATE = dict_of(of_type(np.ndarray, expected="an array"))
"""A ``recorder``'s state in a checkpoint's ``extra["recorder"]`` (see :func:`fit`)."""
"""What :func:`fit` keeps in a checkpoint's ``extra`` (see ``snapshot`` in :func:`fit`) and
reads back when resuming: position, partial loss, history, records, time and RNG states."""


def training_state(extra, path) -> dict:
    """``extra`` of the checkpoint at ``path`` if it holds every field of
    ``TRAINING_STATE``; otherwise a :class:`~probnn.inference.checkpoint.CheckpointError` naming what is wrong."""
    require(extra, TRAINING_STATE, path, "extra")
    if len(extra["history"]) != extra["epoch"]:
        raise CheckpointError(f"{path}: its history has {len(extra['history'])} rows but it "
                              f"says {extra['epoch']} epochs are done")
    if extra["batch"] > 0 and extra["epoch_rng"] is None:
        raise CheckpointError(f"{path}: field extra.epoch_rng is None, but a checkpoint taken "
                              f"after batch {extra['batch']} of an epoch needs the RNG state "
                              "of the epoch's start to replay its shuffle")
    return extra


def fit(model: torch.nn.Module, guide: torch.nn.Module, data, *, epochs: int,
        elbo: str | pyro.infer.ELBO = "trace", num_particles: int = 1, lr: float = 1e-3,
        optimizer: Callable[[Iterable[torch.nn.Parameter]], torch.optim.Optimizer] | None = None,
        batch_size: int | None = None, seed: int | None = None,
        checkpoint: str | Path | None = None, checkpoint_every: int = 1, resume: bool = False,
        progress: bool = True, desc: str = "train", callback=None, record: Sequence[str] = (),
        recorder=None, jit: bool = False, max_plate_nesting: int = 1, settings=None,
        precision: str = "fp32") -> FitResult:
    """Train ``model``/``guide`` by SVI for ``epochs`` epochs (in total, counting resumed ones).

    Args:
        data: a tuple of tensors passed positionally to model and guide (full batch unless
            ``batch_size`` is given), or any iterable of such tuples, e.g. a ``DataLoader``
            whose shuffling draws from torch's global RNG (exact resume relies on that).
        elbo: an ELBO name for :func:`~probnn.inference.elbos.make_elbo` or an ELBO instance.
        optimizer: ``params -> torch.optim.Optimizer``; default ``torch.optim.Adam(lr=lr,
            fused=True)``.
        seed: seeds torch, numpy and random before training (when resuming, the checkpoint's
            RNG states are restored instead).
        checkpoint: file to save to every ``checkpoint_every`` epochs, at the end and on
            Ctrl-C; with ``resume=True`` training continues from it when it exists.
        callback: ``callback(epoch, loss) -> dict | None`` after each epoch; a returned dict
            adds columns to the history.
        record: model sites whose values to keep at every epoch (full batch only).
        recorder: instead of keeping every epoch's values of the ``record`` sites, hand them
            to ``recorder.update(epoch, values)`` (epoch 0-based), which keeps what it needs;
            its ``state(epochs_done) -> dict of arrays`` goes into checkpoints and
            ``load(state)`` restores it on resume (so resuming stays exact). ``records`` of
            the result is then empty.
        jit: compile the loss with :class:`TracedLoss` (models with static structure only).
        settings: further settings a resumed run must share with its checkpoint (e.g. the
            data selection and the seed), besides the training settings and, for tensor
            data, the data's size and contents, which are always checked.
        precision: ``"fp32"`` or ``"bf16"``: the loss's forward pass under bfloat16 autocast
            on the parameters' device (:mod:`probnn.inference.precision`: the networks in
            bf16; likelihood sums, KL, parameters, gradients and Adam state in fp32). Part of
            the training settings a resume must share.

    The loss is the negative ELBO divided by the number of data points in the batch, so the
    history is in nats per data point whatever the batch size.
    """
    if epochs < 0:
        raise ValueError(f"epochs must be >= 0, got {epochs}")
    if isinstance(data, torch.Tensor) or (
            isinstance(data, (tuple, list)) and all(isinstance(t, torch.Tensor) for t in data)):
        data = as_tuple(data)
        loader = TensorBatches(data, batch_size) if batch_size else [data]
    else:
        loader = data
    if record and not (isinstance(loader, list) and len(loader) == 1):
        raise ValueError("record= needs full-batch training (tensors and no batch_size)")
    elbo_name = elbo if isinstance(elbo, str) else type(elbo).__name__
    elbo_obj = make_elbo(elbo, num_particles, max_plate_nesting) if isinstance(elbo, str) else elbo
    eager_loss = LossModule(elbo_obj, model, guide, record)
    params = _parameters(eager_loss, model, guide, loader)
    if not params:
        raise ModelError("the model and guide have no trainable parameters (none in their "
                         "modules, none reached by pyro.param/pyro.module in a traced pass)")
    # fused Adam: the same update as Adam's default, in one kernel instead of one per tensor
    opt = optimizer(params) if optimizer else torch.optim.Adam(params, lr=lr, fused=True)
    fast_loss = TracedLoss(eager_loss) if jit else eager_loss
    if isinstance(loader, TensorBatches):  # given ready-made (train_vae): its size counts
        batch_size = loader.batch_size
    train_config = dict(zip(TRAIN_KEYS, (elbo_name, num_particles, lr, batch_size, tuple(record))))
    train_config["precision"] = check_precision(precision)
    device = next((p.device for p in params), torch.device("cpu"))
    # what determines the data (and the seed, the start): resuming on other data, a subset or
    # another split would silently train on something else, or run out of batches
    train_config.update(settings or {}, **({"seed": seed} if seed is not None else {}))
    ckpt = Path(checkpoint) if checkpoint is not None else None
    if ckpt is not None:  # only a checkpoint is compared (on resume): no hashing otherwise
        train_config.update(_data_fingerprint(loader))

    start_epoch, start_batch, acc = 0, 0, [0.0, 0]
    rows: list[dict] = []
    # Preallocated (epochs, \\*site_shape) arrays, filled row by row: cheap to checkpoint whole.
    records: dict[str, np.ndarray] = {}
    epoch_rng, elapsed, resumed_from = None, 0.0, 0
    if resume and ckpt is not None and ckpt.exists():
        extra = training_state(read_checkpoint(ckpt)["extra"], ckpt)
        saved = {"precision": "fp32", **extra["train_config"]}  # older checkpoints: all fp32
        diff = [k for k, v in train_config.items() if k not in saved or saved[k] != v]
        if diff:
            what = "; ".join(_differs(k, saved, train_config[k]) for k in diff)
            raise CheckpointError(
                f"cannot resume {ckpt}: {what}. Resume with the checkpoint's settings, or start "
                "a new run (--force, or another --out)")
        load_checkpoint(ckpt, model, guide, opt)
        start_epoch, start_batch = extra["epoch"], extra["batch"]
        acc, rows, elapsed = list(extra["acc"]), list(extra["history"]), extra["seconds"]
        records = {s: _grow(v, epochs) for s, v in extra["records"].items()}
        if recorder is not None:
            if "recorder" not in extra:
                raise CheckpointError(f"{ckpt}: field extra.recorder is missing (a checkpoint "
                                      "of a run that kept its records otherwise)")
            require(extra["recorder"], RECORDER_STATE, ckpt, "extra.recorder")
            recorder.load(extra["recorder"])
        epoch_rng = extra["epoch_rng"]
        set_rng_state(extra["rng_now"])
        resumed_from = start_epoch
        if start_epoch > epochs:
            raise CheckpointError(f"{ckpt} has already trained {start_epoch} epochs, more than "
                                  f"the {epochs} asked for")
    elif seed is not None:
        pyro.set_rng_seed(seed)

    def snapshot(epoch: int, batch: int) -> Path | None:
        if ckpt is None:
            return None
        extra = {"epoch": epoch, "batch": batch, "acc": tuple(acc), "history": rows,
                 "records": {s: v[:epoch + (batch > 0)] for s, v in records.items()},
                 "seconds": elapsed, "epoch_rng": epoch_rng,
                 "rng_now": rng_state(), "train_config": train_config}
        if recorder is not None:
            extra["recorder"] = recorder.state(epoch + (batch > 0))
        return save_checkpoint(ckpt, model=model, guide=guide, optimizer=opt, extra=extra)

    try:
        n_batches = len(loader)
    except TypeError:
        n_batches = None
    total = epochs * n_batches if n_batches else None
    done = start_epoch * n_batches + start_batch if n_batches else 0
    bar = tqdm(total=total, initial=done, desc=desc, disable=not progress, dynamic_ncols=True,
               unit="step" if (n_batches or 0) > 1 else "epoch", mininterval=0.5)
    last_post, validated = 0.0, False
    for m in (model, guide):
        if isinstance(m, torch.nn.Module):
            m.train()
    asked = getattr(_requests, "poll", None) or (lambda: False)  # see stop_requests
    with _SigintFlag() as sigint, warnings.catch_warnings():
        # a NaN loss stops training with its own error below (where and what to do); Pyro's
        # warning before it would only repeat it
        warnings.filterwarnings("ignore", message="Encountered NaN")
        try:
            for epoch in range(start_epoch, epochs):
                t0 = time.perf_counter()
                if epoch == start_epoch and start_batch > 0:
                    # replay this epoch's shuffle, skip what was done, then continue the RNG stream
                    now = rng_state()
                    set_rng_state(epoch_rng)
                    it = iter(loader)
                    for _ in range(start_batch):
                        next(it)
                    set_rng_state(now)
                    first = start_batch
                else:
                    epoch_rng, acc, first = rng_state(), [0.0, 0], 0
                    it = iter(loader)
                for b, batch in enumerate(it, start=first):
                    batch = as_tuple(batch)
                    n = len(batch[0]) if hasattr(batch[0], "__len__") else 1
                    try:
                        if not validated and jit and (start_epoch, start_batch) != (0, 0):
                            # A resumed compiled run: the uninterrupted run compiled this step too,
                            # so check shapes and values with a throw-away eager pass (drawing no
                            # random numbers) and take the step compiled, as it did.
                            state = rng_state()
                            with torch.no_grad():
                                eager_loss(*batch)
                            set_rng_state(state)
                            validated = True
                        if validated:
                            with pyro.validation_enabled(False), autocast(precision, device):
                                out = fast_loss(*batch)  # validated on the first step
                        else:
                            with autocast(precision, device):
                                out = eager_loss(*batch)
                            validated = True
                    except ValueError as e:
                        # torch's distribution checks: a parameter out of its support (e.g. a
                        # scale that underflowed to 0) is a diverged step, like a NaN loss
                        if not str(e).startswith("Expected parameter"):
                            raise
                        raise FloatingPointError(
                            f"{desc}: {_invalid_parameter(e)} in epoch {epoch + 1}, batch "
                            f"{b + 1}; parameters were left at the previous step's values") from e
                    loss, sites = (out[0], out[1:]) if record else (out, ())
                    loss = loss / n
                    value = loss.item()
                    if not math.isfinite(value):
                        raise FloatingPointError(
                            f"{desc}: loss is {value} in epoch {epoch + 1}, batch {b + 1}; "
                            "parameters were left at the previous step's values")
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    if recorder is not None:
                        recorder.update(epoch, sites)
                        sites = ()
                    for s, v in zip(record, sites):
                        if s not in records:
                            records[s] = np.full((epochs,) + tuple(v.shape), np.nan, np.float32)
                        records[s][epoch] = v.cpu().numpy()
                    acc[0] += value * n
                    acc[1] += n
                    bar.update(1)
                    if progress and (now_t := time.monotonic()) - last_post > 0.5:
                        bar.set_postfix_str(f"epoch {epoch + 1}/{epochs} elbo {-acc[0] / acc[1]:.4g}",
                                            refresh=False)
                        last_post = now_t
                    if sigint.hit or asked():
                        elapsed += time.perf_counter() - t0
                        raise TrainingInterrupted(snapshot(epoch, b + 1), epoch, b + 1)
                elapsed += time.perf_counter() - t0
                mean_loss = acc[0] / max(acc[1], 1)
                row = {"epoch": epoch + 1, "loss": mean_loss, "elbo": -mean_loss, "seconds": elapsed}
                if callback is not None:
                    row.update(callback(epoch + 1, mean_loss) or {})
                rows.append(row)
                start_batch = 0
                if ckpt is not None and ((epoch + 1) % checkpoint_every == 0 or epoch + 1 == epochs):
                    epoch_rng = None
                    snapshot(epoch + 1, 0)
        finally:
            bar.close()
            for m in (model, guide):
                if isinstance(m, torch.nn.Module):
                    m.eval()
    return FitResult(pd.DataFrame(rows), {s: v[:len(rows)] for s, v in records.items()}, ckpt,
                     resumed_from)


def _parameters(loss: torch.nn.Module, model, guide, loader) -> list:
    """The modules' trainable parameters, then any others a traced pass on the first batch
    reaches (``pyro.module``/``pyro.param`` in plain functions or bound methods), as
    Pyro's SVI finds them."""
    own = [p for p in loss.parameters() if p.requires_grad]
    first = (loader[0] if isinstance(loader, list) and loader else
             tuple(t[:loader.batch_size] for t in loader.tensors)  # no shuffle drawn
             if isinstance(loader, TensorBatches) else None)
    if first is None:
        return own
    seen = {id(p) for p in own}
    return own + [p for p in parameters(model, guide, as_tuple(first)) if id(p) not in seen]


def _data_fingerprint(loader) -> dict:
    """The size and digest of in-memory data (a TensorBatches or a list of tensor batches);
    nothing for other iterables, which cannot be read without consuming them."""
    if isinstance(loader, TensorBatches):
        return fingerprint(loader.tensors)
    if isinstance(loader, list) and all(isinstance(t, torch.Tensor) for b in loader for t in b):
        return fingerprint([torch.cat(ts) for ts in zip(*loader)])
    return {}


def _invalid_parameter(e: ValueError) -> str:
    """torch's multi-line "Expected parameter scale (...) of distribution Normal(...) to satisfy
    the constraint GreaterThan(lower_bound=0.0), but found invalid values: ..." in a few words."""
    m = re.match(r"Expected parameter (\w+) .*? of distribution (\w+).*?to satisfy the constraint "
                 r"(.+?), but found", str(e), re.S)
    if m is None:
        return "invalid distribution parameters"
    return f"the {m[2]} {m[1]} left its support {m[3]} (e.g. a scale that underflowed to 0)"


def _differs(key: str, saved: dict, now) -> str:
    if key not in saved:
        return f"the checkpoint does not record {key} (now {now!r})"
    saved = saved[key]
    if key == "data_digest":
        return "the training data differ from the checkpoint's (same size, other contents)"
    if key == "data_points":
        return f"it was trained on {saved} data points, this run has {now}"
    return f"{key} is {saved!r} in the checkpoint but {now!r} now"


def _grow(a: np.ndarray, epochs: int) -> np.ndarray:
    out = np.full((max(epochs, len(a)),) + a.shape[1:], np.nan, np.float32)
    out[:len(a)] = a
    return out
