"""Fitting the regression models by maximum likelihood, recording what the dip analysis needs."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.guides.regression import MaximumLikelihoodGuide
from probnn.models.regression import (REGRESSION_MODELS, HeteroscedasticFamily, ensemble_member,
                                      seed_ensemble)

from .checkpoint import CheckpointError, load_checkpoint
from .train import fit, training_state

COURSEWORK_EPOCHS = 50_000


@dataclass
class RegressionFit:
    """A fitted regression model with its training record (see :func:`fit_regression`)."""
    name: str
    model: torch.nn.Module
    x: torch.Tensor
    y: torch.Tensor
    history: pd.DataFrame  # epoch, loss (= -mean log-likelihood), loglik, seconds
    f: np.ndarray          # (epochs, n) f(x_i) at each epoch, at the parameters its loss used
    sigma: np.ndarray      # (epochs, n) sigma(x_i), likewise (members of an EnsembleFit: NaN
    #                        except around the deepest dip, at the highest and the last epoch)

    def pointwise_loglik(self) -> np.ndarray:
        """(epochs, n) log N(y_i | f(x_i), sigma(x_i)^2) at each epoch; rows sum to n * loglik."""
        y = self.y[:, 0].numpy()[None, :].astype(np.float64)
        s = self.sigma.astype(np.float64)
        return -0.5 * ((y - self.f) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-epoch record as arrays: ``x``, ``y``, ``f``, ``sigma``, ``loglik``, ``epoch``
        (an ensemble member's f and sigma are NaN at the epochs it did not keep, see
        :class:`DipRecorder`)."""
        return dict(x=self.x[:, 0].numpy(), y=self.y[:, 0].numpy(), f=self.f, sigma=self.sigma,
                    loglik=self.history["loglik"].to_numpy(),
                    epoch=self.history["epoch"].to_numpy())

    def save(self, path: str | Path) -> Path:
        """Save the per-epoch record (:meth:`arrays`) as a compressed ``.npz``."""
        path = Path(path)
        np.savez_compressed(path, **self.arrays())
        return path


def _fit_ml(model, x: torch.Tensor, y: torch.Tensor, device, **kw):
    """:func:`~probnn.inference.train.fit` by maximum likelihood (the empty guide) on
    ``device``, the model and the data moved there once."""
    guide = MaximumLikelihoodGuide()
    model.to(device), guide.to(device)
    return fit(model, guide, (x.to(device), y.to(device)), **kw)


def fit_regression(name: str, x: torch.Tensor, y: torch.Tensor, *, epochs: int = COURSEWORK_EPOCHS,
                   seed: int = COURSEWORK_SEED, lr: float = 1e-3, elbo: str = "trace",
                   record: bool = True, checkpoint=None, checkpoint_every: int = 5000,
                   resume: bool = False, progress: bool = True, jit: bool = True,
                   sigma_floor: float = 0.0, beta: float = 0.0, cure: str = "none",
                   device: str | torch.device = "cpu") -> RegressionFit:
    """Fit the ``homoscedastic`` or ``heteroscedastic`` model by maximum likelihood.

    As in the coursework: Adam with ``lr``, full batch, ``epochs`` epochs, seeded with ``seed``
    before the networks are initialised, so the same seed gives the same fit.
    ``sigma_floor``, ``beta`` and ``cure`` (heteroscedastic only) are the dip cures of
    :class:`~probnn.models.regression.HeteroscedasticRegression`; with ``beta`` or the
    faithful cure (objectives other than the likelihood) the history's
    ``loglik`` is recomputed from the recorded f and sigma and ``objective`` holds the
    weighted ELBO. ``jit`` compiles the loss (the same Trace_ELBO objective; see
    :class:`~probnn.inference.train.TracedLoss`). ``device``: where to fit (the model and
    the data are moved there once); the returned fit is on the CPU, like its data.
    """
    torch.manual_seed(seed)
    model = builder(name, sigma_floor, beta, cure)()
    result = _fit_ml(model, x, y, device, epochs=epochs, elbo=elbo, lr=lr, seed=seed,
                     checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                     progress=progress, desc=name, record=("f", "sigma") if record else (),
                     jit=jit)
    return _regression_fit(name, model.cpu(), x, y, result.history, result.records,
                           not model.likelihood_objective)


