"""The reference API's request counters: what tests and the bench read from ``/_admin/stats``."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Stats"]

_API_PATH = re.compile(r"^/api/v1/(?P<collection>[^/]+)(?:/(?P<id>[^/]+))?/?$")
_OPERATIONS = {  # (path kind, method) -> operation, for the stats
    ("collection", "GET"): "list", ("collection", "POST"): "create",
    ("item", "GET"): "get", ("item", "PUT"): "replace", ("item", "PATCH"): "merge",
    ("item", "DELETE"): "delete", ("bulk", "POST"): "bulk",
}  # fmt: skip


@dataclass(slots=True)
class Stats:
    """Requests counted by method, path kind, operation and status, and bulk operations."""

    by_method: Counter[str] = field(default_factory=Counter)
    by_kind: Counter[str] = field(default_factory=Counter)
    by_operation: Counter[str] = field(default_factory=Counter)
    by_status: Counter[str] = field(default_factory=Counter)
    #: Operations carried by bulk requests, by kind (create, replace, merge, delete).
    bulk_operations: Counter[str] = field(default_factory=Counter)

    def record(self, method: str, path: str) -> None:
        """Count one ``/api`` request by its method and the kind of path it names."""
        match = _API_PATH.match(path)
        kind = ("item" if match["id"] else "collection") if match else "other"
        if match and match["id"] == "_bulk" and method == "POST":
            kind = "bulk"
        self.by_method[method] += 1
        self.by_kind[kind] += 1
        self.by_operation[_OPERATIONS.get((kind, method), "other")] += 1

    def to_json(self) -> dict[str, Any]:
        """The counters as plain JSON data, with the total."""
        return {
            "total": sum(self.by_method.values()),
            "by_method": dict(self.by_method),
            "by_kind": dict(self.by_kind),
            "by_operation": dict(self.by_operation),
            "by_status": dict(self.by_status),
            "bulk_operations": dict(self.bulk_operations),
        }
