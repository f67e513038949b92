"""Points in time as operators type them: ISO-8601, or relative like ``-15m``.

``--since``/``--until`` of replay, dlq and log all go through :func:`parse_time`,
which returns epoch milliseconds (Kafka's record timestamps).
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime

from cdcsync.operators.common import OperatorError

__all__ = ["format_ms", "parse_time"]

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RELATIVE = re.compile(r"^-\s*(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw])$")
_HINT = "use ISO-8601 (2025-01-31T14:00, 2025-01-31T14:00:00Z) or relative (-30s, -15m, -2h, -1d)"


def parse_time(text: str, *, now_ms: int | None = None) -> int:
    """Epoch milliseconds of ``text``.

    Accepts ``now``, relative offsets into the past (``-90s``, ``-15m``, ``-2h``,
    ``-1d``, ``-1w``) and ISO-8601 dates or date-times. A date-time without an
    offset is local time (what ``date`` shows on the machine); add ``Z`` or
    ``+02:00`` to be explicit.
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    value = text.strip()
    if value.lower() == "now":
        return now_ms
    if match := _RELATIVE.match(value.lower()):
        seconds = float(match["n"]) * _UNITS[match["unit"]]
        return now_ms - int(seconds * 1000)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise OperatorError(f"cannot read the time {text!r}: {_HINT}") from None
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()  # local time
    return int(parsed.timestamp() * 1000)


def format_ms(ms: int | None) -> str:
    """A compact UTC time for tables: ``2025-01-31 14:00:05.123Z``."""
    if ms is None:
        return "-"
    moment = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
