"""The allowed values of the tasks' settings, each rule written once.

A :class:`Rule` checks one value and says what is allowed. The task configs call
:func:`check` in ``__post_init__`` (so a notebook's ``regression.Config(epochs=0)`` fails at
once with :class:`ConfigError`), and the ``probnn`` command line uses the same rules as
argparse types (:meth:`Rule.arg`), so a bad option is refused before any work starts with
the same words::

    regression.Config(epochs=0)   # ConfigError: epochs must be an integer >= 1, got 0
    probnn regression --epochs 0
    # probnn regression: error: argument --epochs: must be an integer >= 1, got 0

Settings that depend on the data (``train_images`` at most the training images, and so on)
are checked by :func:`check_size` (through ``Inputs.check_sizes``) when a task has loaded
its data, before any training.
"""
from __future__ import annotations

import argparse
import math
import operator
from typing import Any, Callable, Iterable

from probnn.models.vae import MAX_LATENT_DIM

MAX_SEED = 2**32 - 1
"""Seeds are 0 .. 2**32 - 1 (what numpy's and so Pyro's ``set_rng_seed`` accept)."""


class ConfigError(ValueError):
    """A setting outside its allowed range (the message names the setting, its value and the
    allowed range). The ``probnn`` command prints it as one line and exits with status 2."""


class Rule:
    """One allowed range: ``rule(value)`` returns the value (parsed, when a string from the
    command line) or raises :class:`ValueError` with ``must be <what>, got <value>``."""

    options: tuple | None = None
    """The allowed values, where they are a short list (:func:`choice`)."""
    base: "Rule | None" = None
    """For :meth:`optional`'s rule: the rule of its values."""

    def __init__(self, what: str, parse: Callable[[Any], Any], ok: Callable[[Any], bool]):
        self.what, self._parse, self._ok = what, parse, ok

    def __call__(self, value, *, shown: str | None = None):
        try:
            v = self._parse(value)
            ok = self._ok(v)
        except (TypeError, ValueError, OverflowError):
            ok = False
        if not ok:
            raise ValueError(f"must be {self.what}, got {repr(value) if shown is None else shown}")
        return v

    def arg(self) -> Callable[[str], Any]:
        """This rule as an argparse ``type=``: a bad value is argparse's one-line usage error
        (exit status 2), ``argument --epochs: must be an integer >= 1, got 0``."""
        def parse(text: str):
            try:
                return self(text, shown=text)
            except ValueError as e:
                raise argparse.ArgumentTypeError(str(e)) from None
        parse.__name__ = self.what  # argparse names the type in some messages
        return parse

    def optional(self) -> "Rule":
        """The same rule that also allows None (a setting's "default" or "all")."""
        rule = Rule(f"{self.what} (or None)", lambda v: v if v is None else self._parse(v),
                    lambda v: v is None or self._ok(v))
        rule.base = self  # the command line takes values only; None is the option left out
        return rule


def _int(value) -> int:
    if isinstance(value, bool):
        raise TypeError("a bool is not a count")
    return int(value, 10) if isinstance(value, str) else operator.index(value)


def _float(value) -> float:
    if isinstance(value, bool):
        raise TypeError("a bool is not a number")
    return float(value)


def int_at_least(low: int) -> Rule:
    return Rule(f"an integer >= {low}", _int, lambda v: v >= low)


POSITIVE_INT = int_at_least(1)


def int_between(low: int, high: int) -> Rule:
    return Rule(f"an integer from {low} to {high:,}", _int, lambda v: low <= v <= high)


