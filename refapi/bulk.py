"""``POST /api/v1/{collection}/_bulk``: several writes in one request, each answered alone.

Operations are applied in order, each on its own (not atomic): one that the store
refuses, or that a fault armed on its own request fails, gets its status in the
results while the others go through.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

from .answers import REFUSED, BadRequestError, refusal
from .faults import FaultTable
from .store import Store

__all__ = ["MAX_BULK", "apply_operation", "operations_of"]

logger = logging.getLogger(__name__)

#: Most operations one ``POST /api/v1/{collection}/_bulk`` takes.
MAX_BULK = 1000
#: The request each bulk operation stands for, for the faults armed on it.
_BULK_METHODS = {"create": "POST", "replace": "PUT", "merge": "PATCH", "delete": "DELETE"}


def operations_of(body: dict[str, Any]) -> list[Any]:
    """The operations of a bulk request body ``{"operations": [...]}``, 1 to ``MAX_BULK``."""
    operations = body.get("operations")
    if set(body) != {"operations"} or not isinstance(operations, list):
        raise BadRequestError('expected {"operations": [...]}')
    if not 1 <= len(operations) <= MAX_BULK:
        raise BadRequestError(f"a bulk request takes 1 to {MAX_BULK} operations")
    return operations


def apply_operation(
    store: Store,
    faults: FaultTable,
    counts: Counter[str],
    *,
    collection: str,
    collection_path: str,
    operation: Any,
) -> dict[str, Any]:
    """Apply one bulk operation to ``collection`` (served at ``collection_path``); its
    result: ``{"status": 201|200, "item": ...}``, ``{"status": 204}`` or an error.
    """
    try:
        op, record_id, if_match, fields = _parse(operation)
        counts[op] += 1
        # A fault armed for this operation's own request fails it here too.
        path = collection_path + (f"/{record_id}" if record_id else "")
        fault = faults.take(_BULK_METHODS[op], path, status_only=True)
        if fault is not None and fault.status is not None:
            logger.info("injecting %s on bulk %s %s", fault.status, op, path)
            return {"status": fault.status, "error": "injected_fault",
                    "message": f"HTTP {fault.status}"}  # fmt: skip
        if op == "create":
            return {"status": 201, "item": store.create(collection, fields)}
        if op == "delete":
            store.delete(collection, record_id, if_match=if_match)
            return {"status": 204}
        write = store.replace if op == "replace" else store.merge
        return {"status": 200, "item": write(collection, record_id, fields, if_match=if_match)}
    except REFUSED as exc:
        status, code = refusal(exc)
        return {"status": status, "error": code, "message": str(exc)}


def _parse(operation: Any) -> tuple[str, str, str | None, dict[str, Any]]:
    """(op, id, rowId, fields) of one bulk operation, checked."""
    if not isinstance(operation, dict):
        raise BadRequestError("an operation must be a JSON object")
    op, record_id = operation.get("op"), operation.get("id")
    if op not in ("create", "replace", "merge", "delete"):
        raise BadRequestError("op must be one of create, replace, merge, delete")
    if op != "create" and (not isinstance(record_id, str) or not record_id):
        raise BadRequestError(f"a {op} needs the record's id")
    fields = operation.get("fields", {})
    if not isinstance(fields, dict):
        raise BadRequestError("fields must be a JSON object")
    if_match = operation.get("rowId")
    return op, record_id or "", None if if_match is None else str(if_match), fields
