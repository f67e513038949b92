"""Operator commands, on the Faust app so one CLI runs the worker and the tools.

One module per group: ``stack`` (local), ``repair`` (replay, resync,
dlq, trigger), ``inspect`` (status, log, schemas), ``parked``, ``reconcile``,
``providers`` (providers, check) and ``probe``. Each command's
docstring is its ``--help``; the work is done by ``cdcsync.operators``.
Packages above streams add theirs through the app's ``autodiscover`` list
(``cdcsync demo`` is ``cdcsync.demo.command``).
"""

from __future__ import annotations

from cdcsync.schemas.config import Config
from cdcsync.streams.commands import (
    inspect,
    parked,
    probe,
    providers,
    reconcile,
    repair,
    stack,
)
from cdcsync.streams.commands.stack import stack_up
from cdcsync.streams.sync_app import SyncApp

__all__ = ["register", "stack_up"]


def register(app: SyncApp, config: Config) -> None:
    """Attach every operator command to ``app``."""
    stack.register(app, config)
    repair.register(app, config)
    inspect.register(app, config)
    parked.register(app, config)
    reconcile.register(app, config)
    providers.register(app, config)
    probe.register(app, config)
