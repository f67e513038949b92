"""What every runnable example does: its table, topics and connector; an API; a worker.

An example is a folder holding ``schema.sql`` (its tables), one Kafka Connect
connector JSON (its own name, slot and publication) and ``cdcsync.yaml``.
:class:`Example` runs it against the local stack, which must already be up
(``cdcsync local up``); everything it starts stops when it closes::

    with Example(Path(__file__).parent) as ex:
        ex.prepare()                                  # schema, topics, connector: idempotent
        ex.serve_api(port=8910, token=token)          # a reference API standing in for the CRM
        ex.start_worker(env={"CRM_TOKEN": token})     # a fresh group: starts at the topics' end
        events = ex.watch()                           # results and dead letters from now on
        with ex.db() as conn:
            conn.execute("INSERT INTO ...")
        created = events.wait(lambda e: e.get("action") == "create", 3, timeout_s=60)

:func:`edit_config` writes a changed copy of a configuration (other ports, a
fresh app id) for tests; :meth:`Example.remove_connector` undoes ``prepare``'s
connector, replication slot and publication.
"""

from __future__ import annotations

import logging
import os
import secrets
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
import psycopg
import yaml
from kafka.errors import KafkaError
from psycopg import sql

from cdcsync.connect.register import ConnectorConfig, load, register, unregister
from cdcsync.demo.harness import TopicWatcher, WorkerProcess, start_group_at_end
from cdcsync.errors import StackError
from cdcsync.refapi.server import RefApiThread, run_in_thread
from cdcsync.schemas.config import Config
from cdcsync.stack import kafka, postgres
from cdcsync.stack.settings import StackSettings
from cdcsync.streams.config import load_config
from cdcsync.streams.topics import topic_specs

__all__ = ["EventLog", "Example", "edit_config"]

log = logging.getLogger(__name__)

Say = Callable[[str], None]


