"""The soak's load, in a thread: row changes into PostgreSQL at a steady rate, external edits
through the API, malformed records straight into the entity topic; in the workload's order.
"""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx
import psycopg
from kafka import KafkaProducer

from cdcsync.bench.broker import BenchKafka
from cdcsync.soak.setup import TABLE
from cdcsync.soak.workload import MALFORMED_VALUES, Step, email_of
from cdcsync.stack.settings import StackSettings

__all__ = ["Loader"]

CONTACTS = "/api/v1/contacts"


class Loader(threading.Thread):
    """Applies the steps at ``rate`` changes per second, up to ``per_commit`` row changes a
    transaction. What it did is kept: the last edit per two-way id that the API
    confirmed (``edits``), where the malformed records landed (``malformed``)."""

    def __init__(
        self, stack: StackSettings, kafka: BenchKafka, steps: list[Step], *, rate: float,
        api_url: str, topic: str, per_commit: int = 5,
    ) -> None:  # fmt: skip
        super().__init__(name="soak-load", daemon=True)
        self.stack, self.kafka, self.steps, self.rate, self.topic = stack, kafka, steps, rate, topic
        self.api = httpx.Client(base_url=api_url, timeout=30)
        self.per_commit = per_commit
        self.done = 0
        self.total = sum(1 for s in steps if s.op != "m")
        self.edits: dict[int, str] = {}
        self.deferred: dict[int, str] = {}  # edits of objects not in the API yet
        self.malformed: set[tuple[int, int]] = set()
        self.failures: list[str] = []
        self.error: BaseException | None = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        producer = self.kafka.producer(acks="all", retries=20, request_timeout_ms=30000)
        try:
            with psycopg.connect(self.stack.pg_dsn()) as conn:
                batch: list[Step] = []
                for n, step in enumerate(self.steps):
                    if step.op in "cud":
                        batch.append(step)
                        if len(batch) < self.per_commit:
                            continue
                    self._commit(conn, batch)
                    batch = []
                    self._pace(started, n)
                    if step.op == "x":
                        self._edit(step.id, step.notes)
                    elif step.op == "m":
                        self._malformed(producer, step.id, n)
                self._commit(conn, batch)
            deadline = time.monotonic() + 180
            while self.deferred and time.monotonic() < deadline:
                for entity_id, notes in list(self.deferred.items()):
                    self._edit(entity_id, notes)
                time.sleep(1)
            self.failures += [f"edit of id {i} never applied" for i in self.deferred]
        except BaseException as exc:  # reported by the run
            self.error = exc
        finally:
            producer.close(timeout=30)
            self.api.close()
            self.seconds = time.monotonic() - started

    def _pace(self, started: float, n: int) -> None:
        delay = started + self.done / self.rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)

    def _commit(self, conn: psycopg.Connection[Any], batch: list[Step]) -> None:
        if not batch:
            return
        with conn.transaction(), conn.cursor() as cur:
            for s in batch:  # in order: an id may be deleted and inserted in one batch
                if s.op == "c":
                    cur.execute(
                        f"INSERT INTO public.{TABLE} (id, first_name, last_name, email, phone, "
                        "notes) VALUES (%s, %s, %s, %s, %s, %s)",
                        (s.id, s.first_name, f"L{s.id}", email_of(s.id), s.phone, ""),
                    )
                elif s.op == "u":
                    cur.execute(
                        f"UPDATE public.{TABLE} SET first_name = %s, phone = %s, "
                        "updated_at = now() WHERE id = %s",
                        (s.first_name, s.phone, s.id),
                    )
                else:
                    cur.execute(f"DELETE FROM public.{TABLE} WHERE id = %s", (s.id,))
        self.done += len(batch)

    def _edit(self, entity_id: int, notes: str, *, within_s: float = 120.0) -> None:
        """Someone edits the two-way object's notes in the API, retrying through its faults
        (a 429's ``Retry-After`` honoured) for up to ``within_s``."""
        self.deferred.pop(entity_id, None)
        deadline = time.monotonic() + within_s
        last = "no attempt"
        while time.monotonic() < deadline:
            try:
                page = self.api.get(CONTACTS, params={"email": email_of(entity_id)})
                page.raise_for_status()
                items = page.json()["items"]
                if not items:
                    self.deferred[entity_id] = notes
                    break
                current = items[0]
                body = {k: v for k, v in current.items() if k not in ("id", "rowId")}
                put = self.api.put(f"{CONTACTS}/{current['id']}", json=body | {"notes": notes})
                put.raise_for_status()
                self.edits[entity_id] = notes
                break
            except httpx.HTTPStatusError as exc:
                answer = exc.response
                last = f"{exc.request.method} answered {answer.status_code}: {answer.text[:200]}"
                time.sleep(_retry_after(answer))
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                last = f"{type(exc).__name__}: {exc}"
                time.sleep(0.5)
        else:
            self.failures.append(f"edit of id {entity_id} failed for {within_s:.0f} s ({last})")
        self.done += entity_id not in self.deferred

    def _malformed(self, producer: KafkaProducer, entity_id: int, n: int) -> None:
        key = json.dumps({"id": entity_id}, separators=(",", ":")).encode()
        value = MALFORMED_VALUES[n % len(MALFORMED_VALUES)]
        try:
            meta = producer.send(self.topic, key=key, value=value).get(timeout=180)
        except Exception as exc:  # a broker restart outlasting the retries
            self.failures.append(f"malformed record for id {entity_id} not produced: {exc}")
            return
        self.malformed.add((meta.partition, meta.offset))


def _retry_after(answer: httpx.Response) -> float:
    """Seconds to wait before the next try: the answer's ``Retry-After``, else half a second."""
    try:
        return min(float(answer.headers.get("retry-after", "")), 10.0)
    except ValueError:
        return 0.5
