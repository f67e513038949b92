"""The calls ``cdcsync probe`` makes, each answer recorded for :func:`.probe.advise`.

Reads: one listing page, the listing without paging parameters if that page was empty,
second pages by the usual offset and page parameters if the page gave no way on, one
object, one natural-key lookup. Writes (only with ``--write``): one marked test object
created, updated (first with a stale ``If-Match``) and deleted, then read once more.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

import httpx

from cdcsync.operators.common import OperatorError
from cdcsync.operators.probe_advice import (
    LIMIT_PARAMS,
    Answer,
    Trial,
    items_of,
    needs_trials,
    refusal,
)
from cdcsync.operators.probe_writes import WriteAnswers, answer_shape
from cdcsync.sinks.providers.rest.settings import RestSettings
from cdcsync.sinks.providers.rest.writes import MERGE_PATCH, write_headers

__all__ = ["Call", "Caller", "Observed", "ProbeOptions", "read_side", "write_test_object"]

#: The If-Match of the update that tests whether the API honours the header.
STALE_IF_MATCH = '"cdcsync-probe-stale"'


@dataclass(frozen=True)
class Call:
    """One request the probe made (its query shown without credentials) and the answer."""

    step: str
    method: str
    target: str
    answer: Answer


@dataclass
class Observed:
    """Everything the probe received: the input of :func:`cdcsync.operators.probe.advise`."""

    listing: Answer
    #: Objects per page asked for (``None``: paging none, no limit sent).
    limit: int | None
    #: The listing without paging parameters, asked for when the paged one was empty.
    plain: Answer | None = None
    trials: list[Trial] = field(default_factory=list)
    item: Answer | None = None
    #: The natural-key field, its value and the filtered listing.
    lookup: tuple[str, Any, Answer] | None = None
    writes: WriteAnswers | None = None
    calls: list[Call] = field(default_factory=list)
    #: The marker the test object carried (``--write``).
    marker: str | None = None


@dataclass(frozen=True)
class ProbeOptions:
    """Beyond the reads: ``write`` a test object, its ``marker_field`` and ``payload``."""

    limit: int = 2
    write: bool = False
    marker_field: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    natural_key: Sequence[str] = ()


class Caller:
    """Sends the probe's requests and records them; an unreachable API is an OperatorError."""

    def __init__(self, client: httpx.AsyncClient, settings: RestSettings, secrets: list[str]):
        self._client, self._settings, self._secrets = client, settings, secrets
        self.calls: list[Call] = []

    async def send(
        self,
        step: str,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One request; its answer, whatever the status."""
        content = None if body is None else json.dumps(body).encode()
        sent = {"Content-Type": "application/json"} if content is not None else {}
        try:
            response = await self._client.request(
                method, path, params=params, content=content, headers={**sent, **(headers or {})}
            )
        except httpx.TimeoutException as exc:
            raise OperatorError(
                f"{method} {self._settings.base_url}{path} timed out after "
                f"{self._settings.timeout_s:g}s ({type(exc).__name__}): is the API up? "
                "Raise timeout_s for a slow one"
            ) from None
        except httpx.TransportError as exc:
            raise OperatorError(
                f"cannot reach {self._settings.base_url} ({type(exc).__name__}: "
                f"{self._redact(str(exc)) or 'no detail'}): check base_url, that the API is up, "
                "and the network between (proxy, firewall, DNS)"
            ) from None
        answer = Answer.of(response)
        answer = dataclasses.replace(answer, text=self._redact(answer.text))
        query = f"?{urlencode(params)}" if params else ""
        self.calls.append(Call(step, method, path + query, answer))
        return answer

    def _redact(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "**********")
        return text


def _first_params(s: RestSettings, limit: int) -> dict[str, str]:
    """The listing's first request as the provider sends it, ``limit`` objects per page."""
    params = dict(s.list_params)
    if s.paging != "none":
        params[s.limit_param] = str(limit)
    if s.paging == "offset":
        params[s.offset_param] = "0"
    elif s.paging == "page":
        params[s.page_param] = str(s.first_page)
    return params


async def read_side(caller: Caller, s: RestSettings, options: ProbeOptions) -> Observed:
    """Listing, object and lookup: read-only calls, each recorded."""
    path, limit = s.collection_path, options.limit
    listing = await caller.send("listing", "GET", path, params=_first_params(s, limit))
    if problem := refusal(listing, what=f"GET {s.base_url}{path}", path=path):
        raise OperatorError(problem)
    observed = Observed(listing, None if s.paging == "none" else limit)
    page = listing
    if not items_of(listing) and s.paging != "none":
        observed.plain = await caller.send("listing, plain", "GET", path, params=s.list_params)
        page = observed.plain
    if page is listing and s.paging != "none":
        observed.trials = await _trials(caller, s, listing, limit)
    items = items_of(page)
    first = items[0] if items and isinstance(items[0], dict) else {}
    object_id = next((first[f] for f in (s.id_field, "id", "_id", "uuid") if f in first), None)
    if isinstance(object_id, str | int) and not isinstance(object_id, bool):
        item_path = f"{path}/{quote(str(object_id), safe='')}"
        observed.item = await caller.send("object", "GET", item_path)
    key = options.natural_key[0] if options.natural_key else None
    value = first.get(key) if key else None
    if key and len(items) > 1 and isinstance(value, str | int | float):
        params = {**s.list_params, key: str(value)}
        answer = await caller.send("lookup", "GET", path, params=params)
        observed.lookup = (key, value, answer)
    return observed


async def _trials(caller: Caller, s: RestSettings, listing: Answer, limit: int) -> list[Trial]:
    """Pages by other parameters, when the listing ignored its page size or showed no way on."""
    # Page-size parameters first (when more than ``limit`` objects came), then second pages
    # by the configured and the usual offset and page parameters with the size that worked.
    trials: list[Trial] = []
    first, limit_param = listing, s.limit_param
    if len(items_of(listing)) > limit:
        for param in [p for p in LIMIT_PARAMS if p != s.limit_param]:
            answer = await caller.send(f"limit by {param}", "GET", s.collection_path,
                                       params={**s.list_params, param: str(limit)})  # fmt: skip
            trials.append(Trial("limit", param, limit, answer))
            if answer.status == 200 and 0 < len(items_of(answer)) <= limit:
                first, limit_param = answer, param
                break
        else:
            return trials
    if not needs_trials(first, limit=limit):  # the page shows its way on
        return trials
    offsets = dict.fromkeys((s.offset_param, "offset", "skip", "_start"))
    pages = dict.fromkeys((s.page_param, "page", "_page"))
    asks: list[tuple[Literal["offset", "page"], str, int]] = [("offset", p, limit) for p in offsets]
    asks += [("page", p, (s.first_page if p == s.page_param else 1) + 1) for p in pages]
    for mode, param, value in asks:
        params = {**s.list_params, limit_param: str(limit), param: str(value)}
        answer = await caller.send(f"page 2 by {param}", "GET", s.collection_path, params=params)
        trials.append(Trial(mode, param, value, answer))
    return trials


async def write_test_object(
    caller: Caller, s: RestSettings, options: ProbeOptions, marker: str
) -> WriteAnswers:
    """Create, update and delete one object marked ``marker``; each answer recorded."""
    if not options.marker_field:
        raise OperatorError("--write needs a field for the marker: name one with --field")
    body = {**options.payload, options.marker_field: marker}
    if s.create_method == "PUT" and s.create_id_field:
        body.setdefault(s.create_id_field, marker)
        target = f"{s.collection_path}/{quote(str(body[s.create_id_field]), safe='')}"
        create = await caller.send("create", "PUT", target, body=body)
    else:
        create = await caller.send("create", "POST", s.collection_path, body=body)
    object_id = answer_shape(create, s).object_id
    if not 200 <= create.status < 300 or object_id is None:
        return WriteAnswers(create)
    item = f"{s.collection_path}/{quote(object_id, safe='')}"
    try:
        stale, update, merge = await _update(caller, s, item, body, options.marker_field, marker)
    finally:
        delete = await caller.send("delete", "DELETE", item)
    after = await caller.send("read after delete", "GET", item)
    return WriteAnswers(create, stale, update, merge, delete, after)


async def _update(
    caller: Caller, s: RestSettings, item: str, body: Mapping[str, Any], name: str, marker: str
) -> tuple[Answer, Answer, bool]:
    """The update: with a stale If-Match first, then (if refused) without; merge-patch on 415."""
    method = s.update_method
    change = {name: f"{marker}-updated"}
    payload = change if method == "PATCH" else {**body, **change}
    headers = {**write_headers(s, method), "If-Match": STALE_IF_MATCH}
    stale = await caller.send("update, stale If-Match", method, item, body=payload, headers=headers)
    merge = False
    if stale.status == 415 and method == "PATCH" and s.patch_format == "json":
        headers["Content-Type"], merge = MERGE_PATCH, True
        stale = await caller.send(
            "update, merge-patch", method, item, body=payload, headers=headers
        )
    if 200 <= stale.status < 300:
        return stale, stale, merge
    del headers["If-Match"]
    update = await caller.send("update", method, item, body=payload, headers=headers)
    return stale, update, merge
