"""Login sessions over HTTP: ``POST /login`` with a token, ``GET /session``, ``POST /logout``.

The answer to a login is JSON (the page comes later): who, which role, the
CSRF token the session's POSTs must send in ``X-CSRF-Token``, and when it
expires; the session itself is a cookie (``HttpOnly``, ``SameSite=Strict``,
``Secure`` over TLS). Failed logins from one address are throttled.
"""

from __future__ import annotations

import json
import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any, cast

import faust
from aiohttp import web
from faust.web import Request, Response, View

from cdcsync.streams.auth import Principal
from cdcsync.streams.guard import (
    CSRF_HEADER,
    SESSION_COOKIE,
    WebGuard,
    is_secure,
    principal_of,
    set_principal,
)

__all__ = ["LoginThrottle", "register_session_pages"]

log = logging.getLogger(__name__)


class LoginThrottle:
    """At most ``max_failures`` failed logins per address within ``window_s``."""

    def __init__(
        self,
        *,
        max_failures: int = 5,
        window_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self.clock = clock
        self._failures: dict[str, deque[float]] = {}

    def blocked(self, address: str) -> bool:
        """True while ``address`` has used up its failures of the window."""
        times = self._failures.get(address)
        if not times:
            return False
        while times and times[0] <= self.clock() - self.window_s:
            times.popleft()
        if not times:
            del self._failures[address]
        return len(times) >= self.max_failures

    def failed(self, address: str) -> None:
        """Count one failed login of ``address``."""
        if len(self._failures) > 10_000:  # bounded under a spray of addresses
            self._failures.clear()
        self._failures.setdefault(address, deque()).append(self.clock())


async def _token_from(request: Request) -> str:
    """The ``token`` field of a JSON or form body ("" when absent)."""
    req = cast(web.Request, request)
    if req.content_type == "application/x-www-form-urlencoded":
        value: Any = (await req.post()).get("token")
    else:
        try:
            body = json.loads(await req.read() or b"{}")
        except ValueError:
            return ""
        value = body.get("token") if isinstance(body, dict) else None
    return value.strip() if isinstance(value, str) else ""


def register_session_pages(app: faust.App, guard: WebGuard) -> None:
    """Add ``/login``, ``/session`` and ``/logout`` to ``app`` and grant their access."""
    app.page("/login")(_login_view(guard, LoginThrottle()))
    app.page("/session")(_session_view(guard))
    app.page("/logout")(_logout_view(guard))
    guard.allow("/login", POST="login")
    guard.allow("/session", GET="viewer")
    guard.allow("/logout", POST="viewer")


def _login_view(guard: WebGuard, throttle: LoginThrottle) -> type[View]:
    """``POST /login``: a token in, a session cookie and its CSRF token out."""

    class Login(View):
        """POST /login: a token in, a session cookie and its CSRF token out."""

        async def post(self, request: Request) -> Response:
            address = cast(web.Request, request).remote or "?"
            if throttle.blocked(address):
                return self.json({"error": "too many failed logins; wait a minute"}, status=429)
            found = guard.tokens.identify(await _token_from(request))
            if found is None or found[1] not in ("viewer", "operator", "admin"):
                throttle.failed(address)
                log.warning("failed login from %s", address)
                return self.json({"error": "unknown token"}, status=401)
            name, role, digest = found
            cookie, session = guard.sessions.open(name, role, digest)
            set_principal(request, Principal(name, role, "login"))
            answer = _describe(
                session_name=name, role=role,
                csrf_token=session.csrf_token, expires_at=session.expires_at,
            )  # fmt: skip
            response = cast(web.Response, self.json(answer))
            response.set_cookie(
                SESSION_COOKIE, cookie, max_age=int(guard.config.session_ttl_s), path="/",
                httponly=True, samesite="Strict", secure=is_secure(cast(web.Request, request),
                guard.config),
            )  # fmt: skip
            return cast(Response, response)

    return Login


def _session_view(guard: WebGuard) -> type[View]:
    """``GET /session``: who is logged in, the role, and the session's CSRF token."""

    class SessionInfo(View):
        """GET /session: who is logged in, the role, and the session's CSRF token."""

        async def get(self, request: Request) -> Response:
            who = principal_of(request)
            assert who is not None  # the guard let the call through
            cookie = cast(web.Request, request).cookies.get(SESSION_COOKIE, "")
            session = guard.sessions.get(cookie) if who.via == "session" else None
            return self.json(_describe(
                session_name=who.name, role=who.role,
                csrf_token=session.csrf_token if session else None,
                expires_at=session.expires_at if session else None,
            ))  # fmt: skip

    return SessionInfo


def _logout_view(guard: WebGuard) -> type[View]:
    """``POST /logout``: end the session and clear its cookie."""

    class Logout(View):
        """POST /logout: end the session and clear its cookie."""

        async def post(self, request: Request) -> Response:
            cookie = cast(web.Request, request).cookies.get(SESSION_COOKIE)
            if cookie:
                guard.sessions.close(cookie)
            response = cast(web.Response, self.json({"logged_out": True}))
            response.del_cookie(SESSION_COOKIE, path="/")
            return cast(Response, response)

    return Logout


def _describe(
    *, session_name: str, role: str, csrf_token: str | None, expires_at: float | None
) -> dict[str, Any]:
    """The JSON of a login or ``GET /session`` answer."""
    return {
        "name": session_name,
        "role": role,
        "csrf_header": CSRF_HEADER,
        "csrf_token": csrf_token,
        "expires_ms": int(expires_at * 1000) if expires_at is not None else None,
    }