# Upper bounds on sizes whose cost grows with them: a mistyped 10**9 ran for hours or filled
# memory (22 GB) instead of failing. Each is far above what any study here uses.
SAMPLES = int_between(1, 100_000)
"""Importance samples per image (K of IWAE, ELBO samples, particles): the bounds study's
largest is 5,000."""
SAMPLES0 = int_between(0, 100_000)
"""As SAMPLES, with 0 for "skip"."""
STEPS = int_between(1, 1_000_000)
"""Steps of an inner optimisation or schedule (AIS temperatures, per-image SVI steps)."""
STEPS0 = int_between(0, 1_000_000)
CHAINS = int_between(1, 10_000)
"""AIS chains per image, simulated BDMC images, repeats, gradient draws."""
CHAINS0 = int_between(0, 10_000)
DRAWS = int_between(2, 100_000)
"""Posterior draws (PSIS-LOO needs two), repeats and gradient draws of a spread."""
MCMC_CHAINS = int_between(1, 16)
"""NUTS chains per model (each a full run; more than 16 on a laptop is a mistake)."""
MCMC_DRAWS = int_between(4, 100_000)
"""Draws kept per MCMC chain: split R-hat needs four at least."""
TREE_DEPTH = int_between(1, 12)
"""NUTS doubles its trajectory up to 2**depth - 1 leapfrog steps: depth 12 is 4,095 steps."""
SEEDS = int_between(1, 100)
ENSEMBLE_SEEDS = int_between(1, 64)
"""Members of one regression seed ensemble (trained batched, all in memory)."""
LATENT = int_between(1, MAX_LATENT_DIM)
MAX_EPOCHS = 1_000_000
EPOCHS = Rule(f"an integer from 1 to {MAX_EPOCHS:,}", _int, lambda v: 1 <= v <= MAX_EPOCHS)
"""Epochs (or SVI steps): 20 times the coursework's 50,000 at most. The regression records f
and sigma at every point in every epoch, preallocated: 10**12 epochs failed inside NumPy,
10**6 at the xkcd data's 31 points hold 250 MB (and take about 40 minutes)."""
NONNEG_INT = int_at_least(0)
AT_LEAST_TWO = int_at_least(2)
SEED = Rule(f"an integer from 0 to {MAX_SEED} (2**32 - 1)", _int, lambda v: 0 <= v <= MAX_SEED)
POSITIVE_FLOAT = Rule("a finite number > 0", _float, lambda v: math.isfinite(v) and v > 0)
NONNEG_FLOAT = Rule("a finite number >= 0", _float, lambda v: math.isfinite(v) and v >= 0)
UNIT_INTERVAL = Rule("a number from 0 to 1", _float, lambda v: 0.0 <= v <= 1.0)
FRACTION = Rule("a number strictly between 0 and 1", _float, lambda v: 0.0 < v < 1.0)


def _objective(value) -> str:
    from probnn.inference.estimator_study import parse_objective
    if not isinstance(value, str):
        raise TypeError("an objective is a name")
    _, k = parse_objective(value)
    if k > 100_000:
        raise ValueError("K above 100,000")
    return value


OBJECTIVE = Rule("an objective: trace, meanfield, stl, iwae or dreg-iwae, each with -K for K from 1 "
                 "to 100,000 particles (e.g. iwae-5, dreg-iwae-50)", _objective, lambda v: True)


def choice(*options: str) -> Rule:
    """One of ``options`` (the command line offers them as argparse choices)."""
    rule = Rule("one of " + ", ".join(options), lambda v: v, lambda v: v in options)
    rule.options = tuple(options)
    return rule


def check(config, **rules: Rule) -> None:
    """Check the config's fields named in ``rules``; raise :class:`ConfigError` naming the
    first field that breaks its rule, with its value and the allowed range."""
    for name, rule in rules.items():
        value = getattr(config, name)
        try:
            rule(value)
        except ValueError as e:
            raise ConfigError(f"{name} {e}") from None


def check_each(config, name: str, rule: Rule, *, empty: bool = False) -> None:
    """Check every item of the sequence field ``name`` (which may be empty only with
    ``empty``)."""
    values = getattr(config, name)
    if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
        raise ConfigError(f"{name} must be a sequence, got {values!r}")
    values = tuple(values)
    if not values and not empty:
        raise ConfigError(f"{name} must not be empty")
    for v in values:
        try:
            rule(v)
        except ValueError as e:
            raise ConfigError(f"{name}: every item {e}") from None


def require(condition: bool, message: str) -> None:
    """A rule between fields: raise :class:`ConfigError` with ``message`` unless ``condition``."""
    if not condition:
        raise ConfigError(message)


def check_size(name: str, value: int | None, available: int, what: str) -> None:
    """A size that must not exceed the data: ``value`` (None: all) at most ``available``
    ``what`` (e.g. ``"training images"``)."""
    if value is not None and value > available:
        raise ConfigError(f"{name} = {value} is more than the {available} {what}")
