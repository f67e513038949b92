"""Operator commands, on the Faust app so one CLI runs the worker and the tools.

One module per group: ``stack`` (local, demo), ``repair`` (replay, resync,
dlq, trigger), ``inspect`` (status, log, schemas), ``parked``, ``reconcile`` and
``providers`` (providers, check). Each command's
docstring is its ``--help``; the work is done by ``cdcsync.operators``.
"""

from __future__ import annotations

import faust

from cdcsync.schemas.config import Config
from cdcsync.streams.commands import inspect, parked, providers, reconcile, repair, stack
from cdcsync.streams.commands.stack import stack_up

__all__ = ["register", "stack_up"]


def register(app: faust.App, config: Config) -> None:
    """Attach every operator command to ``app``."""
    stack.register(app, config)
    repair.register(app, config)
    inspect.register(app, config)
    parked.register(app, config)
    reconcile.register(app, config)
    providers.register(app, config)
