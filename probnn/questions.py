"""The report's questions, each declared once: its folder, the tasks whose results it reads,
and the builder that turns them into its sections.

The report (:mod:`probnn.report`) iterates :data:`QUESTIONS` in order; the roster
(:mod:`probnn.roster`) says which jobs run each task. A question that reads another's results
(question f sets the unconditional VAEs of question e beside the conditional one) names that
task in ``tasks``: its results come from the same jobs, never re-read from a written table.
Adding a question: a task module, a builder, and one line here (and its jobs in the roster).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from probnn.analysis import bayes_regression as ba
from probnn.analysis import bounds as bo
from probnn.analysis import comparison as co
from probnn.analysis import cvae as ca
from probnn.analysis import estimator_study as ea
from probnn.analysis import regression as ra
from probnn.analysis import vae as va
from probnn.analysis.outputs import Section, combine
from probnn.tasks import bayes_regression
from probnn.tasks import objectives as objectives_task


@dataclass
class Found:
    """The finished jobs' results, by task: ``of(task)`` in roster order (``keep`` filters by
    config); ``train_x``: the MNIST training images that figure (d) indexes."""
    jobs: dict
    results: dict[str, Any]
    train_x: Any = None

    def of(self, task: str, keep: Callable = lambda config: True) -> list:
        return [self.results[n] for n, j in self.jobs.items()
                if j.task == task and keep(j.config)]

    def one(self, task: str):
        (result,) = self.of(task)
        return result


@dataclass(frozen=True)
class Question:
    folder: str
    """The report's folder of its sections (and its files' names)."""
    tasks: tuple[str, ...]
    """The tasks whose results :attr:`build` reads, its own first."""
    build: Callable[[Found], list[Section]]


def _plain_fits(found: Found) -> list:
    """Each maximum-likelihood regression job trains an ensemble over seeds: the first
    member (the report's seed) of the jobs without a cure."""
    runs = found.of("regression", lambda c: not c.cured)
    return [e.member(e.seeds[0]) for e in runs]


def _regression(found: Found) -> list[Section]:
    runs = found.of("regression", lambda c: not c.cured)
    # with the cures trained in the same batch (``others``) or in jobs of their own
    cures = {ra.cure_label(e): e
             for run in found.of("regression", lambda c: c.model == "heteroscedastic")
             for e in (run, *run.others)}
    return ra.regression_sections(_plain_fits(found)) + [
        ra.seeds_section({e.name: e for e in runs}), ra.cures_section(cures)]


def _bayes(found: Found) -> list[Section]:
    ml = {f.name: float(f.history["loglik"].iloc[-1]) for f in _plain_fits(found)}
    return [ba.result_section(bayes_regression.merge(found.of("bayes_regression")), ml)]


def _per_image(found: Found) -> dict:
    return {r.name: r.per_image for r in found.of("holdout")}


def _cvae(found: Found) -> list[Section]:
    cv = found.one("cvae")
    rows = {r.name: r.row for r in found.of("holdout")}
    return [ca.cvae_section(cv.name, cv.results, rows, cv.history, _per_image(found))]


def _bounds(found: Found) -> list[Section]:
    cv = found.one("cvae")
    paired = {**_per_image(found), cv.name: getattr(cv.results.evaluation, "per_image", {})}
    return [bo.bounds_section(found.of("bounds"), paired)]


def _vae(found: Found) -> list[Section]:
    return va.vae_sections(found.one("vae_figures"), found.train_x)


def _compare(found: Found) -> list[Section]:
    return [co.results_section(found.of("holdout"))]


def _estimators(found: Found) -> list[Section]:
    objectives = objectives_task.merge(found.of("objectives"))
    return [combine("estimators", "ELBO estimators compared", ea.QUESTION,
                    [ea.estimator_section(s) for s in found.of("estimators")]
                    + [ea.objectives_section(objectives.table, name=objectives.name)])]


QUESTIONS: tuple[Question, ...] = (
    Question("regression", ("regression",), _regression),
    Question("bayes", ("bayes_regression", "regression"), _bayes),
    Question("vae", ("vae_figures",), _vae),
    Question("compare", ("holdout",), _compare),
    Question("cvae", ("cvae", "holdout"), _cvae),
    Question("bounds", ("bounds", "holdout", "cvae"), _bounds),
    Question("estimators", ("estimators", "objectives"), _estimators),
)
"""Every question of the report, in the report's order."""
