"""The HTML report: sections rendered from the builders' objects, in memory.

:func:`render_html` saves each group of :class:`~probnn.analysis.outputs.Section` objects
into a sub-folder of ``out`` (:func:`~probnn.analysis.outputs.save`: figures, CSVs) and writes
``out/index.html``, which refers to the saved figures by the file names the objects carry:
copy the folder and the report goes with it. Nothing here trains, estimates or reads a file
back.
"""
from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from probnn.inference.serialization import write_atomically

from .outputs import Section, save

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em;
       margin-top: 2.2em; }
.question { color: #555; font-style: italic; }
figure { margin: 1.2em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { font-size: 0.9em; color: #555; }
table { border-collapse: collapse; font-size: 0.85em; margin: 0.6em 0 1.2em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.55em; text-align: right; }
th { background: #f5f5f5; white-space: nowrap; } .caption { font-weight: 600; margin-top: 1em; }
.answer { background: #f8f9fb; border-left: 3px solid #5b7bb5; padding: 0.6em 1em; }
nav ul { columns: 2; } .meta { font-size: 0.85em; color: #555; }
/* wide tables scroll inside the page instead of running off its right edge */
.table-wrap { max-width: 100%; overflow-x: auto; margin: 0.6em 0 1.2em; }
.table-wrap table { margin: 0; }
"""


def table_html(df: pd.DataFrame, index: bool = True) -> str:
    """A table as HTML (numbers to 4 significant digits, NaN empty) in a wrapper that scrolls
    sideways when the table is wider than the page."""
    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "" if np.isnan(v) else f"{v:.4g}"
        return str(v)
    return ("<div class='table-wrap'>"
            + df.to_html(formatters={c: fmt for c in df.columns}, na_rep="", border=0, escape=True,
                         index=index) + "</div>")


def _paragraphs(text: str) -> str:
    return "".join(f"<p>{html.escape(p.strip())}</p>" for p in text.split("\n") if p.strip())


def render_html(title: str, groups: Sequence[tuple[str, Sequence[Section]]],
                meta: list[tuple[str, str]], provenance: pd.DataFrame, out,
                warning: str | None = None) -> Path:
    """Save each group's sections into ``out/<folder>`` and write ``out/index.html``: a
    contents list, the sections (answer, captioned tables, figures) in order, and how the
    numbers were made. ``groups``: ``(folder, sections)`` pairs."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"<!doctype html><html lang='en'><head><meta charset='utf-8'>"
             f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(title)}</h1>"]
    if warning:
        parts.append(f"<p class='answer'><strong>{html.escape(warning)}</strong></p>")
    sections = [s for _, group in groups for s in group]
    parts += ["<p class='meta'>" + " · ".join(f"{html.escape(k)}: {html.escape(v)}"
                                              for k, v in meta) + "</p>",
              "<nav><ul>" + "".join(f"<li><a href='#{s.id}'>{html.escape(s.title)}</a></li>"
                                    for s in sections)
              + "<li><a href='#provenance'>How these numbers were made</a></li></ul></nav>"]
    for folder, group in groups:
        save(group, out / folder)
        for s in group:
            parts.append(f"<section id='{s.id}'><h2>{html.escape(s.title)}</h2>"
                         f"<p class='question'>{html.escape(s.question)}</p>")
            if s.answers:
                parts.append("<div class='answer'>" + "".join(_paragraphs(a) for a in s.answers)
                             + "</div>")
            for t in s.tables:
                if t.caption is not None:
                    parts.append(f"<p class='caption'>{html.escape(t.caption)}</p>"
                                 f"{table_html(t.shown, t.index or t.view is not None)}")
            for p in s.plots:
                src = f"{folder}/{p.file}"
                parts.append(f"<figure><img src='{html.escape(src)}' alt='{html.escape(p.caption)}'>"
                             f"<figcaption>{html.escape(p.caption)}</figcaption></figure>")
            parts.append("</section>")
    parts.append("<section id='provenance'><h2>How these numbers were made</h2>"
                 + table_html(provenance) + "</section></body></html>")
    index = out / "index.html"
    page = "\n".join(parts).encode("utf-8")
    # written last and whole: a browser (or a second report) never sees half a page
    write_atomically(index, lambda f: f.write(page))
    return index