def edit_config(source: Path, dest: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    """Write ``source`` changed by ``edit`` (which mutates the parsed YAML) to ``dest``."""
    data = yaml.safe_load(source.read_text())
    edit(data)
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(yaml.safe_dump(data, sort_keys=False))
    return dest


def _connector_file(folder: Path) -> Path:
    found = sorted(folder.glob("*.json"))
    if len(found) != 1:
        raise StackError(f"{folder}: expected exactly one connector JSON file, found {found}")
    return found[0]


class EventLog:
    """Every event a :class:`TopicWatcher` reads, kept, so waiting for one never drops another.

    ``TopicWatcher.collect`` discards what its ``want`` rejects; this keeps all of
    it in ``seen``, so the tests can wait for one entity's result, then another's
    that arrived in the same batch.
    """

    def __init__(self, watcher: TopicWatcher) -> None:
        self.watcher = watcher
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def wait(
        self,
        want: Callable[[dict[str, Any]], bool],
        count: int = 1,
        *,
        timeout_s: float = 60.0,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """The first ``count`` events (seen before or arriving now) accepted by ``want``."""
        found = [e for _t, e in self.seen if want(e)]
        if len(found) < count:

            def keep(topic: str, event: dict[str, Any]) -> bool:
                self.seen.append((topic, event))
                if on_event is not None:
                    on_event(topic, event)
                if want(event):
                    found.append(event)
                return False

            self.watcher.collect(keep, until=lambda _f: len(found) >= count, timeout_s=timeout_s)
        return found[:count] if len(found) >= count else found

    def drain(self, seconds: float) -> list[dict[str, Any]]:
        """Read for ``seconds``; the events that arrived meanwhile."""
        start = len(self.seen)
        self.wait(lambda _e: False, 1, timeout_s=seconds)
        return [e for _t, e in self.seen[start:]]


class Example:
    """One example folder run against the local stack; a context manager stopping what it started.

    ``config_path`` defaults to the folder's ``cdcsync.yaml`` and ``connector_path``
    to its only ``*.json``; ``say`` receives the progress lines.
    """

    def __init__(
        self,
        folder: Path,
        *,
        config_path: Path | None = None,
        connector_path: Path | None = None,
        settings: StackSettings | None = None,
        say: Say = print,
    ) -> None:
        self.folder = folder
        self.config_path = config_path or folder / "cdcsync.yaml"
        self.config: Config = load_config(self.config_path)
        self.connector: ConnectorConfig = load(connector_path or _connector_file(folder))
        self.settings = settings or StackSettings()
        self.say = say
        self.worker: WorkerProcess | None = None
        self._apis: list[RefApiThread] = []
        self._watchers: list[TopicWatcher] = []

    # -- the stack's side: table, topics, connector ------------------------------------

    def prepare(self) -> None:
        """Apply ``schema.sql``, pre-create the configuration's topics, register the connector.

        Idempotent; raises :class:`StackError` (or ``ConnectError``) saying what to start.
        """
        s = self.settings
        postgres.apply_sql([self.folder / "schema.sql"], settings=s)
        self.say(f"  postgres {s.pg_host}:{s.pg_port}: applied {self.folder.name}/schema.sql")
        try:
            created = kafka.ensure_topics(topic_specs(self.config), settings=s)
        except KafkaError as exc:  # ensure_topics translates the usual ones
            raise StackError(
                f"kafka at {s.bootstrap_servers}: {exc}; run `cdcsync local up`"
            ) from exc
        self.say(
            f"  kafka: topics ok ({', '.join(created) + ' created' if created else 'existed'})"
        )
        assert self.connector.path is not None
        register(s.connect_url, self.connector.path, timeout=s.start_timeout)
        self.say(f"  connect: connector {self.connector.name} RUNNING")

    def remove_connector(self) -> None:
        """Unregister the connector and drop its replication slot and publication (if unused)."""
        unregister(self.settings.connect_url, self.connector.name)
        slot = self.connector.config.get("slot.name")
        publication = self.connector.config.get("publication.name")
        with psycopg.connect(self.settings.pg_dsn(), autocommit=True) as conn:
            if slot:
                conn.execute(
                    "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                    "WHERE slot_name = %s AND NOT active",
                    (slot,),
                )
            if publication:
                conn.execute(
                    sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication))
                )
        self.say(f"  connect: removed connector {self.connector.name}, slot {slot}, {publication}")

    def db(self) -> psycopg.Connection[Any]:
        """A new autocommit connection to the stack's database (use it in ``with``)."""
        return psycopg.connect(self.settings.pg_dsn(), autocommit=True)

    # -- the processes: reference APIs and the worker ----------------------------------

    def serve_target(self, entity: str, token: str | None = None) -> dict[str, str]:
        """Serve a reference API where ``entity``'s target points, with its token secret.

        The token is ``token``, else the value of the variable the integration's
        ``secrets: {token: {env: ...}}`` names, else a made-up one. Returns the
        environment the worker needs for it (``{VARIABLE: token}``).
        """
        target = self.config.target(entity)
        ref = target.secrets.get("token")
        if ref is None or ref.env is None:
            raise StackError(
                f"{entity}: the example's target needs `secrets: {{token: {{env: ...}}}}`"
            )
        token = token or os.environ.get(ref.env) or secrets.token_urlsafe(24)
        port = httpx.URL(str(target.settings["base_url"])).port or 80
        self.serve_api(port=port, token=token)
        return {ref.env: token}

    def serve_api(self, *, port: int, token: str) -> RefApiThread:
        """Start a reference API on ``port`` requiring ``token``; stopped by :meth:`close`."""
        api = run_in_thread(host="127.0.0.1", port=port, token=token)
        self._apis.append(api)
        self.say(f"  reference API on {api.url}")
        return api

    def start_worker(
        self,
        *,
        env: Mapping[str, str] | None = None,
        config_path: Path | None = None,
        fresh_group: bool = True,
        log_path: Path | None = None,
    ) -> WorkerProcess:
        """Start ``cdcsync worker`` with this (or another) configuration; wait until ready.

        ``fresh_group`` commits the group's offsets at the end of the entity topics
        first, so the worker syncs what happens from now on; ``False`` resumes
        where the group stood (a restart). Only one worker at a time.
        """
        if self.worker is not None and self.worker.proc and self.worker.proc.poll() is None:
            raise StackError("a worker of this example is running; stop_worker() first")
        path = config_path or self.config_path
        config = load_config(path)
        if fresh_group:
            topics = [e.topic for e in config.entities.values()]
            start_group_at_end(self.settings.bootstrap_servers, config.app.id, topics)
            self.say(f"  consumer group {config.app.id!r} starts at the end of {', '.join(topics)}")
        log_path = log_path or self.settings.logs_dir / f"worker-{self.connector.name}.log"
        self.worker = WorkerProcess(config_path=path, log_path=log_path, env=dict(env or {}))
        self.worker.start()
        self.say(f"  worker ready on port {config.app.web_port} (log: {log_path})")
        return self.worker

    def stop_worker(self) -> None:
        """Stop the worker gracefully (SIGTERM), if one runs."""
        if self.worker is not None:
            self.worker.stop()

    def watch(self, topics: Iterable[str] | None = None) -> EventLog:
        """Events appended from now on to ``topics`` (default: results and dead letters)."""
        names = list(topics or (self.config.topics.results, self.config.topics.dead_letters))
        watcher = TopicWatcher(self.settings.bootstrap_servers, names)
        self._watchers.append(watcher)
        return EventLog(watcher)

    def close(self) -> None:
        """Stop the worker and the APIs, close the watchers; the stack keeps running."""
        self.stop_worker()
        for api in self._apis:
            api.stop()
        for watcher in self._watchers:
            watcher.close()
        self._apis.clear()
        self._watchers.clear()

    def __enter__(self) -> Example:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
