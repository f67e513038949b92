"""What ``cdcsync probe`` reads from an API's answers: the ``rest`` settings that fit them.

Pure: each function takes answers already received (:class:`Answer`) and returns
:class:`Advice`, one line a user can paste ("items are under /data: set items_path:
/data"); :mod:`cdcsync.operators.probe` makes the calls, :mod:`.probe_writes` reads the
write answers.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import httpx

from cdcsync.sinks.providers.rest.pointer import MISSING, escape_token, resolve

__all__ = [
    "LIMIT_PARAMS",
    "Advice",
    "Answer",
    "Trial",
    "find_items",
    "item_advice",
    "items_of",
    "limit_advice",
    "listing_advice",
    "lookup_advice",
    "needs_trials",
    "object_advice",
    "refusal",
    "trial_advice",
    "yaml_value",
]

#: ``set``: what fits; ``option``: also possible; ``note``: for the reader; ``problem``: fix it.
Kind = Literal["set", "option", "note", "problem"]

_ITEM_KEYS = ("items", "data", "results", "records", "rows", "entries", "content", "value")
_NEXT_PATHS = (
    "/next", "/next_cursor", "/nextCursor", "/next_page", "/nextPage", "/cursor",
    "/links/next", "/meta/next", "/meta/next_cursor", "/paging/next", "/pagination/next",
    "/meta/pagination/next", "/_links/next/href",
)  # fmt: skip
_TOTAL_PATHS = (
    "/count", "/total", "/total_count", "/totalCount", "/total_results", "/totalResults",
    "/meta/total_count", "/meta/filter_count", "/meta/total", "/meta/totalCount",
    "/pagination/total", "/meta/pagination/total", "/paging/total", "/_meta/totalCount",
)  # fmt: skip
_TOTAL_HEADERS = (
    "X-Total-Count", "X-Total", "Total-Count", "X-Pagination-Total-Count", "X-Total-Results",
)  # fmt: skip
#: Page-size parameters tried when the configured one is ignored.
LIMIT_PARAMS = ("limit", "_limit", "per_page", "page_size", "pageSize", "size")
_ID_FIELDS = ("id", "_id", "uuid", "key", "pk", "ID", "Id")
_VERSION_FIELDS = (
    "rowId", "version", "_version", "revision", "_rev", "etag", "updated_at", "updatedAt",
    "date_updated", "modified", "modified_at", "modifiedAt", "last_modified", "lastModified",
    "date_modified", "updated",
)  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """One recorded HTTP answer: status, headers, the ``Link`` rels, the body as JSON or text."""

    status: int
    #: Header names lower-case.
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The parsed JSON body; ``None`` when the body is empty or not JSON.
    body: Any = None
    #: The body as text (for a non-JSON answer and excerpts).
    text: str = ""
    #: ``Link`` header targets by rel (``next``, ``prev``, ``first``...).
    links: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, response: httpx.Response) -> Answer:
        """What a received ``response`` said (its body read)."""
        try:
            body = response.json() if response.content.strip() else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            body = None
        links = {str(rel): str(link.get("url", "")) for rel, link in response.links.items()}
        headers = {k.lower(): v for k, v in response.headers.items()}
        return cls(response.status_code, headers, body, response.text[:2000], links)

    def header(self, name: str) -> str | None:
        """One header's value, whatever its case."""
        return self.headers.get(name.lower())

    @property
    def empty(self) -> bool:
        """Whether the body is empty (a 204, or nothing at all)."""
        return not self.text.strip()

    def excerpt(self, size: int = 160) -> str:
        """The start of the body, on one line."""
        return " ".join(self.text.split())[:size] or "(empty body)"


