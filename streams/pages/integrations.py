"""``GET /ui/integrations``: each configuration, its provider, target, limits; never a secret.

Shown per integration (and per entity whose target names a provider
inline): enabled, the target URL without credentials or query string, the
rate limit and concurrency, the entities using it, the names of its secrets
(never their values or where they are read from), and when this worker last
completed a change through its API.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from cdcsync import metrics
from cdcsync.schemas.config import Config
from cdcsync.streams.pages.layout import Viewer, esc, page, render_table, when

__all__ = ["integrations_html", "public_url", "without_credentials"]

_URL_SETTINGS = ("base_url", "url", "endpoint")


_SECRET_PARAMS = ("key", "token", "secret", "password", "sig", "auth")


def without_credentials(url: str) -> str:
    """``url`` without user info and without query parameters named like a credential."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not any(word in k.lower() for word in _SECRET_PARAMS)
    ]
    return urlunsplit((parts.scheme, netloc, parts.path, urlencode(query), parts.fragment))


def public_url(settings: dict[str, Any]) -> str | None:
    """The target URL of provider settings, without user info, query or fragment."""
    for name in _URL_SETTINGS:
        value = settings.get(name)
        if isinstance(value, str) and value:
            parts = urlsplit(value)
            host = parts.hostname or ""
            netloc = f"{host}:{parts.port}" if parts.port else host
            return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    if isinstance(settings.get("table"), str):
        return f"table {settings['table']}"
    return None


def _rows(config: Config) -> list[list[str]]:
    users: dict[str, list[str]] = {}
    for name in config.entities:
        key = config.entities[name].target.integration or f"{name} (inline)"
        users.setdefault(key, []).append(name)
    rows = []
    for key, entities in sorted(users.items()):
        target = config.target(entities[0])
        settings = target.settings
        last = max((metrics.last_write_ms(e) or 0 for e in entities), default=0)
        description = config.integrations[key].description if key in config.integrations else None
        rows.append([
            esc(key), esc(target.provider), "yes" if target.enabled else "no",
            esc(public_url(settings)), esc(settings.get("rate_limit_rps") or "none"),
            esc(settings.get("max_concurrency") or "-"), esc(", ".join(entities)),
            esc(", ".join(sorted(target.secrets)) or "-"), when(last or None), esc(description),
        ])  # fmt: skip
    return rows


def integrations_html(config: Config, viewer: Viewer) -> str:
    """The integrations page."""
    headers = ("integration", "provider", "enabled", "target", "rate limit (rps)",
               "max concurrency", "entities", "secrets (names)", "last successful call",
               "description")  # fmt: skip
    note = ('<p class="muted">Settings shown for the first entity of each integration; '
            "the last successful call is this worker's, since it started.</p>")  # fmt: skip
    return page("Integrations", note + render_table(headers, _rows(config)), viewer)
