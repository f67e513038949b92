"""Who is calling the worker: named tokens read from secrets, and login sessions.

Tokens are read from their environment variable or file (``app.web.tokens``)
again every few seconds, so a rotated or revoked token takes effect without a
restart. A presented token is hashed and compared with every configured one
in constant time; only digests are kept, and no message ever holds a token.
Sessions (``POST /login``) live in this worker's memory with an absolute
expiry, and end early when the token they were opened with changes.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.integrations import SecretRef
from cdcsync.schemas.web import ROLES, WebConfig
from cdcsync.sinks.secrets import resolve_secrets

__all__ = [
    "METRICS_ROLE",
    "MIN_TOKEN_LENGTH",
    "Principal",
    "Session",
    "SessionStore",
    "TokenStore",
    "digest",
    "rank",
]

log = logging.getLogger(__name__)

#: Tokens shorter than this are refused (and said so in the log, by name).
MIN_TOKEN_LENGTH = 16
#: The role of ``app.web.metrics.token``: ``/metrics`` and nothing else.
METRICS_ROLE = "metrics"
_METRICS_TOKEN = "metrics-scraper"
_RANKS: dict[str, int] = {role: place for place, role in enumerate(ROLES, start=1)}


def digest(token: str) -> bytes:
    """SHA-256 of a token: what is kept and compared, never the token itself."""
    return hashlib.sha256(token.encode()).digest()


def rank(role: str) -> int:
    """0 for a role outside viewer < operator < admin, else its place (1-3)."""
    return _RANKS.get(role, 0)


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: its name (the token's), role, and how it proved it."""

    name: str
    role: str
    via: str

    def allows(self, role: str) -> bool:
        """True when this caller's role includes ``role`` (viewer < operator < admin)."""
        return rank(self.role) >= rank(role) > 0


@dataclass(frozen=True)
class _Known:
    name: str
    role: str
    digest: bytes


class TokenStore:
    """The configured tokens as digests, re-read from their sources every ``refresh_s``."""

    def __init__(
        self,
        web: WebConfig,
        *,
        refresh_s: float = 5.0,
        environ: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.refs: dict[str, tuple[SecretRef, str]] = {
            name: (ref, ref.role) for name, ref in web.tokens.items()
        }
        if web.metrics.token is not None:
            self.refs[_METRICS_TOKEN] = (web.metrics.token, METRICS_ROLE)
        self.refresh_s = refresh_s
        self.environ = environ
        self.clock = clock
        self._known: list[_Known] = []
        self._loaded_at: float | None = None
        self._warned: set[str] = set()

    def _read(self, name: str, ref: SecretRef) -> str | None:
        try:
            value = resolve_secrets({name: ref}, where="app.web.tokens", environ=self.environ)[name]
        except ConfigurationError as exc:
            if name not in self._warned:
                log.warning("access token %s unusable: %s", name, exc)
            self._warned.add(name)
            return None
        secret = value.get_secret_value()
        if len(secret) < MIN_TOKEN_LENGTH:
            if name not in self._warned:
                log.warning(
                    "access token %s refused: shorter than %d characters (%s)",
                    name, MIN_TOKEN_LENGTH, ref.describe(),
                )  # fmt: skip
            self._warned.add(name)
            return None
        self._warned.discard(name)
        return secret

    def known(self) -> list[_Known]:
        """The usable tokens, re-read when older than ``refresh_s``."""
        now = self.clock()
        if self._loaded_at is None or now - self._loaded_at >= self.refresh_s:
            known = []
            for name, (ref, role) in self.refs.items():
                secret = self._read(name, ref)
                if secret is not None:
                    known.append(_Known(name, role, digest(secret)))
            self._known, self._loaded_at = known, now
        return self._known

    def identify(self, token: str) -> tuple[str, str, bytes] | None:
        """``(name, role, digest)`` of the token, compared with every known one in constant time."""
        given = digest(token)
        found = None
        for entry in self.known():
            if hmac.compare_digest(entry.digest, given):
                found = (entry.name, entry.role, entry.digest)
        return found

    def still_valid(self, name: str, token_digest: bytes) -> bool:
        """True while the token ``name`` still has this digest (not rotated or revoked)."""
        return any(
            e.name == name and hmac.compare_digest(e.digest, token_digest) for e in self.known()
        )


@dataclass(frozen=True)
class Session:
    """One login: who, the CSRF token its forms carry, when it ends."""

    name: str
    role: str
    csrf_token: str
    token_digest: bytes
    expires_at: float


class SessionStore:
    """Sessions of this worker, by the digest of their cookie; bounded, oldest dropped first."""

    def __init__(
        self,
        ttl_s: float,
        *,
        max_sessions: int = 10_000,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl_s = ttl_s
        self.max_sessions = max_sessions
        self.clock = clock
        self._sessions: OrderedDict[bytes, Session] = OrderedDict()

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, name: str, role: str, token_digest: bytes) -> tuple[str, Session]:
        """A new session: its cookie value (returned once, kept only as a digest) and itself."""
        self._expire()
        cookie = secrets.token_urlsafe(32)
        session = Session(
            name=name,
            role=role,
            csrf_token=secrets.token_urlsafe(32),
            token_digest=token_digest,
            expires_at=self.clock() + self.ttl_s,
        )
        self._sessions[digest(cookie)] = session
        while len(self._sessions) > self.max_sessions:
            self._sessions.popitem(last=False)
        return cookie, session

    def get(self, cookie: str) -> Session | None:
        """The live session of a cookie; ``None`` when unknown or expired."""
        key = digest(cookie)
        session = self._sessions.get(key)
        if session is not None and session.expires_at <= self.clock():
            del self._sessions[key]
            return None
        return session

    def close(self, cookie: str) -> None:
        """End the session of a cookie (logout)."""
        self._sessions.pop(digest(cookie), None)

    def _expire(self) -> None:
        now = self.clock()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]
