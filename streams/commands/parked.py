"""``parked``: see the entities waiting for a retry, retry one now, or cancel its work."""

from __future__ import annotations

from typing import Any

import click
import faust
from faust.cli import argument

from cdcsync.operators.common import OperatorError, render_table
from cdcsync.schemas.config import Config
from cdcsync.streams.commands.support import failing_cleanly

__all__ = ["register"]


def register(app: faust.App, config: Config) -> None:
    """Attach ``parked`` to ``app``."""

    @app.command(
        argument("action", type=click.Choice(["list", "retry", "cancel"])),
        argument("entity", required=False),
        argument("entity_id", required=False),
    )
    async def parked(self: Any, action: str, entity: str | None, entity_id: str | None) -> None:
        """Entities parked after a transient failure: `list`, `retry ENTITY ID`, `cancel ENTITY ID`.

        A parked entity's later events wait behind the failed one; the others
        flow. `retry` redrives it now instead of at its next backoff; `cancel`
        ends its parked events as dead letters (redrive them later with `dlq`).
        """
        from cdcsync.operators.parked import list_parked, request

        with failing_cleanly("parked"):
            if action == "list":
                rows = [p.row for p in list_parked(config, entity)]
                if not rows:
                    self.say("no parked entities")
                    return
                headers = ("entity", "id", "events", "attempts", "next retry", "last error")
                self.say(render_table(headers, rows))
                return
            if not entity or not entity_id:
                raise OperatorError(f"usage: cdcsync parked {action} ENTITY ID")
            request(config, entity, entity_id, action)
            self.say(
                f"{action} sent for {entity} {entity_id}; `cdcsync log --id {entity_id}` "
                "shows what follows"
            )
