"""Where the page's actions send their records and what it reads besides the local tables.

:func:`worker_sources` is the worker's: control records (retry, cancel,
resolve) and "sync now" rows go into the entity topic through Faust's
producer, keyed byte for byte like Debezium's key, so the owning worker
applies them in order with the entity's other changes (the records
``cdcsync parked retry`` and ``cdcsync trigger`` send). Redrives are
``operators.dlq.redrive``'s. Tests give their own :class:`PageSources`.
"""

from __future__ import annotations

import asyncio
import functools
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cdcsync.operators.common import TRIGGER_HEADER, OperatorError
from cdcsync.operators.dlq import Letter, RedriveReport, redrive
from cdcsync.operators.source import fetch_row_async, read_envelope, source_dsn, source_table
from cdcsync.schemas.config import Config
from cdcsync.schemas.envelope import Control, encode_key
from cdcsync.streams.pages.tails import LetterTail, Timeline, read_letters, read_timeline

__all__ = ["PageSources", "worker_sources"]


@dataclass
class PageSources:
    """The page's I/O: each a coroutine function, so tests can stand in for Kafka and the DB."""

    #: Send one control record to the entity's topic.
    send_control: Callable[[str, str, Control], Awaitable[None]]
    #: Publish the entity's current source row (a trigger); returns where it went.
    sync_now: Callable[[str, str], Awaitable[str]]
    #: The recent dead letters (cached tail of the dead-letter topic).
    dead_letters: Callable[[], Awaitable[list[Letter]]]
    #: Re-publish dead letters to where they came from.
    redrive: Callable[[list[Letter]], Awaitable[RedriveReport]]
    #: One entity's recent results, dead letters, conflicts and operator actions.
    timeline: Callable[[str, str], Awaitable[Timeline]]
    #: Called after a redrive, so the next list reads the tail again.
    forget_letters: Callable[[], None] = lambda: None


def worker_sources(config: Config, entity_topics: dict[str, Any]) -> PageSources:
    """The worker's sources: Faust's producer for records, Kafka tails read in threads."""
    tail = LetterTail(functools.partial(read_letters, config))
    reads = asyncio.Semaphore(2)  # Kafka tail reads at a time, whatever the request rate

    async def send_control(entity: str, entity_id: str, control: Control) -> None:
        cfg = config.entities[entity]
        key = encode_key(cfg.key, entity_id, key_type=cfg.key_type)
        sent = await entity_topics[entity].send(key=key, value=control.model_dump_json().encode())
        await sent

    async def sync_now(entity: str, entity_id: str) -> str:
        cfg = config.entities[entity]
        schema, table = source_table(config, entity)
        row = await fetch_row_async(source_dsn(config), schema, table, cfg.key, entity_id)
        if row is None:
            raise OperatorError(f"no row in {schema}.{table} with {cfg.key} = {entity_id}")
        value = read_envelope(row, schema=schema, table=table, origin="trigger")
        sent = await entity_topics[entity].send(
            key=encode_key(cfg.key, entity_id, key_type=cfg.key_type),
            value=json.dumps(value, separators=(",", ":")).encode(),
            headers=[(TRIGGER_HEADER, b"web")],
        )
        meta = await sent
        return f"{cfg.topic}[{meta.partition}]@{meta.offset}"

    async def redrive_letters(letters: list[Letter]) -> RedriveReport:
        return await asyncio.to_thread(redrive, config, letters)

    async def timeline(entity: str, entity_id: str) -> Timeline:
        async with reads:
            return await asyncio.to_thread(read_timeline, config, entity, entity_id)

    return PageSources(
        send_control=send_control,
        sync_now=sync_now,
        dead_letters=tail.letters,
        redrive=redrive_letters,
        timeline=timeline,
        forget_letters=tail.forget,
    )