@dataclass(frozen=True)
class Advice:
    """One finding: what the API did, and the settings that fit it (or what to do)."""

    aspect: str
    seen: str
    kind: Kind = "set"
    #: ``rest`` target settings that fit what was seen.
    settings: Mapping[str, Any] = field(default_factory=dict)
    #: Entity settings that fit, dotted (``poll.version``).
    entity: Mapping[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """The finding as one pasteable line."""
        pairs = [f"{k}: {yaml_value(v)}" for k, v in {**self.settings, **self.entity}.items()]
        if not pairs:
            return self.seen
        text = " and ".join(pairs)
        if self.kind == "option":
            return f"{self.seen}: {text} is possible"
        return f"{self.seen}: set {text}"

    def fits(self, current: Mapping[str, Any]) -> bool | None:
        """Whether ``current`` (settings and dotted entity settings) already says this."""
        wanted = {**self.settings, **self.entity}
        if self.kind != "set" or not wanted:
            return None
        return all(current.get(k, MISSING) == v for k, v in wanted.items())


@dataclass(frozen=True)
class Trial:
    """A page asked for through query parameter ``param``: a page size (``limit``), or a
    second page by ``offset`` or ``page``."""

    mode: Literal["limit", "offset", "page"]
    param: str
    value: int
    answer: Answer


def yaml_value(value: Any) -> str:
    """A setting's value as YAML a user can paste (flow style)."""
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {yaml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    text = str(value)
    plain = text and text[0] not in "\"'{[&*!|>%@`#-?:," and ": " not in text and " #" not in text
    return (
        text if plain and text.lower() not in ("null", "true", "false", "~") else json.dumps(text)
    )


def refusal(answer: Answer, *, what: str, path: str) -> str | None:
    """What to do about an answer that is no success, or ``None`` for a 2xx."""
    s = answer.status
    if 200 <= s < 300:
        return None
    said = f"{what} answered HTTP {s}: {answer.excerpt()}"
    if s in (401, 403):
        return (
            f"{said}. Check the credential: the secret `token` (or client_id / client_secret "
            "with auth: oauth2), auth, auth_header and auth_scheme"
            + (
                "; 403: the token may lack the permission to read this collection"
                if s == 403
                else ""
            )
        )
    if s == 404:
        return f"{said}. Check base_url and collection_path ({path} is not there)"
    if s == 400:
        return f"{said}. Check list_params and the paging parameters (limit_param, ...)"
    return f"{said}. The API is failing or busy: try again later"


def find_items(body: Any) -> str | None:
    """The JSON Pointer of the list of objects in a listing answer, or ``None``."""
    if isinstance(body, list):
        return ""
    if not isinstance(body, dict):
        return None
    named = [k for k in _ITEM_KEYS if isinstance(body.get(k), list)]
    lists = named + [k for k, v in body.items() if isinstance(v, list) and k not in named]
    if lists:
        return "/" + escape_token(lists[0])
    for key, value in body.items():
        if isinstance(value, dict) and (inner := find_items(value)):
            return "/" + escape_token(key) + inner
    return None


def items_of(answer: Answer) -> list[Any]:
    """The objects a listing answer holds, wherever its list is (empty if none)."""
    path = find_items(answer.body)
    items = resolve(answer.body, path) if path is not None else None
    return items if isinstance(items, list) else []


def listing_advice(page: Answer, *, limit: int, limit_param: str) -> list[Advice]:
    """Where a listing keeps its items, its total and its next page."""
    items_path = find_items(page.body)
    if items_path is None:
        keys = ", ".join(page.body) if isinstance(page.body, dict) else type(page.body).__name__
        seen = f"no list of objects in the listing (it holds: {keys or 'nothing'})"
        return [Advice("listing", seen + "; set items_path to the list's JSON Pointer", "problem")]
    found = [
        Advice("listing", "the listing is a bare array", settings={"items_path": ""})
        if items_path == ""
        else Advice("listing", f"items are under {items_path}", settings={"items_path": items_path})
    ]
    items = resolve(page.body, items_path)
    if len(items) > limit:
        found.append(Advice(
            "paging", f"{len(items)} objects came for {limit_param}={limit}: the API ignores "
            f"{limit_param}; set limit_param to its page-size parameter, or paging: none if one "
            "answer always holds every object", "problem",
        ))  # fmt: skip
    found += _total_advice(page)
    found += _next_advice(page, full=len(items) >= limit)
    return found


def _total_advice(page: Answer) -> list[Advice]:
    for name in _TOTAL_HEADERS:
        if (value := page.header(name)) is not None and value.strip().isdigit():
            return [Advice("total", f"the total is in {name}", settings={"total_header": name})]
    for pointer in _TOTAL_PATHS:
        value = resolve(page.body, pointer)
        if isinstance(value, int) and not isinstance(value, bool):
            return [Advice("total", f"the total is at {pointer}", settings={"total_path": pointer})]
    return [Advice(
        "total", "no total count (body or headers): offset/page paging stops at a short page; "
        "some APIs count only when asked (Directus: list_params: {meta: total_count})", "note",
    )]  # fmt: skip


def _next_advice(page: Answer, *, full: bool) -> list[Advice]:
    """The next page: a Link header, a cursor or link in the body, or nothing to go on."""
    if "next" in page.links or (page.links and not full):
        seen = (
            "next page link in the Link header"
            if "next" in page.links
            else ("the Link header pages (no rel=next: this was the last page)")
        )
        return [Advice("paging", seen, settings={"paging": "link_header"})]
    for pointer in _NEXT_PATHS:
        value = resolve(page.body, pointer)
        if value is MISSING or isinstance(value, dict | list):
            continue
        settings = {"paging": "cursor", "next_path": pointer}
        if value in (None, ""):
            seen = f"{pointer} is empty (the last page, or one page holds all)"
        elif str(value).startswith(("http://", "https://", "/")):
            seen = f"next page link at {pointer} (followed as it is)"
        else:
            seen = f"next cursor at {pointer} (sent back as cursor_param)"
        return [Advice("paging", seen, settings=settings)]
    if full:
        return [Advice(
            "paging", "a full page and no next link, cursor or Link header: the API pages by "
            "offset or page number (see the page 2 calls)", "note",
        )]  # fmt: skip
    return [Advice(
        "paging", "one page held every object and shows no way to the next: paging cannot be "
        "told; with more objects than page_size, run the probe again", "note",
    )]  # fmt: skip


def needs_trials(page: Answer, *, limit: int) -> bool:
    """Whether a listing came full with no way to the next page (offset or page paging?)."""
    return len(items_of(page)) >= limit and not _next_advice(page, full=True)[0].settings


def limit_advice(trials: Sequence[Trial], *, limit: int) -> list[Advice]:
    """The first page-size parameter the API honoured, when the configured one was ignored."""
    for trial in (t for t in trials if t.mode == "limit"):
        count = len(items_of(trial.answer))
        if trial.answer.status == 200 and 0 < count <= limit:
            seen = f"?{trial.param}={limit} answers {count} objects"
            return [Advice("paging", seen, settings={"limit_param": trial.param})]
    return []


def trial_advice(first: Sequence[Any], trials: Sequence[Trial], *, items_path: str) -> list[Advice]:
    """Offset or page paging: the first trial whose second page holds other objects."""
    first_ids = [json.dumps(i, sort_keys=True) for i in first]
    trials = [t for t in trials if t.mode != "limit"]
    for trial in trials:
        items = resolve(trial.answer.body, items_path)
        if trial.answer.status != 200 or not isinstance(items, list) or not items:
            continue
        ids = [json.dumps(i, sort_keys=True) for i in items]
        if set(ids) & set(first_ids):
            continue
        mode, param = trial.mode, trial.param
        key = "offset_param" if mode == "offset" else "page_param"
        settings: dict[str, Any] = {"paging": mode, key: param}
        seen = f"?{param}={trial.value} answers the next objects"
        return [Advice("paging", seen, settings=settings)]
    if trials:
        tried = ", ".join(f"{t.param}={t.value}" for t in trials)
        return [Advice(
            "paging", f"no second page found (tried {tried}): find the API's paging parameter "
            "and set paging with offset_param or page_param", "problem",
        )]  # fmt: skip
    return []


def item_advice(item: Any, *, id_field: str, version_field: str | None) -> list[Advice]:
    """An object's id field and type, and whether it carries a version field."""
    if not isinstance(item, dict):
        return [Advice("ids", f"the items are not objects ({type(item).__name__})", "problem")]
    found = _id_advice(item, id_field)
    if version_field and version_field in item:
        seen = f"the objects carry {version_field}"
        settings = {"version_source": "field", "version_field": version_field}
        return [*found, Advice("versions", seen, settings=settings)]
    if candidate := next((f for f in _VERSION_FIELDS if item.get(f) not in (None, "")), None):
        seen = f"the objects carry {candidate} (check that every write changes it)"
        settings = {"version_source": "field", "version_field": candidate}
        return [*found, Advice("versions", seen, settings=settings)]
    return found


def _id_advice(item: Mapping[str, Any], id_field: str) -> list[Advice]:
    name = id_field if id_field in item else next((f for f in _ID_FIELDS if f in item), None)
    if name is None:
        return [Advice(
            "ids", f"no id field among {', '.join(list(item)[:8])}: set id_field to the field "
            "that names an object in its URL", "problem",
        )]  # fmt: skip
    value = item[name]
    if isinstance(value, bool) or not isinstance(value, int | str):
        return [Advice("ids", f"ids in {name} are {type(value).__name__}s, not strings or "
                       "integers: they cannot name an object in a URL", "problem")]  # fmt: skip
    kind = "integers" if isinstance(value, int) else "strings"
    return [Advice("ids", f"ids are {kind} (e.g. {value!r})", settings={"id_field": name})]


def object_advice(answer: Answer, *, id_field: str, version_field: str | None) -> list[Advice]:
    """Where a single-object answer keeps the object, and where its version is."""
    body, path = answer.body, None
    if isinstance(body, dict) and id_field in body:
        path = ""
    elif isinstance(body, dict):
        path = next((f"/{escape_token(k)}" for k, v in body.items()
                     if isinstance(v, dict) and id_field in v), None)  # fmt: skip
    if path is None:
        return [Advice("object", f"no object with {id_field!r} in the answer to GET one object "
                       f"({answer.excerpt(80)}): set object_path", "problem")]  # fmt: skip
    seen = "the object is the whole answer" if path == "" else f"the object is under {path}"
    found = [Advice("object", seen, settings={"object_path": path})]
    data = resolve(body, path)
    has_field = bool(version_field) and data.get(version_field) not in (None, "")
    etag = answer.header("ETag")
    no_field = not has_field and not any(data.get(f) not in (None, "") for f in _VERSION_FIELDS)
    strong = bool(etag) and not str(etag).startswith("W/")
    if no_field and not strong:
        seen = "no version field and no ETag" if not etag else "no version field"
        found.append(Advice("versions", seen, settings={"version_source": "none"},
                            entity={"poll.version": "hash"}))  # fmt: skip
    if etag:
        weak = "" if strong else ", weak: it may not change on every write"
        seen = f"the object has an ETag ({etag}{weak}); listings carry none"
        kind: Kind = "set" if strong and no_field else "option"
        found.append(Advice("versions", seen, kind, settings={"version_source": "etag"},
                            entity={"poll.version": "hash"}))  # fmt: skip
    return found


def lookup_advice(name: str, value: Any, answer: Answer, *, items_path: str) -> list[Advice]:
    """Whether the listing honours ``?name=value``, as natural_key lookups need."""
    items = resolve(answer.body, items_path)
    if answer.status != 200 or not isinstance(items, list):
        return [Advice("lookup", f"?{name}=... answered HTTP {answer.status}: natural_key "
                       "lookups cannot work; leave natural_key unset", "problem")]  # fmt: skip
    if items and all(isinstance(i, dict) and i.get(name) == value for i in items):
        return [Advice("lookup", f"?{name}=... filters the listing: natural_key [{name}] can "
                       "find an object before creating it", "note")]  # fmt: skip
    return [Advice(
        "lookup", f"the listing ignores ?{name}=... (it answered other objects): leave "
        "natural_key unset, the lookup before a create cannot work here", "problem",
    )]  # fmt: skip
