"""What the analysis builders return, and the one function that saves it.

A builder (``regression_sections``, ``vae_sections``, ...) turns a task's result into
:class:`Section` objects: figures, tables and the written answer, in memory. The same objects
are saved by :func:`save` (the CLI: PNG, CSV, NPZ and a Markdown summary in a folder),
rendered by :func:`probnn.analysis.html.render_html` (the report) or shown in a notebook
(``section.plots[0].figure``, ``section.tables[0].frame``, ``print(markdown(sections))``).
File names come from the objects (:attr:`Plot.file`, :attr:`Table.file`), never typed twice.
"""
from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .plotting import save_figure


@dataclass
class Plot:
    """A figure with the file stem it is saved under and its caption."""
    name: str
    figure: Figure
    caption: str = ""

    @property
    def file(self) -> str:
        return f"{self.name}.png"


@dataclass
class Table:
    """A table saved whole as ``<name>.csv``; shown (``view``, default the whole frame) in the
    report and the summary when it has a ``caption``."""
    name: str
    frame: pd.DataFrame
    caption: str | None = None
    view: pd.DataFrame | None = None
    index: bool = True
    """Whether the CSV keeps the frame's index (False for a plain numbered index)."""

    @property
    def file(self) -> str:
        return f"{self.name}.csv"

    @property
    def shown(self) -> pd.DataFrame:
        return self.frame if self.view is None else self.view


@dataclass
class Section:
    """One question's answer: what it asks, the written answer (paragraphs), tables, figures,
    and raw per-epoch records (``arrays``: file stem -> arrays, saved as ``.npz``)."""
    id: str
    title: str
    question: str = ""
    answers: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    arrays: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def _as_list(sections: Section | Iterable[Section]) -> list[Section]:
    return [sections] if isinstance(sections, Section) else list(sections)


def markdown(sections: Section | Sequence[Section]) -> str:
    """The sections as Markdown: title, question, answer, the captioned tables, the figures."""
    parts = []
    for s in _as_list(sections):
        parts.append(f"# {s.title}")
        if s.question:
            parts.append(f"_{s.question}_")
        parts += [a for a in s.answers if a.strip()]
        for t in s.tables:
            if t.caption is not None:
                text = t.shown.to_string(float_format=lambda v: f"{v:.4g}",
                                         index=t.index or t.view is not None)
                parts.append(f"{t.caption}:\n\n```\n{text}\n```")
        if s.plots:
            parts.append("\n".join(f"- {p.file}: {p.caption}" for p in s.plots))
    return "\n\n".join(parts) + "\n"


def save(sections: Section | Sequence[Section], folder, summary: str | None = None) -> list[Path]:
    """Write every figure (PNG), table (CSV) and record (NPZ) of ``sections`` into ``folder``,
    and with ``summary`` (a file name) their :func:`markdown`; return the paths written.

    Everything is written into a staging folder inside ``folder`` first and moved into place
    only once all of it is written: a run that fails or is stopped half-way leaves the
    previous outputs as they were, not some of them replaced."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    sections = _as_list(sections)
    stage = Path(tempfile.mkdtemp(dir=out, prefix=".probnn-writing-"))
    names = []

    def staged(name: str) -> Path:
        names.append(name)
        (stage / name).parent.mkdir(parents=True, exist_ok=True)
        return stage / name
    try:
        for s in sections:
            for p in s.plots:
                save_figure(p.figure, staged(p.file))
            for t in s.tables:
                t.frame.to_csv(staged(t.file), index=t.index)
            for name, arrays in s.arrays.items():
                np.savez_compressed(staged(f"{name}.npz"), **arrays)
        if summary:
            staged(summary).write_text(markdown(sections), encoding="utf-8")
        blocked = [out / n for n in names if (out / n).is_dir()]
        if blocked:  # found before anything is moved: the old outputs stay whole
            raise IsADirectoryError(errno.EISDIR, "a folder is in the way of an output",
                                    str(blocked[0]))
        for name in names:
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            os.replace(stage / name, out / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [out / name for name in names]


def combine(id: str, title: str, question: str, sections: Sequence[Section]) -> Section:
    """One section holding the answers, tables, figures and records of several, in order."""
    out = Section(id, title, question)
    for s in sections:
        out.answers += s.answers
        out.tables += s.tables
        out.plots += s.plots
        out.arrays.update(s.arrays)
    return out
