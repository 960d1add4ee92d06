"""probnn: probabilistic neural networks as Pyro model/guide pairs.

Subpackages (data flows one way): :mod:`probnn.datasets` -> :mod:`probnn.models` /
:mod:`probnn.guides` -> :mod:`probnn.inference` -> :mod:`probnn.analysis`, with the
``probnn`` command line in :mod:`probnn.cli`.
"""
__version__ = "0.1.0"
