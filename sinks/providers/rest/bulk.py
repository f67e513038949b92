"""A REST bulk call: writes sent as one request, the answer matched back to them by id.

The request is the reference API's shape (``{"operations": [...]}`` answered by
``{"results": [...]}``). Each result is matched to its write by the id it names
(``id``, or the object's ``id_field``), never by its position alone: updates and deletes
by their external id, creates with a client-chosen id (``create_method: PUT``) by that
id, and creates the API ids itself in their order among the results no write claims. A
write the answer does not account for gets its own transient error.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any
from urllib.parse import quote

import httpx

from cdcsync.errors import SinkError
from cdcsync.sinks.base import BulkOutcome, BulkWrite, ExternalRecord
from cdcsync.sinks.providers.rest.failures import Failures
from cdcsync.sinks.providers.rest.settings import RestSettings
from cdcsync.sinks.providers.rest.writes import WriteGuard, create_target

__all__ = ["BulkWriter", "match_results"]

logger = logging.getLogger(__name__)

#: Sends ``POST path`` with a JSON body (through the sink's client, limiter, translation).
Post = Callable[[str, Mapping[str, Any]], Awaitable[httpx.Response]]
#: One object of an answer as a record (the sink's reader).
ToRecord = Callable[[Any, httpx.Response], ExternalRecord]


class BulkWriter:
    """Sends writes to ``bulk_path`` and gives each its own :data:`BulkOutcome`."""

    def __init__(
        self,
        settings: RestSettings,
        failures: Failures,
        guard: WriteGuard,
        *,
        post: Post,
        read_json: Callable[[httpx.Response], Any],
        to_record: ToRecord,
    ) -> None:
        self.settings = settings
        self._failures, self._guard = failures, guard
        self._post, self._json, self._to_record = post, read_json, to_record

    async def write(self, writes: Sequence[BulkWrite]) -> list[BulkOutcome]:
        """One bulk call for ``writes`` (checked first under read_before_write)."""
        s = self.settings
        assert s.bulk_path is not None
        if not 1 <= len(writes) <= s.bulk_max:
            self._failures.fail("POST", s.bulk_path, f"takes 1 to {s.bulk_max} writes (bulk_max)")
        outcomes: list[BulkOutcome | None] = list(await self._checks(writes))
        todo = [i for i, outcome in enumerate(outcomes) if outcome is None]
        if not todo:
            return [o for o in outcomes if o is not None]
        operations = [self._operation(writes[i]) for i in todo]
        response = await self._post(s.bulk_path, {"operations": operations})
        body = self._json(response)
        results = body.get("results") if isinstance(body, dict) else None
        if not isinstance(results, list):
            self._failures.fail(
                "POST", s.bulk_path, "did not answer a 'results' list; check that bulk_path is "
                "the collection's bulk endpoint", status=response.status_code,
            )  # fmt: skip
        matched = match_results(operations, results, self._result_id)
        for i, operation, result in zip(todo, operations, matched, strict=True):
            outcomes[i] = self._outcome(writes[i], operation, result, response)
        return [o for o in outcomes if o is not None]

    async def _checks(self, writes: Sequence[BulkWrite]) -> list[SinkError | None]:
        """Under read_before_write, each guarded write's version read first (concurrently)."""
        if self.settings.concurrency != "read_before_write":
            return [None] * len(writes)

        async def check(write: BulkWrite) -> SinkError | None:
            if write.external_id is None or write.expected_row_id is None:
                return None
            method = "DELETE" if write.kind == "delete" else self.settings.update_method
            path = self._path(write.external_id)
            try:
                await self._guard.check(method, path, write.external_id, write.expected_row_id)
            except SinkError as exc:
                if write.kind == "delete" and exc.status_code == 404:
                    return None  # gone already: the delete answers 404, i.e. False
                return exc
            return None

        return list(await asyncio.gather(*(check(w) for w in writes)))

    def _operation(self, write: BulkWrite) -> dict[str, Any]:
        """One write as an operation of the bulk request."""
        s = self.settings
        update = {"PUT": "replace", "PATCH": "merge"}[s.update_method]
        operation: dict[str, Any] = {"op": update if write.kind == "update" else write.kind}
        if write.external_id is not None:
            operation["id"] = write.external_id
        elif write.kind == "create" and write.payload is not None:
            _, client_id = create_target(s, self._failures, write.payload)
            if client_id is not None:
                operation["id"] = client_id
        if write.expected_row_id is not None and s.concurrency == "if_match":
            operation["rowId"] = write.expected_row_id
        if write.payload is not None:
            operation["fields"] = dict(write.payload)
        return operation

    def _result_id(self, result: Any) -> str | None:
        """The id a result names: its ``id``, else its object's ``id_field``."""
        if not isinstance(result, dict):
            return None
        found = result.get("id")
        item = result.get("item")
        if found is None and isinstance(item, dict):
            found = item.get(self.settings.id_field)
        if isinstance(found, bool) or not isinstance(found, str | int) or found == "":
            return None
        return str(found)

    def _outcome(
        self, write: BulkWrite, operation: dict[str, Any], result: Any, response: httpx.Response
    ) -> BulkOutcome:
        """One write's part of a bulk answer, judged as that write alone would be."""
        path = self._path(operation.get("id"))
        if result is None:
            what = (
                f"answered no result for this {write.kind} (results are matched by id); it may"
                " or may not have been applied; will retry"
            )
            return self._failures.error("bulk", path, what, transient=True)
        status = result.get("status") if isinstance(result, dict) else None
        if not isinstance(status, int) or isinstance(status, bool):
            what = f"got a result without a status: {str(result)[:80]}"
            return self._failures.error("bulk", path, what)
        if write.kind == "delete" and (200 <= status < 300 or status == 404):
            return status != 404
        if 200 <= status < 300:
            try:
                return self._to_record(result.get("item"), response)
            except SinkError as exc:
                return exc
        message = str(result.get("message") or result.get("error") or "")
        excerpt = self._failures.redact(message)[:200]
        return self._failures.status_error(f"bulk {operation['op']}", path, status, excerpt, None)

    def _path(self, external_id: Any) -> str:
        path = self.settings.collection_path
        return path if external_id is None else f"{path}/{quote(str(external_id), safe='')}"


def match_results(
    operations: Sequence[Mapping[str, Any]],
    results: Sequence[Any],
    result_id: Callable[[Any], str | None],
) -> list[Any | None]:
    """Each operation's result (``None``: unaccounted for), matched by id, never by position
    alone: operations with an id take the results naming it; creates without one take, in
    order, the results no operation claims (their new ids) that are not marked another op.
    """
    waiting: dict[str, deque[int]] = {}
    creates: deque[int] = deque()
    for index, operation in enumerate(operations):
        if operation.get("id") is not None:
            waiting.setdefault(str(operation["id"]), deque()).append(index)
        elif operation.get("op") == "create":
            creates.append(index)
    matched: list[Any | None] = [None] * len(operations)
    unclaimed: list[Any] = []
    for result in results:
        found = result_id(result)
        if found is not None and waiting.get(found):
            matched[waiting[found].popleft()] = result
        else:
            unclaimed.append(result)
    for result in unclaimed:
        found = result_id(result)
        op = result.get("op") if isinstance(result, dict) else None
        if creates and op in (None, "create"):
            matched[creates.popleft()] = result
        else:
            status = result.get("status") if isinstance(result, dict) else None
            logger.warning("a bulk result (id %s, status %s) matches no write", found, status)
    return matched
