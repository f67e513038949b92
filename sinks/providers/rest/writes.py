"""How a REST sink's writes are guarded and shaped: ``concurrency``, the PATCH body type
(``patch_format``) and where a create goes (``create_method``, ``create_id_field``).

What each ``concurrency`` mode guarantees against a concurrent external edit:

- ``if_match``: the API compares atomically (``If-Match``; 412 is a conflict); no edit
  is ever overwritten, if the API honours the header.
- ``read_before_write``: a GET compares the version first and a moved one is a
  conflict; an edit that lands between that GET and the write is overwritten (a
  window of one round trip). For APIs that ignore ``If-Match``.
- ``none``: expected versions are ignored; the last writer wins.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from cdcsync.errors import ConfigurationError
from cdcsync.sinks.base import ExternalRecord
from cdcsync.sinks.providers.rest.failures import Failures
from cdcsync.sinks.providers.rest.settings import RestSettings

__all__ = ["MERGE_PATCH", "WriteGuard", "create_target", "same_version", "write_headers"]

#: The media type of an RFC 7396 JSON merge patch.
MERGE_PATCH = "application/merge-patch+json"

#: Reads one object by id through the sink's own ``get`` (envelopes, versions applied).
GetRecord = Callable[[str], Awaitable[ExternalRecord | None]]


def write_headers(settings: RestSettings, method: str) -> dict[str, str]:
    """The headers a write's body needs: the merge-patch type on a PATCH, when configured."""
    if method == "PATCH" and settings.patch_format == "merge-patch":
        return {"Content-Type": MERGE_PATCH}
    return {}


def create_target(
    settings: RestSettings, failures: Failures, payload: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The method of a create and, with ``create_method: PUT``, the client-chosen id."""
    if settings.create_method == "POST":
        return "POST", None
    field = settings.create_id_field
    value = payload.get(field) if field is not None else None
    if isinstance(value, bool) or not isinstance(value, str | int) or str(value) == "":
        failures.fail(
            "PUT", settings.collection_path, f"cannot create: the payload has no id in "
            f"'{field}' (create_id_field); map a non-empty string or integer into it",
        )  # fmt: skip
    return "PUT", str(value)


def same_version(current: str, expected: str) -> bool:
    """Whether two versions are one, reading ETag forms (``W/"x"``, ``"x"``) as ``x``."""
    return _bare(current) == _bare(expected)


def _bare(version: str) -> str:
    version = version.strip()
    return version.removeprefix("W/").strip('"')


class WriteGuard:
    """Carries out ``concurrency``: what stands between a push and a concurrent edit."""

    def __init__(self, settings: RestSettings, failures: Failures, get: GetRecord) -> None:
        self.settings = settings
        self._failures = failures
        self._get = get

    async def headers(
        self, method: str, path: str, external_id: str, expected: str | None
    ) -> dict[str, str]:
        """The guard headers of one write (``If-Match``), after a read first if so configured.

        Raises ``SinkConflictError`` when read_before_write finds the version moved, and a
        404 ``SinkPermanentError`` when it finds the object gone.
        """
        mode = self.settings.concurrency
        if expected is None or mode == "none":
            return {}
        if mode == "if_match":
            return {"If-Match": expected}
        await self.check(method, path, external_id, expected)
        return {}

    async def check(self, method: str, path: str, external_id: str, expected: str) -> None:
        """read_before_write: GET the object and compare its version with ``expected``."""
        current = await self._get(external_id)
        if current is None:
            raise self._failures.error(
                method, path, "found the object gone when reading it before the write "
                "(read_before_write); deleted externally?", status=404,
            )  # fmt: skip
        if current.row_id is None:
            raise ConfigurationError(
                f"{self.settings.object_type} API: concurrency read_before_write needs each "
                "object's version, and the GET gave none; set version_field (or version_source"
                " etag), or use concurrency none"
            )
        if not same_version(current.row_id, expected):
            raise self._failures.error(
                method, path, f"found version {current.row_id!r} when reading it before the "
                f"write, not {expected!r}: the object changed concurrently; re-read it and "
                "decide again", status=412, conflict=True,
            )  # fmt: skip
