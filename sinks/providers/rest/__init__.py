"""The ``rest`` provider: one collection of a JSON REST API, configured not coded.

Most CRM and case-management APIs share one shape (a paged, filterable collection
URL, item URLs, an id and a ``rowId`` version token per object, a bearer token);
:class:`RestSettings` names what differs. :class:`RestSink` translates every
failure into ``SinkTransientError`` or ``SinkPermanentError``, never showing the secret,
and makes every call through a :class:`~cdcsync.sinks.delivery.ratelimit.RateLimiter`
(the API's ``rate_limit_rps`` and ``max_concurrency``, shared out between workers; a 429
pauses it).

- :mod:`~cdcsync.sinks.providers.rest.settings`: the settings and the credential.
- :mod:`~cdcsync.sinks.providers.rest.sink`: the calls (the Sink contract, bulk writes).
- :mod:`~cdcsync.sinks.providers.rest.paging`: listing (``paging``), totals, find.
- :mod:`~cdcsync.sinks.providers.rest.answers`: single-object and write answers into
  records (``object_path``, ``version_source``, ``after_write``), ids checked.
- :mod:`~cdcsync.sinks.providers.rest.pointer`: the JSON Pointers of the envelopes.
- :mod:`~cdcsync.sinks.providers.rest.failures`: failed calls into sink errors.
- :mod:`~cdcsync.sinks.providers.rest.auth`: how calls carry the credential (``auth``).
- :mod:`~cdcsync.sinks.providers.rest.writes`: what guards a push (``concurrency``), the
  PATCH body type and where a create goes.
- :mod:`~cdcsync.sinks.providers.rest.bulk`: bulk calls, their answers matched by id.

:data:`provider` is what the ``cdcsync.providers`` entry point ``rest`` names.
"""

from __future__ import annotations

from cdcsync.sinks.providers.rest.settings import RestSettings
from cdcsync.sinks.providers.rest.sink import RestSink
from cdcsync.sinks.registry import Provider

__all__ = ["RestSettings", "RestSink", "provider"]

provider = Provider(
    identifier="rest",
    display_name="Generic JSON REST API",
    description=(
        "One collection of a JSON REST API with an id and a rowId version per object, "
        "paged listing, If-Match updates, a bearer token and a rate limit."
    ),
    settings_model=RestSettings,
    factory=lambda settings, context: RestSink(
        settings,
        environ=context.environ,
        auditor=context.auditor,
        integration=context.integration,
    ),
)
