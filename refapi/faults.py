"""Fault injection for the reference API: make the next matching requests fail or stall.

Tests and the demo use it to show what the sync does when a real API throttles
(429 with ``Retry-After``), is down (5xx), is slow (latency), answers garbage
(a 200 with a body that is not JSON) or breaks the connection (a load balancer
dropping it, a body cut short, bytes that are not HTTP), or serves a write and loses its
answer, without mocking the client. A rule with a ``rate`` below 1 hits only that share of
the matching requests (drawn from a seeded generator, so a run repeats), e.g. a 10% 5xx.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["ConnectionFault", "FaultSpec", "FaultTable"]

#: How a ``connection`` fault breaks the exchange: ``reset`` closes the connection
#: without answering, ``truncate`` sends the headers and part of the body, ``garbage``
#: answers bytes that are not HTTP; ``lost_answer`` serves the request (a write lands) and
#: then closes the connection without its answer.
ConnectionFault = Literal["reset", "truncate", "garbage", "lost_answer"]

logger = logging.getLogger(__name__)


class FaultSpec(BaseModel):
    """One rule: the next ``count`` requests matching ``method`` and ``path`` misbehave.

    ``path`` matches that path and everything below it (``/api/v1/contacts``
    also matches ``/api/v1/contacts/abc``); ``None`` matches every ``/api``
    path. ``count=None`` keeps the rule until the faults are cleared. With
    ``status=None`` the request is only delayed by ``latency_ms`` and then
    served normally. ``body`` replaces the error body verbatim (served as
    ``application/json`` even when it is not, like a broken gateway).
    ``connection`` breaks the connection instead of answering (see
    :data:`ConnectionFault`); the request is not served, except with ``lost_answer``.
    ``rate`` below 1: each matching request is hit with that probability (one not hit
    leaves the rule and its count as they were).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    status: int | None = Field(default=None, ge=200, le=599)
    count: int | None = Field(default=1, ge=1)
    path: str | None = None
    method: str | None = None
    retry_after: float | str | None = None
    latency_ms: int = Field(default=0, ge=0, le=600_000)
    body: str | None = None
    connection: ConnectionFault | None = None
    rate: float = Field(default=1.0, gt=0, le=1)

    @field_validator("method")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else None

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not value.startswith("/"):
            raise ValueError("path must start with '/'")
        return value.rstrip("/") or "/"

    @model_validator(mode="after")
    def _does_something(self) -> FaultSpec:
        if self.status is None and self.latency_ms == 0 and self.connection is None:
            raise ValueError("a fault needs a status, a latency_ms or a connection")
        if self.status is not None and self.connection is not None:
            raise ValueError("a fault answers a status or breaks the connection, not both")
        return self

    def matches(self, method: str, path: str) -> bool:
        """Whether a request with this method and path is subject to the rule."""
        if self.method is not None and self.method != method.upper():
            return False
        if self.path is None or self.path == "/":
            return True
        return path == self.path or path.startswith(self.path + "/")

    def retry_after_header(self) -> str | None:
        """The ``Retry-After`` value to send: as given, or 1 second for a bare 429."""
        if self.retry_after is None:
            return "1" if self.status == 429 else None
        if isinstance(self.retry_after, float) and self.retry_after.is_integer():
            return str(int(self.retry_after))
        return str(self.retry_after)


@dataclass(slots=True)
class _Active:
    spec: FaultSpec
    remaining: int | None


@dataclass(slots=True)
class FaultTable:
    """The pending rules, consumed first-added first; ``seed`` draws the partial ``rate``s."""

    _active: list[_Active] = field(default_factory=list)
    fired: int = 0
    seed: int = 0
    _draw: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._draw = random.Random(self.seed)

    def add(self, spec: FaultSpec) -> None:
        """Arm a rule after the ones already pending."""
        self._active.append(_Active(spec=spec, remaining=spec.count))
        logger.info("fault armed: %s", spec.model_dump(exclude_none=True))

    def clear(self) -> None:
        """Disarm every rule."""
        self._active.clear()

    def take(self, method: str, path: str, *, status_only: bool = False) -> FaultSpec | None:
        """The first rule matching this request, with one use consumed; ``None`` if none.

        ``status_only``: only rules that answer a status (an operation inside a bulk
        request can fail with one, but not be delayed or lose its connection).
        """
        for index, active in enumerate(self._active):
            if not active.spec.matches(method, path):
                continue
            if status_only and active.spec.status is None:
                continue
            if active.spec.rate < 1 and self._draw.random() >= active.spec.rate:
                continue
            if active.remaining is not None:
                active.remaining -= 1
                if active.remaining <= 0:
                    del self._active[index]
            self.fired += 1
            return active.spec
        return None

    def pending(self) -> list[dict[str, Any]]:
        """The armed rules with their remaining uses, for the admin API."""
        return [
            {**a.spec.model_dump(exclude_none=True), "remaining": a.remaining} for a in self._active
        ]
