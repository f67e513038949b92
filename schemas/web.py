"""The worker's web server settings (``app.web``): bind address, access tokens, sessions.

Tokens never live in the file: each names where its secret comes from (an
environment variable or a file, the shape of an integration's ``secrets:``)
and the role it grants. The worker reads them (``cdcsync.streams.auth``);
these are shapes only.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from cdcsync.schemas.integrations import SecretRef

__all__ = ["ROLES", "MetricsAccess", "Role", "TokenRef", "WebConfig"]

#: What a token may do, each role including the ones before it.
Role = Literal["viewer", "operator", "admin"]
ROLES: tuple[Role, ...] = ("viewer", "operator", "admin")


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TokenRef(SecretRef):
    """One access token: where its secret is read from and the role it grants."""

    role: Role


class MetricsAccess(_Model):
    """Who may scrape ``/metrics``: loopback callers without a token, or holders of a token.

    ``loopback``: a direct call from 127.0.0.1 or ::1 (not through a proxy)
    needs no token; anyone else needs a viewer token. ``token``: the scraper's
    own token (``token:``) or any viewer token, wherever the call comes from.
    """

    access: Literal["loopback", "token"] = "loopback"
    token: SecretRef | None = None

    @model_validator(mode="after")
    def _token_given(self) -> MetricsAccess:
        if self.access == "token" and self.token is None:
            raise ValueError("access: token needs `token: {env: VARIABLE}` or `{file: path}`")
        return self


class WebConfig(_Model):
    """The HTTP endpoints: where they listen and who may call them (deny by default)."""

    #: The interface the server binds: loopback unless exposed on purpose (``0.0.0.0``).
    bind: str = "127.0.0.1"
    #: How other workers and links reach this one; empty: the bind address, or the host name.
    host: str | None = None
    #: Named tokens (the name is who acts in the audit trail), each with its role.
    tokens: dict[str, TokenRef] = Field(default_factory=dict)
    metrics: MetricsAccess = MetricsAccess()
    #: A session cookie from ``POST /login`` lasts this long.
    session_ttl_s: float = Field(default=8 * 3600, gt=0)
    #: ``Secure`` cookies: ``auto`` when the call came over TLS (directly or via a trusted proxy).
    secure_cookies: Literal["auto", "always", "never"] = "auto"
    #: Proxies whose ``X-Forwarded-Proto`` / ``X-Forwarded-Host`` are believed.
    trusted_proxies: list[str] = Field(default_factory=lambda: ["127.0.0.1", "::1"])
    #: Origins besides the server's own that may POST with a session cookie.
    allowed_origins: list[str] = Field(default_factory=list)
    #: Per entity, where its webhook secrets come from (re-read on every call: rotation).
    webhook_secrets: dict[str, list[SecretRef]] = Field(default_factory=dict)
