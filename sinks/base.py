"""The contract between the sync agent and an external system.

A sink is one configured target (one provider with its settings). The agent
calls only these methods; every provider module beside this one implements
them and translates its library's failures into ``SinkTransientError`` or
``SinkPermanentError`` at the boundary.
"""

from __future__ import annotations

import abc
import contextlib
import contextvars
import hashlib
import json
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeAlias

if TYPE_CHECKING:
    from cdcsync.errors import SinkError

__all__ = [
    "WRITTEN_MS",
    "BulkOutcome",
    "BulkWrite",
    "CallCounter",
    "ExternalRecord",
    "Sink",
    "as_query_text",
    "call_counter",
    "check_link_template",
    "count_call",
    "counting",
]


@dataclass(frozen=True, slots=True)
class ExternalRecord:
    """One object in the external system as last read or written."""

    id: str
    row_id: str | None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class BulkWrite:
    """One write of a :meth:`Sink.bulk` call: what ``create``, ``update`` or ``delete`` take."""

    kind: Literal["create", "update", "delete"]
    external_id: str | None = None
    payload: Mapping[str, Any] | None = None
    expected_row_id: str | None = None


#: One write's outcome in a bulk call: the record written (create, update), whether it
#: was there (delete), or the error that write alone met.
BulkOutcome: TypeAlias = "ExternalRecord | bool | SinkError"


@dataclass(slots=True)
class CallCounter:
    """Counts the external API calls made while it is the current counter."""

    calls: int = 0
    #: The entity whose operation is counted, for per-entity API latency metrics.
    entity: str | None = None
    #: The entity id, for the audit trail of outgoing calls.
    entity_id: str | None = None
    #: Where the change being applied was read (``topic/partition/offset``): the same on
    #: every retry of it, so its :attr:`idempotency_key` is too.
    change: str | None = None

    @property
    def idempotency_key(self) -> str | None:
        """A key naming the change being applied, for APIs that take one on creates."""
        if self.change is None:
            return None
        named = f"{self.entity}/{self.change}".encode()
        return "cdcsync-" + hashlib.sha256(named).hexdigest()[:32]


call_counter: contextvars.ContextVar[CallCounter | None] = contextvars.ContextVar(
    "cdcsync_call_counter", default=None
)


@contextlib.contextmanager
def counting(
    entity: str, entity_id: str | None = None, *, change: str | None = None
) -> Iterator[CallCounter]:
    """Count the external API calls made inside the block (for results, metrics, audit)."""
    counter = CallCounter(entity=entity, entity_id=entity_id, change=change)
    token = call_counter.set(counter)
    try:
        yield counter
    finally:
        call_counter.reset(token)


def check_link_template(template: str | None, *placeholders: str) -> str | None:
    """``template`` if it uses only these ``{placeholders}``; else ``ValueError`` naming them."""
    try:
        template and template.format(**dict.fromkeys(placeholders, ""))
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError("may use " + ", ".join(f"{{{p}}}" for p in placeholders)) from exc
    return template


