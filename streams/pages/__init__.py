"""The operator page: server-rendered HTML on the worker's web server, behind its guard.

Overview, problems, one entity and integrations read this worker's local
state tables (never a changelog scan per request) and the capped tails of the
event topics; actions send the records the CLI sends (control records
through the entity topic, triggers, redrives). ``register_ui`` adds the
routes and grants each its role on the :class:`~cdcsync.streams.guard.WebGuard`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import faust

from cdcsync.schemas.config import Config
from cdcsync.streams.guard import WebGuard
from cdcsync.streams.pages.context import LagReader, Ui
from cdcsync.streams.pages.integrations import without_credentials
from cdcsync.streams.pages.routes import register_routes
from cdcsync.streams.pages.sources import PageSources, worker_sources

__all__ = ["PageSources", "Ui", "make_sources", "register_ui"]


def make_sources(config: Config, entity_topics: Mapping[str, Any]) -> PageSources:
    """The page's sources in the worker (tests replace this function)."""
    return worker_sources(config, dict(entity_topics))


def _link_of(app: Any) -> Any:
    def link(entity: str, external_id: str) -> str | None:
        sync = getattr(app, "syncs", {}).get(entity)
        try:
            return without_credentials(str(sync.sink.link(external_id))) if sync else None
        except Exception:  # a sink that cannot be built here (secrets): no link
            return None

    return link


def register_ui(
    app: faust.App,
    config: Config,
    *,
    entity_topics: Mapping[str, Any],
    tables: Mapping[str, Any],
    guard: WebGuard,
    lag: LagReader,
) -> Ui:
    """Add the page's routes to ``app``; the returned :class:`Ui` is what they read."""
    ui = Ui(
        config=config,
        tables=tables,
        guard=guard,
        sources=make_sources(config, entity_topics),
        link_of=_link_of(app),
        lag=lag,
        redriven=set(),
    )
    register_routes(app, ui, guard)
    return ui
