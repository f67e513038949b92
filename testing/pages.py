"""Stand-in sources for the operator page (``cdcsync.streams.pages``): no Kafka, no database.

:class:`RecordingSources` records every control record, trigger and redrive
the page sends, and serves the dead letters and timelines a test gives it.
``apply`` (optional) is called with each control record, so a test can run
the real agent step on it (the browser test does: a retry then syncs).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from cdcsync.operators.dlq import Letter, RedriveReport
from cdcsync.schemas.envelope import Control
from cdcsync.streams.pages import PageSources
from cdcsync.streams.pages.tails import Timeline

__all__ = ["RecordingSources"]


@dataclass
class RecordingSources:
    """What the page sent, and what it is given to read."""

    controls: list[tuple[str, str, Control]] = field(default_factory=list)
    triggers: list[tuple[str, str]] = field(default_factory=list)
    redriven: list[Letter] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    timelines: dict[tuple[str, str], Timeline] = field(default_factory=dict)
    apply: Callable[[str, str, Control], Awaitable[None]] | None = None

    def sources(self) -> PageSources:
        """The :class:`PageSources` the page reads and sends through."""

        async def send_control(entity: str, entity_id: str, control: Control) -> None:
            self.controls.append((entity, entity_id, control))
            if self.apply is not None:
                await self.apply(entity, entity_id, control)

        async def sync_now(entity: str, entity_id: str) -> str:
            self.triggers.append((entity, entity_id))
            return f"{entity}[0]@{len(self.triggers) - 1}"

        async def dead_letters() -> list[Letter]:
            return list(self.letters)

        async def redrive(letters: list[Letter]) -> RedriveReport:
            self.redriven += letters
            return RedriveReport(sent=list(letters))

        async def timeline(entity: str, entity_id: str) -> Timeline:
            return self.timelines.get((entity, entity_id), Timeline())

        return PageSources(
            send_control=send_control,
            sync_now=sync_now,
            dead_letters=dead_letters,
            redrive=redrive,
            timeline=timeline,
        )
