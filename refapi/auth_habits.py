"""How the reference API checks credentials, in the habit of the API it imitates.

- ``bearer`` (own): ``Authorization: Bearer <token>``.
- ``query``: the token in a query parameter (``?api_key=<token>``), removed from the
  request before it is served (so it is never taken for a listing filter).
- ``basic``: HTTP Basic with the user ``basic_user`` and the token as the password.
- ``oauth2``: bearer tokens issued by ``POST /oauth/token`` (client credentials: the
  client id ``client_id`` and the token as the client secret, in the form or as HTTP
  Basic), each valid ``token_ttl_s`` seconds; :meth:`Authenticator.revoke` ends them early.

Without a token the API is open whatever the habit (and the token endpoint issues tokens
to the right client id alone).
"""

from __future__ import annotations

import base64
import binascii
import hmac
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal

from aiohttp import web

from .answers import error_response

__all__ = ["AuthMode", "Authenticator"]

logger = logging.getLogger(__name__)

AuthMode = Literal["bearer", "query", "basic", "oauth2"]


class Authenticator:
    """Checks each ``/api`` request's credential and issues OAuth2 tokens; counts them."""

    def __init__(self, token: str | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._token = token
        self._clock = clock
        self._issued: dict[str, float] = {}  # access token -> when it expires
        self.tokens_issued = 0

    def reset(self) -> None:
        """Forget every issued token and the count."""
        self._issued.clear()
        self.tokens_issued = 0

    def revoke(self) -> int:
        """End every issued token now (a client then meets a 401); how many there were."""
        count = len(self._issued)
        self._issued.clear()
        return count

    def stats(self) -> dict[str, int]:
        """Tokens issued since the last reset, and those still valid."""
        now = self._clock()
        active = sum(1 for expires in self._issued.values() if expires > now)
        return {"tokens_issued": self.tokens_issued, "tokens_active": active}

    def check(
        self, request: web.Request, mode: AuthMode, *, query_param: str, basic_user: str
    ) -> web.Response | None:
        """``None`` when the request carries a valid credential for ``mode``, else a 401."""
        if self._token is None:
            return None
        if mode == "query":
            given = request.query.get(query_param, "")
            if _same(given, self._token):
                return None
            return _unauthorized(f"a valid {query_param} query parameter is required", "")
        if mode == "basic":
            if _same(_basic(request) or "", f"{basic_user}:{self._token}"):
                return None
            return _unauthorized("valid basic credentials are required", 'Basic realm="refapi"')
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        valid = (
            self._live(given) if mode == "oauth2" else _same(given, self._token)  # bearer
        )
        if scheme.lower() == "bearer" and valid:
            return None
        what = "a valid OAuth2 access token" if mode == "oauth2" else "a valid bearer token"
        return _unauthorized(f"{what} is required", 'Bearer realm="refapi"')

    async def token_endpoint(
        self, request: web.Request, *, client_id: str, ttl_s: int
    ) -> web.Response:
        """``POST /oauth/token``: a client-credentials grant answered with a bearer token."""
        form = await request.post()
        given_id, given_secret = form.get("client_id"), form.get("client_secret")
        if (pair := _basic(request)) is not None:
            given_id, _, given_secret = pair.partition(":")
        if form.get("grant_type") != "client_credentials":
            return _oauth_error(400, "unsupported_grant_type", "only client_credentials")
        wrong_secret = self._token is not None and not _same(str(given_secret), self._token)
        if not isinstance(given_id, str) or not _same(given_id, client_id) or wrong_secret:
            return _oauth_error(401, "invalid_client", "unknown client or wrong secret")
        now = self._clock()
        self._issued = {t: exp for t, exp in self._issued.items() if exp > now}
        access = secrets.token_urlsafe(24)
        self._issued[access] = now + ttl_s
        self.tokens_issued += 1
        body: dict[str, Any] = {"access_token": access, "token_type": "Bearer", "expires_in": ttl_s}
        if scope := form.get("scope"):
            body["scope"] = scope
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    def _live(self, access: str) -> bool:
        expires = self._issued.get(access)
        return expires is not None and expires > self._clock()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


def _basic(request: web.Request) -> str | None:
    """The ``user:password`` of an ``Authorization: Basic`` header, if any."""
    scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None


def _unauthorized(message: str, challenge: str) -> web.Response:
    headers = {"WWW-Authenticate": challenge} if challenge else {}
    return error_response(401, "unauthorized", message, **headers)


def _oauth_error(status: int, code: str, description: str) -> web.Response:
    """An RFC 6749 §5.2 error answer."""
    body = {"error": code, "error_description": description}
    return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})
