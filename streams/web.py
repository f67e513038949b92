"""The worker's HTTP endpoints, on Faust's web server.

``/healthz``                 the process is up (liveness)
``/readyz``                  started, partitions assigned, tables recovered (readiness)
``/metrics``                 Prometheus exposition (``cdcsync.metrics``)
``/state/{entity}/{id}``     one entity's sync state, what ``cdcsync status`` shows
``/webhooks/{entity}``       POST: a Standard Webhooks change notification
``/login`` ``/session`` ``/logout``  sessions (``cdcsync.streams.web_session``)
``/ui/...``                  the operator page (``cdcsync.streams.pages``)

Every route but ``/healthz`` and ``/readyz`` needs a credential: the
:class:`~cdcsync.streams.guard.WebGuard` middleware is told here what each
route may be called with, and refuses the rest. State lookups answer from
the local table (``cdcsync.streams.web_state``), never from a changelog scan.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import faust
from faust.web import Request, Response, View

from cdcsync import metrics
from cdcsync.errors import CdcsyncError, SchemaError
from cdcsync.operators.common import TRIGGER_HEADER
from cdcsync.operators.source import fetch_row_async, read_envelope, source_dsn, source_table
from cdcsync.schemas.config import Config, WebConfig
from cdcsync.schemas.envelope import encode_key
from cdcsync.streams.guard import ActionAuditor, WebGuard, note_entities
from cdcsync.streams.pages import register_ui
from cdcsync.streams.tables import declare_webhook_ids
from cdcsync.streams.web_session import register_session_pages
from cdcsync.streams.web_state import state_page
from cdcsync.streams.webhooks import SeenIds, WebhookRejectedError, secrets_for, verify

if TYPE_CHECKING:
    from cdcsync.streams.topics import Topics

__all__ = [
    "WEBHOOK_ID_HEADER",
    "WebhookReceiver",
    "configure_web",
    "consumer_lag",
    "entity_id_from_body",
    "healthz",
    "metrics_page",
    "readyz",
    "register_pages",
]

log = logging.getLogger(__name__)

#: Faust's built-in pages (tables, router, stats, graph, performance): all off.
_FAUST_PAGES = (
    "web_tables_enabled",
    "web_router_enabled",
    "web_stats_enabled",
    "web_graph_enabled",
    "web_metrics_enabled",
)

#: Header on a record published by a webhook: the sender's ``webhook-id``.
WEBHOOK_ID_HEADER = "cdcsync-webhook-id"


def consumer_lag(app: faust.App, topics: set[str]) -> dict[tuple[str, int], int]:
    """Records between this worker's last read offset and the end, per assigned partition.

    Cheap: both numbers are already in the consumer (no broker round trip); a
    partition not read from yet counts from its committed offset.
    """
    consumer: Any = app.consumer
    lags: dict[tuple[str, int], int] = {}
    for tp in consumer.assignment():
        if tp.topic not in topics:
            continue
        highwater = consumer.highwater(tp)
        if highwater is None:
            continue
        read = consumer._read_offset.get(tp)
        done = read + 1 if read is not None else consumer._committed_offset.get(tp)
        if done is not None:
            lags[(tp.topic, tp.partition)] = max(highwater - done, 0)
    return lags


def entity_id_from_body(body: bytes, key_field: str) -> str:
    """The entity id a webhook body names: ``{"<key>": …}`` or ``{"data": {"<key>": …}}``."""
    try:
        data = json.loads(body)
    except ValueError:
        raise SchemaError("the body is not JSON") from None
    if not isinstance(data, dict):
        raise SchemaError("the body must be a JSON object")
    for holder in (data, data.get("data")):
        if isinstance(holder, Mapping) and holder.get(key_field) not in (None, ""):
            value = holder[key_field]
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise SchemaError(f"{key_field!r} must be a string or an integer")
            return str(value)
    raise SchemaError(f'the body names no {key_field!r} (expected {{"{key_field}": …}})')


def configure_web(app: faust.App, web_config: WebConfig, guard: WebGuard) -> None:
    """Bind where ``app.web`` says, turn Faust's own pages off, put ``guard`` in front.

    Set on ``app.conf`` after the app is built, so Faust's ``WEB_BIND`` and
    ``APP_WEB_*_ENABLED`` environment variables cannot undo them (``faust
    worker --web-bind`` still can). Faust's ``/router`` is off too: nothing
    here uses ``@app.table_route``.
    """
    conf: Any = app.conf
    conf.web_bind = web_config.bind
    host = web_config.host or (None if web_config.bind in ("0.0.0.0", "::") else web_config.bind)
    if host is not None:
        conf.web_host = host
        conf.canonical_url = f"http://{host}:{conf.web_port}"
    for setting in _FAUST_PAGES:
        setattr(conf, setting, False)
    conf.web_application_options = guard.application_options()


def register_pages(
    app: faust.App,
    config: Config,
    *,
    topics: Topics,
    tables: Mapping[str, Any],
    guard: WebGuard,
) -> None:
    """Add the endpoints to ``app`` and tell ``guard`` who may call each (the rest: admin)."""
    entity_topics = {e.topic for e in config.entities.values()}
    metrics.set_lag_source(lambda: consumer_lag(app, entity_topics))
    guard.auditor = ActionAuditor(topics.audit)
    app.page("/healthz")(healthz)
    app.page("/readyz")(readyz)
    app.page("/metrics")(metrics_page)
    app.page("/state/{entity}/{entity_id}")(state_page(app, config, tables))
    seen = SeenIds(store=declare_webhook_ids(app, config))
    app.page("/webhooks/{entity}")(_webhook_page(WebhookReceiver(config, topics, seen=seen)))
    register_session_pages(app, guard)
    register_ui(
        app, config, entity_topics=topics.entities, tables=tables, guard=guard,
        lag=lambda: consumer_lag(app, entity_topics),
    )  # fmt: skip
    guard.allow("/healthz", GET="public")
    guard.allow("/readyz", GET="public")
    guard.allow("/metrics", GET="metrics")
    guard.allow("/state/{entity}/{entity_id}", GET="viewer")
    guard.allow("/webhooks/{entity}", POST="signed")


async def healthz(self: View, request: Request) -> Response:
    """Liveness: the process is up and serving."""
    return self.json({"status": "ok"})


async def readyz(self: View, request: Request) -> Response:
    """Readiness: started, not rebalancing, tables recovered."""
    a: Any = self.app
    recovered = a.tables.recovery.completed.is_set()
    checks = {
        "started": bool(a.started) and not a.crashed,
        "assigned": a.rebalancing_count > 0 and not a.rebalancing,
        "recovered": recovered,
    }
    ready = all(checks.values())
    body = {"ready": ready, **checks, "partitions": len(a.consumer.assignment())}
    return self.json(body, status=200 if ready else 503)


async def metrics_page(self: View, request: Request) -> Response:
    """Prometheus metrics."""
    # aiohttp refuses a charset in content_type=, so the full type goes in the header.
    return self.bytes(metrics.exposition(), headers={"Content-Type": metrics.CONTENT_TYPE})


def _webhook_page(receiver: WebhookReceiver) -> type[View]:
    class Webhook(View):
        """POST /webhooks/{entity}: verify, then publish the named row to the entity topic."""

        async def post(self, request: Request, entity: str) -> Response:
            return await receiver.receive(self, request, entity)

    return Webhook


class WebhookReceiver:
    """Verifies a webhook call (signature, replay) and publishes the row it names."""

    def __init__(self, config: Config, topics: Topics, *, seen: SeenIds | None = None) -> None:
        self.config = config
        self.topics = topics
        #: Accepted ids: the workers' shared table in the worker, a dict in tests.
        self.seen = SeenIds() if seen is None else seen

    async def receive(self, view: View, request: Request, entity: str) -> Response:
        """Answer one call: 202 once published, else the reason it was refused."""
        if entity not in self.config.entities:
            return view.json({"error": f"unknown entity {entity!r}"}, status=404)
        cfg = self.config.entities[entity]
        body = await request.read()
        now = time.time()
        try:
            keys = secrets_for(self.config, entity)  # read again each call: rotation
            msg_id, _ts = verify(dict(request.headers), body, keys, now_s=now)
            if not self.seen.first_time(msg_id, now_s=now):
                raise WebhookRejectedError(401, "webhook-id already seen (replayed call)")
        except WebhookRejectedError as exc:
            log.warning("webhook %s rejected: %s", entity, exc.reason)
            return view.json({"error": exc.reason}, status=exc.status)
        except CdcsyncError as exc:  # an unusable secret in the environment
            log.error("webhook %s: %s", entity, exc)
            return view.json({"error": "webhook secrets are misconfigured"}, status=500)
        try:
            return await self._publish(view, request, entity, cfg.topic, body, msg_id)
        except Exception:
            self.seen.forget(msg_id)  # our failure: the sender's retry must get through
            raise

    async def _publish(
        self, view: View, request: Request, entity: str, topic: str, body: bytes, msg_id: str
    ) -> Response:
        key_field = self.config.entities[entity].key
        try:
            entity_id = entity_id_from_body(body, key_field)
        except SchemaError as exc:
            self.seen.forget(msg_id)
            return view.json({"error": str(exc)}, status=400)
        note_entities(request, [entity_id])
        schema, table = source_table(self.config, entity)
        dsn = source_dsn(self.config)
        row = await fetch_row_async(dsn, schema, table, key_field, entity_id)
        if row is None:
            self.seen.forget(msg_id)
            return view.json({"error": f"no {entity} with {key_field} = {entity_id}"}, status=404)
        value = read_envelope(row, schema=schema, table=table, origin="webhook")
        headers = [(TRIGGER_HEADER, b"webhook"), (WEBHOOK_ID_HEADER, msg_id.encode())]
        sent = await self.topics.entities[entity].send(
            key=encode_key(key_field, entity_id, key_type=self.config.entities[entity].key_type),
            value=json.dumps(value, separators=(",", ":")).encode(),
            headers=headers,
        )
        meta = await sent
        log.info("webhook %s %s: published to %s[%d]@%d", entity, entity_id, topic,
                 meta.partition, meta.offset)  # fmt: skip
        position = {"topic": topic, "partition": meta.partition, "offset": meta.offset}
        return view.json({"accepted": True, "entity_id": entity_id, **position}, status=202)
