"""Writes of concurrent changes, gathered into bulk calls (the DataLoader pattern).

The agent handles the entities of a batch concurrently (one task per key, in
order per key). :class:`BatchingSink` holds the writes those tasks make within
a few milliseconds and sends them as one :meth:`Sink.bulk` call; each task
still awaits its own write and gets its own record or error, so results,
conflicts and retries stay per change. Reads pass straight through.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from cdcsync.errors import SinkError, SinkPermanentError
from cdcsync.sinks.base import BulkWrite, CallCounter, ExternalRecord, Sink, call_counter

__all__ = ["DEFAULT_LINGER_S", "BatchingSink"]

#: How long the first write of a bulk call waits for others to join it.
DEFAULT_LINGER_S = 0.005

_Pending = tuple[BulkWrite, "asyncio.Future[Any]", CallCounter | None]
_Batch = list[_Pending]  # named here: inside the class, `list` is Sink.list


class BatchingSink(Sink):
    """``inner``'s writes, sent ``inner.bulk_max`` at a time through ``inner.bulk``."""

    def __init__(self, inner: Sink, *, linger_s: float = DEFAULT_LINGER_S) -> None:
        if inner.bulk_max < 1:
            raise ValueError(f"{inner!r} has no bulk form")
        self.inner = inner
        self.object_type = inner.object_type
        self.bulk_max = inner.bulk_max
        self._linger_s = linger_s
        self._pending: _Batch = []
        self._timer: asyncio.TimerHandle | None = None
        self._sending: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"BatchingSink({self.inner!r}, up to {self.bulk_max} writes a call)"

    # -- writes: gathered ------------------------------------------------------------

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        record: ExternalRecord = await self._submit(BulkWrite("create", payload=payload))
        return record

    async def update(
        self, external_id: str, payload: Mapping[str, Any], *, expected_row_id: str | None = None
    ) -> ExternalRecord:
        write = BulkWrite("update", external_id, payload, expected_row_id)
        record: ExternalRecord = await self._submit(write)
        return record

    async def delete(self, external_id: str, *, expected_row_id: str | None = None) -> bool:
        existed: bool = await self._submit(BulkWrite("delete", external_id, None, expected_row_id))
        return existed

    # -- reads and the rest: straight through ------------------------------------------

    async def get(self, external_id: str) -> ExternalRecord | None:
        return await self.inner.get(external_id)

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        return await self.inner.find(natural_key)

    async def patch(self, external_id: str, fields: Mapping[str, Any]) -> ExternalRecord:
        return await self.inner.patch(external_id, fields)

    def list(self) -> AsyncIterator[ExternalRecord]:
        return self.inner.list()

    def link(self, external_id: str) -> str:
        return self.inner.link(external_id)

    async def aclose(self) -> None:
        self._flush()
        if self._sending:
            await asyncio.gather(*self._sending, return_exceptions=True)
        await self.inner.aclose()

    # -- gathering ---------------------------------------------------------------------

    async def _submit(self, write: BulkWrite) -> Any:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        self._pending.append((write, future, call_counter.get()))
        if len(self._pending) >= self.bulk_max:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger_s, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._send(batch))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _send(self, batch: _Batch) -> None:
        first = batch[0][2]
        # Counted here, then in the operation of each write it carried (as one call each).
        sent = CallCounter(
            entity=first.entity if first else None,
            entity_id=first.entity_id if first and len(batch) == 1 else None,
            # A key names one change: only a write sent alone carries it.
            change=first.change if first and len(batch) == 1 else None,
        )
        call_counter.set(sent)
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
        for (_, future, counter), outcome in zip(batch, outcomes, strict=True):
            if counter is not None:
                counter.calls += sent.calls
            if future.done():  # its task was cancelled
                continue
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
            else:
                future.set_result(outcome)

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


def _copy(exc: BaseException) -> BaseException:
    """One exception per waiting write (an instance raised in several tasks mixes tracebacks)."""
    if isinstance(exc, SinkError):
        copy = type(exc)(str(exc), status_code=exc.status_code, retry_after=exc.retry_after)
        copy.__cause__ = exc.__cause__
        return copy
    return exc
