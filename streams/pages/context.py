"""What every page reads: the configuration, the local state tables, the guard, the sources."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cdcsync.operators.dlq import Letter
from cdcsync.schemas.config import Config
from cdcsync.streams.guard import WebGuard
from cdcsync.streams.pages.sources import PageSources

__all__ = ["LagReader", "Ui"]

#: (topic, partition) -> records not yet read by this worker.
LagReader = Callable[[], Mapping[tuple[str, int], int]]


@dataclass
class Ui:
    """The page's view of the worker; built once by ``register_ui``."""

    config: Config
    #: Entity -> its Faust state table (entity id -> SyncState JSON), this worker's partitions.
    tables: Mapping[str, Any]
    guard: WebGuard
    sources: PageSources
    #: The URL a person opens to see an external object (the sink's ``link()``).
    link_of: Callable[[str, str], str | None]
    lag: LagReader
    #: Dead letters this worker's page redrove (marks ``partition/offset``), to skip again.
    redriven: set[str]

    def integration_of(self) -> dict[str, str | None]:
        """Entity -> the integration its target names (``None``: a provider inline)."""
        return {name: e.target.integration for name, e in self.config.entities.items()}

    def state(self, entity: str, entity_id: str) -> dict[str, Any] | None:
        """The entity's state as the table holds it, or ``None``."""
        table = self.tables.get(entity)
        value = table.get(entity_id) if table is not None else None
        return value if isinstance(value, dict) else None

    def find_letters(self, letters: list[Letter], marks: set[str]) -> list[Letter]:
        """The letters whose ``partition/offset`` is in ``marks``."""
        return [entry for entry in letters if entry.mark in marks]