@dataclass(frozen=True)
class ModelSpec:
    """One regression model with its cures, as a constructor: ``spec()`` builds it (drawing
    its initial weights from torch's RNG). Compared by value, unlike a closure."""
    name: str
    sigma_floor: float = 0.0
    beta: float = 0.0
    cure: str = "none"

    def kwargs(self) -> dict:
        """The model class's keyword arguments for these cures."""
        cures = (dict(sigma_floor=self.sigma_floor, beta=self.beta)
                 if self.sigma_floor or self.beta else {})
        if self.cure != "none":
            cures["cure"] = self.cure
        return cures

    def __call__(self):
        return REGRESSION_MODELS[self.name](**self.kwargs())


def builder(name: str, sigma_floor: float = 0.0, beta: float = 0.0, cure: str = "none"
            ) -> ModelSpec:
    """``() -> model``: the constructor of one regression model with these cures (checked)."""
    if name not in REGRESSION_MODELS:
        raise ValueError(f"unknown regression model {name!r}; choose from {list(REGRESSION_MODELS)}")
    if REGRESSION_MODELS["heteroscedastic"].cured(sigma_floor, beta, cure) \
            and name != "heteroscedastic":
        raise ValueError("sigma_floor, beta and the cures apply to the heteroscedastic model only")
    if name == "heteroscedastic":  # a bad combination raises now (building would draw weights)
        REGRESSION_MODELS[name].check(sigma_floor, beta, cure)
    return ModelSpec(name, sigma_floor, beta, cure)


def _regression_fit(name, model, x, y, history: pd.DataFrame, records: dict, beta
                    ) -> RegressionFit:
    history = history.rename(columns={"elbo": "loglik"})
    empty = np.empty((0, len(x)), np.float32)
    f = records["f"][..., 0] if "f" in records else empty
    s = records["sigma"][..., 0] if "sigma" in records else empty
    out = RegressionFit(name, model, x, y, history, f, s)
    if beta and "f" in records:  # the ELBO is another objective: report the likelihood
        history["objective"] = history["loglik"]
        history["loglik"] = out.pointwise_loglik().mean(1)
    return out


def load_regression(name: str, x: torch.Tensor, y: torch.Tensor, checkpoint, *,
                    sigma_floor: float = 0.0, beta: float = 0.0, cure: str = "none"
                    ) -> RegressionFit:
    """The :class:`RegressionFit` stored in a checkpoint of :func:`fit_regression` (weights,
    history and per-epoch record), without training: what ``fit_regression`` returned when
    it wrote the checkpoint last."""
    model = builder(name, sigma_floor, beta, cure)()
    extra = training_state(load_checkpoint(checkpoint, model, MaximumLikelihoodGuide()),
                           checkpoint)
    history = pd.DataFrame(extra["history"])
    records = {s: v[:len(history)] for s, v in extra["records"].items()}
    return _regression_fit(name, model.eval(), x, y, history, records,
                           not model.likelihood_objective)


# ----------------------------------------------------------------------------- seed ensembles
DIP_AFTER, DIP_BEFORE, DIP_FOLLOW = 100, 200, 100
"""What :class:`DipRecorder` keeps of each member's deepest dip: the lowest mean
log-likelihood after epoch ``DIP_AFTER`` (the seed table's and ``dip_analysis``'s
``after_epoch``), with f and sigma over the ``DIP_BEFORE`` epochs before it (``dip_analysis``'s
baseline ``window``) and the ``DIP_FOLLOW`` epochs after it (``dip_figure``'s
``epochs_after``)."""


