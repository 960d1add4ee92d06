"""The signals that stop a run: Ctrl-C (SIGINT), ``kill`` (SIGTERM) and a closed terminal
(SIGHUP), where the platform has them. A training saves a checkpoint on any of them
(:func:`probnn.inference.train.fit`), the report's workers save and stop, and a command exits
130 with one line. Importing this module costs nothing (the command line reads it before
torch is imported)."""
from __future__ import annotations

import signal

STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, n))
