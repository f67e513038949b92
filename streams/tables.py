"""The sync-state tables, one per entity, changelog-backed."""

from __future__ import annotations

from typing import Any

import faust

from cdcsync.agents import deliveries
from cdcsync.schemas.config import Config

__all__ = [
    "WEBHOOK_IDS_TABLE",
    "StateGlobalTable",
    "StateTable",
    "declare_links",
    "declare_polled",
    "declare_refs",
    "declare_tables",
    "declare_webhook_ids",
    "webhook_ids_changelog",
]

#: Webhook id -> when it was accepted (Unix seconds), for replay protection.
WEBHOOK_IDS_TABLE = "webhook_ids"


class _ConfirmedChangelog:
    """A table whose changelog records the step in progress waits for, like its results:
    its records are acked, and their offsets committed, only once their state is in Kafka
    (``agents.deliveries``)."""

    def send_changelog(self, *args: Any, **kwargs: Any) -> Any:
        future = super().send_changelog(*args, **kwargs)  # type: ignore[misc]
        deliveries.track(future)
        return future


class StateTable(_ConfirmedChangelog, faust.Table):  # type: ignore[misc]
    """A partitioned table whose writes count as delivered only once in its changelog."""


class StateGlobalTable(_ConfirmedChangelog, faust.GlobalTable):  # type: ignore[misc]
    """A global table whose writes count as delivered only once in its changelog."""


#: A global table's changelog records are applied one by one. Faust reads every partition
#: of a global table as "active", and applies active records in batches of its recovery
#: buffer (1,000 by default) even after recovery: another worker's few writes then wait
#: in that buffer until the next rebalance (a quick soak's poller leader ended with 120
#: linked objects unknown to it, and would never have published their edits). Faust's
#: own advice for a GlobalTable on several workers (``faust.tables.globaltable``).
_GLOBAL = {"is_global": True, "recovery_buffer_size": 1, "standby_buffer_size": 1}


def _add(app: faust.App, kind: type[Any], name: str, **settings: Any) -> Any:
    """Declare a table of class ``kind``, as ``app.Table`` and ``app.GlobalTable`` do (they
    build only the configured class)."""
    if issubclass(kind, faust.GlobalTable):
        # is_global is what app.GlobalTable passes: without it the class alone is a plain
        # partitioned table, and each worker keeps only its own partitions' keys.
        settings |= _GLOBAL
    return app.tables.add(kind(app, name=name, beacon=app.tables.beacon, **settings))


def declare_refs(app: faust.App, config: Config) -> dict[str, Any]:
    """Declare ``refs_<entity>``: external id -> entity key, on every worker (global)."""
    return {
        name: _add(
            app,
            StateGlobalTable,
            config.refs_table(name),
            default=None,
            partitions=config.topics.partitions,
            help=f"external id -> key of {name}",
        )
        for name in config.entities
    }


def declare_polled(app: faust.App, config: Config) -> dict[str, Any]:
    """Declare ``polled_<entity>``: external id -> version the poller last published.

    Global, so whichever worker leads next polls from where the last one stopped
    instead of publishing every record again; written by the poll timer (outside a
    stream), hence ``use_partitioner``.
    """
    return {
        name: _add(
            app,
            faust.GlobalTable,
            config.polled_table(name),
            default=None,
            partitions=config.topics.partitions,
            use_partitioner=True,
            help=f"external id -> version last polled of {name}",
        )
        for name in config.entities
    }


def declare_links(app: faust.App, config: Config) -> dict[str, Any]:
    """Declare ``links_<parent>``: key -> external id of each parent entity, on every worker.

    A child's agent reads it to carry its parent's external id; children live on
    other partitions than their parent, hence a global table.
    """
    return {
        name: _add(
            app,
            StateGlobalTable,
            config.links_table(name),
            default=None,
            partitions=config.topics.partitions,
            help=f"key -> external id of {name}",
        )
        for name, entity in config.entities.items()
        if entity.children
    }


def declare_tables(app: faust.App, config: Config) -> dict[str, Any]:
    """Declare ``state_<entity>`` for each entity: key = entity id, value = SyncState JSON."""
    return {
        name: _add(
            app,
            StateTable,
            config.state_table(name),
            default=None,
            partitions=config.topics.partitions,
            # app defaults: JSON keys and values
            help=f"sync state of {name}",
        )
        for name in config.entities
    }


def webhook_ids_changelog(config: Config) -> str:
    """The compacted changelog topic of the ``webhook_ids`` table."""
    return f"{config.app.id}-{WEBHOOK_IDS_TABLE}-changelog"


def declare_webhook_ids(app: faust.App, config: Config) -> Any:
    """Declare ``webhook_ids``: webhook id -> accepted at, on every worker, kept across restarts.

    Written from the web handler (outside a stream), hence ``use_partitioner``;
    global, so a replay sent to another worker is caught there too.
    """
    return _add(
        app,
        faust.GlobalTable,
        WEBHOOK_IDS_TABLE,
        default=None,
        partitions=config.topics.partitions,
        use_partitioner=True,
        help="webhook id -> accepted at (s), replay protection",
    )
