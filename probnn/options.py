"""Command-line options generated from the tasks' configs.

Every setting is declared once, on its task's ``Config`` field
(:func:`probnn.tasks.settings.setting`): :func:`add_settings` makes one option per field,
``--field-name`` (or the field's ``flag``), with the field's rule as argparse ``type`` (or its
choices), its help, and the default shown from the config (or from each preset). An option
left out is None in the parsed arguments, so :func:`given` passes only what the user gave and
the config (or the chosen preset) supplies the rest.
"""
from __future__ import annotations

import argparse
import dataclasses

from probnn.tasks.settings import Setting, settings


def _shown(value) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value)) if value else "none"
    if isinstance(value, float):
        return f"{value:g}"
    return "none" if value is None else str(value)


def _default_text(f: dataclasses.Field, presets: dict | None) -> str:
    if isinstance(f.default, bool):
        return ""
    if presets:
        values = {name: sizes.get(f.name, f.default) for name, sizes in presets.items()}
        if len(set(map(_shown, values.values()))) > 1:
            return " (" + ", ".join(f"{n} {_shown(v)}" for n, v in values.items()) + ")"
    if f.default is None:
        return ""
    return f" (default {_shown(f.default)})"


def _metavar(what: str) -> str | None:
    """A short placeholder for the usage line: N a count, X a number, OBJ an objective."""
    for start, name in (("an integer", "N"), ("a number", "X"), ("a finite number", "X"),
                        ("an objective", "OBJ")):
        if what.startswith(start):
            return name
    return None


def _argument(f: dataclasses.Field, s: Setting, presets: dict | None) -> tuple[str, dict]:
    flag = s.flag or "--" + f.name.replace("_", "-")
    kw: dict = dict(dest=f.name, default=None, help=s.help + _default_text(f, presets))
    if isinstance(f.default, bool):
        kw["action"] = "store_false" if f.default else "store_true"
        return flag, kw
    rule = s.each if s.each is not None else s.rule
    rule = rule.base or rule
    if rule.options:
        kw["choices"] = rule.options
    else:
        kw["type"] = rule.arg()
        kw["metavar"] = _metavar(rule.what)
    if s.each is not None:
        kw["nargs"] = "*" if s.empty else "+"
    return flag, kw


def add_settings(parser: argparse.ArgumentParser, config_type, *, skip=(), only=None,
                 presets: dict | None = None) -> None:
    """One option per declared setting of ``config_type`` (those in ``only`` if given, none
    of ``skip``, none marked ``cli=False``); with ``presets`` (name -> changes to the
    defaults) the help shows each preset's value where they differ."""
    for f, s in settings(config_type):
        if s.cli and f.name not in skip and (only is None or f.name in only):
            flag, kw = _argument(f, s, presets)
            parser.add_argument(flag, **kw)


def given(args: argparse.Namespace, config_type, *, skip=()) -> dict:
    """The settings of ``config_type`` given on the command line (lists as tuples)."""
    return {f.name: tuple(v) if isinstance(v, list) else v
            for f, _ in settings(config_type)
            if f.name not in skip and (v := getattr(args, f.name, None)) is not None}