@dataclass(init=False, eq=False)
class DipRecorder:
    """What the regression analysis reads of a batch of members' training, kept during
    training instead of f and sigma at every epoch: for the report's 40-network batch after
    50,000 epochs those were a 502 MB checkpoint, this is 21.5 MB, 16 MB of it the
    log-likelihood curves (benchmarks/regression_checkpoint.py).

    Per member: the mean log-likelihood at every epoch (float64, computed from the float32 f
    and sigma exactly as a record of them would give it); f and sigma at the epochs around its
    lowest mean log-likelihood after ``after`` (``before`` epochs before it, ``follow`` after,
    updated whenever a new lowest epoch is reached, the earliest on ties, as ``idxmin``), at its
    highest after ``after`` (the earliest, as ``idxmax``) and at the last epoch. A ring of the
    last ``before`` epochs' f and sigma supplies a new low's baseline. Its state goes into the
    training checkpoints, so a resumed run keeps the same.
    """
    y: np.ndarray           # (n,) float64
    after: int
    before: int
    follow: int
    loglik: np.ndarray      # (epochs, members) float64, NaN for epochs not trained yet
    ring_f: np.ndarray      # (before, members, n): epoch e's f in row e % before
    ring_s: np.ndarray
    low_f: np.ndarray       # (before + 1 + follow, members, n): epochs low - before .. low + follow
    low_s: np.ndarray
    low_epoch: np.ndarray   # (members,) 1-based epoch of the lowest so far, 0 for none
    low_ll: np.ndarray
    high_f: np.ndarray      # (members, n) at the highest epoch so far
    high_s: np.ndarray
    high_epoch: np.ndarray
    high_ll: np.ndarray
    last_f: np.ndarray      # (members, n) at the last epoch
    last_s: np.ndarray

    def __init__(self, y: torch.Tensor, epochs: int, members: int, after: int = DIP_AFTER,
                 before: int = DIP_BEFORE, follow: int = DIP_FOLLOW):
        n = len(y)
        self.y = y[:, 0].numpy().astype(np.float64)
        self.after, self.before, self.follow = after, before, follow
        nan32 = lambda *shape: np.full(shape, np.nan, np.float32)  # noqa: E731
        self.loglik = np.full((epochs, members), np.nan)
        self.ring_f, self.ring_s = nan32(before, members, n), nan32(before, members, n)
        w = before + 1 + follow
        self.low_f, self.low_s = nan32(w, members, n), nan32(w, members, n)
        self.low_epoch = np.zeros(members, np.int64)  # 0: none yet
        self.low_ll = np.full(members, np.inf)
        self.high_f, self.high_s = nan32(members, n), nan32(members, n)
        self.high_epoch = np.zeros(members, np.int64)
        self.high_ll = np.full(members, -np.inf)
        self.last_f, self.last_s = nan32(members, n), nan32(members, n)

    def update(self, epoch: int, sites) -> None:
        """Epoch ``epoch`` (0-based) with the sites (f, sigma), each (members, n, 1) tensors."""
        f = sites[0].cpu().numpy()[..., 0]
        s = np.broadcast_to(sites[1].cpu().numpy()[..., 0], f.shape)
        self.add(epoch, f, s)

    def add(self, epoch: int, f: np.ndarray, s: np.ndarray) -> None:
        """Epoch ``epoch`` (0-based) with f and sigma as float32 (members, n) arrays."""
        s64 = s.astype(np.float64)
        ll = (-0.5 * ((self.y - f) / s64) ** 2 - np.log(s64) - 0.5 * np.log(2 * np.pi)).mean(-1)
        self.loglik[epoch] = ll
        e, b = epoch + 1, self.before
        if e > self.after:
            new = ll < self.low_ll
            if new.any():
                past = [(e - b + k) % b for k in range(b)]  # epochs e-b .. e-1 (slot = epoch % b)
                self.low_f[:b, new] = self.ring_f[past][:, new]
                self.low_s[:b, new] = self.ring_s[past][:, new]
                self.low_f[b:, new], self.low_s[b:, new] = np.nan, np.nan
                self.low_f[b, new], self.low_s[b, new] = f[new], s[new]
                self.low_epoch[new], self.low_ll[new] = e, ll[new]
            m = np.flatnonzero(~new & (self.low_epoch > 0) & (e - self.low_epoch <= self.follow))
            rows = b + e - self.low_epoch[m]
            self.low_f[rows, m], self.low_s[rows, m] = f[m], s[m]
            up = ll > self.high_ll
            self.high_f[up], self.high_s[up] = f[up], s[up]
            self.high_epoch[up], self.high_ll[up] = e, ll[up]
        self.ring_f[e % b], self.ring_s[e % b] = f, s
        self.last_f[...], self.last_s[...] = f, s

    _FIELDS = ("ring_f", "ring_s", "low_f", "low_s", "low_epoch", "low_ll", "high_f", "high_s",
               "high_epoch", "high_ll", "last_f", "last_s")

    def state(self, epochs_done: int) -> dict[str, np.ndarray]:
        """Everything kept, the curves up to ``epochs_done`` epochs."""
        return {"loglik": self.loglik[:epochs_done].copy(),
                **{k: getattr(self, k).copy() for k in self._FIELDS}}

    def load(self, state: dict[str, np.ndarray]) -> None:
        """Back to a :meth:`state` (of a recorder of the same shape)."""
        ll = state["loglik"]
        if ll.ndim != 2 or ll.shape[1] != self.loglik.shape[1] or len(ll) > len(self.loglik):
            raise ValueError(f"a recorder state for {ll.shape} epochs x members, not "
                             f"{self.loglik.shape}")
        self.loglik[:] = np.nan
        self.loglik[:len(ll)] = ll
        for k in self._FIELDS:
            a = getattr(self, k)
            if state[k].shape != a.shape:
                raise ValueError(f"recorder field {k} has shape {state[k].shape}, not {a.shape}")
            a[...] = state[k]

    def members(self, part: slice) -> "DipRecorder":
        """The recorder restricted to members ``part`` (views)."""
        out = object.__new__(DipRecorder)
        out.y, out.after, out.before, out.follow = self.y, self.after, self.before, self.follow
        out.loglik = self.loglik[:, part]
        for k in self._FIELDS:
            a = getattr(self, k)
            setattr(out, k, a[:, part] if k in ("ring_f", "ring_s", "low_f", "low_s") else a[part])
        return out

    @classmethod
    def replay(cls, y: torch.Tensor, f: np.ndarray, sigma: np.ndarray, **kw) -> "DipRecorder":
        """The recorder of a run whose f and sigma (epochs, members, n) are known."""
        out = cls(y, len(f), f.shape[1], **kw)
        for epoch in range(len(f)):
            out.add(epoch, f[epoch].astype(np.float32), sigma[epoch].astype(np.float32))
        return out

    def f_sigma(self, s: int, epochs_done: int) -> tuple[np.ndarray, np.ndarray]:
        """Member ``s``'s f and sigma as (epochs_done, n) arrays: the kept epochs (around its
        deepest dip, at its highest and last epoch), NaN at all others."""
        n = self.last_f.shape[1]
        f = np.full((epochs_done, n), np.nan, np.float32)
        sigma = np.full((epochs_done, n), np.nan, np.float32)
        if self.low_epoch[s] > 0:
            first = self.low_epoch[s] - 1 - self.before  # row of the window's first epoch
            lo, hi = max(first, 0), min(first + len(self.low_f), epochs_done)
            f[lo:hi] = self.low_f[lo - first:hi - first, s]
            sigma[lo:hi] = self.low_s[lo - first:hi - first, s]
        if self.high_epoch[s] > 0:
            row = self.high_epoch[s] - 1
            f[row], sigma[row] = self.high_f[s], self.high_s[s]
        if epochs_done:
            f[-1], sigma[-1] = self.last_f[s], self.last_s[s]
        return f, sigma


