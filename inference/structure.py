"""What a model/guide pair looks like, found once by tracing it, and its log-densities per
data point: the one discovery that every estimator, objective and tool of
:mod:`probnn.inference` builds on.

A pair qualifies when every sample site is local to one data plate (``"data"``, or the one
plate that holds every site): for data point i the joint factorises as
``p(x_i, z_i) q(z_i | x_i)``. :func:`discover` traces the guide and replays the model against
it (``poutine.trace``/``poutine.replay``, as Pyro's ELBOs do) and returns a :class:`Structure`:
the latent sites (any names, any number, with their event shapes and whether they are
reparameterised, discrete or enumerated), the observed sites, the data plate (its name, size,
subsample size, dimension or sequential iteration) and the plate nesting. Sites outside the
promise get one :class:`ModelError` naming the site and the requirement.

Log-densities follow Pyro's semantics exactly (:func:`site_log_prob`): each term is
``scale * mask * log_prob``, so subsample plates' N/B, ``poutine.scale`` and ``poutine.mask``
count as in ``Trace_ELBO``. The per-datum split (:func:`per_datum`) is read off the plates
actually present: the data plate's dimension for a vectorised plate, its iteration counter
for a sequential one; every other plate inside it is summed.

Particles (:func:`probnn.inference.estimators.particle_terms`) are a vectorised ``pyro.plate("particles")`` left of the
model's plates. Written here because Pyro's vectorised particles need the model to broadcast;
for a model that does not (boolean-mask indexing, reshapes by the batch size), the particles
are drawn in a loop of single-particle passes instead, with the same distribution and a
one-line :class:`SlowPathNote`.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import pyro
import pyro.poutine as poutine
import torch
from pyro.distributions.util import scale_and_mask
from pyro.poutine.util import site_is_subsample

DATA_PLATE = "data"
PARTICLES = "particles"


class ModelError(ValueError):
    """A model/guide pair outside what a probnn tool supports; the message names the site and
    the requirement."""


class SlowPathNote(UserWarning):
    """A model did not broadcast over a leading particle dimension: particles are drawn one
    pass at a time (the same numbers up to Monte Carlo error, slower)."""


@dataclass(frozen=True)
class Call:
    """The arguments model and guide are called with: positional ``args`` and keyword
    ``kwargs``, tensors or anything else. The *data rows* are the tensors (positional or
    keyword) whose leading dimension is the data plate's full size: those are sliced into
    batches and repeated for chains; everything else is passed unchanged."""
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def tensors(self):
        yield from (a for a in self.args if isinstance(a, torch.Tensor))
        yield from (v for v in self.kwargs.values() if isinstance(v, torch.Tensor))

    def map_rows(self, n: int, fn) -> "Call":
        """``fn`` applied to every data-row tensor (leading dimension ``n``)."""
        def f(a):
            return fn(a) if isinstance(a, torch.Tensor) and a.dim() and len(a) == n else a
        return Call(tuple(f(a) for a in self.args), {k: f(v) for k, v in self.kwargs.items()})

    def to(self, device) -> "Call":
        def f(a):
            return a.to(device) if isinstance(a, torch.Tensor) else a
        return Call(tuple(f(a) for a in self.args), {k: f(v) for k, v in self.kwargs.items()})

    def rows(self) -> int | None:
        """The leading size of the first tensor argument (None without one)."""
        return next((len(t) for t in self.tensors() if t.dim()), None)


def as_call(data) -> Call:
    """A :class:`Call` from what the tools accept as ``data``: a ``Call``, a tuple or list of
    positional arguments, a dict of keyword arguments, None (no arguments) or one argument."""
    if isinstance(data, Call):
        return data
    if data is None:
        return Call()
    if isinstance(data, dict):
        return Call((), dict(data))
    return Call(tuple(data) if isinstance(data, (tuple, list)) else (data,), {})


@dataclass(frozen=True)
class Latent:
    name: str
    event_shape: tuple
    reparameterised: bool
    discrete: bool
    enumerated: bool


@dataclass(frozen=True)
class Structure:
    """A model/guide pair's sites and data plate, as found by :func:`discover`."""
    plate: str
    size: int            # data points in one call (the subsample size if subsampled)
    full_size: int       # the plate's full size (N of a subsample plate)
    vectorized: bool     # False: a sequential ``for i in pyro.plate(...)``
    max_plate_nesting: int
    latents: dict        # name -> Latent (model latent sites)
    observed: tuple      # observed site names
    guide_only: tuple    # guide sites the model lacks (auxiliary sites of auto-guides)

    @property
    def subsampled(self) -> bool:
        return self.size != self.full_size

    @property
    def particle_dim(self) -> int:
        return -(self.max_plate_nesting + 1)

    def require_continuous(self, tool: str) -> None:
        for s in self.latents.values():
            if s.discrete or s.enumerated:
                raise ModelError(f"latent site {s.name!r} is {'enumerated' if s.enumerated else 'discrete'}: "
                                 f"{tool} needs continuous latent sites")

    def require_reparameterised(self, tool: str) -> None:
        self.require_continuous(tool)
        for s in self.latents.values():
            if not s.reparameterised:
                raise ModelError(f"guide site {s.name!r} is not reparameterised: {tool} is a "
                                 "pathwise gradient and needs z = z(eps; phi) (has_rsample)")