def as_query_text(value: Any) -> str:
    """A field's value as a query carries it: strings as is, other JSON values as JSON text
    (how lookups compare a natural key with what the API answered)."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def count_call() -> None:
    """Record one external API call against the current operation, if one is counting."""
    counter = call_counter.get()
    if counter is not None:
        counter.calls += 1


class Sink(abc.ABC):
    """One external target; instances are long-lived and shared by concurrent operations."""

    #: The external object type, for results ("contact", "case", ...).
    object_type: str

    @abc.abstractmethod
    async def get(self, external_id: str) -> ExternalRecord | None:
        """Fetch one object by its external id; ``None`` if it does not exist."""

    @abc.abstractmethod
    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        """Find the object whose fields equal ``natural_key``; ``None`` if there is none."""

    @abc.abstractmethod
    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        """Create an object and return it with its new id and ``rowId``."""

    @abc.abstractmethod
    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        """Replace the mapped fields of an object and return it with its new ``rowId``.

        With ``expected_row_id``, the write only succeeds if the object still has that
        version; otherwise ``SinkConflictError`` (the external side changed too).
        """

    async def patch(self, external_id: str, fields: Mapping[str, Any]) -> ExternalRecord:
        """Change some fields and keep the others (a parent's finalize step uses it).

        The default reads the object and writes it back merged, guarded by its
        version; providers whose API merges by itself (HTTP PATCH) override it.
        """
        from cdcsync.errors import SinkPermanentError

        current = await self.get(external_id)
        if current is None:
            raise SinkPermanentError(
                f"{self.object_type} {external_id} does not exist any more", status_code=404
            )
        merged = {**current.fields, **fields}
        return await self.update(external_id, merged, expected_row_id=current.row_id)

    @abc.abstractmethod
    async def delete(self, external_id: str, *, expected_row_id: str | None = None) -> bool:
        """Delete an object; ``False`` if it was already gone (deletes are idempotent)."""

    #: Most writes one :meth:`bulk` call takes; 0: the sink has no bulk form.
    bulk_max: int = 0

    async def bulk(self, writes: Sequence[BulkWrite]) -> Sequence[BulkOutcome]:
        """Several writes in one call, in order, each with its own :data:`BulkOutcome`.

        Raises a ``SinkError`` only when the call as a whole failed. Optional: sinks
        with ``bulk_max > 0`` implement it, and ``sinks.delivery.bulk.BatchingSink`` uses it.
        """
        raise NotImplementedError(f"{type(self).__name__} has no bulk form")

    #: Most values one :meth:`find_many` call looks up; 0: the sink has no such form.
    find_many_max: int = 0

    async def find_many(self, field: str, values: Sequence[Any]) -> Sequence[ExternalRecord] | None:
        """Every object whose ``field`` equals one of ``values``, in one call; ``None`` when
        the answer may not hold them all (the caller then finds them one by one).

        Optional: sinks with ``find_many_max > 0`` implement it, and
        ``sinks.delivery.bulk.BatchingSink`` uses it for the lookups of concurrent creates.
        """
        raise NotImplementedError(f"{type(self).__name__} has no find_many form")

    @abc.abstractmethod
    def list(self) -> AsyncIterator[ExternalRecord]:
        """Iterate over every object, following the API's pagination."""

    @abc.abstractmethod
    def link(self, external_id: str) -> str:
        """A URL a person can open to see the object."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook
        """Release connections; the default holds none."""


#: A key of the row ``SourceWriter.update`` returns, when the writer knows it: the
#: database's clock at the write (epoch ms). A Debezium record committed before it
#: shows the row as it was before the write (``agents.decide``: a stale echo).
WRITTEN_MS = "__cdcsync_written_ms"


class SourceWriter(Protocol):
    """The pull direction's write-back into the source table (see ``sinks.writeback``)."""

    async def fetch(self, entity_id: str) -> dict[str, Any] | None:
        """The current row, or ``None`` when it does not exist."""
        ...

    async def update(self, entity_id: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """Write mapped columns; the row after the write (with ``WRITTEN_MS`` when known),
        ``None`` if the row is gone."""
        ...

    async def pull(self, entity_id: str, values: Mapping[str, Any]) -> dict[str, Any] | None:
        """``update`` for pulled values, remembering the row as written (the pull ledger)."""
        ...

    async def holds_pull(self, entity_id: str) -> bool:
        """Whether the row is as the last ``pull`` left it (then a crash lost its state)."""
        ...

    async def insert(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """Insert a row; the row as stored."""
        ...

    async def delete(self, entity_id: str) -> bool:
        """Delete the row; ``False`` when it was already gone."""
        ...

    async def write_status(self, entity_id: str, values: Mapping[str, Any]) -> None:
        """Write the sync-status columns; never fails the sync when the row is gone."""
        ...
