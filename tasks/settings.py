"""Each setting of a task declared once: its default, its allowed values and its help.

A task's ``Config`` declares every field with :func:`setting`; :func:`validate` (called by
``__post_init__``) checks every field against its rule, so a notebook's
``holdout.Config(k=0)`` fails at once with :class:`~probnn.tasks.validation.ConfigError`,
and the ``probnn`` command line builds its options from the same fields
(:mod:`probnn.options`): the option's name, type, allowed values, help and default all come
from here, so adding a setting to a question is one line in its ``Config``::

    @dataclass(frozen=True)
    class Config:
        k: int = setting(100, SAMPLES, "samples per image for ELBO-MC and IWAE")

Settings shared by several questions (the seed, the holdout split, the precision, the
holdout estimators' sizes) are declared once here, as functions returning the field.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from probnn.datasets.coursework import COURSEWORK_SEED
from probnn.inference.precision import PRECISIONS

from .validation import (FRACTION, POSITIVE_INT, SAMPLES, SAMPLES0, SEED, ConfigError, Rule,
                         check, check_each, choice)

SETTING = "probnn.setting"
"""The key of a :class:`Setting` in a dataclass field's metadata."""


@dataclass(frozen=True)
class Setting:
    """What a config field allows and says: ``rule`` checks a value (``each``: every item
    of a tuple field, which may be empty only with ``empty``), ``help`` says what it is;
    ``flag`` is the command-line option when it is not ``--field-name`` (for a bool that is
    True by default, the option that turns it off); ``cli``: whether commands offer it."""
    rule: Rule | None
    help: str
    each: Rule | None = None
    empty: bool = False
    flag: str | None = None
    cli: bool = True


def setting(default: Any, rule: Rule | None, help: str, *, each: Rule | None = None,
            empty: bool = False, flag: str | None = None, cli: bool = True):
    """A dataclass field with its :class:`Setting` (``rule`` None with ``each`` for tuples)."""
    return field(default=default, metadata={SETTING: Setting(rule, help, each, empty, flag, cli)})


def setting_of(f: dataclasses.Field) -> Setting | None:
    return f.metadata.get(SETTING)


def settings(config_type) -> list[tuple[dataclasses.Field, Setting]]:
    """The fields of a config class (or instance) that are declared settings, in order."""
    return [(f, s) for f in dataclasses.fields(config_type) if (s := setting_of(f)) is not None]


def validate(config) -> None:
    """Check every declared setting of ``config`` against its rule (tuple settings are
    stored as tuples); raise :class:`~probnn.tasks.validation.ConfigError` naming the first
    that breaks it."""
    for f, s in settings(config):
        if s.each is not None:
            check_each(config, f.name, s.each, empty=s.empty)
            object.__setattr__(config, f.name, tuple(getattr(config, f.name)))
        elif s.rule is not None:
            check(config, **{f.name: s.rule})
        elif isinstance(f.default, bool):
            object.__setattr__(config, f.name, bool(getattr(config, f.name)))


def with_preset(config_type, presets: dict, name: str, **overrides):
    """``config_type`` with the sizes of ``presets[name]`` and the ``overrides``; an unknown
    name is a :class:`~probnn.tasks.validation.ConfigError` listing the presets."""
    if name not in presets:
        raise ConfigError(f"unknown preset {name!r}: one of {', '.join(presets)}")
    return config_type(**{**presets[name], **overrides})


# ----------------------------------------------------------------------------- shared settings
SEED_HELP = "random seed, 0 to 2**32 - 1"


def seed_setting():
    return setting(COURSEWORK_SEED, SEED, SEED_HELP)


def holdout_split_setting():
    return setting(None, FRACTION.optional(),
                   "holdout = this random fraction of the training set (as when training); "
                   "none: the official test set")


def precision_setting(default: str, what: str):
    return setting(default, choice(*PRECISIONS),
                   f"the networks' precision in {what}: fp32, or bf16 (bfloat16 autocast; "
                   "likelihood sums, KL and optimiser state stay fp32)")


@dataclass(frozen=True)
class HoldoutSizes:
    """The holdout estimators' sizes, shared by questions (e) and (f): ELBO, ELBO-MC and
    IWAE-``k`` on ``holdout_images`` random holdout images, IWAE-``large_k`` on
    ``large_k_images`` of them, in ``precision``."""
    k: int = setting(100, SAMPLES, "samples per image for ELBO-MC and IWAE")
    large_k: int | None = setting(1000, SAMPLES0.optional(), "a tighter IWAE bound; 0 to skip")
    large_k_images: int | None = setting(1000, POSITIVE_INT.optional(),
                                         "random holdout images for the large-K bound")
    holdout_images: int | None = setting(None, POSITIVE_INT.optional(),
                                         "random holdout images; none: the whole holdout set")
    holdout_split: float | None = holdout_split_setting()
    seed: int = seed_setting()
    precision: str = precision_setting("fp32", "the estimators")
