"""What a REST target is configured with, and how its credential is read and sent (never shown)."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from typing import Literal

import httpx
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from cdcsync.errors import ConfigurationError
from cdcsync.sinks.base import check_link_template

__all__ = ["HeaderAuth", "RestSettings", "read_token"]


class RestSettings(BaseModel):
    """Where the collection lives and how its JSON is shaped; secrets only by env var name."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    base_url: str
    collection_path: str
    object_type: str = Field(min_length=1)
    id_field: str = Field(default="id", min_length=1)
    version_field: str | None = "rowId"
    auth_header: str = Field(default="Authorization", min_length=1)
    auth_scheme: str = "Bearer"
    #: The credential, from the configuration's ``secrets: {token: {env|file: ...}}``.
    token: SecretStr | None = None
    #: Shorthand for an inline target: the environment variable holding the token.
    token_env: str | None = None
    #: How updates are sent: PUT replaces the mapped fields, PATCH merges them.
    update_method: Literal["PUT", "PATCH"] = "PUT"
    page_size: int = Field(default=100, ge=1, le=10_000)
    limit_param: str = "limit"
    cursor_param: str = "cursor"
    items_field: str = "items"
    next_field: str = "next"
    link_template: str | None = None
    #: The collection's bulk endpoint (the reference API's shape: ``{"operations": [...]}``
    #: answered by ``{"results": [...]}``); writes of concurrent changes then share calls.
    bulk_path: str | None = None
    bulk_max: int = Field(default=100, ge=2, le=1000)
    timeout_s: float = Field(default=10.0, gt=0)
    max_connections: int = Field(default=20, ge=1)
    #: The API's budget across all workers; each worker takes 1/workers
    #: (see sinks.delivery.ratelimit).
    rate_limit_rps: float | None = Field(default=None, gt=0)
    max_concurrency: int | None = Field(default=None, ge=1)
    #: Workers sharing the budget; unset: $CDCSYNC_WORKERS, else 1.
    workers: int | None = Field(default=None, ge=1)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        try:
            url = httpx.URL(value)
        except httpx.InvalidURL as exc:
            raise ValueError(f"is not a URL ({exc})") from exc
        if url.scheme not in ("http", "https") or not url.host:
            raise ValueError("must be an absolute http(s) URL, e.g. https://crm.example.com")
        return value.rstrip("/")

    @field_validator("collection_path", "bulk_path")
    @classmethod
    def _absolute_path(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError("must start with '/', e.g. /api/v1/contacts")
        return value.rstrip("/")

    @field_validator("link_template")
    @classmethod
    def _known_placeholders(cls, value: str | None) -> str | None:
        return check_link_template(value, "base_url", "collection_path", "object_type", "id")


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


class HeaderAuth(httpx.Auth):
    """Adds the credential to each request without it ever sitting in the client's headers."""

    def __init__(self, header: str, scheme: str, token: SecretStr) -> None:
        self._header, self._scheme, self._token = header, scheme, token

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        secret = self._token.get_secret_value()
        request.headers[self._header] = f"{self._scheme} {secret}" if self._scheme else secret
        yield request

    def __repr__(self) -> str:
        return f"HeaderAuth(header={self._header!r}, token={self._token})"
