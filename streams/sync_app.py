"""The Faust app class of cdcsync: one configuration's app, its file and its syncs.

``cdcsync.streams.app.create_app`` builds it; commands read what they need
from it (``self.app`` in a command), so nothing is passed around in globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust

from cdcsync.agents.sync import EntitySync
from cdcsync.schemas.config import Config

__all__ = ["SyncApp"]


class SyncApp(faust.App):
    """The Faust app of one configuration: commands find it, its file and syncs here."""

    def __init__(self, config: Config, *, config_path: Path | None, **settings: Any) -> None:
        super().__init__(config.app.id, **settings)
        self.config = config
        #: The file ``config`` was read from (``None``: built in code).
        self.config_path = config_path
        #: Each entity's sync, set by ``create_app``.
        self.syncs: dict[str, EntitySync] = {}

    async def on_stop(self) -> None:
        """Stop as Faust does (its streams drain first), then close the sinks' connections."""
        await super().on_stop()
        for sync in self.syncs.values():
            await sync.aclose()
