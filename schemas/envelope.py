"""Debezium's change-event envelope, and turning raw Kafka records into changes.

The sync agent consumes raw bytes and calls :func:`parse_change` itself, so a
record that fails here becomes a dead letter instead of being dropped by Faust.
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cdcsync.errors import SchemaError

__all__ = [
    "REPLAY_HEADER",
    "ChangeEvent",
    "Control",
    "Envelope",
    "ExternalChange",
    "Ignored",
    "Origin",
    "SourceInfo",
    "encode_key",
    "parse_change",
    "parse_key",
]

#: Header of records re-published by `cdcsync replay`: the agent re-checks the external copy.
REPLAY_HEADER = "cdcsync-replay"

#: Debezium op codes and what they mean to us.
OPS: dict[str, Literal["create", "update", "delete", "read"]] = {
    "c": "create",
    "u": "update",
    "d": "delete",
    "r": "read",  # snapshot read: treated like an upsert
}


#: ``source.snapshot`` values of reads that ask to re-check the external copy.
RECHECK_SNAPSHOTS = frozenset({"incremental", "trigger", "webhook"})


class SourceInfo(BaseModel):
    """The ``source`` block: where in PostgreSQL's log the change was read."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    table: str | None = None
    schema_: str | None = Field(default=None, alias="schema")
    snapshot: str | None = None
    lsn: int | None = None
    txId: int | None = None
    ts_ms: int | None = None


class Envelope(BaseModel):
    """A Debezium change event value (JsonConverter, schemas disabled)."""

    model_config = ConfigDict(extra="allow")

    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    op: str
    source: SourceInfo | None = None
    ts_ms: int | None = None


class ExternalChange(BaseModel):
    """An external record as the poller (or a webhook) saw it, published into the entity topic.

    Keyed like Debezium's key for the same entity, so both directions of one
    entity are ordered in one partition.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: Literal["external"] = "external"
    change: Literal["upsert", "delete"]
    external_id: str
    #: The ``rowId`` (or the hash of the mapped fields, for APIs without one).
    version: str | None = None
    fields: dict[str, Any] = {}
    observed_ms: int | None = None
    #: Who saw it: "poll", "webhook", "trigger".
    via: str = "poll"


#: Which side a change comes from: a row in PostgreSQL, or the external system.
Origin = Literal["source", "external"]


class ChangeEvent(BaseModel):
    """One change of one entity, validated and keyed by the entity id.

    ``origin`` says which side changed: a row in PostgreSQL (``source``, from
    Debezium) or an object in the external system (``external``).
    """

    model_config = ConfigDict(frozen=True)

    entity_id: str
    op: Literal["create", "update", "delete", "read"]
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    #: Commit time in PostgreSQL (``source.ts_ms``), for commit-to-write latency.
    committed_ms: int | None = None
    origin: Origin = "source"
    external: ExternalChange | None = None
    #: Re-check the external side even if the payload did not change: a resync snapshot, a
    #: trigger, a webhook or a replay asks to repair a copy that may have drifted.
    recheck: bool = False


class Control(BaseModel):
    """An internal command for one entity, sent through its topic to keep it in order.

    ``retry`` redrives the entity's parked events (when due, or now with ``force``);
    ``cancel`` dead-letters them; ``resolve`` settles a conflict parked under the
    ``manual`` policy; ``child`` tells a parent that one of its children was synced
    (or deleted), so it can finalize. Only ``resolve`` and ``child`` produce results.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    origin: Literal["control"] = "control"
    command: Literal["retry", "cancel", "resolve", "child"]
    #: For ``resolve``: which side's version wins a parked conflict.
    take: Literal["source", "target"] | None = None
    force: bool = False
    #: For ``child``: which child, and its external id (``None``: the child is gone).
    child_entity: str | None = None
    child_id: str | None = None
    child_external_id: str | None = None
    requested_ms: int | None = None
    by: str = "timer"


class Ignored(BaseModel):
    """A record that is not a change to sync, with the documented reason it is skipped."""

    model_config = ConfigDict(frozen=True)

    entity_id: str | None
    reason: str


