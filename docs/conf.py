"""Sphinx configuration of probnn's documentation: the API reference from the docstrings
(autodoc, with the math rendered by MathJax) and the example notebook (myst-nb, not executed).

Build: ``python -m sphinx -W --keep-going -n -b html docs docs/_build/html`` (warnings are
errors, and every cross-reference must resolve)."""
from __future__ import annotations

from importlib.metadata import version as _version

project = "probnn"
author = "probnn developers"
release = _version("probnn")
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
]
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
exclude_patterns = ["_build", "**.ipynb_checkpoints"]
nb_execution_mode = "off"        # the notebook trains models: it is rendered, not run
myst_enable_extensions = ["dollarmath"]

# Each object is documented once, in the module that defines it: a module that re-exports names
# (its __all__) does not list them again, so references resolve in the defining module.
autodoc_default_options = {"members": True, "undoc-members": True, "ignore-module-all": True,
                           "member-order": "bysource"}
autodoc_typehints = "none"        # the docstrings say what each argument is
autodoc_preserve_defaults = True
autoclass_content = "class"
autodoc_inherit_docstrings = False  # torch's docstrings of overridden methods are not ours

# No network when the docs are built: references into other projects (torch, Pyro, NumPy,
# pandas, ArviZ, xarray, matplotlib, Dask, the standard library) stay plain text. Every
# reference into probnn itself must resolve (-n).
_external = ["torch", "pyro", "np", "numpy", "pd", "pandas", "arviz", "arviz_stats", "arviz_base",
             "xr", "xarray", "matplotlib", "plt", "mpl", "dask", "distributed", "tqdm", "scipy",
             "argparse", "pathlib", "os", "typing", "collections", "concurrent", "dataclasses",
             "multiprocessing", "threading", "signal", "contextlib", "io", "enum", "types",
             "numbers", "datetime", "logging", "abc", "json", "subprocess", "functools"]
nitpick_ignore_regex = [(r"py:.*", rf"{p}(\..*)?") for p in _external] + [
    (r"py:.*", r"(Path|Tensor|Module|DataFrame|Series|Figure|Axes|ndarray|Callable|Iterable|"
               r"Iterator|Mapping|Sequence|Any|NamedTuple|PathLike|Generator|Parameter|"
               r"Distribution|PyroModule|ELBO|Optimizer|Future|Client|LocalCluster|"
               r"TextIO|Namespace|ArgumentParser|TracerWarning|Event|Lock|Queue)"),
    (r"py:class", r"(int|float|str|bool|bytes|dict|list|tuple|set|type|object|None|complex|"
                  r"slice|range|BaseException|Exception|ValueError|TypeError|OSError|"
                  r"RuntimeError|KeyboardInterrupt|SystemExit)"),
    # a dataclass's generated __init__ under `from __future__ import annotations` shows its
    # fields' annotations as strings, which Sphinx splits at the comma ('dict[str, ...]')
    (r"py:class", r"'(dict|list|tuple)\[.*"),
]

html_theme = "furo"
html_title = f"probnn {release}"
html_static_path: list[str] = []


def _google_sections(app, what, name, obj, options, lines):
    """Napoleon for the docstrings written with Google-style sections (``Args:``) only: the
    others are reStructuredText whose first line may hold a colon that napoleon would read as
    an attribute's type."""
    if what in ("function", "method", "class") and any(
            line.strip() in ("Args:", "Returns:", "Raises:") for line in lines):
        from sphinx.ext.napoleon import Config
        from sphinx.ext.napoleon.docstring import GoogleDocstring
        lines[:] = GoogleDocstring(lines, Config(), app, what, name, obj, options).lines()


def setup(app):
    app.connect("autodoc-process-docstring", _google_sections)
