"""Calls of concurrent changes, gathered into one (the DataLoader pattern).

The agent handles the entities of a batch concurrently (one task per key, in
order per key). :class:`BatchingSink` holds the writes those tasks make within
a few milliseconds and sends them as one :meth:`Sink.bulk` call, and their
natural-key lookups (before creates) as one :meth:`Sink.find_many` call; each
task still awaits its own call and gets its own record or error, so results,
conflicts and retries stay per change. Other reads pass straight through.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from typing import Any

from cdcsync.errors import SinkError, SinkPermanentError
from cdcsync.sinks.base import (
    BulkWrite,
    CallCounter,
    ExternalRecord,
    Sink,
    as_query_text,
    call_counter,
)

__all__ = ["DEFAULT_LINGER_S", "BatchingSink"]

#: How long the first write of a bulk call waits for others to join it.
DEFAULT_LINGER_S = 0.005

_Pending = tuple[BulkWrite, "asyncio.Future[Any]", CallCounter | None]
_Batch = list[_Pending]  # named here: inside the class, `list` is Sink.list
#: A lookup waiting to be sent: the natural key's value, its future and its counter.
_Lookup = tuple[Any, "asyncio.Future[Any]", CallCounter | None]
_Lookups = list[_Lookup]
_Outcomes = list[Any]


class _Gather:
    """Items that arrive within ``linger_s`` (or ``most`` of them), handed to ``send``."""

    def __init__(
        self,
        send: Callable[[list[Any]], Coroutine[Any, Any, None]],
        most: int,
        linger_s: float,
        sending: set[asyncio.Task[None]],
    ) -> None:
        self._send, self._most, self._linger_s, self._sending = send, most, linger_s, sending
        self._pending: list[Any] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, item: Any) -> None:
        self._pending.append(item)
        if len(self._pending) >= self._most:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._linger_s, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)
            task.add_done_callback(functools.partial(_fail_unsettled, batch))


class BatchingSink(Sink):
    """``inner``'s writes, sent ``inner.bulk_max`` at a time through ``inner.bulk``, and its
    single-field natural-key lookups, ``inner.find_many_max`` at a time through
    ``inner.find_many``; what ``inner`` has no form for goes straight through."""

    def __init__(self, inner: Sink, *, linger_s: float = DEFAULT_LINGER_S) -> None:
        if inner.bulk_max < 1 and inner.find_many_max < 1:
            raise ValueError(f"{inner!r} has neither a bulk nor a find_many form")
        self.inner = inner
        self.object_type = inner.object_type
        self.bulk_max = inner.bulk_max
        self.find_many_max = inner.find_many_max
        self._sending: set[asyncio.Task[None]] = set()
        self._writes = _Gather(self._send, max(self.bulk_max, 1), linger_s, self._sending)
        #: Lookups by the field they look up.
        self._lookups: dict[str, _Gather] = {}
        self._linger_s = linger_s

    def __repr__(self) -> str:
        return (f"BatchingSink({self.inner!r}, up to {self.bulk_max} writes and "
                f"{self.find_many_max} lookups a call)")  # fmt: skip

    # -- writes: gathered ------------------------------------------------------------

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        if self.bulk_max < 1:
            return await self.inner.create(payload)
        record: ExternalRecord = await self._submit(BulkWrite("create", payload=payload))
        return record

    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        if self.bulk_max < 1:
            return await self.inner.update(external_id, payload, expected_row_id=expected_row_id)
        write = BulkWrite("update", external_id, payload, expected_row_id)
        record: ExternalRecord = await self._submit(write)
        return record

    async def delete(self, external_id: str, *, expected_row_id: str | None = None) -> bool:
        if self.bulk_max < 1:
            return await self.inner.delete(external_id, expected_row_id=expected_row_id)
        existed: bool = await self._submit(BulkWrite("delete", external_id, None, expected_row_id))
        return existed

    # -- lookups: gathered by field --------------------------------------------------

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        if self.find_many_max < 1 or len(natural_key) != 1:
            return await self.inner.find(natural_key)
        ((field, value),) = natural_key.items()
        if value is None or isinstance(value, dict | list | tuple):
            return await self.inner.find(natural_key)  # its own error or answer
        gather = self._lookups.get(field)
        if gather is None:
            send = functools.partial(self._send_lookups, field)
            gather = self._lookups[field] = _Gather(
                send, self.find_many_max, self._linger_s, self._sending
            )
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        gather.add((value, future, call_counter.get()))
        found: ExternalRecord | None = await future
        return found

    # -- reads and the rest: straight through ------------------------------------------

    async def get(self, external_id: str) -> ExternalRecord | None:
        return await self.inner.get(external_id)

    async def patch(self, external_id: str, fields: Mapping[str, Any]) -> ExternalRecord:
        return await self.inner.patch(external_id, fields)

    def list(self) -> AsyncIterator[ExternalRecord]:
        return self.inner.list()

    def link(self, external_id: str) -> str:
        return self.inner.link(external_id)

    async def aclose(self) -> None:
        self._writes.flush()
        for gather in self._lookups.values():
            gather.flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await self.inner.aclose()

    # -- gathering ---------------------------------------------------------------------

    async def _submit(self, write: BulkWrite) -> Any:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._writes.add((write, future, call_counter.get()))
        return await future

    async def _send(self, batch: _Batch) -> None:
        sent = _counting(batch)
        try:
            if len(batch) == 1:  # nothing to gather: the plain call, as without batching
                outcomes: Sequence[Any] = [await self._one(batch[0][0])]
            else:
                outcomes = await self.inner.bulk([write for write, _, _ in batch])
                if len(outcomes) != len(batch):
                    raise SinkPermanentError(
                        f"{self.object_type} API: a bulk call of {len(batch)} writes answered "
                        f"{len(outcomes)} results; check the provider's bulk form"
                    )
        except Exception as exc:  # the call as a whole failed: so did each of its writes
            outcomes = [_copy(exc) for _ in batch]
        _settle(batch, outcomes, sent)

    async def _send_lookups(self, field: str, batch: _Lookups) -> None:
        values = list(dict.fromkeys(as_query_text(value) for value, _, _ in batch))
        if len(values) == 1:  # nothing to gather: the plain lookup
            sent = _counting(batch)
            try:
                found = await self.inner.find({field: batch[0][0]})
            except Exception as exc:
                _settle(batch, [_copy(exc) for _ in batch], sent)
                return
            _settle(batch, [found] * len(batch), sent)
            return
        sent = _counting(batch)
        try:
            records = await self.inner.find_many(field, [value for value, _, _ in batch])
        except Exception as exc:  # the call failed: so did each of its lookups
            _settle(batch, [_copy(exc) for _ in batch], sent)
            return
        if records is None:  # the answer may not hold them all: one by one, as without it
            _settle(batch, [None] * len(batch), sent, count_only=True)
            await asyncio.gather(*(self._find_alone(field, item) for item in batch))
            return
        by_value: dict[str, list[ExternalRecord]] = {}
        for record in records:
            by_value.setdefault(as_query_text(record.fields.get(field)), []).append(record)
        outcomes: _Outcomes = []
        for value, _, _ in batch:
            matching = by_value.get(as_query_text(value), [])
            outcomes.append(matching[0] if len(matching) == 1 else None if not matching else
                            self._not_unique(field, value))  # fmt: skip
        _settle(batch, outcomes, sent)

    async def _find_alone(self, field: str, item: _Lookup) -> None:
        value, future, counter = item
        call_counter.set(counter)  # this task's own context: its calls count for its change
        try:
            found = await self.inner.find({field: value})
        except Exception as exc:
            if not future.done():
                future.set_exception(exc)
            return
        if not future.done():
            future.set_result(found)

    def _not_unique(self, field: str, value: Any) -> SinkPermanentError:
        return SinkPermanentError(
            f"{self.object_type} API: found several {self.object_type} objects with {field} "
            f"{value!r}: the natural key [{field!r}] is not unique; deduplicate them "
            "externally or choose another key"
        )

    async def _one(self, write: BulkWrite) -> Any:
        try:
            if write.kind == "create":
                return await self.inner.create(write.payload or {})
            assert write.external_id is not None
            if write.kind == "update":
                return await self.inner.update(
                    write.external_id, write.payload or {}, expected_row_id=write.expected_row_id
                )
            return await self.inner.delete(write.external_id, expected_row_id=write.expected_row_id)
        except SinkError as exc:
            return exc


def _fail_unsettled(batch: list[Any], task: asyncio.Task[None]) -> None:
    """A send that ended without settling every item (a bug, a cancellation) fails them:
    no caller waits forever."""
    error = None if task.cancelled() else task.exception()
    for item in batch:
        future: asyncio.Future[Any] = item[1]
        if not future.done():
            future.set_exception(
                RuntimeError(f"a gathered call ended without an answer for this item: {error!r}")
            )


def _counting(batch: Sequence[tuple[Any, Any, CallCounter | None]]) -> CallCounter:
    """The counter of a gathered call, set for this task: its calls are then counted in the
    operation of each item it carried (as one call each)."""
    first = batch[0][2]
    sent = CallCounter(
        entity=first.entity if first else None,
        entity_id=first.entity_id if first and len(batch) == 1 else None,
        # A key names one change: only a call made for one item carries it.
        change=first.change if first and len(batch) == 1 else None,
    )
    call_counter.set(sent)
    return sent


def _settle(
    batch: Sequence[tuple[Any, asyncio.Future[Any], CallCounter | None]],
    outcomes: Sequence[Any],
    sent: CallCounter,
    *,
    count_only: bool = False,
) -> None:
    """Count the call in each item's operation and hand each its outcome (an exception is
    raised in its task); ``count_only``: only count, the outcomes come later."""
    for (_, future, counter), outcome in zip(batch, outcomes, strict=True):
        if counter is not None:
            counter.calls += sent.calls
        if count_only or future.done():  # its task was cancelled
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)


def _copy(exc: BaseException) -> BaseException:
    """One exception per waiting write (an instance raised in several tasks mixes tracebacks)."""
    if isinstance(exc, SinkError):
        copy = type(exc)(str(exc), status_code=exc.status_code, retry_after=exc.retry_after)
        copy.__cause__ = exc.__cause__
        return copy
    return exc
