"""One computation per coursework question: a typed config in, a typed result out.

Each module is one question's task: a frozen ``Config`` dataclass, ``KIND`` (``"train"``:
its artifact is a checkpoint; ``"evaluate"``: its artifact is the result), ``DATA`` (the
data it reads: ``"xkcd"`` or ``"mnist"``) and ``run(config, inputs, ...) -> result``; a
train task also has ``load(config, inputs, checkpoint)``, the result of a finished
checkpoint without training. :class:`~probnn.tasks.inputs.Inputs` says where the data and
the trained models are. The ``probnn`` subcommands, the report's jobs and notebooks call
the same ``run``::

    from probnn.tasks import holdout
    from probnn.tasks.inputs import Inputs
    est = holdout.run(holdout.Config(k=100), Inputs(checkpoints=["out/vae/vae-d4.ckpt"]))

Tasks compute; they never plot or write files (see :mod:`probnn.analysis`).
"""
