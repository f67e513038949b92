"""What an armed fault does to a request instead of serving it: answer its status, or break
the connection the way a failing network or proxy does (see :mod:`.faults` for the rules).
"""

from __future__ import annotations

import asyncio
import json
import logging

from aiohttp import web

from .faults import ConnectionFault, FaultSpec

__all__ = ["break_connection", "injected_response"]

logger = logging.getLogger(__name__)


def injected_response(fault: FaultSpec, status: int) -> web.Response:
    """The fault's ``status`` with its ``Retry-After`` and body (a JSON error unless it
    names one)."""
    retry_after = fault.retry_after_header()
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    body = fault.body
    if body is None:
        body = json.dumps({"error": "injected_fault", "message": f"HTTP {status}"})
    return web.Response(status=status, text=body, content_type="application/json", headers=headers)


async def break_connection(request: web.Request, kind: ConnectionFault) -> web.StreamResponse:
    """Break the exchange the way a failing network or proxy does, instead of answering."""
    logger.info("injecting a %s connection on %s %s", kind, request.method, request.path)
    transport = request.transport
    if transport is None:  # the client has gone already
        raise asyncio.CancelledError
    if kind == "truncate":
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        response.content_length = 4096
        await response.prepare(request)
        await response.write(b'{"id": "cut-short", "items": [')
    elif kind == "garbage":
        transport.write(b"this is not HTTP\r\n\r\n")
    transport.close()
    raise asyncio.CancelledError  # aiohttp drops the request quietly, writing nothing more
