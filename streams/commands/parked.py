"""``parked`` and ``conflicts``: the entities waiting for a person, and what to do with them."""

from __future__ import annotations

from typing import Any

import click
import faust
from faust.cli import argument, option

from cdcsync.operators.common import OperatorError, render_table
from cdcsync.operators.parked import list_parked, request
from cdcsync.schemas.config import Config
from cdcsync.streams.commands.support import failing_cleanly

__all__ = ["register"]


def register(app: faust.App, config: Config) -> None:
    """Attach ``parked`` and ``conflicts`` to ``app``."""
    _register_parked(app, config)
    _register_conflicts(app, config)


def _register_parked(app: faust.App, config: Config) -> None:
    """``parked``: list, retry or cancel entities parked after a transient failure."""

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


def _register_conflicts(app: faust.App, config: Config) -> None:
    """``conflicts``: list or resolve conflicts parked under the manual policy."""

    @app.command(
        argument("action", type=click.Choice(["list", "resolve"])),
        argument("entity", required=False),
        argument("entity_id", required=False),
        option(
            "--take",
            type=click.Choice(["source", "target"]),
            default=None,
            help="with resolve: the side whose version wins",
        ),
    )
    async def conflicts(
        self: Any, action: str, entity: str | None, entity_id: str | None, take: str | None
    ) -> None:
        """Conflicts parked under the manual policy: `list`, `resolve ENTITY ID --take SIDE`.

        Both sides changed since the last sync; the conflicts topic holds both
        versions. `--take source` pushes the current row, `--take target` pulls
        the external object into the row; the entity then syncs again.
        """
        with failing_cleanly("conflicts"):
            if action == "list":
                found = list_parked(config, entity, status="conflict")
                if not found:
                    self.say("no conflicts")
                    return
                rows = [(p.entity, p.entity_id, p.state.external_id or "-") for p in found]
                self.say(render_table(("entity", "id", "external id"), rows))
                return
            if not entity or not entity_id or not take:
                raise OperatorError(
                    "usage: cdcsync conflicts resolve ENTITY ID --take source|target"
                )
            request(config, entity, entity_id, "resolve", take=take)
            self.say(
                f"resolve ({take}) sent for {entity} {entity_id}; "
                f"`cdcsync status {entity} {entity_id}` shows the outcome"
            )
