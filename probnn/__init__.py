"""probnn: probabilistic neural networks as Pyro model/guide pairs.

Subpackages (data flows one way): :mod:`probnn.datasets` -> :mod:`probnn.models` /
:mod:`probnn.guides` -> :mod:`probnn.inference` -> :mod:`probnn.tasks` (one computation per
question) -> :mod:`probnn.analysis` (figures, tables, answers as objects), with the ``probnn``
command line in :mod:`probnn.cli` and the report pipeline in :mod:`probnn.report`.
"""
from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("probnn")
    """The installed distribution's version (``probnn --version``)."""
except PackageNotFoundError:  # imported from a checkout that was never installed
    __version__ = "unknown"
