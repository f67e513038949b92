"""Bad input on the real stack: every malformed record ends as one dead letter or a skip.

Records are produced straight into the entity topic, keyed byte-identically to Debezium,
so each lands on its entity's partition just before a good change of the same entity (a
row inserted with that id, captured by Debezium). Each case asserts the one dead letter
(reason, message) or the documented skip, and that the good change behind it is synced.
The module runs its own worker (app ``cdcsync-bad-…``, web port 6075), reference API (port
8906) and result topics.
"""

from __future__ import annotations

import base64
import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError, MessageSizeTooLargeError

from cdcsync.demo.harness import WorkerProcess
from cdcsync.refapi.server import RefApiThread, run_in_thread
from cdcsync.schemas.config import Config
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config

ROOT = Path(__file__).resolve().parents[2]
APP_ID = f"cdcsync-bad-{uuid.uuid4().hex[:8]}"
API_PORT = 8906
WEB_PORT = 6075
TOKEN = "bad-" + uuid.uuid4().hex
WAIT_S = 90.0
HEARTBEAT_TOPIC = "__debezium-heartbeat.cdcsync"  # heartbeat.topics.prefix + topic.prefix
SIGNAL_TOPIC = "cdcsync.debezium_signal"  # the signal table's own changes, routed
Event = dict[str, Any]


def key_of(entity_id: Any) -> bytes:
    """Debezium's key for a contact: JsonConverter without spaces."""
    return json.dumps({"id": entity_id}, separators=(",", ":")).encode()


def _row(n: int, tag: str, **fields: Any) -> dict[str, Any]:
    row = {"id": n, "first_name": "B", "last_name": "I", "phone": None}
    return row | {"email": f"bad{n}.{tag}@example.org"} | fields


def envelope(n: int, tag: str, *, op: str = "c", **overrides: Any) -> bytes:
    """A Debezium-shaped change of row ``n``; ``overrides`` replace top-level fields."""
    source = {"schema": "public", "table": "contact", "snapshot": "false", "ts_ms": 1}
    value = {"before": None, "after": _row(n, tag), "source": source, "op": op, "ts_ms": 1}
    return json.dumps(value | overrides).encode()


class Events:
    """Every result and dead letter of this module's worker, read from their topics."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self.consumer.assign([TopicPartition(t, p) for t in topics
                              for p in self.consumer.partitions_for_topic(t)])  # fmt: skip
        self.consumer.seek_to_beginning()  # the topics are this module's own
        self.seen: list[Event] = []

    def wait(self, done: Callable[[list[Event]], bool], *, timeout_s: float = WAIT_S) -> bool:
        """Read until ``done(seen)`` or the timeout; whether it got there."""
        deadline = time.monotonic() + timeout_s
        while not done(self.seen):
            if time.monotonic() > deadline:
                return False
            for records in self.consumer.poll(timeout_ms=200).values():
                self.seen += [json.loads(r.value) for r in records]
        return True

    def at(self, topic: str, partition: int, offset: int) -> list[Event]:
        """The results and dead letters of the record at topic[partition]@offset."""
        where = {"topic": topic, "partition": partition, "offset": offset}
        return [e for e in self.seen if e["source"] == where]

    def for_id(self, entity_id: int | str) -> list[Event]:
        """What happened to one entity's source changes (other sessions' pollers publish
        external changes of the same ids into the shared topic: those are left out)."""
        mine = (e for e in self.seen if e["entity_id"] == str(entity_id))
        return [e for e in mine if e.get("origin") != "external"]


@pytest.fixture(scope="module")
def bad_config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    data = yaml.safe_load((ROOT / "demo" / "cdcsync.yaml").read_text())
    home = tmp_path_factory.mktemp("bad")
    data["app"].update(
        id=APP_ID, web_port=WEB_PORT, auto_offset_reset="latest", datadir=str(home / "faust")
    )
    data["topics"].update({r: f"{APP_ID}.{r}" for r in ("results", "dead_letters", "conflicts")})
    contact = data["entities"]["contact"]
    contact.pop("poll", None)  # one direction: only what the records cause
    contact["policies"]["unknown_target"] = "ignore"
    contact["target"]["settings"].update(
        base_url=f"http://127.0.0.1:{API_PORT}", token_env="CDCSYNC_BAD_IT_TOKEN"
    )
    path = home / "cdcsync.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def bad_config(bad_config_path: Path, running_stack: StackSettings) -> Config:
    from cdcsync.streams.commands import stack_up

    config = load_config(bad_config_path)
    stack_up(config, progress=lambda _msg: None)  # creates this config's topics
    return config


@pytest.fixture(scope="module")
def bad_worker(
    bad_config: Config, bad_config_path: Path, running_stack: StackSettings
) -> Iterator[WorkerProcess]:
    api: RefApiThread = run_in_thread(host="127.0.0.1", port=API_PORT, token=TOKEN)
    proc = WorkerProcess(
        config_path=bad_config_path,
        log_path=running_stack.logs_dir / "worker-bad-input-it.log",
        env={"CDCSYNC_BAD_IT_TOKEN": TOKEN},
    )
    try:
        proc.start()
        yield proc
    finally:
        proc.stop()
        api.stop()
        _drop_topics(running_stack)


def _drop_topics(stack: StackSettings) -> None:
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    with contextlib.suppress(KafkaError), contextlib.closing(admin):  # tidying only
        admin.delete_topics([t for t in admin.list_topics() if t.startswith(APP_ID)])
        admin.delete_consumer_groups([APP_ID])


@pytest.fixture(scope="module")
def events(bad_worker: WorkerProcess, bad_config: Config, running_stack: StackSettings):
    watcher = Events(running_stack.bootstrap_servers, [bad_config.topics.results,
                                                       bad_config.topics.dead_letters])  # fmt: skip
    # A first row proves the worker consumes (its "latest" position is set) before any case.
    with psycopg.connect(running_stack.pg_dsn(), autocommit=True) as conn:
        n = next_id(conn)
        insert_row(conn, n, "warmup" + uuid.uuid4().hex[:6])
    synced = watcher.wait(lambda _s: any(e.get("action") == "create" for e in watcher.for_id(n)))
    assert synced, f"the worker did not sync a first row in {WAIT_S:.0f}s; see its log"
    yield watcher
    watcher.consumer.close()


@pytest.fixture(scope="module")
def producer(running_stack: StackSettings) -> Iterator[KafkaProducer]:
    # Room for the near-limit record; the broker still enforces the topic's own limit.
    p = KafkaProducer(bootstrap_servers=running_stack.bootstrap_servers, max_request_size=3 << 20)
    yield p
    p.close()


def objects(tag: str) -> list[Event]:
    """The reference API's contacts of this test."""
    url = f"http://127.0.0.1:{API_PORT}/api/v1/contacts"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    items = httpx.get(url, params={"limit": 1000}, headers=headers).raise_for_status().json()
    return [o for o in items["items"] if str(o.get("email", "")).endswith(f".{tag}@example.org")]