def sample_sites(trace):
    """The sample sites of a trace that carry log-density, ``(name, site)``: subsample and
    ``pyro.deterministic`` sites are skipped."""
    for name, site in trace.nodes.items():
        if site["type"] == "sample" and not site_is_subsample(site) \
                and not site["infer"].get("_deterministic"):
            yield name, site


def trace_pair(model, guide, call: Call):
    """``(model_trace, guide_trace)`` of one pass: the guide traced, the model replayed."""
    guide_trace = poutine.trace(guide).get_trace(*call.args, **call.kwargs)
    model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(
        *call.args, **call.kwargs)
    return model_trace, guide_trace


def _data_frame(site, plate: str):
    return next((f for f in site["cond_indep_stack"] if f.name == plate), None)


def column(frame, size: int) -> int:
    """The data-point column of a site in a sequential plate: Pyro counts a sequential
    plate's iterations from 1 (modulo ``size`` for a plate object iterated again)."""
    return (frame.counter - 1) % size


def _plate_size(frame, site) -> int:
    """The data plate's size in one call: its declared size, or for ``pyro.plate("data")``
    without one (size -1: broadcast) the site's batch size at the plate's dimension."""
    if frame.size is not None and frame.size >= 0:
        return int(frame.size)
    shape = site["fn"].batch_shape
    return int(shape[frame.dim]) if len(shape) >= -frame.dim else 1


def _find_plate(traces, plate: str) -> str:
    sites = [s for tr in traces for _, s in sample_sites(tr)]
    if any(_data_frame(s, plate) for s in sites):
        return plate
    common = None
    for s in sites:
        names = {f.name for f in s["cond_indep_stack"]}
        common = names if common is None else common & names
    if common and len(common) == 1:
        return common.pop()
    raise ModelError(f"no plate {plate!r} found and no single plate holds every sample site: "
                     f"probnn's tools need the data points in one plate (pyro.plate({plate!r}))")


@torch.no_grad()
def discover(model, guide, data, plate: str = DATA_PLATE) -> Structure:
    """Trace ``guide`` and replay ``model`` once on ``data`` and read off their structure
    (see the module docstring); :class:`ModelError` when a site is outside the promise."""
    call = as_call(data)
    with pyro.validation_enabled(False):
        model_trace, guide_trace = trace_pair(model, guide, call)
    plate = _find_plate((model_trace, guide_trace), plate)
    frame, size, nesting = None, None, 0
    for tr, role in ((model_trace, "model"), (guide_trace, "guide")):
        for name, site in sample_sites(tr):
            stack = site["cond_indep_stack"]
            if any(f.name == PARTICLES for f in stack):
                raise ModelError(f"{role} site {name!r} is inside a plate named {PARTICLES!r}, "
                                 "the name probnn uses for its particles: rename that plate")
            f = _data_frame(site, plate)
            if f is None:
                raise ModelError(f"site {name!r} is outside plate {plate!r}: these tools need every "
                                 "sample site to be local to a data point (a global latent or "
                                 "observation is not supported)")
            frame = frame or f
            if f.vectorized:
                size = max(size or 1, _plate_size(f, site))
            nesting = max([nesting, len(site["fn"].batch_shape)] + [-g.dim for g in stack if g.vectorized])
    if frame is None:
        raise ModelError("the model and guide have no sample sites")
    latents = {}
    for name, site in sample_sites(model_trace):
        if site["is_observed"]:
            continue
        g = guide_trace.nodes.get(name)
        if g is None:
            raise ModelError(f"latent site {name!r} of the model is not sampled by the guide")
        fn = g["fn"]
        latents[name] = Latent(name, tuple(fn.event_shape), bool(fn.has_rsample),
                               bool(fn.support.is_discrete),
                               bool(g["infer"].get("enumerate") or site["infer"].get("enumerate")))
    observed = tuple(n for n, s in sample_sites(model_trace) if s["is_observed"])
    guide_only = tuple(n for n, _ in sample_sites(guide_trace) if n not in model_trace.nodes)
    size = size if frame.vectorized else int(frame.size)
    full = int(frame.full_size) if frame.full_size is not None and frame.full_size >= 0 else size
    return Structure(plate, size, full, frame.vectorized,
                     max(nesting, 1), latents, observed, guide_only)


def site_log_prob(site, fn=None) -> torch.Tensor:
    """``scale * mask * fn.log_prob(value)`` of a trace site (``fn`` defaults to the site's own
    distribution), as Pyro's ``Trace.compute_log_prob`` forms it."""
    fn = site["fn"] if fn is None else fn
    return scale_and_mask(fn.log_prob(site["value"]), site["scale"], site["mask"])


