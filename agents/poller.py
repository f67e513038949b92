"""The poller: bring external changes back, by version, into the entity's own topic.

Many APIs have no change feed and no timestamps; the ``rowId`` (or a hash of
the mapped fields) is the change signal. Each changed record is published
keyed byte-identically to Debezium's key for the same entity, so both
directions of one entity are serialised through one partition.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import faust

from cdcsync import metrics
from cdcsync.agents.apply import Applier
from cdcsync.agents.decide import deletes_allowed
from cdcsync.agents.deliveries import Deliveries, current, send
from cdcsync.errors import MappingError, SinkError
from cdcsync.schemas.envelope import ExternalChange
from cdcsync.sinks.base import ExternalRecord

__all__ = ["Notify", "PollReport", "Poller"]

#: Sends a notification: (entity id or None, level, message).
Notify = Callable[[str | None, str, str], Awaitable[None]]

log = logging.getLogger(__name__)

#: In a pass's published versions: the object was reported deleted (forget its version).
_GONE: Any = object()


@dataclass
class PollReport:
    """What one poll saw and did."""

    listed: int = 0
    published: int = 0
    deleted: int = 0
    created_in_source: int = 0
    not_created: int = 0
    unknown_ignored: int = 0
    #: Missing from the listing but found by a direct read: not deleted.
    still_there: int = 0
    #: Missing from the listing, but too many to be deleted (the mass-delete guard).
    delete_blocked: int = 0
    seconds: float = 0.0


class Poller:
    """Lists one entity's external records and publishes the changed ones."""

    def __init__(
        self,
        entity: str,
        applier: Applier,
        topic: faust.TopicT,
        refs: Any,
        *,
        notify: Notify | None = None,
        seen: MutableMapping[str, str | None] | None = None,
    ) -> None:
        self.entity = entity
        #: Tells a person (the notifications topic) when the mass-delete guard holds.
        self.notify = notify
        self.blocked = False
        #: The entity's sink, mapper, source writer and version rule.
        self.applier = applier
        self.topic = topic
        self.refs = refs
        #: external id -> version last published. In the worker it is the
        #: ``polled_<entity>`` table, kept in Kafka, so a new leader's first poll publishes
        #: only what changed; a plain dict republishes everything after a restart.
        self.last_seen: MutableMapping[str, str | None] = {} if seen is None else seen
        self.reported_gone: set[str] = set()
        #: external id -> version of records linked to no entity that this worker tried
        #: to create a row for (in memory only).
        self.unknown: dict[str, str | None] = {}

    async def poll_once(self) -> PollReport:
        """One full pass over the external records."""
        started = time.monotonic()
        report = PollReport()
        deliveries = Deliveries()
        token = current.set(deliveries)
        try:
            published = await self._pass(report)
            # A version counts as seen once its record is in the topic, never before: a
            # leader killed in between leaves it to the next leader to publish again.
            await deliveries.confirm()
        finally:
            current.reset(token)
        for external_id, version in published.items():
            if version is _GONE:
                self.last_seen.pop(external_id, None)
            else:
                self.last_seen[external_id] = version
        report.seconds = time.monotonic() - started
        metrics.observe_poll(self.entity, {
            "listed": report.listed, "published": report.published, "deleted": report.deleted,
            "unknown": report.unknown_ignored + report.created_in_source + report.not_created,
        })  # fmt: skip
        log.info(
            "%s: polled %d external records in %.2fs: %d changed, %d gone, %d created "
            "in source, %d unknown ignored, %d missing but found, %d deletes held by the guard",
            self.entity,
            report.listed,
            report.seconds,
            report.published,
            report.deleted,
            report.created_in_source,
            report.unknown_ignored,
            report.still_there,
            report.delete_blocked,
        )
        return report

    async def _pass(self, report: PollReport) -> dict[str, Any]:
        """List and publish; what was published: external id -> version (or ``_GONE``)."""
        published: dict[str, Any] = {}
        known_before = dict(self.refs.items())  # ids created during the pass are not "gone"
        listed: set[str] = set()
        async for record in self.applier.sink.list():
            report.listed += 1
            listed.add(record.id)
            version = self.applier.version_of(record)
            if record.id in self.last_seen and self.last_seen[record.id] == version:
                continue
            if record.id in self.unknown and self.unknown[record.id] == version:
                continue
            key = self.refs.get(record.id)
            if key is None:
                # Not kept in the table: the refs of a worker just started may still be
                # recovering, and a linked record taken for unknown would never be published.
                await self._unknown(record, report)
                if self.applier.config.policies.unknown_target == "create":
                    self.unknown[record.id] = version  # one insert try per version
                continue
            await self._publish(
                key,
                ExternalChange(
                    change="upsert",
                    external_id=record.id,
                    version=version,
                    fields=dict(record.fields),
                    observed_ms=int(time.time() * 1000),
                ),
            )
            published[record.id] = version
            report.published += 1
        missing = {
            external_id: key
            for external_id, key in known_before.items()
            if external_id not in listed and external_id not in self.reported_gone
        }
        if missing:
            await self._missing(missing, len(known_before), report)
            published.update(dict.fromkeys(self.reported_gone & set(missing), _GONE))
        self.reported_gone &= set(known_before)
        return published

    async def _missing(self, missing: dict[str, str], linked: int, report: PollReport) -> None:
        """Report objects missing from the listing as deleted, each confirmed by a direct
        read; a pass missing too many of them deletes nothing (``guards``)."""
        guards = self.applier.config.guards
        if not deletes_allowed(len(missing), linked, guards):
            report.delete_blocked = len(missing)
            message = (
                f"{len(missing)} of {linked} linked objects are missing from one listing "
                f"(more than {guards.delete_max_ratio:.0%}): nothing was deleted. Check the "
                "API's listing (paging settings, filters, permissions); raise "
                "guards.delete_max_ratio if such deletes are expected"
            )
            log.error("%s: %s", self.entity, message)
            metrics.observe_guard(self.entity, "mass_delete")
            if not self.blocked and self.notify is not None:
                await self.notify(None, "error", message)
            self.blocked = True
            return
        self.blocked = False
        confirm = self.applier.config.policies.target_delete != "ignore"
        for external_id, key in missing.items():
            if confirm and not await self._gone(external_id, report):
                continue
            change = ExternalChange(change="delete", external_id=external_id,
                                    observed_ms=int(time.time() * 1000))  # fmt: skip
            await self._publish(key, change)
            self.reported_gone.add(external_id)
            report.deleted += 1

    async def _gone(self, external_id: str, report: PollReport) -> bool:
        """A direct read answers 404 (``None``): the object is really gone."""
        try:
            found = await self.applier.sink.get(external_id)
        except SinkError as exc:  # unknown: the next pass reads it again
            log.warning("%s: could not read missing %s: %s", self.entity, external_id, exc)
            return False
        if found is not None:
            report.still_there += 1
            return False
        return True

    async def _unknown(self, record: ExternalRecord, report: PollReport) -> None:
        """An external object no entity is linked to: create its row, or ignore it."""
        writer = self.applier.writer
        if self.applier.config.policies.unknown_target != "create" or writer is None:
            report.unknown_ignored += 1
            return
        # The row's Debezium event then finds this record by natural key.
        try:
            await writer.insert(self.applier.mapper.to_source(record.fields))
            report.created_in_source += 1
        except (SinkError, MappingError) as exc:
            # Typically the row exists already (natural key taken) and its own
            # events are about to link it; never let one record stop the poll.
            log.warning(
                "%s: external %s not created in the source: %s", self.entity, record.id, exc
            )
            report.not_created += 1

    async def _publish(self, key: str, change: ExternalChange) -> None:
        await send(self.topic, key=key.encode(), value=change.model_dump_json().encode())
