"""The chaos soak (``python -m cdcsync.soak``): a seeded workload through the real stack and
two workers while workers, Kafka Connect, the broker and the API fail, then checks that
nothing was lost, duplicated or looping."""

from __future__ import annotations

__all__: list[str] = []
