"""The one Pyro setting the project's models and guides rely on."""
import pyro
import torch
from pyro.nn import PyroModule


def use_module_local_params() -> None:
    """Turn on Pyro's ``module_local_params`` (idempotent; the setting is process-wide).

    With it, a :class:`~pyro.nn.PyroModule`'s parameters live in its own ``state_dict()``,
    not in Pyro's global param store: several fitted models (and guides) can coexist in one
    process, e.g. a notebook comparing models, checkpoints save and load them like any torch
    module, and plain torch optimisers train them through ``ELBO.differentiable_loss``
    (:func:`probnn.inference.train.fit`). Without it, their parameters are also registered
    by name in the one global param store that every module of the process shares.

    Called wherever models and guides are built or loaded: by :class:`LocalPyroModule`, the
    base of the project's model and guide classes (when built and when unpickled), the
    autoguides of :mod:`probnn.inference.bayes_regression` and
    :func:`probnn.inference.train.fit`; so it holds whatever was imported first, and in every
    worker process. Pyro reads it each time a module's parameters are accessed.
    """
    pyro.settings.set(module_local_params=True)


def adopt(*modules: torch.nn.Module) -> None:
    """Turn on :func:`use_module_local_params` and let PyroModules built before it was on
    (e.g. a notebook's own model, defined before any probnn model was built) work with it.

    Pyro decides a module's parameter scope when the module is built: one built with the
    setting off has no module-local parameter state, and calling it once the setting is on
    fails inside Pyro. This gives such modules the empty state Pyro would have given them
    at construction (their ``nn.Parameter`` and ``PyroParam`` attributes are unaffected).
    """
    use_module_local_params()
    for module in modules:
        if not isinstance(module, torch.nn.Module):
            continue  # a model or guide written as a plain function has no module state
        for m in module.modules():
            ctx = getattr(m, "_pyro_context", None) if isinstance(m, PyroModule) else None
            if ctx is not None and not hasattr(ctx, "param_state"):
                ctx.param_state = {"params": {}, "constraints": {}}


def module_device(module: torch.nn.Module) -> torch.device:
    """The device of a module's first parameter (or buffer); the CPU for a module with none.
    Tensors a model creates itself (prior locations, constant logits) go there, so that a
    model moved with ``.to(device)`` runs there end to end."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


class LocalPyroModule(PyroModule):
    """The base of the project's models and guides: a :class:`~pyro.nn.PyroModule` that turns
    on :func:`use_module_local_params` when it is built and when it is unpickled (a saved fit
    read back with ``torch.load``, whose parameters would otherwise be looked up by name in
    the global param store, shared with every other fit of the process)."""

    def __init__(self, *args, **kwargs):
        use_module_local_params()
        super().__init__(*args, **kwargs)

    def __setstate__(self, state):
        use_module_local_params()
        super().__setstate__(state)
