"""How the reference API answers: JSON error bodies, records with their ETag, and which
status and error code answer each refusal (one mapping for whole requests and for the
operations of a bulk request alike).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from .store import InvalidCursorError, NotFoundError, PreconditionFailedError

__all__ = [
    "REFUSED",
    "BadRequestError",
    "error_response",
    "json_object",
    "record_response",
    "refusal",
    "validation_message",
]


class BadRequestError(Exception):
    """The request itself is malformed (400)."""


#: What the store or a handler refuses, and the status and error code answering it.
_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    NotFoundError: (404, "not_found"),
    PreconditionFailedError: (412, "precondition_failed"),
    InvalidCursorError: (400, "bad_request"),
    BadRequestError: (400, "bad_request"),
}
REFUSED = tuple(_REFUSALS)


def refusal(exc: Exception) -> tuple[int, str]:
    """The status and error code for a refusal (one of ``REFUSED``), for a request or a
    bulk operation alike."""
    return next(answer for kind, answer in _REFUSALS.items() if isinstance(exc, kind))


def error_response(status: int, code: str, message: str, **headers: str) -> web.Response:
    """A JSON error body ``{"error": code, "message": ...}`` with ``status``."""
    return web.json_response({"error": code, "message": message}, status=status, headers=headers)


async def json_object(request: web.Request) -> dict[str, Any]:
    """The request body as a JSON object; anything else is a 400."""
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise BadRequestError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object")
    return body


def record_response(
    record: Mapping[str, Any], *, status: int = 200, **headers: str
) -> web.Response:
    """A record as JSON with its ``rowId`` as the ``ETag``, as ``If-Match`` expects it."""
    etag = {"ETag": f'"{record["rowId"]}"'}
    return web.json_response(record, status=status, headers={**etag, **headers})


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as one line, each problem prefixed by where it is."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or 'body'}: {e['msg']}" for e in exc.errors())
