"""Questions (a)-(b) and the dip cures: maximum-likelihood fits of a regression model from
``seeds`` seeds at once (one batched ensemble, see
:func:`~probnn.inference.regression.fit_ensemble`).

::

    from probnn.tasks import regression
    ens = regression.run(regression.Config(model="heteroscedastic", sigma_floor=0.05), Inputs())
    fit = ens.member(309)   # the coursework seed's fit
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

from probnn.inference.train import one_thread
from probnn.inference.regression import (COURSEWORK_EPOCHS, EnsembleFit, ModelSpec, builder,
                                         ensemble_seeds, fit_ensemble, fit_family, load_ensemble,
                                         load_family)
from probnn.models.regression import HeteroscedasticRegression

from .inputs import Inputs
from .settings import seed_setting, setting, validate
from .validation import (ENSEMBLE_SEEDS, EPOCHS, MAX_SEED, NONNEG_FLOAT, POSITIVE_FLOAT,
                         POSITIVE_INT, UNIT_INTERVAL, ConfigError, Rule, choice, require)

MAX_SEED_EPOCHS = 4_000_000
"""Seeds x epochs x runs at most: every member's mean log-likelihood is kept at every epoch
(preallocated, 8 bytes per member-epoch, ~32 MB at most; f and sigma only around each
member's deepest dip, see :class:`~probnn.inference.regression.DipRecorder`)."""

KIND, DATA = "train", "xkcd"


def parse_cure(text: str) -> dict:
    """A further cure of :attr:`Config.cures` as the model's keyword arguments:
    ``sigma_floor=X`` (X >= 0), ``beta=X`` (0 to 1), ``faithful`` or ``natural``."""
    if text in ("faithful", "natural"):
        return {"cure": text}
    key, eq, value = str(text).partition("=")
    rule = {"sigma_floor": NONNEG_FLOAT, "beta": UNIT_INTERVAL}.get(key)
    if not eq or rule is None:
        raise ValueError(f"unknown cure {text!r}")
    return {key: rule(value)}


CURE = Rule("a cure: sigma_floor=X (X >= 0), beta=X (0 to 1), faithful or natural", str,
            lambda v: bool(parse_cure(v)))


@dataclass(frozen=True)
class Config:
    """``model``: ``homoscedastic`` or ``heteroscedastic``; the coursework's training (Adam,
    full batch) for ``epochs``, from the ``seeds`` seeds ``seed``, ``seed + 1``, ... at once;
    ``sigma_floor``, ``beta`` and ``cure`` (``none``, ``faithful``, ``natural``) are the
    heteroscedastic model's dip cures; ``cures`` (see :func:`parse_cure`) are further cures
    trained in the same batch (:func:`~probnn.inference.regression.fit_family`: the result's
    ``others``); ``jit`` compiles the loss (same numbers, faster)."""
    model: str = setting("heteroscedastic", choice("homoscedastic", "heteroscedastic"),
                         "the regression model")
    epochs: int = setting(COURSEWORK_EPOCHS, EPOCHS, "training epochs (full-batch Adam steps)")
    lr: float = setting(1e-3, POSITIVE_FLOAT, "Adam learning rate")
    checkpoint_every: int = setting(5000, POSITIVE_INT, "epochs between checkpoints")
    sigma_floor: float = setting(0.0, NONNEG_FLOAT, "heteroscedastic: sigma(x) = floor + "
                                 "softplus(g(x)), a cure for the dips")
    beta: float = setting(0.0, UNIT_INTERVAL, "heteroscedastic: train with the beta-NLL loss "
                          "(Seitzer et al. 2022), beta from 0 (the plain likelihood) to 1",
                          flag="--beta-nll")
    jit: bool = setting(True, None, "do not compile the loss", flag="--no-jit")
    seed: int = seed_setting()
    seeds: int = setting(8, ENSEMBLE_SEEDS, "train from this many seeds at once (seed, seed + "
                         "1, ...: one batched ensemble); the tables give the spread over them")
    cure: str = setting("none", choice(*HeteroscedasticRegression.CURES),
                        "heteroscedastic: train with the faithful loss (Stirn et al. 2023: f by "
                        "squared error, sigma by the likelihood with f's gradient stopped) or "
                        "the natural-parameter likelihood (Immer et al. 2023)")
    cures: tuple[str, ...] = setting((), None, "further cures trained in the same batch",
                                     each=CURE, empty=True, cli=False)

    def __post_init__(self):
        validate(self)
        try:  # the model's own rules: which model takes the cures, which cures combine
            builder(self.model, self.sigma_floor, self.beta, self.cure)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        require(len(self.cures) <= 8, f"at most 8 further cures, got {len(self.cures)}")
        require(self.model == "heteroscedastic" or not self.cures,
                "cures apply to the heteroscedastic model only")
        specs = self.specs if self.model == "heteroscedastic" else [ModelSpec(self.model)]
        require(len(set(specs)) == len(specs), f"the cures repeat a run: {list(self.cures)}")
        require(self.seeds * self.epochs * len(specs) <= MAX_SEED_EPOCHS,
                f"seeds x epochs x runs must be at most {MAX_SEED_EPOCHS:,} (every member's "
                f"log-likelihood is kept for every epoch), got {self.seeds} x {self.epochs:,} x "
                f"{len(specs)}")
        require(self.seed + self.seeds - 1 <= MAX_SEED,
                f"the seeds run from seed to seed + seeds - 1, which must be at most {MAX_SEED}")

    @property
    def cured(self) -> bool:
        """Whether this run's own model carries a cure (not counting ``cures``)."""
        return HeteroscedasticRegression.cured(self.sigma_floor, self.beta, self.cure)

    @property
    def member_seeds(self) -> tuple[int, ...]:
        return ensemble_seeds(self.seed, self.seeds)

    @property
    def specs(self) -> list[ModelSpec]:
        """The runs: this config's model and cure, then each of ``cures``."""
        first = ModelSpec(self.model, self.sigma_floor, self.beta, self.cure)
        return [first] + [builder(self.model, **parse_cure(c)) for c in self.cures]


def run(config: Config, inputs: Inputs, *, checkpoint=None, resume: bool = False,
        progress: bool = False) -> EnsembleFit:
    """Fit the model from every seed (resuming ``checkpoint`` with ``resume``), on one torch
    thread: with 31 points a second thread only adds synchronisation."""
    x, y = inputs.xkcd()
    with one_thread(), _scale_hint(x, y, config.model):
        if config.cures:
            first, *others = fit_family(
                x, y, specs=config.specs, seeds=config.member_seeds, epochs=config.epochs,
                lr=config.lr, checkpoint=checkpoint, checkpoint_every=config.checkpoint_every,
                resume=resume, progress=progress, jit=config.jit,
                device=inputs.device)
            first.others = others
            return first
        return fit_ensemble(config.model, x, y, seeds=config.member_seeds, epochs=config.epochs,
                            lr=config.lr, checkpoint=checkpoint,
                            checkpoint_every=config.checkpoint_every, resume=resume,
                            progress=progress, jit=config.jit, sigma_floor=config.sigma_floor,
                            beta=config.beta, cure=config.cure,
                            device=inputs.device)


@contextmanager
def _scale_hint(x, y, model: str):
    """A diverged fit of data far from the coursework's scale says so: the maximum-likelihood
    models take x and y as they are (the xkcd data: |x| < 10, |y| < 20)."""
    try:
        yield
    except FloatingPointError as e:
        big = max(float(x.abs().max()), float(y.abs().max()))
        hint = (f"; the data reach |value| = {big:.3g} and these models take x and y unscaled: "
                "rescale them to within about +-100 (or lower --lr)" if big > 100 else
                "; try a lower --lr" + (" or a sigma floor (--sigma-floor)"
                                        if model == "heteroscedastic" else ""))
        raise FloatingPointError(f"{e}{hint}") from e


def load(config: Config, inputs: Inputs, checkpoint) -> EnsembleFit:
    """The fits a finished ``run`` left in ``checkpoint``, without training."""
    x, y = inputs.xkcd()
    if config.cures:
        first, *others = load_family(x, y, checkpoint, specs=config.specs,
                                     seeds=config.member_seeds)
        first.others = others
        return first
    return load_ensemble(config.model, x, y, checkpoint, seeds=config.member_seeds,
                         sigma_floor=config.sigma_floor, beta=config.beta, cure=config.cure)
