"""Standard Webhooks signature verification: pure, no I/O, tested with known vectors.

An external system notifies a change with three headers: ``webhook-id`` (a
unique message id), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>`` entries over
``"<id>.<timestamp>.<raw body>"``). A request is accepted when one signature
matches one of the entity's secrets (several secrets = key rotation), its
timestamp is within the tolerance of now (5 minutes), and its id was not seen
before within the time such a timestamp stays acceptable (replay protection).

Secrets are ``whsec_<base64>`` strings (the bare base64 is accepted too).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config

__all__ = [
    "DEFAULT_TOLERANCE_S",
    "SeenIds",
    "WebhookRejectedError",
    "parse_secret",
    "secret_env_names",
    "secrets_for",
    "sign",
    "verify",
]

DEFAULT_TOLERANCE_S = 300
_PREFIX = "whsec_"


class WebhookRejectedError(Exception):
    """A webhook call that must be refused: ``status`` (400 or 401) and the reason."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def parse_secret(secret: str) -> bytes:
    """The key bytes of a ``whsec_<base64>`` secret; raises ConfigurationError if unusable."""
    text = secret.strip()
    text = text.removeprefix(_PREFIX)
    try:
        key = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError("a webhook secret must be whsec_<base64>") from None
    if not key:
        raise ConfigurationError("a webhook secret must not be empty")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of ``body`` for ``msg_id`` at ``timestamp``."""
    signed = msg_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def _header(headers: Mapping[str, str], name: str) -> str:
    for key, value in headers.items():
        if key.lower() == name:
            return value.strip()
    return ""


def verify(
    headers: Mapping[str, str],
    body: bytes,
    keys: Sequence[bytes],
    *,
    now_s: float,
    tolerance_s: float = DEFAULT_TOLERANCE_S,
) -> tuple[str, int]:
    """Check one call; returns ``(webhook id, timestamp)`` or raises WebhookRejectedError.

    Missing or malformed headers are 400; an expired, future or badly signed
    call is 401. Replay protection is :class:`SeenIds`' job, after this passes.
    """
    msg_id = _header(headers, "webhook-id")
    stamp = _header(headers, "webhook-timestamp")
    signatures = _header(headers, "webhook-signature")
    missing = [
        n
        for n, v in (
            ("webhook-id", msg_id),
            ("webhook-timestamp", stamp),
            ("webhook-signature", signatures),
        )
        if not v
    ]
    if missing:
        raise WebhookRejectedError(400, f"missing header(s): {', '.join(missing)}")
    if not re.fullmatch(r"\d{1,12}", stamp):
        raise WebhookRejectedError(400, "webhook-timestamp must be Unix seconds")
    timestamp = int(stamp)
    if timestamp < now_s - tolerance_s:
        raise WebhookRejectedError(401, "webhook-timestamp too old")
    if timestamp > now_s + tolerance_s:
        raise WebhookRejectedError(401, "webhook-timestamp too far in the future")
    if not keys:
        raise WebhookRejectedError(401, "no webhook secret is configured for this endpoint")
    given = []
    for entry in signatures.split():
        version, _, value = entry.partition(",")
        if version != "v1" or not value:
            continue
        try:
            given.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    if not given:
        raise WebhookRejectedError(401, "no v1 signature in webhook-signature")
    for key in keys:
        expected = base64.b64decode(sign(key, msg_id, timestamp, body).partition(",")[2])
        if any(hmac.compare_digest(expected, sig) for sig in given):
            return msg_id, timestamp
    raise WebhookRejectedError(401, "no signature matches")


class SeenIds:
    """Webhook ids accepted recently, forgotten once their timestamp can no longer pass.

    An id is kept for twice the tolerance (a timestamp is acceptable from
    ``now - tolerance`` to ``now + tolerance``), and at most ``max_ids`` of
    them (the oldest go first), so memory stays bounded under any load.
    """

    def __init__(self, *, tolerance_s: float = DEFAULT_TOLERANCE_S, max_ids: int = 100_000) -> None:
        self.keep_s = 2 * tolerance_s
        self.max_ids = max_ids
        self._seen: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _expire(self, now_s: float) -> None:
        while self._seen:
            oldest_id, seen_at = next(iter(self._seen.items()))
            if seen_at > now_s - self.keep_s and len(self._seen) <= self.max_ids:
                break
            del self._seen[oldest_id]

    def first_time(self, msg_id: str, *, now_s: float) -> bool:
        """Record ``msg_id``; ``False`` if it was already seen (a replay)."""
        self._expire(now_s)
        if msg_id in self._seen:
            return False
        self._seen[msg_id] = now_s
        self._expire(now_s)
        return True

    def forget(self, msg_id: str) -> None:
        """Drop ``msg_id`` again: its call failed on our side, so the sender's retry must pass."""
        self._seen.pop(msg_id, None)


def secret_env_names(config: Config, entity: str) -> list[str]:
    """The environment variables holding the entity's webhook secrets.

    ``entities.<e>.webhook.secrets_env`` when the configuration has it, else
    ``CDCSYNC_WEBHOOK_SECRET_<ENTITY>``; each variable may hold several
    space-separated secrets (rotation: the new one first, the old one until
    senders have switched).
    """
    webhook: Any = getattr(config.entities[entity], "webhook", None)
    names = getattr(webhook, "secrets_env", None) if webhook is not None else None
    if names:
        return list(names)
    return ["CDCSYNC_WEBHOOK_SECRET_" + re.sub(r"[^A-Z0-9]", "_", entity.upper())]


def secrets_for(
    config: Config, entity: str, environ: Mapping[str, str] | None = None
) -> list[bytes]:
    """The entity's webhook keys from the environment (none: webhooks are refused)."""
    env = os.environ if environ is None else environ
    values: Iterable[str] = (
        part for name in secret_env_names(config, entity) for part in env.get(name, "").split()
    )
    return [parse_secret(value) for value in values]
