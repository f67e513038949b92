"""Delivery of what a step produced, confirmed before its records count as done.

``topic.send`` hands a record to the producer and returns the future of its
delivery. The pipeline (``agents.pipeline``) acks a key's records once its step
returns, and the consumer commits acked offsets; so results, dead letters, audit
records and the state tables' changelog records must be delivered before
:meth:`Deliveries.confirm` returns. Sends made while a step runs are tracked
through a context variable; a failed delivery is sent again, and if it still
fails the step raises :class:`~cdcsync.errors.DeliveryError` and its records
are never acked.

Faust's own flush before a commit does not make sure of the changelog: it stops
waiting for its send buffer after 0.1 s without progress. A state write still in
that buffer when the offset commits is lost to a kill -9, and a worker that takes
the partition over recovers the state from before it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from dataclasses import dataclass
from typing import Any

from cdcsync.errors import DeliveryError

__all__ = ["Deliveries", "current", "send", "track"]

log = logging.getLogger(__name__)

#: Sends a failed delivery is tried again, and the pause between tries.
RESENDS = 3
RESEND_PAUSE_S = 0.5


@dataclass(frozen=True, slots=True)
class _Sent:
    topic: Any  # faust.TopicT
    key: bytes | None
    value: bytes
    future: asyncio.Future[Any]


class Deliveries:
    """The deliveries one step (the records of one key) waits for."""

    def __init__(self, *, resends: int = RESENDS, pause_s: float = RESEND_PAUSE_S) -> None:
        self.resends = resends
        self.pause_s = pause_s
        self._sent: list[_Sent] = []
        self._tracked: list[asyncio.Future[Any]] = []

    def add(self, topic: Any, key: bytes | None, value: bytes, future: Any) -> None:
        """Track the delivery of one record sent to ``topic`` (``future``: what send returned)."""
        if isinstance(future, asyncio.Future):
            self._sent.append(_Sent(topic, key, value, future))

    def add_changelog(self, future: Any) -> None:
        """Track the delivery of a table's changelog record (Faust sends it; not resent)."""
        if isinstance(future, asyncio.Future):
            self._tracked.append(future)

    async def confirm(self) -> None:
        """Wait for every delivery together; resend the failed ones; DeliveryError if one
        still fails."""
        sent, self._sent = self._sent, []
        tracked, self._tracked = self._tracked, []
        futures = [*(s.future for s in sent), *tracked]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        lost = [o for o in outcomes[len(sent) :] if isinstance(o, BaseException)]
        if lost:
            # The table's partition and codec are Faust's: the records are processed again
            # instead, and write their state again.
            raise DeliveryError(
                f"a state table's changelog record was not delivered: {lost[0]!r}; the "
                "records that wrote it are not acked, so their offsets are not committed"
            ) from lost[0]
        failed = [s for s, o in zip(sent, outcomes[: len(sent)], strict=True)
                  if isinstance(o, BaseException)]  # fmt: skip
        for item in failed:
            await self._resend(item)

    async def _resend(self, item: _Sent) -> None:
        name = item.topic.get_topic_name() if hasattr(item.topic, "get_topic_name") else "?"
        error: BaseException | None = item.future.exception()
        for attempt in range(1, self.resends + 1):
            log.warning("delivery to %s failed (%r); sending again (%d/%d)",
                        name, error, attempt, self.resends)  # fmt: skip
            await asyncio.sleep(self.pause_s * (attempt - 1))
            try:
                await await_delivery(await item.topic.send(key=item.key, value=item.value))
                return
            except Exception as exc:
                error = exc
        raise DeliveryError(
            f"a record for {name} was not delivered after {self.resends} resends: {error!r}; "
            "the records that produced it are not acked, so their offsets are not committed"
        ) from error


async def await_delivery(future: Any) -> None:
    """Wait for a delivery future (a test topic's send may return none)."""
    if isinstance(future, asyncio.Future):
        await future


#: The deliveries of the step in progress in this task, if any.
current: contextvars.ContextVar[Deliveries | None] = contextvars.ContextVar(
    "cdcsync_deliveries", default=None
)


def track(future: Any) -> None:
    """Have the step in progress, if any, wait for a table's changelog record ``future``."""
    if (batch := current.get()) is not None:
        batch.add_changelog(future)


async def send(topic: Any, *, key: bytes | None, value: bytes) -> None:
    """``topic.send``, its delivery tracked by the step in progress (else not waited for)."""
    future = await topic.send(key=key, value=value)
    if (batch := current.get()) is not None:
        batch.add(topic, key, value, future)
