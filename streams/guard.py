"""Access control of the worker's web server: one aiohttp middleware in front of every route.

Deny by default: a route answers only what :meth:`WebGuard.allow` granted
it, and a route nobody listed (a new page, one of Faust's) needs an
``admin`` credential. Credentials are ``Authorization: Bearer <token>`` for
the JSON API, or the session cookie of ``POST /login``; a cookie-authenticated
POST must come from the server's own origin (``Origin`` and
``Sec-Fetch-Site``) and carry the session's ``X-CSRF-Token``. Every POST,
refused or not, becomes an :class:`~cdcsync.schemas.events.OperatorAction`
on the audit topic.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any, Literal

import faust
from aiohttp import web

from cdcsync.schemas.events import OperatorAction
from cdcsync.schemas.web import Role, WebConfig
from cdcsync.streams.auth import METRICS_ROLE, Principal, SessionStore, TokenStore

__all__ = [
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "Access",
    "ActionAuditor",
    "WebGuard",
    "is_secure",
    "note_entities",
    "principal_of",
    "set_principal",
]

log = logging.getLogger(__name__)

SESSION_COOKIE = "cdcsync_session"
CSRF_HEADER = "X-CSRF-Token"
#: ``public``: no credential; ``login``: same-origin only; ``signed``: the view checks a
#: Standard Webhooks signature; ``metrics``: see ``app.web.metrics``; else the least role.
Access = Role | Literal["public", "login", "signed", "metrics"]
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_PRINCIPAL = web.RequestKey("cdcsync_principal", Principal)
_ENTITY_IDS = web.RequestKey("cdcsync_entity_ids", list[str])
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class _RefusedError(Exception):
    """A request the guard answers itself: its status and reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def principal_of(request: Any) -> Principal | None:
    """The caller the guard authenticated for ``request`` (``None`` outside the guard)."""
    return request.get(_PRINCIPAL) if isinstance(request, MutableMapping) else None


def set_principal(request: Any, principal: Principal) -> None:
    """Note who is calling on ``request`` (the login view names the token it accepted)."""
    if isinstance(request, MutableMapping):
        request[_PRINCIPAL] = principal


def note_entities(request: Any, entity_ids: list[str]) -> None:
    """Name the entity ids a view acted on, for the audit record of its call."""
    if isinstance(request, MutableMapping):
        request[_ENTITY_IDS] = entity_ids


def _forwarded(request: web.Request, trusted: list[str], name: str) -> str | None:
    """A proxy's ``X-Forwarded-*`` header, believed only from a trusted proxy."""
    if request.remote not in trusted:
        return None
    value = request.headers.get(name)
    return value.split(",")[0].strip() if value else None


def is_secure(request: web.Request, web_config: WebConfig) -> bool:
    """True when the call came over TLS, directly or through a trusted proxy."""
    if web_config.secure_cookies != "auto":
        return web_config.secure_cookies == "always"
    proto = _forwarded(request, web_config.trusted_proxies, "X-Forwarded-Proto")
    return request.secure or proto == "https"


def _own_origin(request: web.Request, web_config: WebConfig) -> str:
    host = _forwarded(request, web_config.trusted_proxies, "X-Forwarded-Host") or request.host
    return f"{'https' if is_secure(request, web_config) else 'http'}://{host}"


def _cross_site(request: web.Request, web_config: WebConfig) -> str | None:
    """Why a browser request is cross-site (``Sec-Fetch-Site``, ``Origin``), else ``None``."""
    site = request.headers.get("Sec-Fetch-Site")
    if site and site not in ("same-origin", "none"):
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    origin = request.headers.get("Origin")
    allowed = {_own_origin(request, web_config), *web_config.allowed_origins}
    if origin is not None and origin not in allowed:
        return "cross-origin request refused (Origin does not match this server)"
    return None


def _direct_loopback(request: web.Request) -> bool:
    """True for a call from this machine that no proxy forwarded."""
    if "X-Forwarded-For" in request.headers or "Forwarded" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.remote or "")
    except ValueError:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return bool(address.is_loopback or (mapped is not None and mapped.is_loopback))


class ActionAuditor:
    """Sends operator actions to the audit topic; a lost record is logged, never raised."""

    def __init__(self, topic: faust.TopicT) -> None:
        self.topic = topic

    async def record(self, action: OperatorAction) -> None:
        """Queue one record, keyed by the first entity id (or the actor)."""
        key = action.entity_ids[0] if action.entity_ids else action.actor
        try:
            await self.topic.send(key=key.encode(), value=action.model_dump_json().encode())
        except Exception as exc:
            log.error("audit of %s by %s not written: %s", action.action, action.actor, exc)