def _original_key(original: Event) -> bytes | None:
    """The key bytes a dead letter kept (text, or base64 when the record was not UTF-8)."""
    key = original["key"]
    if key is None:
        return None
    return base64.b64decode(key) if original["encoding"] == "base64" else key.encode()


def next_id(db: Any) -> int:
    (n,) = db.execute("SELECT nextval('contact_id_seq')").fetchone()
    return int(n)


def insert_row(db: Any, n: int, tag: str) -> None:
    db.execute(
        "INSERT INTO contact (id, first_name, last_name, email) VALUES (%s, 'Good', 'Row', %s)",
        (n, f"good{n}.{tag}@example.org"),
    )


@dataclass(frozen=True)
class Case:
    """One kind of bad record, and the dead-letter reason (or ``skip``) and text it must get."""

    name: str
    value: Callable[[int, str], bytes | None]
    reason: str
    text: str
    #: The record's key; ``None``: the entity's own Debezium key (else none it can name).
    key: Callable[[int], bytes | None] | None = None


CASES = [
    Case("not JSON", lambda n, t: b"{this is not json", "schema", "not JSON"),
    Case("not UTF-8", lambda n, t: b"\xff\xfe\x00\x9c", "schema", "not JSON"),
    Case("JSON array", lambda n, t: b"[1, 2, 3]", "schema", "JSON object"),
    Case("JSON string", lambda n, t: b'"hello"', "schema", "JSON object"),
    Case("JSON null", lambda n, t: b"null", "schema", "JSON object"),
    Case("unknown op", lambda n, t: envelope(n, t, op="x"), "schema", "unsupported op 'x'"),
    Case("no op", lambda n, t: json.dumps({"after": _row(n, t)}).encode(), "schema",
         "op: Field required"),
    Case("create without after", lambda n, t: envelope(n, t, after=None), "schema",
         "without 'after'"),
    Case("update without after", lambda n, t: json.dumps({"op": "u", "before": _row(n, t)})
         .encode(), "schema", "without 'after'"),
    Case("delete without before", lambda n, t: envelope(n, t, op="d", after=None), "schema",
         "REPLICA IDENTITY FULL"),
    Case("after not an object", lambda n, t: envelope(n, t, after="oops"), "schema", "after"),
    Case("first_name an object", lambda n, t: envelope(n, t, after=_row(n, t, first_name={
         "given": "Ann"})), "mapping", "'first_name' holds a dict"),
    Case("email a list (refused at the sink)", lambda n, t: envelope(n, t, after=_row(
         n, t, email=["a@example.org", "b@example.org"])), "sink_permanent", "not a scalar"),
    Case("after without mapped columns", lambda n, t: envelope(n, t, after={"id": n}),
         "mapping", "has no column(s) ['email', 'first_name', 'last_name', 'phone']"),
    Case("source.ts_ms a string", lambda n, t: envelope(n, t, source={"ts_ms": "yesterday"}),
         "schema", "ts_ms"),
    Case("truncate", lambda n, t: envelope(n, t, op="t", after=None), "schema",
         "unsupported op 't'"),
    Case("tombstone", lambda n, t: None, "skip", "tombstone"),
    Case("key does not match the row", lambda n, t: envelope(n, t, after=_row(n + 10**9, t)),
         "schema", "does not match"),
    Case("key without id", envelope, "schema", "has no 'id' field",
         key=lambda n: json.dumps({"uid": n}).encode()),
    Case("key not JSON", envelope, "schema", "key is not JSON", key=lambda n: b"id=%d" % n),
    Case("key id a boolean", envelope, "schema", "string or integer", key=lambda n: b'{"id":true}'),
    Case("truncate as Debezium sends it (no key)", lambda n, t: envelope(n, t, op="t", after=None),
         "schema", "no key", key=lambda n: None),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_record_ends_as_one_dead_letter_or_skip_and_the_next_change_syncs(
    case: Case, events: Events, producer: KafkaProducer, bad_config: Config, db: Any, tag: str
) -> None:
    topic = bad_config.entities["contact"].topic
    n = next_id(db)
    key = case.key(n) if case.key else key_of(n)
    meta = producer.send(topic, key=key, value=case.value(n, tag)).get(timeout=30)
    insert_row(db, n, tag)  # the good change right behind it, same key

    def settled(seen: list[Event]) -> bool:
        synced = any(e.get("action") == "create" for e in events.for_id(n))
        return synced and bool(events.at(topic, meta.partition, meta.offset))

    reached = events.wait(settled)
    outcome = events.at(topic, meta.partition, meta.offset)
    assert outcome, (
        f"{case.name}: no result or dead letter for {topic}[{meta.partition}]@{meta.offset}"
    )
    assert reached, f"{case.name}: the good change of entity {n} after it was never synced"
    events.wait(lambda _s: False, timeout_s=1.0)  # anything late would be a second outcome
    outcome = events.at(topic, meta.partition, meta.offset)
    assert len(outcome) == 1, f"{case.name}: {len(outcome)} outcomes for one record: {outcome}"
    (event,) = outcome
    if case.reason == "skip":
        assert (event["kind"], event["action"]) == ("result", "skip"), f"{case.name}: {event}"
        assert case.text in event["reason"], f"{case.name}: unclear reason {event['reason']!r}"
    else:
        assert event["kind"] == "dead_letter", f"{case.name}: expected a dead letter: {event}"
        assert event["reason"] == case.reason, f"{case.name}: {event['reason']}: {event['error']}"
        assert case.text in event["error"], f"{case.name}: unclear error {event['error']!r}"
        assert event["entity_id"] == (None if case.key else str(n)), event
        assert _original_key(event["original"]) == key, f"{case.name}: original key lost"
    good = [e for e in events.for_id(n) if e is not event]
    assert [(e["kind"], e.get("action")) for e in good] == [("result", "create")], good
    assert [o["email"] for o in objects(tag)] == [f"good{n}.{tag}@example.org"]


def _max_message_bytes(stack: StackSettings, topic: str) -> int:
    admin = KafkaAdminClient(bootstrap_servers=stack.bootstrap_servers)
    with contextlib.closing(admin):
        (response,) = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    (resource,) = response.resources
    return int({entry[0]: entry[1] for entry in resource[4]}["max.message.bytes"])


def test_a_2mb_record_is_refused_by_the_broker_before_cdcsync_sees_it(
    events: Events, producer: KafkaProducer, bad_config: Config, running_stack: StackSettings,
    db: Any, tag: str,
) -> None:  # fmt: skip
    topic = bad_config.entities["contact"].topic
    limit = _max_message_bytes(running_stack, topic)
    assert limit < 2 << 20, f"{topic} accepts {limit} bytes: this case needs a smaller limit"
    n = next_id(db)
    value = envelope(n, tag, after=_row(n, tag, notes="x" * (2 << 20)))
    with pytest.raises(MessageSizeTooLargeError):
        producer.send(topic, key=key_of(n), value=value).get(timeout=30)
    insert_row(db, n, tag)

    assert events.wait(lambda _s: any(e.get("action") == "create" for e in events.for_id(n))), (
        f"the good change of entity {n} after the refused record was never synced"
    )
    assert [(e["kind"], e.get("action")) for e in events.for_id(n)] == [("result", "create")]


def test_the_largest_record_the_broker_accepts_still_ends_as_a_dead_letter(
    events: Events, producer: KafkaProducer, bad_config: Config, running_stack: StackSettings,
    db: Any, tag: str,
) -> None:  # fmt: skip
    topic = bad_config.entities["contact"].topic
    size = _max_message_bytes(running_stack, topic) - 4096  # batch and record headers fit
    n = next_id(db)
    meta = producer.send(topic, key=key_of(n), value=b"x" * size).get(timeout=30)
    insert_row(db, n, tag)

    events.wait(lambda _s: any(e.get("action") == "create" for e in events.for_id(n)))
    outcome = events.at(topic, meta.partition, meta.offset)
    assert [(e["kind"], e["reason"]) for e in outcome] == [("dead_letter", "schema")], (
        f"a {size}-byte record that is not JSON ended as {outcome}"
    )
    details = outcome[0]["details"]
    assert details["original_truncated"] and details["original_bytes"] == size
    assert [e.get("action") for e in events.for_id(n) if e["kind"] == "result"] == ["create"]


def test_heartbeat_and_signal_records_are_not_consumed(
    events: Events, bad_config: Config, bad_worker: WorkerProcess, running_stack: StackSettings,
    db: Any, tag: str,
) -> None:  # fmt: skip
    entity_topic = bad_config.entities["contact"].topic
    side = KafkaConsumer(bootstrap_servers=running_stack.bootstrap_servers, group_id=None)
    with contextlib.closing(side):
        beats = [TopicPartition(HEARTBEAT_TOPIC, p)
                 for p in side.partitions_for_topic(HEARTBEAT_TOPIC) or ()]  # fmt: skip
        assert beats, f"Debezium has written no heartbeat topic {HEARTBEAT_TOPIC} yet"
        beats_before = sum(side.end_offsets(beats).values())
        signal_id = f"bad-{tag}"  # a harmless signal: Debezium logs it and emits its row
        db.execute(
            "INSERT INTO debezium_signal (id, type, data) VALUES (%s, 'log', %s)",
            (signal_id, json.dumps({"message": f"cdcsync bad-input test {tag}"})),
        )
        n = next_id(db)
        insert_row(db, n, tag)
        deadline, signalled = time.monotonic() + WAIT_S, False  # heartbeats: every 10 s
        while not (signalled and sum(side.end_offsets(beats).values()) > beats_before):
            assert time.monotonic() < deadline, (
                f"no record of signal {signal_id} on {SIGNAL_TOPIC} (seen: {signalled}) or "
                f"no new heartbeat on {HEARTBEAT_TOPIC} within {WAIT_S:.0f}s"
            )
            signalled = signalled or _signal_seen(side, signal_id)  # polls up to 1 s
            time.sleep(0.5 if signalled else 0)

    assert events.wait(lambda _s: any(e.get("action") == "create" for e in events.for_id(n))), (
        f"entity {n}, inserted after the signal, was never synced"
    )
    strays = [e for e in events.seen if e["source"]["topic"] != entity_topic]
    assert not strays, f"the worker acted on records of other topics: {strays[:3]}"
    admin = KafkaAdminClient(bootstrap_servers=running_stack.bootstrap_servers)
    with contextlib.closing(admin):
        (group,) = admin.describe_consumer_groups([APP_ID])
        assigned = {t for m in group.members for t, _p in m.member_assignment.assignment}
        committed = {tp.topic for tp in admin.list_consumer_group_offsets(APP_ID)}
    assert entity_topic in assigned, f"the worker is not assigned {entity_topic}: {assigned}"
    assert not {HEARTBEAT_TOPIC, SIGNAL_TOPIC} & (assigned | committed), (
        f"the worker consumes a Debezium side topic: assigned {assigned}, committed {committed}"
    )
    assert bad_worker.proc is not None and bad_worker.proc.poll() is None, "the worker died"


def _signal_seen(consumer: KafkaConsumer, signal_id: str) -> bool:
    """Whether the signal table's topic (Connect creates it) holds the row ``signal_id``."""
    consumer.topics()  # refresh metadata: the topic may be new
    parts = [TopicPartition(SIGNAL_TOPIC, p)
             for p in consumer.partitions_for_topic(SIGNAL_TOPIC) or ()]  # fmt: skip
    if not parts:
        return False
    if set(consumer.assignment()) != set(parts):
        consumer.assign(parts)
        consumer.seek_to_beginning(*parts)
    return any(
        (json.loads(r.value or b"{}").get("after") or {}).get("id") == signal_id
        for records in consumer.poll(timeout_ms=1000).values()
        for r in records
    )
