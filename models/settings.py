"""The one Pyro setting the project's models and guides rely on."""
import pyro


def use_module_local_params() -> None:
    """Turn on Pyro's ``module_local_params`` (idempotent; the setting is process-wide).

    With it, a :class:`~pyro.nn.PyroModule`'s parameters live in its own ``state_dict()``,
    not in Pyro's global param store: several fitted models (and guides) can coexist in one
    process, e.g. a notebook comparing models, checkpoints save and load them like any torch
    module, and plain torch optimisers train them through ``ELBO.differentiable_loss``
    (:func:`probnn.inference.train.fit`). Without it, their parameters are also registered
    by name in the one global param store that every module of the process shares.

    Called wherever models and guides are built or loaded: ``__init__`` and ``__setstate__``
    (unpickling, e.g. a saved fit read back) of the project's model and guide classes, the
    autoguides of :mod:`probnn.inference.bayes_regression` and
    :func:`probnn.inference.train.fit`; so it holds whatever was imported first, and in every
    worker process. Pyro reads it each time a module's parameters are accessed.
    """
    pyro.settings.set(module_local_params=True)