def per_datum(lp: torch.Tensor, site, s: Structure, k: int | None) -> torch.Tensor:
    """A site's log-density term as ``(k, size)`` (``(size,)`` when ``k`` is None): the data
    plate's dimension kept, the particle dimension kept, every other dimension summed; a
    site of a sequential data plate lands in the column of its iteration."""
    width = s.max_plate_nesting + (k is not None)
    lp = torch.as_tensor(lp)
    lp = lp.reshape((1,) * (width - lp.dim()) + tuple(lp.shape))
    frame = _data_frame(site, s.plate)
    keep = ([s.particle_dim] if k is not None else []) + ([frame.dim] if frame.vectorized else [])
    others = [d for d in range(-width, 0) if d not in keep]
    if others:
        lp = lp.sum(others)
    if frame.vectorized:
        return lp.expand((k, s.size) if k is not None else (s.size,))
    one_hot = torch.zeros(s.size, dtype=lp.dtype, device=lp.device)
    one_hot[column(frame, s.size)] = 1.0
    return (lp.reshape(-1, 1) * one_hot).expand(k, s.size) if k is not None else lp * one_hot


def weight_view(w: torch.Tensor, site, s: Structure, particles: bool = True) -> torch.Tensor:
    """Per-(particle, data point) weights ``w`` (k, size), or one particle's (size,) when
    ``particles`` is False, shaped to broadcast against the site's sample value (the
    particle and data dimensions where the site has them)."""
    event = len(site["fn"].event_shape)
    frame = _data_frame(site, s.plate)
    ndim = site["value"].dim() - event
    w = w if particles else w.unsqueeze(0)
    if not frame.vectorized:
        c = column(frame, s.size)
        w = w[:, c:c + 1]
    shape = [1] * ndim
    if particles and ndim >= -s.particle_dim:
        shape[ndim + s.particle_dim] = w.shape[0]
    if frame.vectorized and ndim >= -frame.dim:
        shape[ndim + frame.dim] = w.shape[1]
    return w.reshape(shape + [1] * event)


@dataclass
class Particles:
    """How one tool draws particles for one pair: vectorised until a pass fails, then in a
    loop (noted once)."""
    structure: Structure
    vectorised: bool = True

    def traces(self, model, guide, call: Call, k: int) -> list:
        """``[(model_trace, guide_trace, k_i)]``: one vectorised pass of ``k`` particles, or
        ``k`` single-particle passes (``k_i`` None: no particle dimension)."""
        if self.vectorised:
            try:
                with pyro.plate(PARTICLES, k, dim=self.structure.particle_dim):
                    return [trace_pair(model, guide, call) + (k,)]
            except BROADCAST_FAILURES as e:
                note_slow_path(e, stacklevel=4)
                self.vectorised = False
        return [trace_pair(model, guide, call) + (None,) for _ in range(k)]


BROADCAST_FAILURES = (RuntimeError, IndexError, ValueError, TypeError)
"""What a model that cannot take a leading particle dimension raises (shape errors)."""


def note_slow_path(e: Exception, stacklevel: int = 3) -> None:
    """The one-line :class:`SlowPathNote` for a model that failed under vectorised particles
    with ``e``; a :class:`ModelError` (a refusal, not a shape failure) is raised instead."""
    if isinstance(e, ModelError):
        raise e
    warnings.warn(f"the model does not broadcast over a leading particle dimension "
                  f"({type(e).__name__}: {str(e).splitlines()[0][:120]}); drawing particles "
                  "one pass at a time (slower, same estimates)", SlowPathNote,
                  stacklevel=stacklevel)


def parameters(model, guide, data) -> list[torch.Tensor]:
    """The unconstrained parameters model and guide use, found as Pyro's ``SVI`` finds them:
    the ``param`` sites of one traced pass (``pyro.param``, ``pyro.module``, ``PyroModule``
    attributes, auto-guides), after the parameters of model or guide where it is an
    ``nn.Module`` itself (in module order, so that optimiser states stay aligned). The
    ``self`` of a bound method (``vae.model``, ``vae.guide``) is not taken whole: its model
    and guide halves are told apart by what each pass reaches."""
    call, found = as_call(data), []
    for fn in (model, guide):
        if isinstance(fn, torch.nn.Module):
            found += [p for p in fn.parameters() if p.requires_grad]
    state = pyro.util.get_rng_state()
    try:
        with torch.no_grad(), pyro.validation_enabled(False):
            tr = poutine.trace(lambda: trace_pair(model, guide, call), param_only=True).get_trace()
    finally:
        pyro.util.set_rng_state(state)
    for site in tr.nodes.values():
        v = site["value"]
        v = v.unconstrained() if hasattr(v, "unconstrained") else v
        if isinstance(v, torch.Tensor) and v.requires_grad:
            found.append(v)
    unique = {id(p): p for p in found}
    return list(unique.values())


def stack_particles(terms: list[torch.Tensor], ks: list) -> torch.Tensor:
    """Per-pass ``(k, n)`` or ``(n,)`` terms as one ``(K, n)`` tensor."""
    return torch.cat([t if k is not None else t.unsqueeze(0) for t, k in zip(terms, ks)], 0)
