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
from .store import NotFoundError, Store

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
    result, naming the ``op`` and the record's ``id`` when known (so a client matches
    results to operations by id): ``{"status": 201|200, "item": ...}``, ``{"status": 204}``
    or an error.
    """
    result = _apply(store, faults, counts, collection=collection,
                    collection_path=collection_path, operation=operation)  # fmt: skip
    labels: dict[str, Any] = {}
    if isinstance(operation, dict) and isinstance(operation.get("op"), str):
        labels["op"] = operation["op"]
    item = result.get("item")
    record_id = item.get("id") if isinstance(item, dict) else None
    if record_id is None and isinstance(operation, dict):
        record_id = operation.get("id")
    if isinstance(record_id, str) and record_id:
        labels["id"] = record_id
    return labels | result


def _apply(
    store: Store,
    faults: FaultTable,
    counts: Counter[str],
    *,
    collection: str,
    collection_path: str,
    operation: Any,
) -> dict[str, Any]:
    """One operation applied; its result (see :func:`apply_operation`)."""
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
        if op == "create" and (not record_id or not _exists(store, collection, record_id)):
            # with an id: the client chose it (a PUT-create); an existing one is replaced
            return {"status": 201, "item": store.create(collection, fields,
                                                         record_id=record_id or None)}  # fmt: skip
        if op == "delete":
            store.delete(collection, record_id, if_match=if_match)
            return {"status": 204}
        write = store.replace if op in ("replace", "create") else store.merge
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
    if op == "create" and record_id is not None and not isinstance(record_id, str):
        raise BadRequestError("a create's id, if given, must be a string")
    fields = operation.get("fields", {})
    if not isinstance(fields, dict):
        raise BadRequestError("fields must be a JSON object")
    if_match = operation.get("rowId")
    return op, record_id or "", None if if_match is None else str(if_match), fields


def _exists(store: Store, collection: str, record_id: str) -> bool:
    try:
        store.get(collection, record_id)
    except NotFoundError:
        return False
    return True