class WebGuard:
    """The middleware, the access each route was granted, the tokens and the sessions."""

    def __init__(
        self,
        web_config: WebConfig,
        *,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = web_config
        self.tokens = TokenStore(web_config, environ=environ)
        self.sessions = SessionStore(web_config.session_ttl_s, clock=clock)
        self.access: dict[str, dict[str, Access]] = {}
        self.auditor: ActionAuditor | None = None
        #: Paths under which a browser's unauthenticated GET gets this HTML (still a 401).
        self.login_pages: dict[str, str] = {}

    def allow(self, path: str, **methods: Access) -> None:
        """Grant ``path`` its access per method (``GET="viewer"``); unlisted ones need admin."""
        self.access.setdefault(path, {}).update(methods)

    def application_options(self) -> dict[str, Any]:
        """Faust's ``web_application_options``: this guard as the aiohttp app's middleware."""

        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            return await self.middleware(request, handler)

        return {"middlewares": [guard]}

    def required(self, request: web.Request) -> Access:
        """What the matched route needs; any credential for an unknown path, admin if unlisted."""
        resource = request.match_info.route.resource
        if resource is None:  # no route: 404 or 405 for an authenticated caller only
            return "viewer"
        granted = self.access.get(resource.canonical, {})
        method = "GET" if request.method == "HEAD" else request.method
        return granted.get(method, "admin")

    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        """Authenticate, authorise, check CSRF, call the view, audit a POST."""
        access = self.required(request)
        if access == "public":
            return await handler(request)
        try:
            self._authenticate(request, access)
            response = await handler(request)
        except _RefusedError as exc:
            response = self._refusal(request, exc)
            if exc.status == 401:
                response.headers["WWW-Authenticate"] = 'Bearer realm="cdcsync"'
        except web.HTTPException as exc:
            await self._audit(request, exc.status)
            raise
        except Exception:
            await self._audit(request, 500)
            raise
        await self._audit(request, response.status)
        return response

    def _refusal(self, request: web.Request, exc: _RefusedError) -> web.Response:
        """The JSON refusal, or a login page for a browser's GET of a page (``login_pages``)."""
        if exc.status == 401 and request.method in _SAFE:
            for prefix, text in self.login_pages.items():
                if request.path.startswith(prefix) and "html" in request.headers.get("Accept", ""):
                    return web.Response(text=text, status=401, content_type="text/html")
        return web.json_response({"error": exc.reason}, status=exc.status)

    def _authenticate(self, request: web.Request, access: Access) -> None:
        """Note the caller on ``request``, or raise :class:`_RefusedError` (401 or 403)."""
        if access == "login":
            if reason := _cross_site(request, self.config):
                raise _RefusedError(403, reason)
            return
        if access == "signed":
            if not request.headers.get("webhook-signature"):
                raise _RefusedError(401, "a webhook needs its webhook-signature header")
            entity = request.match_info.get("entity", "?")
            set_principal(request, Principal(f"webhook:{entity}", "webhook", "signature"))
            return
        if access == "metrics" and self.config.metrics.access == "loopback":
            if _direct_loopback(request) and "Authorization" not in request.headers:
                set_principal(request, Principal("loopback", METRICS_ROLE, "loopback"))
                return
        principal = self._credential(request)
        set_principal(request, principal)
        if access == "metrics" and principal.role == METRICS_ROLE:
            return
        needed = "viewer" if access == "metrics" else access
        if not principal.allows(needed):
            have = principal.role
            raise _RefusedError(403, f"the {needed} role is needed (this token is {have})")

    def _credential(self, request: web.Request) -> Principal:
        """The bearer token's or the session cookie's caller; CSRF checked for a cookie POST."""
        header = request.headers.get("Authorization")
        if header is not None:
            scheme, _, token = header.partition(" ")
            found = self.tokens.identify(token.strip()) if scheme.lower() == "bearer" else None
            if found is None:
                raise _RefusedError(401, "unknown or malformed bearer token")
            return Principal(found[0], found[1], "bearer")
        cookie = request.cookies.get(SESSION_COOKIE)
        session = self.sessions.get(cookie) if cookie else None
        if session is None or not self.tokens.still_valid(session.name, session.token_digest):
            raise _RefusedError(401, "a bearer token or a session (POST /login) is needed")
        set_principal(request, Principal(session.name, session.role, "session"))
        if request.method not in _SAFE:
            if reason := _cross_site(request, self.config):
                raise _RefusedError(403, reason)
            given = request.headers.get(CSRF_HEADER, "")
            if not hmac.compare_digest(given.encode(), session.csrf_token.encode()):
                raise _RefusedError(403, f"the session's {CSRF_HEADER} header is missing or wrong")
        return Principal(session.name, session.role, "session")

    async def _audit(self, request: web.Request, status: int) -> None:
        """One record per state-changing call (every method but GET, HEAD, OPTIONS)."""
        if request.method in _SAFE or self.auditor is None:
            return
        principal = principal_of(request)
        resource = request.match_info.route.resource
        route = resource.canonical if resource is not None else request.path
        ids = request.get(_ENTITY_IDS) or (
            [request.match_info["entity_id"]] if "entity_id" in request.match_info else []
        )
        result: Literal["ok", "refused", "failed"] = (
            "ok" if status < 400 else "refused" if status < 500 else "failed"
        )
        await self.auditor.record(
            OperatorAction(
                actor=principal.name if principal else "anonymous",
                role=principal.role if principal else "none",
                action=f"{request.method} {route}",
                entity=request.match_info.get("entity"),
                entity_ids=ids,
                result=result,
                status=status,
                at_ms=int(time.time() * 1000),
            )
        )
