"""The Faust app class of cdcsync: one configuration's app, its file and its syncs.

``cdcsync.streams.app.create_app`` builds it; commands read what they need
from it (``self.app`` in a command), so nothing is passed around in globals.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
from faust.types import ProducerT

from cdcsync.agents.sync import EntitySync
from cdcsync.schemas.config import Config

__all__ = ["CHANGELOG_BUFFER", "SyncApp"]

#: Table writes (changelog records) waiting for the producer before the stream pauses.
CHANGELOG_BUFFER = 2000


class SyncApp(faust.App):
    """The Faust app of one configuration: commands find it, its file and syncs here."""

    def __init__(self, config: Config, *, config_path: Path | None, **settings: Any) -> None:
        super().__init__(config.app.id, **settings)
        self.config = config
        #: The file ``config`` was read from (``None``: built in code).
        self.config_path = config_path
        #: Each entity's sync, set by ``create_app``.
        self.syncs: dict[str, EntitySync] = {}

    def _new_producer(self) -> ProducerT:
        """Faust's producer, its buffer of table writes sized for a burst of records: at
        Faust's 100, every burst paused the stream to flush it (and logged a warning)."""
        producer = super()._new_producer()
        producer.buffer.max_messages = CHANGELOG_BUFFER
        return producer

    async def on_stop(self) -> None:
        """Stop as Faust does (its streams drain first), then close the sinks' connections."""
        await super().on_stop()
        for sync in self.syncs.values():
            await sync.aclose()
