"""Carry out a decision against the external API and the source table: the I/O half."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from cdcsync.agents.change import Decision, Outcome, OutcomeAction
from cdcsync.agents.decide import conflict_winner
from cdcsync.errors import ConfigurationError, SinkConflictError, SinkPermanentError
from cdcsync.mappers.base import Mapper
from cdcsync.mappers.fieldmap import payload_hash
from cdcsync.schemas.config import EntityConfig
from cdcsync.schemas.values import debezium_row
from cdcsync.sinks.base import WRITTEN_MS, ExternalRecord, Sink, SourceWriter

__all__ = ["Applier"]


def _same(record: ExternalRecord, payload: Mapping[str, Any]) -> bool:
    return all(record.fields.get(k) == v for k, v in payload.items())


class Applier:
    """Applies decisions for one entity; long-lived, shared by concurrent operations."""

    def __init__(
        self, *, config: EntityConfig, mapper: Mapper, sink: Sink, writer: SourceWriter | None
    ) -> None:
        self.config = config
        self.mapper = mapper
        self.sink = sink
        self.writer = writer

    def version_of(self, record: ExternalRecord) -> str | None:
        """The change signal of an external record: its ``rowId``, or its mapped-fields hash."""
        if self.config.poll.version == "row_id":
            return record.row_id
        return payload_hash({f: record.fields.get(f) for f in sorted(self.mapper.fields)})

    def _expect(self, version: str | None) -> str | None:
        # Only a real rowId can be sent as If-Match; a fields hash is ours alone.
        return version if self.config.poll.version == "row_id" else None

    async def apply(
        self, decision: Decision, *, entity_id: str, source_row: Mapping[str, Any] | None
    ) -> Outcome:
        """Apply ``decision``; SinkError subclasses propagate to be retried or dead-lettered."""
        d, row = decision, source_row
        match d.action:
            case "skip":
                return Outcome("skip", d.reason, d.external_id, version=d.version)
            case "create":
                return await self._create(d)
            case "update":
                return await self._update(d, entity_id, row)
            case "verify":
                return await self._verify(d, entity_id)
            case "delete":
                return await self._delete(d)
            case "mark_target":
                return await self._mark_target(d)
            case "pull":
                return await self._pull(d, entity_id)
            case "pull_delete":
                return await self._pull_delete(d, entity_id)
            case "mark_source":
                return await self._mark_source(d, entity_id)
            case "push_current":
                return await self._push_current(d, entity_id)
            case "park":
                return await self._park(d, entity_id)
            case "hold":  # the agent parks a held entity; nothing is applied
                raise ValueError(f"a held decision is not applied: {d.reason}")

    # -- source changed ----------------------------------------------------------------

    async def _find(self, payload: Mapping[str, Any]) -> ExternalRecord | None:
        natural_key: Sequence[str] = self.config.natural_key
        if not natural_key:
            return None
        return await self.sink.find({k: payload.get(k) for k in natural_key})

    async def _create(self, d: Decision, reason: str | None = None) -> Outcome:
        payload = d.payload or {}
        found = await self._find(payload)
        if found is not None:
            if _same(found, payload):
                return self._pushed(
                    "update", "adopted existing object (natural key); already equal", found, payload
                )
            record = await self.sink.update(found.id, payload)
            return self._pushed(
                "update", "adopted existing object (natural key); updated", record, payload
            )
        record = await self.sink.create(payload)
        return self._pushed("create", reason or d.reason, record, payload)

    def _pushed(
        self, action: OutcomeAction, reason: str, record: ExternalRecord, payload: Mapping[str, Any]
    ) -> Outcome:
        """What a write of ``payload`` that the API answered with ``record`` leaves behind."""
        return Outcome(action, reason, record.id, record, self._written_version(record, payload),
                       payload_hash(payload))  # fmt: skip

    def _written_version(self, record: ExternalRecord, payload: Mapping[str, Any]) -> str | None:
        """The version our write left: never one the answer shows after a concurrent edit.

        An answer can show an edit made right after ours (the API read the object back
        late); taking its version for ours would make the poll skip that edit as our echo.
        A fields hash is taken of what we wrote; a ``rowId`` only from an answer holding
        what we wrote, else it is unknown and the next poll settles it.
        """
        if self.config.poll.version != "row_id":
            return payload_hash({f: payload.get(f) for f in sorted(self.mapper.fields)})
        return record.row_id if _same(record, payload) else None

    async def _update(self, d: Decision, entity_id: str, row: Mapping[str, Any] | None) -> Outcome:
        assert d.external_id is not None
        payload = d.payload or {}
        try:
            record = await self.sink.update(
                d.external_id, payload, expected_row_id=self._expect(d.expected_version)
            )
        except SinkConflictError:
            return await self._resolve(d, entity_id, row)
        except SinkPermanentError as exc:
            if exc.status_code != 404:
                raise
            return await self._create(d, reason="external object was gone; re-created")
        return self._pushed("update", d.reason, record, payload)

    async def _resolve(self, d: Decision, entity_id: str, row: Mapping[str, Any] | None) -> Outcome:
        """Both sides changed: the push met a newer external version. Apply the policy."""
        assert d.external_id is not None
        policy = self.config.policies.conflict
        current = await self.sink.get(d.external_id)
        if current is None:
            return await self._create(d, reason="external object was gone; re-created")
        if _same(current, d.payload or {}):
            # Our own write, landed before a crash kept its state: adopt it, no conflict.
            why = "the external object already holds this payload (our write); version adopted"
            return self._pushed("update", why, current, d.payload or {})
        winner = conflict_winner(self.config.policies, row, current.fields)
        if winner == "source":
            record = await self.sink.update(d.external_id, d.payload or {})
            pushed = self._pushed(
                "update", f"conflict ({policy}): source wins", record, d.payload or {}
            )
            return replace(pushed, superseded=self.version_of(current))
        if winner == "target":
            return await self._pull_record(entity_id, current, f"conflict ({policy}): target wins")
        return Outcome(
            "park",
            "conflict: both sides changed; policy manual",
            d.external_id,
            current,
            conflict={
                "source": d.payload,
                "target": dict(current.fields),
                "target_version": self.version_of(current),
            },
        )

    async def _verify(self, d: Decision, entity_id: str) -> Outcome:
        """Repair a drifted external copy from the row as it is now (not as it was then)."""
        assert d.external_id is not None
        current = await self._fetch(entity_id) if self.writer else None
        payload = self.mapper.to_external(current) if current else (d.payload or {})
        digest = payload_hash(payload)
        record = await self.sink.get(d.external_id)
        if record is None:
            return await self._create(
                replace(d, payload=payload, payload_hash=digest),
                reason="re-check: external copy was missing; re-created",
            )
        if _same(record, payload):
            return Outcome(
                "skip",
                "re-check: external copy matches",
                record.id,
                record,
                self.version_of(record),
                digest,
            )
        updated = await self.sink.update(d.external_id, payload)
        return self._pushed(
            "update", "re-check: external copy differed; repaired", updated, payload
        )

    async def _delete(self, d: Decision) -> Outcome:
        external_id = d.external_id
        if external_id is None:
            found = await self._find(d.payload or {})
            if found is None:
                return Outcome("skip", "row deleted; no external object to delete", None)
            external_id = found.id
        gone = await self.sink.delete(external_id)
        return Outcome(
            "delete", d.reason if gone else "external object was already gone", external_id
        )

    async def _mark_target(self, d: Decision) -> Outcome:
        assert d.external_id is not None
        current = await self.sink.get(d.external_id)
        if current is None:
            return Outcome("skip", "row deleted; external object already gone", None)
        # A PUT replaces the object: send its fields with the mark set.
        record = await self.sink.update(d.external_id, {**current.fields, **(d.payload or {})})
        return Outcome("mark_target", d.reason, record.id, record, self.version_of(record))

    # -- external changed --------------------------------------------------------------

    async def _fetch(self, entity_id: str) -> dict[str, Any] | None:
        """The current source row, in Debezium's value forms (so it maps and hashes alike)."""
        row = await self._need_writer().fetch(entity_id)
        return debezium_row(row) if row is not None else None

    def _need_writer(self) -> SourceWriter:
        if self.writer is None:
            raise ConfigurationError(
                "pulling external changes needs source: {table: ...} in the entity's configuration"
            )
        return self.writer

    async def _pull(self, d: Decision, entity_id: str) -> Outcome:
        assert d.external_id is not None
        # Poll records are snapshots: read the object as it is now, so a record that
        # an own write (or a later edit) already replaced is never pulled back.
        latest = await self.sink.get(d.external_id)
        if latest is None:
            return Outcome(
                "skip", "external object is gone; the poll reports the delete", d.external_id
            )
        version = self.version_of(latest)
        if version is not None and version in d.known_versions:
            return Outcome(
                "skip", "stale: the external object is at a version already synced", d.external_id
            )
        d = replace(d, fields=dict(latest.fields), version=version)
        if d.payload_hash is not None:
            current = await self._fetch(entity_id)
            if current is None:
                return Outcome("skip", "source row is gone; the delete will follow", d.external_id)
            changed = payload_hash(self.mapper.to_external(current)) != d.payload_hash
            if changed and not await self._need_writer().holds_pull(entity_id):
                # The row changed too and its event is still on its way: both sides changed.
                # (A row as our last pull left it is no change: that pull's state was lost.)
                return await self._settle(d, entity_id, current, "conflict")
        else:
            current = None
        record = ExternalRecord(latest.id, version, d.fields or {})
        return await self._pull_record(
            entity_id, record, d.reason, version=version, current=current
        )

    async def _pull_record(
        self,
        entity_id: str,
        record: ExternalRecord,
        reason: str,
        *,
        version: str | None = None,
        current: Mapping[str, Any] | None = None,
    ) -> Outcome:
        # ``current`` lets the write modes (if_empty, append) see the row they write into.
        pulled = self.mapper.to_source(record.fields, current=current)
        # The key column names the row: a pull never rewrites it (mapping direction `both`).
        values = {c: v for c, v in pulled.items() if c != self.config.key}
        written = await self._need_writer().pull(entity_id, values)
        if written is None:
            return Outcome("skip", "source row is gone; nothing to pull into", record.id)
        written_ms = written.pop(WRITTEN_MS, None)
        # The row as now stored, mapped: its Debezium echo will hash the same and be skipped.
        digest = payload_hash(self.mapper.to_external(debezium_row(written)))
        return Outcome("pull", reason, record.id, record, version or self.version_of(record),
                       digest, written_ms=written_ms)  # fmt: skip

    async def _pull_delete(self, d: Decision, entity_id: str) -> Outcome:
        gone = await self._need_writer().delete(entity_id)
        reason = d.reason if gone else "source row was already gone"
        return Outcome("pull_delete", reason, d.external_id)

    async def _mark_source(self, d: Decision, entity_id: str) -> Outcome:
        p = self.config.policies
        assert p.mark_column is not None
        await self._need_writer().update(entity_id, {p.mark_column: p.mark_value})
        return Outcome("mark_source", d.reason, d.external_id)

    async def _push_current(self, d: Decision, entity_id: str) -> Outcome:
        current = await self._fetch(entity_id)
        if current is None:
            return Outcome("skip", "source row is gone; the delete will follow", d.external_id)
        return await self._settle(d, entity_id, current, "conflict")

    async def _settle(
        self, d: Decision, entity_id: str, row: Mapping[str, Any], why: str
    ) -> Outcome:
        """An external change met an unsynced source change: the conflict policy decides."""
        assert d.external_id is not None
        p = self.config.policies
        winner = conflict_winner(p, row, d.fields)
        if winner == "target":
            record = ExternalRecord(d.external_id, d.version, d.fields or {})
            return await self._pull_record(
                entity_id, record, f"{why} ({p.conflict}): target wins", version=d.version
            )
        payload = self.mapper.to_external(row)
        if winner == "manual":
            return Outcome(
                "park",
                f"{why}: both sides changed; policy manual",
                d.external_id,
                conflict={"source": payload, "target": d.fields, "target_version": d.version},
            )
        record = await self.sink.update(d.external_id, payload)
        pushed = self._pushed("update", f"{why} ({p.conflict}): source wins", record, payload)
        return replace(pushed, superseded=d.version)

    async def resolve(self, entity_id: str, external_id: str, take: str) -> Outcome:
        """Settle a parked conflict: push the current row, or pull the external object."""
        if take == "target":
            record = await self.sink.get(external_id)
            if record is None:
                return Outcome("skip", "resolve: the external object is gone", external_id)
            return await self._pull_record(entity_id, record, "conflict resolved: target taken")
        current = await self._fetch(entity_id)
        if current is None:
            return Outcome("skip", "resolve: the source row is gone", external_id)
        payload = self.mapper.to_external(current)
        record = await self.sink.update(external_id, payload)
        return self._pushed("update", "conflict resolved: source taken", record, payload)

    async def _park(self, d: Decision, entity_id: str) -> Outcome:
        current_row = await self._fetch(entity_id) if self.writer else None
        source = self.mapper.to_external(current_row) if current_row else None
        return Outcome(
            "park",
            d.reason,
            d.external_id,
            conflict={"source": source, "target": d.fields, "target_version": d.version},
        )
