"""Retry schedule for transient sink failures: pure, so it is tested without waiting."""

from __future__ import annotations

import random

__all__ = ["backoff_delay"]


def backoff_delay(
    attempt: int,
    *,
    base_s: float = 0.2,
    cap_s: float = 5.0,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before attempt ``attempt + 1``: full-jitter exponential, or Retry-After.

    A server's ``Retry-After`` wins (capped), because waiting less only earns another 429.
    """
    if retry_after is not None:
        return min(max(retry_after, 0.0), cap_s)
    ceiling = min(cap_s, base_s * (2 ** max(attempt - 1, 0)))
    return (rng or random).uniform(ceiling / 2, ceiling)