@dataclass
class EnsembleFit:
    """One model trained from several seeds at once (:func:`fit_ensemble`).

    ``record``: what training kept of every member (a :class:`DipRecorder`: the mean
    log-likelihood at every epoch; f and sigma around the deepest dip, at the highest and at
    the last epoch); ``history``: epoch, ``objective`` (the ELBO summed over members, per data
    point) and seconds.
    """
    name: str
    model: torch.nn.Module
    build: ModelSpec  # () -> one member's model
    seeds: tuple[int, ...]
    x: torch.Tensor
    y: torch.Tensor
    history: pd.DataFrame
    record: DipRecorder
    others: list = field(default_factory=list)
    """Further cures trained in the same batch (:func:`fit_family`), each an EnsembleFit."""

    @classmethod
    def from_records(cls, name, model, build, seeds, x, y, history, f, sigma) -> "EnsembleFit":
        """An ensemble whose members' f and sigma (epochs, seeds, n) at every epoch are known."""
        return cls(name, model, build, tuple(seeds), x, y, history, DipRecorder.replay(y, f, sigma))

    def loglik(self) -> np.ndarray:
        """(epochs, seeds): each member's mean log N(y_i | f(x_i), sigma(x_i)^2) per epoch
        (computed in float64 during training from the float32 f and sigma)."""
        return self.record.loglik[:len(self.history)]

    def member(self, seed: int) -> RegressionFit:
        """The member trained from ``seed`` as a :class:`RegressionFit`: its model, history
        with ``loglik``, and f and sigma at the epochs kept (see :class:`DipRecorder`; NaN at
        the others), which is what the dip analysis and the figures read."""
        if seed not in self.seeds:
            raise ValueError(f"seed {seed} is not a member; the members are {list(self.seeds)}")
        s = self.seeds.index(seed)
        history = self.history[["epoch", "seconds"]].copy()
        history.insert(1, "loglik", self.loglik()[:, s])
        f, sigma = self.record.f_sigma(s, len(history))
        return RegressionFit(self.name, ensemble_member(self.model, self.build, s), self.x,
                             self.y, history, f, sigma)


