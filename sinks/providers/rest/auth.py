"""How a REST sink's calls carry the credential: a header, HTTP Basic, a query parameter,
OAuth2 client credentials, or nothing (setting ``auth``).

Each is an ``httpx.Auth``, so the secret is added to each request as it leaves and never
sits in the client's headers, base URL or repr; each names its secrets
(:meth:`SecretAuth.secrets`) so error texts can redact them.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections.abc import AsyncGenerator, Callable, Generator, Mapping
from typing import Any

import httpx
from pydantic import SecretStr

from cdcsync.errors import ConfigurationError, SinkError, SinkTransientError
from cdcsync.sinks.delivery.ratelimit import parse_retry_after
from cdcsync.sinks.providers.rest.failures import is_transient_status
from cdcsync.sinks.providers.rest.settings import RestSettings

__all__ = [
    "BasicAuth",
    "HeaderAuth",
    "OAuth2ClientCredentials",
    "QueryAuth",
    "RedactingFilter",
    "SecretAuth",
    "make_auth",
    "read_token",
]

logger = logging.getLogger(__name__)

#: A token is refreshed this long before it expires (at most half its lifetime).
REFRESH_MARGIN_S = 30.0


def read_token(settings: RestSettings, environ: Mapping[str, str]) -> SecretStr | None:
    """The credential: the ``token`` secret, else the variable ``token_env`` names, else none."""
    if settings.token is not None:
        return settings.token
    if settings.token_env is None:
        return None
    value = environ.get(settings.token_env, "")
    if not value.strip():
        raise ConfigurationError(
            f"{settings.object_type} sink: the environment variable {settings.token_env} "
            "(named by token_env) is not set or empty; export the API token in it"
        )
    return SecretStr(value.strip())


def make_auth(
    settings: RestSettings,
    token: SecretStr | None,
    *,
    clock: Callable[[], float] = time.monotonic,
) -> SecretAuth | None:
    """The ``httpx.Auth`` the ``auth`` setting names, or ``None`` when no credential is sent."""
    match settings.auth:
        case "none":
            return None
        case "oauth2":
            return OAuth2ClientCredentials(settings, clock=clock)
        case _ if token is None:
            return None  # header auth without a token: today's behaviour, no credential
        case "basic":
            assert settings.username is not None  # the settings validator requires it
            return BasicAuth(settings.username, token)
        case "query":
            return QueryAuth(settings.auth_query_param, token)
        case _:
            return HeaderAuth(settings.auth_header, settings.auth_scheme, token)


class SecretAuth(httpx.Auth):
    """An ``httpx.Auth`` that can name the secret values it sends, for redaction."""

    def secrets(self) -> list[str]:
        """Every secret value this auth sends or holds, as sent (never logged)."""
        return []


class HeaderAuth(SecretAuth):
    """The token in a header: ``Authorization: Bearer <token>``, or bare (``X-API-Key``)."""

    def __init__(self, header: str, scheme: str, token: SecretStr) -> None:
        self._header, self._scheme, self._token = header, scheme, token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the header on the request as it leaves."""
        secret = self._token.get_secret_value()
        request.headers[self._header] = f"{self._scheme} {secret}" if self._scheme else secret
        yield request

    def secrets(self) -> list[str]:
        """The token."""
        return [self._token.get_secret_value()]

    def __repr__(self) -> str:
        return f"HeaderAuth(header={self._header!r}, token={self._token})"


class BasicAuth(SecretAuth):
    """HTTP Basic: ``username`` and the secret token as the password."""

    def __init__(self, username: str, password: SecretStr) -> None:
        self._username, self._password = username, password

    def _encoded(self) -> str:
        pair = f"{self._username}:{self._password.get_secret_value()}".encode()
        return base64.b64encode(pair).decode("ascii")

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set ``Authorization: Basic ...`` on the request as it leaves."""
        request.headers["Authorization"] = f"Basic {self._encoded()}"
        yield request

    def secrets(self) -> list[str]:
        """The password, and the encoded pair as it appears in the header."""
        return [self._password.get_secret_value(), self._encoded()]

    def __repr__(self) -> str:
        return f"BasicAuth(username={self._username!r}, password={self._password})"


class QueryAuth(SecretAuth):
    """The token in a query parameter (``?api_key=...``), as some APIs want it."""

    def __init__(self, param: str, token: SecretStr) -> None:
        self._param, self._token = param, token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Add (or replace) the parameter on the request's URL as it leaves."""
        request.url = request.url.copy_merge_params({self._param: self._token.get_secret_value()})
        yield request

    def secrets(self) -> list[str]:
        """The token."""
        return [self._token.get_secret_value()]

    def __repr__(self) -> str:
        return f"QueryAuth(param={self._param!r}, token={self._token})"


