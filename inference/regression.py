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

from .checkpoint import load_checkpoint
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
    sigma: np.ndarray      # (epochs, n) sigma(x_i), likewise

    def pointwise_loglik(self) -> np.ndarray:
        """(epochs, n) log N(y_i | f(x_i), sigma(x_i)^2) at each epoch; rows sum to n * loglik."""
        y = self.y[:, 0].numpy()[None, :].astype(np.float64)
        s = self.sigma.astype(np.float64)
        return -0.5 * ((y - self.f) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)

    def arrays(self) -> dict[str, np.ndarray]:
        """The per-epoch record as arrays: ``x``, ``y``, ``f``, ``sigma``, ``loglik``, ``epoch``."""
        return dict(x=self.x[:, 0].numpy(), y=self.y[:, 0].numpy(), f=self.f, sigma=self.sigma,
                    loglik=self.history["loglik"].to_numpy(),
                    epoch=self.history["epoch"].to_numpy())

    def save(self, path: str | Path) -> Path:
        """Save the per-epoch record (:meth:`arrays`) as a compressed ``.npz``."""
        path = Path(path)
        np.savez_compressed(path, **self.arrays())
        return path


def fit_regression(name: str, x: torch.Tensor, y: torch.Tensor, *, epochs: int = COURSEWORK_EPOCHS,
                   seed: int = COURSEWORK_SEED, lr: float = 1e-3, elbo: str = "trace",
                   record: bool = True, checkpoint=None, checkpoint_every: int = 5000,
                   resume: bool = False, progress: bool = True, jit: bool = True,
                   sigma_floor: float = 0.0, beta: float = 0.0, cure: str = "none"
                   ) -> RegressionFit:
    """Fit the ``homoscedastic`` or ``heteroscedastic`` model by maximum likelihood.

    As in the coursework: Adam with ``lr``, full batch, ``epochs`` epochs, seeded with ``seed``
    before the networks are initialised, so the same seed gives the same fit.
    ``sigma_floor``, ``beta`` and ``cure`` (heteroscedastic only) are the dip cures of
    :class:`~probnn.models.regression.HeteroscedasticRegression`; with ``beta`` or the
    faithful cure (objectives other than the likelihood) the history's
    ``loglik`` is recomputed from the recorded f and sigma and ``objective`` holds the
    weighted ELBO. ``jit`` compiles the loss (the same Trace_ELBO objective; see
    :class:`~probnn.inference.train.TracedLoss`).
    """
    torch.manual_seed(seed)
    model = builder(name, sigma_floor, beta, cure)()
    result = fit(model, MaximumLikelihoodGuide(), (x, y), epochs=epochs, elbo=elbo, lr=lr,
                 seed=seed, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                 resume=resume, progress=progress, desc=name,
                 record=("f", "sigma") if record else (), jit=jit)
    return _regression_fit(name, model, x, y, result.history, result.records,
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
    if (sigma_floor or beta or cure != "none") and name != "heteroscedastic":
        raise ValueError("sigma_floor, beta and cure apply to the heteroscedastic model only")
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
@dataclass
class EnsembleFit:
    """One model trained from several seeds at once (:func:`fit_ensemble`).

    ``f`` and ``sigma``: (epochs, seeds, n), every member's f(x_i) and sigma(x_i) at every
    epoch, at the parameters that epoch's loss used; ``history``: epoch, ``objective`` (the
    ELBO summed over members, per data point) and seconds.
    """
    name: str
    model: torch.nn.Module
    build: ModelSpec  # () -> one member's model
    seeds: tuple[int, ...]
    x: torch.Tensor
    y: torch.Tensor
    history: pd.DataFrame
    f: np.ndarray
    sigma: np.ndarray
    others: list = field(default_factory=list)
    """Further cures trained in the same batch (:func:`fit_family`), each an EnsembleFit."""

    def loglik(self) -> np.ndarray:
        """(epochs, seeds): each member's mean log N(y_i | f(x_i), sigma(x_i)^2) per epoch
        (computed once, in float64, from the records)."""
        key = (id(self.f), id(self.sigma), self.f.shape)
        cached = self.__dict__.get("_loglik")
        if cached is None or cached[0] != key:
            y = self.y[:, 0].numpy().astype(np.float64)
            s = self.sigma.astype(np.float64)
            ll = -0.5 * ((y - self.f) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)
            cached = self.__dict__["_loglik"] = (key, ll.mean(-1))
        return cached[1]

    def member(self, seed: int) -> RegressionFit:
        """The member trained from ``seed`` as a :class:`RegressionFit` (its model, history
        with ``loglik``, and per-epoch record)."""
        if seed not in self.seeds:
            raise ValueError(f"seed {seed} is not a member; the members are {list(self.seeds)}")
        s = self.seeds.index(seed)
        history = self.history[["epoch", "seconds"]].copy()
        history.insert(1, "loglik", self.loglik()[:, s])
        return RegressionFit(self.name, ensemble_member(self.model, self.build, s), self.x,
                             self.y, history, np.ascontiguousarray(self.f[:, s]),
                             np.ascontiguousarray(self.sigma[:, s]))


def ensemble_seeds(seed: int, count: int) -> tuple[int, ...]:
    """The members' seeds: ``seed``, ``seed + 1``, ..., ``seed + count - 1``."""
    return tuple(range(seed, seed + count))


def fit_ensemble(name: str, x: torch.Tensor, y: torch.Tensor, *, seeds: tuple[int, ...],
                 epochs: int = COURSEWORK_EPOCHS, lr: float = 1e-3, checkpoint=None,
                 checkpoint_every: int = 5000, resume: bool = False, progress: bool = True,
                 jit: bool = True, sigma_floor: float = 0.0, beta: float = 0.0,
                 cure: str = "none") -> EnsembleFit:
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
    result = fit(model, MaximumLikelihoodGuide(), (x, y), epochs=epochs, lr=lr, seed=seeds[0],
                 checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                 progress=progress, desc=f"{name} x{len(seeds)} seeds", record=("f", "sigma"),
                 jit=jit, max_plate_nesting=2, settings={"seeds": list(seeds)})
    return _ensemble_fit(name, model, build, tuple(seeds), x, y, result.history, result.records)


def _ensemble_fit(name, model, build, seeds, x, y, history, records) -> EnsembleFit:
    history = history.rename(columns={"elbo": "objective"})[["epoch", "objective", "seconds"]]
    empty = np.empty((0, len(seeds), len(x)), np.float32)
    f = records["f"][..., 0] if "f" in records else empty
    s = records["sigma"][..., 0] if "sigma" in records else empty
    return EnsembleFit(name, model, build, seeds, x, y, history, f, s)


def load_ensemble(name: str, x: torch.Tensor, y: torch.Tensor, checkpoint, *,
                  seeds: tuple[int, ...], sigma_floor: float = 0.0, beta: float = 0.0,
                  cure: str = "none") -> EnsembleFit:
    """The :class:`EnsembleFit` stored in a checkpoint of :func:`fit_ensemble`, without training."""
    build = builder(name, sigma_floor, beta, cure)
    model = seed_ensemble(build, seeds)
    extra = training_state(load_checkpoint(checkpoint, model, MaximumLikelihoodGuide()),
                           checkpoint)
    history = pd.DataFrame(extra["history"])
    records = {s: v[:len(history)] for s, v in extra["records"].items()}
    return _ensemble_fit(name, model.eval(), build, tuple(seeds), x, y, history, records)


def fit_family(x: torch.Tensor, y: torch.Tensor, *, specs: list[ModelSpec],
               seeds: tuple[int, ...], epochs: int = COURSEWORK_EPOCHS, lr: float = 1e-3,
               checkpoint=None, checkpoint_every: int = 5000, resume: bool = False,
               progress: bool = True, jit: bool = True) -> list[EnsembleFit]:
    """Several cures of the heteroscedastic model (``specs``), each from every seed, as one
    batch (:class:`~probnn.models.regression.HeteroscedasticFamily`): one :class:`EnsembleFit`
    per spec, each member starting from exactly :func:`fit_regression`'s weights for its seed
    and following its own Adam trajectory (the members share nothing). One batch of 5 cures x
    8 seeds costs 1.6-2.1x one network per epoch, one 8-seed ensemble 1.0-1.4x, so five
    separate ensembles 5-7x (benchmarks/regression_speed.py, two runs on a loaded 2-core
    machine). The histories' ``seconds`` are the whole batch's."""
    model = _family(specs, seeds)
    result = fit(model, MaximumLikelihoodGuide(), (x, y), epochs=epochs, lr=lr, seed=seeds[0],
                 checkpoint=checkpoint, checkpoint_every=checkpoint_every, resume=resume,
                 progress=progress, desc=f"{len(specs)} cures x{len(seeds)} seeds",
                 record=("f", "sigma"), jit=jit, max_plate_nesting=2,
                 settings={"seeds": list(seeds), "cures": [repr(s) for s in specs]})
    return _split(model, specs, seeds, x, y, result.history, result.records)


def _family(specs: list[ModelSpec], seeds) -> HeteroscedasticFamily:
    if not specs or any(s.name != "heteroscedastic" for s in specs):
        raise ValueError("fit_family trains cures of the heteroscedastic model only")
    return HeteroscedasticFamily([s.kwargs() for s in specs], seeds)


def _split(model, specs, seeds, x, y, history, records) -> list[EnsembleFit]:
    n = len(seeds)
    out = []
    for v, spec in enumerate(specs):
        part = {k: r[:, v * n:(v + 1) * n] for k, r in records.items()}
        out.append(_ensemble_fit(spec.name, model.cure_ensemble(v).eval(), spec, tuple(seeds),
                                 x, y, history, part))
    return out


def load_family(x: torch.Tensor, y: torch.Tensor, checkpoint, *, specs: list[ModelSpec],
                seeds: tuple[int, ...]) -> list[EnsembleFit]:
    """The fits stored in a checkpoint of :func:`fit_family`, without training."""
    model = _family(specs, seeds)
    extra = training_state(load_checkpoint(checkpoint, model, MaximumLikelihoodGuide()),
                           checkpoint)
    history = pd.DataFrame(extra["history"])
    records = {s: v[:len(history)] for s, v in extra["records"].items()}
    return _split(model.eval(), specs, seeds, x, y, history, records)
