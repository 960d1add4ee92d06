"""The one Pyro setting the project's models and guides rely on."""
import pyro
import torch
from pyro.nn import PyroModule


def module_local_params():
    """The context in which the project's modules are built and run: Pyro's
    ``module_local_params`` on for the block, the caller's setting back afterwards (Pyro reads
    the setting when a module is built and each time its parameters are reached inside a
    call). With it, a :class:`~pyro.nn.PyroModule`'s parameters live in its own
    ``state_dict()``, not in Pyro's global param store: several fitted models (and guides)
    coexist in one process, checkpoints save and load them like any torch module, and plain
    torch optimisers train them through ``ELBO.differentiable_loss``."""
    return pyro.settings.context(module_local_params=True)


def adopt(*modules: torch.nn.Module) -> None:
    """Let PyroModules built while ``module_local_params`` was off run while it is on.

    Pyro decides a module's parameter scope when the module is built: one built with the
    setting off has no module-local parameter state, and calling it once the setting is on
    fails inside Pyro. This gives such modules the empty state Pyro would have given them
    at construction (their ``nn.Parameter`` and ``PyroParam`` attributes are unaffected); it
    changes no setting.
    """
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
    """The base of the project's models and guides: a :class:`~pyro.nn.PyroModule` whose
    parameters are module-local (see :func:`module_local_params`) without changing the
    process's setting: it is built, unpickled and called inside :func:`module_local_params`,
    so a user's own Pyro code in the same process keeps its global param store."""

    def __init__(self, *args, **kwargs):
        with module_local_params():
            super().__init__(*args, **kwargs)

    def __setstate__(self, state):
        with module_local_params():
            super().__setstate__(state)

    def __call__(self, *args, **kwargs):
        if "_probnn_adopted" not in self.__dict__:
            adopt(self)  # submodules built after __init__ returned
            self.__dict__["_probnn_adopted"] = True
        if pyro.settings.get("module_local_params"):  # inside a call of the model already
            return super().__call__(*args, **kwargs)
        with module_local_params():
            return super().__call__(*args, **kwargs)