def _loads(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SchemaError(f"{what} is not JSON: {exc}") from exc


def parse_key(raw: bytes | None, *, key_field: str) -> str:
    """Return the entity id from a Debezium key such as ``{"id": 42}``."""
    if raw is None:
        raise SchemaError("record has no key; Debezium keys every change by the primary key")
    key = _loads(raw, "key")
    if not isinstance(key, dict):
        raise SchemaError(f"key must be a JSON object like {{{key_field!r}: …}}, got {key!r:.80}")
    if key_field not in key or key[key_field] is None:
        raise SchemaError(f"key {key!r:.80} has no {key_field!r} field")
    value = key[key_field]
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise SchemaError(f"key field {key_field!r} must be a string or integer, got {value!r:.40}")
    return str(value)


def parse_change(
    key: bytes | None, value: bytes | None, *, key_field: str
) -> ChangeEvent | Ignored | Control:
    """Validate one raw record of an entity topic.

    Returns the change, or :class:`Ignored` for records that carry no change
    (tombstones after a delete). Raises :class:`SchemaError` with the reason
    for anything malformed.
    """
    if key is None and value is not None and b'"op":"t"' in value:
        raise SchemaError(
            "a TRUNCATE of the table (op 't'): not synced row by row; "
            "run `cdcsync reconcile ENTITY` to see what it left on the external side"
        )
    entity_id = parse_key(key, key_field=key_field)
    if value is None:
        return Ignored(entity_id=entity_id, reason="tombstone (follows the delete it belongs to)")
    data = _loads(value, "value")
    if not isinstance(data, dict):
        raise SchemaError(
            f"value must be a JSON object (a Debezium envelope), got {type(data).__name__}"
        )
    if data.get("origin") == "external":
        return _external(entity_id, data)
    if data.get("origin") == "control":
        try:
            return Control.model_validate(data)
        except ValidationError as exc:
            raise SchemaError(f"not a control record: {_first_error(exc)}") from exc
    try:
        envelope = Envelope.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"not a Debezium envelope: {_first_error(exc)}") from exc
    op = OPS.get(envelope.op)
    if op is None:
        raise SchemaError(
            f"unsupported op {envelope.op!r}; expected one of {sorted(OPS)} "
            "(truncates and messages are not synced row by row)"
        )
    row = envelope.before if op == "delete" else envelope.after
    if row is None:
        side = "before" if op == "delete" else "after"
        hint = " (set REPLICA IDENTITY FULL on the table)" if op == "delete" else ""
        raise SchemaError(f"op {envelope.op!r} without {side!r} row{hint}")
    if key_field in row and str(row[key_field]) != entity_id:
        raise SchemaError(
            f"key {key_field}={entity_id} does not match the row's {key_field}={row[key_field]!r}"
        )
    snapshot = envelope.source.snapshot if envelope.source else None
    return ChangeEvent(
        entity_id=entity_id,
        op=op,
        recheck=op == "read" and snapshot in RECHECK_SNAPSHOTS,
        before=envelope.before,
        after=envelope.after,
        committed_ms=envelope.source.ts_ms if envelope.source else envelope.ts_ms,
    )


def _external(entity_id: str, data: dict[str, Any]) -> ChangeEvent:
    try:
        ext = ExternalChange.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"not an external change event: {_first_error(exc)}") from exc
    return ChangeEvent(
        entity_id=entity_id,
        op="delete" if ext.change == "delete" else "update",
        before=None,
        after=None,
        committed_ms=ext.observed_ms,
        origin="external",
        external=ext,
    )


def encode_key(
    key_field: str, entity_id: str | int, *, key_type: Literal["integer", "text"] = "integer"
) -> bytes:
    """A key byte-identical to Debezium's (JsonConverter, no spaces), so partitions match.

    ``key_type`` is the entity's: an integer column's id is a JSON number (``"00123"``
    is refused, it names no integer row), a text column's id a string (``"123"`` stays
    text). The one encoder of every record cdcsync keys itself.
    """
    value: str | int
    if key_type == "text":
        value = str(entity_id)
    else:
        try:
            value = int(entity_id)
        except ValueError:
            raise SchemaError(
                f"{key_field}={entity_id!r} is not an integer id; if the key column is text, "
                "set key_type: text on the entity"
            ) from None
        if isinstance(entity_id, str) and str(value) != entity_id.strip():
            raise SchemaError(
                f"{key_field}={entity_id!r} is not an integer id as Debezium writes it "
                f"({value}); if the key column is text, set key_type: text on the entity"
            )
    return json.dumps({key_field: value}, separators=(",", ":")).encode()


def _first_error(exc: ValidationError) -> str:
    err = exc.errors()[0]
    where = ".".join(str(p) for p in err["loc"]) or "value"
    return f"{where}: {err['msg']}"
