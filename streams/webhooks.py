"""Standard Webhooks signature verification: pure, no I/O, tested with known vectors.

An external system notifies a change with three headers: ``webhook-id`` (a
unique message id), ``webhook-timestamp`` (Unix seconds) and
``webhook-signature`` (space-separated ``v1,<base64 HMAC-SHA256>`` entries over
``"<id>.<timestamp>.<raw body>"``). A request is accepted when one signature
matches one of the entity's secrets (several secrets = key rotation), its
timestamp is within the tolerance of now (5 minutes), and its id was not seen
before within the time such a timestamp stays acceptable (replay protection).

Secrets are ``whsec_<base64>`` strings (the bare base64 is accepted too),
read again on every call (``app.web.webhook_secrets``, else an environment
variable), so they rotate without a restart. Seen ids live in a store shared
by the workers and kept across restarts (the ``webhook_ids`` table).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
from collections import OrderedDict
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path
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
    ``now - tolerance`` to ``now + tolerance``). ``store`` maps ids to when
    they were accepted: a dict, or the workers' shared ``webhook_ids`` table,
    so a replay is caught after a restart or at another worker. The ids this
    worker wrote, at most ``max_ids`` (the oldest go first), are deleted from
    the store once expired, so it stays bounded under any load.
    """

    def __init__(
        self,
        *,
        store: MutableMapping[str, float] | None = None,
        tolerance_s: float = DEFAULT_TOLERANCE_S,
        max_ids: int = 100_000,
    ) -> None:
        self.keep_s = 2 * tolerance_s
        self.max_ids = max_ids
        self.store: MutableMapping[str, float] = {} if store is None else store
        self._mine: OrderedDict[str, float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._mine)

    def _expire(self, now_s: float) -> None:
        while self._mine:
            oldest_id, seen_at = next(iter(self._mine.items()))
            if seen_at > now_s - self.keep_s and len(self._mine) <= self.max_ids:
                break
            del self._mine[oldest_id]
            self.store.pop(oldest_id, None)

    def first_time(self, msg_id: str, *, now_s: float) -> bool:
        """Record ``msg_id``; ``False`` if it was already seen (a replay)."""
        self._expire(now_s)
        seen_at = self.store.get(msg_id)
        if seen_at is not None and seen_at > now_s - self.keep_s:
            return False
        self.store[msg_id] = now_s
        self._mine[msg_id] = now_s
        self._expire(now_s)
        return True

    def forget(self, msg_id: str) -> None:
        """Drop ``msg_id`` again: its call failed on our side, so the sender's retry must pass."""
        if self._mine.pop(msg_id, None) is not None:
            self.store.pop(msg_id, None)


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


def _read_source(env: Mapping[str, str], *, variable: str | None, file: str | None) -> str:
    """The text of one secret source ("" when unset or unreadable: that source adds no key)."""
    if variable is not None:
        return env.get(variable, "")
    try:
        return Path(file or "").expanduser().read_text()
    except OSError:
        return ""


def secrets_for(
    config: Config, entity: str, environ: Mapping[str, str] | None = None
) -> list[bytes]:
    """The entity's webhook keys, read now (none: webhooks are refused).

    ``app.web.webhook_secrets.<entity>`` lists their sources (``{env: X}`` or
    ``{file: path}``), else :func:`secret_env_names`; each source may hold
    several space-separated secrets (rotation).
    """
    env = os.environ if environ is None else environ
    refs = config.app.web.webhook_secrets.get(entity)
    if refs:
        texts: Iterable[str] = (_read_source(env, variable=r.env, file=r.file) for r in refs)
    else:
        texts = (env.get(name, "") for name in secret_env_names(config, entity))
    return [parse_secret(part) for text in texts for part in text.split()]
