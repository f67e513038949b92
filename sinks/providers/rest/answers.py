"""Reading a REST API's answers: one object (at object_path) into a record, and write answers.

A create or update answer is the object, only its id (``{"id": 42}``, a bare id, or a
``Location`` header), or empty (204, 202, no body). A 2xx is never an error here: the
write landed. What the answer lacks, ``after_write`` settles: one GET (``read_back``) or
the next poll (``next_poll``, the record's ``row_id`` is ``None`` until then).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import unquote

import httpx

from cdcsync.errors import SinkError
from cdcsync.sinks.base import ExternalRecord
from cdcsync.sinks.providers.rest.failures import Failures
from cdcsync.sinks.providers.rest.pointer import MISSING, resolve
from cdcsync.sinks.providers.rest.settings import RestSettings

__all__ = ["AnswerReader", "ReadBack", "id_problem"]

logger = logging.getLogger(__name__)

#: GETs one object by id (the sink's ``get``); ``None`` if it does not exist.
ReadBack = Callable[[str], Awaitable[ExternalRecord | None]]


def id_problem(external_id: Any) -> str | None:
    """Why ``external_id`` cannot name an object in a URL path, or ``None`` if it can."""
    if isinstance(external_id, bool) or not isinstance(external_id, str | int):
        return f"needs an external id that is a string or an integer, not {external_id!r}"
    if str(external_id) in ("", ".", ".."):
        return f"needs a non-empty external id other than '.' and '..', not {external_id!r}"
    return None


class AnswerReader:
    """Turns single-object and write answers into :class:`ExternalRecord` objects, or errors."""

    def __init__(self, settings: RestSettings, failures: Failures) -> None:
        self.settings = settings
        self._failures = failures

    def record(self, response: httpx.Response) -> ExternalRecord:
        """The object a single-object answer holds (at object_path), its version included."""
        s, body = self.settings, self.json(response)
        data = resolve(body, s.object_path)
        if data is MISSING:
            self._failures.fail(
                response.request.method, response.request.url.path,
                f"answered without an object at object_path {s.object_path!r}: "
                f"{self._failures.excerpt(response)}; check object_path",
                status=response.status_code,
            )  # fmt: skip
        return self.to_record(data, response, etag=response.headers.get("ETag"))

    def json(self, response: httpx.Response) -> Any:
        """The response's body as JSON; a body that is not JSON is a permanent error."""
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._failures.fail(
                response.request.method, response.request.url.path,
                f"answered HTTP {response.status_code} with a body that is not JSON: "
                f"{self._failures.excerpt(response)}; check base_url and collection_path",
                status=response.status_code, cause=exc,
            )  # fmt: skip

    def to_record(
        self, data: Any, response: httpx.Response, *, etag: str | None = None
    ) -> ExternalRecord:
        """One object of the API (``data``, from ``response``) as a record: id, version, fields."""
        s = self.settings
        object_id = data.get(s.id_field) if isinstance(data, dict) else None
        if id_problem(object_id) is not None:
            self._failures.fail(
                response.request.method, response.request.url.path,
                f"returned something that is not a {s.object_type} with an '{s.id_field}' "
                f"field; check id_field and {self._where(data)}",
                status=response.status_code,
            )  # fmt: skip
        fields = {k: v for k, v in data.items() if k not in (s.id_field, s.version_field)}
        return ExternalRecord(id=str(object_id), row_id=self._version(data, etag), fields=fields)

    async def written(
        self,
        response: httpx.Response,
        payload: Mapping[str, Any],
        read: ReadBack,
        *,
        external_id: str | None = None,
    ) -> ExternalRecord:
        """The record a create (``external_id`` None) or update answer stands for; never an error
        for what a 2xx answers, except a create whose new id cannot be found."""
        s, method = self.settings, response.request.method
        data = self._answered_object(response)
        object_id = self._answered_id(response, data) or external_id
        if object_id is None:
            self._failures.fail(
                method, s.collection_path,
                f"answered HTTP {response.status_code} without the new {s.object_type}'s id: "
                f"{self._failures.excerpt(response)}. The write landed; check object_path and "
                f"id_field (or a Location header). A natural_key lets the retry find it instead "
                "of creating a duplicate",
                status=response.status_code,
            )  # fmt: skip
        etag = response.headers.get("ETag")
        if data is not None and (not self._versioned() or self._version(data, etag)):
            return self.to_record(data, response, etag=etag)
        if s.after_write == "read_back":
            if (record := await self._read_back(read, object_id, method)) is not None:
                return record
        fields = self.to_record(data, response).fields if data is not None else dict(payload)
        return ExternalRecord(id=object_id, row_id=None, fields=fields)

    # -- parts of a write answer ---------------------------------------------

    def _answered_object(self, response: httpx.Response) -> dict[str, Any] | None:
        """The object the answer holds with more than its id (and version), else ``None``."""
        s = self.settings
        data = resolve(self._body(response), s.object_path)
        if not isinstance(data, dict) or id_problem(data.get(s.id_field)) is not None:
            return None
        return data if set(data) - {s.id_field, s.version_field} else None

    def _answered_id(self, response: httpx.Response, data: dict[str, Any] | None) -> str | None:
        """The id the answer gives: the object's, a bare or ``{"id": ...}`` body, or Location."""
        s = self.settings
        if data is not None:
            return str(data[s.id_field])
        found = resolve(self._body(response), s.object_path)
        if isinstance(found, dict):
            found = found.get(s.id_field)
        if found is not MISSING and id_problem(found) is None:
            return str(found)
        return self._location_id(response)

    def _location_id(self, response: httpx.Response) -> str | None:
        """The id a ``Location`` header names: the segment after collection_path."""
        location = response.headers.get("Location")
        if not location:
            return None
        target = response.request.url.join(location)
        collection = httpx.URL(self.settings.base_url + self.settings.collection_path)
        prefix = collection.path.rstrip("/") + "/"
        if not target.path.startswith(prefix):
            return None
        found = unquote(target.raw_path.decode("ascii").split("?")[0][len(prefix) :])
        return found if "/" not in found and id_problem(found) is None else None

    def _body(self, response: httpx.Response) -> Any:
        """The answer's JSON body, or ``None`` when it is empty or not JSON."""
        if not response.content.strip():
            return None
        try:
            return response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            logger.debug("%s answer is not JSON; reading it as empty", response.request.method)
            return None

    async def _read_back(
        self, read: ReadBack, object_id: str, method: str
    ) -> ExternalRecord | None:
        """The object as one GET reads it; ``None`` (the next poll settles it) if that fails."""
        try:
            record = await read(object_id)
        except SinkError as exc:
            logger.warning(
                "%s %s: the write landed but reading it back failed (%s); the next poll will "
                "read its version", self.settings.object_type, object_id, exc,
            )  # fmt: skip
            return None
        if record is None:
            logger.warning(
                "%s %s: the write landed but a GET after %s found nothing; the next poll "
                "settles it", self.settings.object_type, object_id, method,
            )  # fmt: skip
        return record

    def _versioned(self) -> bool:
        """Whether an object's answer should carry its version (else row_id stays None)."""
        s = self.settings
        return s.version_source == "etag" or (s.version_source == "field" and bool(s.version_field))

    def _version(self, data: Mapping[str, Any], etag: str | None) -> str | None:
        """The object's version as version_source says: its field, the ETag, or none."""
        s = self.settings
        if s.version_source == "etag":
            return etag or None
        if s.version_source == "none" or not s.version_field:
            return None
        version = data.get(s.version_field)
        return None if version is None else str(version)

    def _where(self, data: Any) -> str:
        """The setting that most likely names the wrong place for what ``data`` is."""
        if (
            isinstance(data, dict)
            and len(data) == 1
            and isinstance(next(iter(data.values())), dict)
        ):
            return f'object_path (the object seems to be at "/{next(iter(data))}")'
        return "object_path / items_path"
