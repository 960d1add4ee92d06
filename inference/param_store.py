"""Pyro's global param store in a checkpoint: its state as plain data (constraints by name),
and put back so that the store and the loaded modules share their parameters."""
from __future__ import annotations

import pyro
import torch
from torch.distributions.constraints import Constraint


def constraints_by_name() -> dict[str, Constraint]:
    """Every constraint singleton of torch and Pyro by name: a checkpoint names a parameter's
    constraint instead of pickling the object."""
    import pyro.distributions.constraints as pyro_constraints
    out: dict[str, Constraint] = {}
    for module in (torch.distributions.constraints, pyro_constraints):
        for name, obj in vars(module).items():
            if isinstance(obj, Constraint) and not name.startswith("_"):
                out.setdefault(name, obj)
    return out


def param_store_state() -> dict:
    state = pyro.get_param_store().get_state()
    names = {id(c): n for n, c in reversed(constraints_by_name().items())}
    constraints = {}
    for param, c in state["constraints"].items():
        if id(c) not in names:
            raise TypeError(f"cannot checkpoint Pyro parameter {param!r}: its constraint {c!r} "
                            "is not one of the named constraints of torch.distributions."
                            "constraints or pyro.distributions.constraints")
        constraints[param] = names[id(c)]
    return {"params": dict(state["params"]), "constraints": constraints}


def _module_params(modules) -> dict[str, torch.Tensor]:
    """The parameters of ``modules`` by every name Pyro's param store may give them:
    ``PyroModule`` full names (``a.b``, a ``PyroParam``'s name without ``_unconstrained``)
    and the part after ``$$$`` of a ``pyro.module`` registration."""
    out = {}
    for m in modules:
        for name, p in m.named_parameters():
            out[name] = p
            if name.endswith("_unconstrained"):
                out[name[:-len("_unconstrained")]] = p
    return out


def _module_param(own: dict, name: str, value: torch.Tensor):
    """The module parameter a param-store entry ``name`` stands for, or None: by its
    ``PyroModule`` name, or for ``pyro.module(m, net)``'s ``m$$$rel`` by ``m.rel`` or ``rel``
    (``net`` a submodule or the module itself) or, failing those, a unique parameter whose
    name ends in ``.rel`` and that holds the saved value (the module was just loaded)."""
    mod, _, rel = name.rpartition("$$$")
    names = [f"{mod}.{rel}", rel] if mod else [name]
    found = [own[n] for n in names if n in own]
    if not found and mod:
        found = [p for n, p in own.items() if n.endswith("." + rel) and p.shape == value.shape
                 and torch.equal(p.detach(), value.to(p.device))]
        found = found if len(found) == 1 else []
    p = found[0] if found else None
    return p if p is not None and p.shape == value.shape else None


def restore_param_store(state: dict, modules=()) -> None:
    """Put saved param-store values (``{"params": name -> tensor, "constraints": name ->
    constraint name}``, as :func:`param_store_state` writes them) back without cutting the
    store off the modules: an entry that names a parameter of ``modules`` (just loaded from
    the checkpoint) is registered as that very tensor, so the module and the store share it
    and plain Pyro SVI keeps training the module; any other entry the store holds already is
    overwritten in place; only the rest (``pyro.param`` of plain functions) become new store
    entries. A ``KeyError`` names an unknown constraint."""
    known = constraints_by_name()
    unknown = sorted(set(state["constraints"].values()) - set(known))
    if unknown:
        raise KeyError(f"unknown constraint(s) {', '.join(unknown)}")
    store, own = pyro.get_param_store(), _module_params(modules)
    for name, value in state["params"].items():
        constraint = known[state["constraints"][name]]
        p = _module_param(own, name, value)
        if p is None and name in store:
            with torch.no_grad():
                store._params[name].copy_(value)
            continue
        if p is None:
            p = value.detach().clone().requires_grad_(True)
        old = store._params.get(name)
        if old is not None:
            store._param_to_name.pop(old, None)
        store._params[name], store._constraints[name] = p, constraint
        store._param_to_name[p] = name
