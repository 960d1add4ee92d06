"""Pyro's auto-guides with module-local parameters, scoped: each is Pyro's class (same name,
same behaviour) built, unpickled and called inside ``module_local_params`` through
:class:`~probnn.models.settings.LocalPyroModule`, so two fits in one process keep their own
parameters and the process's setting is left as the caller had it."""
from pyro.infer import autoguide

from probnn.models.settings import LocalPyroModule


class AutoDelta(LocalPyroModule, autoguide.AutoDelta):
    """:class:`pyro.infer.autoguide.AutoDelta`, module-local."""


class AutoNormal(LocalPyroModule, autoguide.AutoNormal):
    """:class:`pyro.infer.autoguide.AutoNormal`, module-local."""


class AutoDiagonalNormal(LocalPyroModule, autoguide.AutoDiagonalNormal):
    """:class:`pyro.infer.autoguide.AutoDiagonalNormal`, module-local."""


class AutoLowRankMultivariateNormal(LocalPyroModule, autoguide.AutoLowRankMultivariateNormal):
    """:class:`pyro.infer.autoguide.AutoLowRankMultivariateNormal`, module-local."""


class AutoMultivariateNormal(LocalPyroModule, autoguide.AutoMultivariateNormal):
    """:class:`pyro.infer.autoguide.AutoMultivariateNormal`, module-local."""
