"""probnn: probabilistic neural networks as Pyro model/guide pairs.

Subpackages (data flows one way): :mod:`probnn.datasets` -> :mod:`probnn.models` /
:mod:`probnn.guides` -> :mod:`probnn.inference` -> :mod:`probnn.analysis`, with the
``probnn`` command line in :mod:`probnn.cli`.
"""
import pyro

# Parameters live in each PyroModule's state_dict(), not in the global param store, so a
# notebook can hold several fitted models at once and plain torch optimisers can train them.
pyro.settings.set(module_local_params=True)

__version__ = "0.1.0"
