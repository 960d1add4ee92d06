"""Each setting declared once: the command line's options come from the task configs."""
from __future__ import annotations

import argparse
import dataclasses

import pytest

from probnn.cli import build_parser
from probnn.options import add_settings, given
from probnn.tasks import (bayes_regression, bounds, cvae, estimators, holdout, objectives,
                          regression, vae_figures, vae_training)
from probnn.tasks.settings import setting, settings, validate
from probnn.tasks.validation import POSITIVE_INT, ConfigError

COMMANDS = {("regression",): regression, ("bayes-regression",): bayes_regression,
            ("vae", "train"): vae_training, ("cvae", "train"): vae_training,
            ("vae", "figures"): vae_figures, ("vae", "compare"): holdout,
            ("cvae", "figures"): cvae, ("bounds",): bounds, ("estimators",): estimators,
            ("objectives",): objectives}
NOT_OFFERED = {("vae", "figures"): {"holdout_split"}, ("regression",): {"model"}}
"""Settings a command fixes itself (``regression --model`` also takes ``both``)."""


def _subparser(path):
    p = build_parser()
    for name in path:
        action = next(a for a in p._actions if isinstance(a, argparse._SubParsersAction))
        p = action.choices[name]
    return p


@pytest.mark.parametrize("path", list(COMMANDS), ids=" ".join)
def test_every_setting_of_a_commands_config_is_one_of_its_options(path):
    task = COMMANDS[path]
    dests = {a.dest: a for a in _subparser(path)._actions}
    for f, s in settings(task.Config):
        if f.name in NOT_OFFERED.get(path, ()):
            continue
        if not s.cli:
            assert f.name not in dests
            continue
        action = dests[f.name]
        assert s.help in action.help
        # the default is the config's (shown in the help, never a restated number)
        if f.name != "seed":
            assert action.default is None
        if f.default is not None and not isinstance(f.default, bool) and not hasattr(
                task, "PRESETS"):
            shown = (" ".join(map(str, f.default)) if isinstance(f.default, tuple)
                     else f"{f.default:g}" if isinstance(f.default, float) else str(f.default))
            assert f"(default {shown})" in action.help, (f.name, action.help)


def test_a_setting_added_to_a_config_is_an_option_checked_by_its_rule():
    @dataclasses.dataclass(frozen=True)
    class Config(holdout.Config):
        extra_images: int = setting(7, POSITIVE_INT, "images for a new estimate")

        def __post_init__(self):
            validate(self)

    p = argparse.ArgumentParser(exit_on_error=False)
    add_settings(p, Config)
    args = p.parse_args(["--extra-images", "3", "--k", "9"])
    assert Config(**given(args, Config)) == Config(extra_images=3, k=9)
    assert Config(**given(p.parse_args([]), Config)) == Config()
    with pytest.raises(argparse.ArgumentError, match="must be an integer >= 1, got 0"):
        p.parse_args(["--extra-images", "0"])
    with pytest.raises(ConfigError, match="extra_images must be an integer >= 1"):
        Config(extra_images=0)


@pytest.mark.parametrize("task", [estimators, objectives, bayes_regression])
def test_presets_name_settings_of_the_config_and_make_valid_configs(task):
    fields = {f.name for f, _ in settings(task.Config)}
    for name, changes in task.PRESETS.items():
        assert set(changes) <= fields, name
        config = task.Config.preset(name)
        assert all(getattr(config, k) == (tuple(v) if isinstance(v, list) else v)
                   for k, v in changes.items())
    with pytest.raises(ConfigError, match="unknown preset 'issue'"):
        task.Config.preset("issue")


def test_the_report_uses_the_standard_presets_and_no_help_names_our_process():
    from probnn.report import build_jobs
    jobs = build_jobs(quick=False)
    from probnn.datasets.coursework import COURSEWORK_SEED
    standard = objectives.Config.preset("standard")  # one job per seed, merged by the report
    assert [j.config for j in jobs.values() if j.task == "objectives"] == [
        objectives.Config.preset("standard", seeds=1, seed=COURSEWORK_SEED + i)
        for i in range(standard.seeds)]
    assert jobs["estimators-vae-d4"].config == estimators.Config.preset(
        "standard", train_objectives=())
    for path in COMMANDS:
        text = _subparser(path).format_help()
        assert "issue" not in text.lower(), path