def ensemble_seeds(seed: int, count: int) -> tuple[int, ...]:
    """The members' seeds: ``seed``, ``seed + 1``, ..., ``seed + count - 1``."""
    return tuple(range(seed, seed + count))


def fit_ensemble(name: str, x: torch.Tensor, y: torch.Tensor, *, seeds: tuple[int, ...],
                 epochs: int = COURSEWORK_EPOCHS, lr: float = 1e-3, checkpoint=None,
                 checkpoint_every: int = 5000, resume: bool = False, progress: bool = True,
                 jit: bool = True, sigma_floor: float = 0.0, beta: float = 0.0,
                 cure: str = "none", device: str | torch.device = "cpu") -> EnsembleFit:
    """Train :func:`fit_regression`'s model from every seed in ``seeds`` at once.

    One :func:`~probnn.models.regression.seed_ensemble` (member s starts from exactly the
    weights ``fit_regression(..., seed=seeds[s])`` starts from), one Adam over the stacked
    weights, trained by the project's loop (:func:`~probnn.inference.train.fit`: compiled
    loss, checkpoints, exact resume, Ctrl-C saving). The loss is the sum of the members'
    losses and they share no parameter, so each member's gradient is its own and Adam, which
    is elementwise, takes each member's own step: member s follows ``fit_regression`` with
    seed s up to float rounding (batched matrix products round differently from single
    ones), which the chaotic heteroscedastic dynamics amplify over thousands of epochs.
    """
    build = builder(name, sigma_floor, beta, cure)
    model = seed_ensemble(build, seeds)
    rec = DipRecorder(y, epochs, len(seeds))
    result = _fit_ml(model, x, y, device, epochs=epochs, lr=lr, seed=seeds[0],
                     checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                     progress=progress, desc=f"{name} x{len(seeds)} seeds",
                     record=("f", "sigma"), recorder=rec, jit=jit, max_plate_nesting=2,
                     settings={"seeds": list(seeds), "recorder": RECORDER})
    return _ensemble_fit(name, model.cpu(), build, tuple(seeds), x, y, result.history, rec)


RECORDER = f"dip windows {DIP_AFTER}/{DIP_BEFORE}/{DIP_FOLLOW}"
"""What the ensembles' checkpoints keep (a :class:`DipRecorder` with these settings): part of
the training settings, so a checkpoint that kept something else is not resumed."""


def _ensemble_fit(name, model, build, seeds, x, y, history, rec: DipRecorder) -> EnsembleFit:
    history = history.rename(columns={"elbo": "objective"})[["epoch", "objective", "seconds"]]
    return EnsembleFit(name, model, build, seeds, x, y, history, rec)