class OAuth2ClientCredentials(SecretAuth):
    """OAuth2 client credentials (RFC 6749 §4.4): a bearer token from ``token_url``.

    The token is fetched on the first call, refreshed ``REFRESH_MARGIN_S`` before it
    expires, and once more when the API answers 401 (revoked early); a second 401 is
    the API's answer. Concurrent calls share one token request.
    """

    def __init__(self, settings: RestSettings, *, clock: Callable[[], float]) -> None:
        assert settings.token_url and settings.client_id and settings.client_secret
        self._settings = settings
        self._token_url, self._client_id = settings.token_url, settings.client_id
        self._client_secret = settings.client_secret
        #: Monotonic seconds, for expiry (replaceable, e.g. by a test's fake clock).
        self.clock = clock
        self._lock = asyncio.Lock()
        self._access: str | None = None
        self._refresh_at: float | None = None
        #: Tokens obtained so far (for tests and metrics).
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return (
            f"OAuth2ClientCredentials(token_url={self._token_url!r}, "
            f"client_id={self._client_id!r}, client_secret={self._client_secret})"
        )

    def is_token_request(self, request: httpx.Request) -> bool:
        """Whether ``request`` is this auth's own token request (its body holds the secret)."""
        return request.method == "POST" and str(request.url) == self._token_url

    def secrets(self) -> list[str]:
        """The client secret and the current access token."""
        values = [self._client_secret.get_secret_value()]
        return values + ([self._access] if self._access else [])

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        """Not supported: the sink's client is asynchronous."""
        raise RuntimeError("OAuth2ClientCredentials works with httpx.AsyncClient only")

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        """Send ``request`` with a fresh enough token; on a 401, refresh once and resend."""
        if self._stale():
            async with self._lock:
                if self._stale():
                    answer = yield self._token_request()
                    await self._store(answer)
        used = self._authorize(request)
        response = yield request
        if response.status_code != 401:
            return
        async with self._lock:
            if self._access == used:  # nobody refreshed it meanwhile
                logger.info("%s API: 401 with the OAuth2 token; fetching a new one", self._what)
                answer = yield self._token_request()
                await self._store(answer)
        self._authorize(request)
        yield request

    @property
    def _what(self) -> str:
        return self._settings.object_type

    def _stale(self) -> bool:
        if self._access is None:
            return True
        return self._refresh_at is not None and self.clock() >= self._refresh_at

    def _authorize(self, request: httpx.Request) -> str | None:
        s, token = self._settings, self._access or ""
        request.headers[s.auth_header] = f"{s.auth_scheme} {token}" if s.auth_scheme else token
        return self._access

    def _token_request(self) -> httpx.Request:
        data = {
            "grant_type": "client_credentials",
            "client_id": self._client_id,
            "client_secret": self._client_secret.get_secret_value(),
        }
        if self._settings.scope:
            data["scope"] = self._settings.scope
        return httpx.Request(
            "POST", self._token_url, data=data, headers={"Accept": "application/json"}
        )

    async def _store(self, response: httpx.Response) -> None:
        """Keep the token of a token answer, or raise why there is none."""
        await response.aread()
        body = _json_or_none(response)
        if not response.is_success:
            raise self._refused(response, body)
        token = body.get("access_token") if isinstance(body, dict) else None
        token_type = body.get("token_type", "bearer") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or str(token_type).lower() != "bearer":
            raise ConfigurationError(
                f"{self._what} API: the OAuth2 token endpoint {self._token_url} answered "
                f"HTTP {response.status_code} without a bearer access_token; check token_url"
            )
        expires_in = body.get("expires_in") if isinstance(body, dict) else None
        self._access, self._refresh_at = token, None
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool):
            margin = min(REFRESH_MARGIN_S, expires_in / 2)
            self._refresh_at = self.clock() + expires_in - margin
        self.tokens_fetched += 1

    def _refused(self, response: httpx.Response, body: Any) -> SinkError | ConfigurationError:
        """A failed token request: transient when the server is busy, else configuration."""
        status, error = response.status_code, ""
        if isinstance(body, dict) and body.get("error"):
            error = f" {body['error']}: {str(body.get('error_description') or '')[:120]}"
        error = error.replace(self._client_secret.get_secret_value(), "**********")
        what = f"{self._what} API: the OAuth2 token endpoint {self._token_url} answered"
        if is_transient_status(status):
            retry_after = parse_retry_after(response.headers.get("Retry-After"))
            return SinkTransientError(
                f"{what} HTTP {status}{error}; the token server is busy or down, will retry",
                status_code=status,
                retry_after=retry_after,
            )
        hint = "check client_id, the secret client_secret and scope"
        if status not in (400, 401, 403):
            hint = "check token_url"
        return ConfigurationError(f"{what} HTTP {status}{error}; {hint}")


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


class RedactingFilter(logging.Filter):
    """Redacts a sink's secrets from the lines of a library logger (httpx logs each URL)."""

    def __init__(self, redact: Callable[[str], str]) -> None:
        super().__init__()
        self._redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite the record's message without the secrets; never drops a line."""
        message = record.getMessage()
        redacted = self._redact(message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