def _recorded(extra, y, members: int) -> tuple[pd.DataFrame, DipRecorder]:
    history = pd.DataFrame(extra["history"])
    if "recorder" not in extra:
        raise CheckpointError("the checkpoint keeps no dip record (extra.recorder): it was "
                              "written by an older version; train it again")
    rec = DipRecorder(y, len(history), members)
    try:
        rec.load(extra["recorder"])
    except (KeyError, ValueError) as e:
        raise CheckpointError(f"the checkpoint's dip record does not fit: {e}") from e
    return history, rec


def load_ensemble(name: str, x: torch.Tensor, y: torch.Tensor, checkpoint, *,
                  seeds: tuple[int, ...], sigma_floor: float = 0.0, beta: float = 0.0,
                  cure: str = "none") -> EnsembleFit:
    """The :class:`EnsembleFit` stored in a checkpoint of :func:`fit_ensemble`, without training."""
    build = builder(name, sigma_floor, beta, cure)
    model = seed_ensemble(build, seeds)
    extra = training_state(load_checkpoint(checkpoint, model, MaximumLikelihoodGuide()),
                           checkpoint)
    history, rec = _recorded(extra, y, len(seeds))
    return _ensemble_fit(name, model.eval(), build, tuple(seeds), x, y, history, rec)


def fit_family(x: torch.Tensor, y: torch.Tensor, *, specs: list[ModelSpec],
               seeds: tuple[int, ...], epochs: int = COURSEWORK_EPOCHS, lr: float = 1e-3,
               checkpoint=None, checkpoint_every: int = 5000, resume: bool = False,
               progress: bool = True, jit: bool = True,
               device: str | torch.device = "cpu") -> list[EnsembleFit]:
    """Several cures of the heteroscedastic model (``specs``), each from every seed, as one
    batch (:class:`~probnn.models.regression.HeteroscedasticFamily`): one :class:`EnsembleFit`
    per spec, each member starting from exactly :func:`fit_regression`'s weights for its seed
    and following its own Adam trajectory (the members share nothing). One batch of 5 cures x
    8 seeds costs 1.6-2.1x one network per epoch, one 8-seed ensemble 1.0-1.4x, so five
    separate ensembles 5-7x (benchmarks/regression_speed.py, two runs on a loaded 2-core
    machine). The histories' ``seconds`` are the whole batch's."""
    model = _family(specs, seeds)
    rec = DipRecorder(y, epochs, len(specs) * len(seeds))
    result = _fit_ml(model, x, y, device, epochs=epochs, lr=lr, seed=seeds[0],
                     checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                     progress=progress, desc=f"{len(specs)} cures x{len(seeds)} seeds",
                     record=("f", "sigma"), recorder=rec, jit=jit, max_plate_nesting=2,
                     settings={"seeds": list(seeds), "cures": [repr(s) for s in specs],
                               "recorder": RECORDER})
    return _split(model.cpu(), specs, seeds, x, y, result.history, rec)


def _family(specs: list[ModelSpec], seeds) -> HeteroscedasticFamily:
    if not specs or any(s.name != "heteroscedastic" for s in specs):
        raise ValueError("fit_family trains cures of the heteroscedastic model only")
    return HeteroscedasticFamily([s.kwargs() for s in specs], seeds)


def _split(model, specs, seeds, x, y, history, rec: DipRecorder) -> list[EnsembleFit]:
    n = len(seeds)
    out = []
    for v, spec in enumerate(specs):
        part = rec.members(slice(v * n, (v + 1) * n))
        out.append(_ensemble_fit(spec.name, model.cure_ensemble(v).eval(), spec, tuple(seeds),
                                 x, y, history, part))
    return out


def load_family(x: torch.Tensor, y: torch.Tensor, checkpoint, *, specs: list[ModelSpec],
                seeds: tuple[int, ...]) -> list[EnsembleFit]:
    """The fits stored in a checkpoint of :func:`fit_family`, without training."""
    model = _family(specs, seeds)
    extra = training_state(load_checkpoint(checkpoint, model, MaximumLikelihoodGuide()),
                           checkpoint)
    history, rec = _recorded(extra, y, len(specs) * len(seeds))
    return _split(model.eval(), specs, seeds, x, y, history, rec)
