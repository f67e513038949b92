"""``cdcsync probe``: call an entity's API read-only and say which ``rest`` settings fit it.

One page of the listing, one object, the response headers (and, only when the listing
gives no way to its next page, a second page by the usual offset and page parameters;
with a natural key, one filtered listing); with ``write``, one marked test object
(``cdcsync-probe-<hex>``) is created, updated and deleted. Every answer is recorded in an
:class:`Observed`; :func:`advise` (pure, with :mod:`.probe_advice` and
:mod:`.probe_writes`) turns it into :class:`~.probe_advice.Advice`.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from cdcsync.operators.common import OperatorError, entity_config, render_table
from cdcsync.operators.probe_advice import (
    Advice,
    Answer,
    find_items,
    item_advice,
    items_of,
    limit_advice,
    listing_advice,
    lookup_advice,
    object_advice,
    trial_advice,
    yaml_value,
)
from cdcsync.operators.probe_calls import (
    Call,
    Caller,
    Observed,
    ProbeOptions,
    read_side,
    write_test_object,
)
from cdcsync.operators.probe_writes import write_advice
from cdcsync.schemas.config import Config, target_where
from cdcsync.sinks.providers.rest.auth import make_auth, read_token
from cdcsync.sinks.providers.rest.settings import RestSettings
from cdcsync.sinks.secrets import resolve_secrets
from cdcsync.sinks.targets import check_target

__all__ = [
    "Call",
    "Observed",
    "ProbeOptions",
    "ProbeReport",
    "advise",
    "probe_entity",
    "rest_settings",
    "run_probe",
]

#: Paging modes that count: they stop at the total (or a short page).
_COUNTED = ("offset", "page")
#: The limit of a listing asked for without one.
_NO_LIMIT = 1_000_000_000
#: Answer headers worth showing in the report, as they are usually written.
_SHOWN_HEADERS = ("ETag", "Location", "Link", "X-Total-Count", "Last-Modified")


@dataclass(frozen=True)
class ProbeReport:
    """What ``cdcsync probe`` found: the calls, the findings, the settings to change."""

    entity: str
    settings: RestSettings
    observed: Observed
    findings: list[Advice]
    #: The target's settings and the entity's dotted ones (``poll.version``) as configured.
    current: Mapping[str, Any]

    def changes(self) -> dict[str, Any]:
        """The settings the findings call for that differ from the configured ones."""
        wanted: dict[str, Any] = {}
        for advice in self.findings:
            if advice.fits(self.current) is False:
                for name, value in {**advice.settings, **advice.entity}.items():
                    wanted.setdefault(name, value)
        return {k: v for k, v in wanted.items() if self.current.get(k) != v}

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--as-json``."""
        return {
            "entity": self.entity,
            "calls": [_call_json(c) for c in self.observed.calls],
            "findings": [_advice_json(a, self.current) for a in self.findings],
            "changes": self.changes(),
            "marker": self.observed.marker,
        }

    def render(self) -> str:
        """The readable report: calls, findings, and the lines to paste."""
        s, o = self.settings, self.observed
        mode = "read-only" if o.writes is None else f"with a test object marked {o.marker}"
        lines = [f"cdcsync probe {self.entity}: {s.base_url}{s.collection_path} "
                 f"(auth: {s.auth}; {mode})", ""]  # fmt: skip
        calls = [(c.step, f"{c.method} {c.target}", c.answer.status, describe(c.answer))
                 for c in o.calls]  # fmt: skip
        lines += [render_table(["step", "request", "status", "answer"], calls), ""]
        found = [(a.aspect, _standing(a, self.current), a.line()) for a in self.findings]
        lines.append(render_table(["aspect", "configured", "finding"], found))
        if changes := self.changes():
            lines += ["", "to paste (target settings; poll.version goes under the entity):"]
            lines += [f"  {name}: {yaml_value(value)}" for name, value in changes.items()]
        else:
            lines += ["", "the configured settings fit everything the probe saw"]
        if o.writes is None:
            lines.append("(writes not tried: --write creates, updates and deletes one test object)")
        return "\n".join(lines)


def _call_json(call: Call) -> dict[str, Any]:
    answer = call.answer
    shown = {"status": answer.status, "answer": describe(answer)}
    return {"step": call.step, "method": call.method, "target": call.target, **shown}


def _advice_json(advice: Advice, current: Mapping[str, Any]) -> dict[str, Any]:
    found = {"settings": dict(advice.settings), "entity": dict(advice.entity)}
    return {"aspect": advice.aspect, "kind": advice.kind, "line": advice.line(), **found,
            "fits": advice.fits(current)}  # fmt: skip


def describe(answer: Answer) -> str:
    """One answer in a few words: its body's shape and the headers worth knowing."""
    body = answer.body
    if answer.empty:
        shape = "empty"
    elif isinstance(body, list):
        shape = f"array of {len(body)}"
    elif isinstance(body, dict):
        shape = "object {" + ", ".join(list(body)[:6]) + (", ..." if len(body) > 6 else "") + "}"
        if (items := items_of(answer)) and not isinstance(body, list):
            shape += f", items: {len(items)}"
    else:
        shape = f"text: {answer.excerpt(40)}" if body is None else f"JSON {type(body).__name__}"
    shown = [name for name in _SHOWN_HEADERS if answer.header(name)]
    shown = [f"Link: {', '.join(answer.links)}" if n == "Link" else n for n in shown]
    return shape + ("; " + "; ".join(shown) if shown else "")


def _standing(advice: Advice, current: Mapping[str, Any]) -> str:
    """How a finding stands against the configuration: yes, the value now, possible, FIX."""
    fits = advice.fits(current)
    if fits is True:
        return "yes"
    if fits is False:
        now = {k: current.get(k) for k in {**advice.settings, **advice.entity}}
        return "now " + ", ".join(f"{k}: {yaml_value(v)}" for k, v in now.items())
    return {"option": "possible", "problem": "FIX"}.get(advice.kind, "")


def advise(o: Observed, settings: RestSettings) -> list[Advice]:
    """The settings that fit what the API answered (pure)."""
    s, page = settings, o.listing
    found = listing_advice(page, limit=o.limit or _NO_LIMIT, limit_param=s.limit_param)
    if not items_of(page) and o.plain is not None and items_of(o.plain):
        page = o.plain  # paging cannot be told until limit_param is right
        found = [a for a in listing_advice(page, limit=_NO_LIMIT, limit_param=s.limit_param)
                 if a.aspect != "paging"]  # fmt: skip
        found.append(Advice(
            "paging", f"the listing is empty with {s.limit_param}={o.limit} and not without "
            f"it: the API takes {s.limit_param} for a filter; set limit_param to its page-size "
            "parameter (json-server: _limit)", "problem",
        ))  # fmt: skip
    items, items_path = items_of(page), find_items(page.body) or ""
    first = items
    if sized := limit_advice(o.trials, limit=o.limit or _NO_LIMIT):
        found, first = _resized(found, sized[0], o)
    found += trial_advice(first, o.trials, items_path=items_path)
    id_field, version_field = s.id_field, s.version_field
    if items:
        found += item_advice(items[0], id_field=id_field, version_field=version_field)
        id_field = _chosen(found, "id_field", id_field)
        version_field = _chosen(found, "version_field", version_field)
    else:
        found.append(Advice("ids", "the listing is empty: ids, versions and objects cannot be "
                            "seen; add an object, or run with --write", "note"))  # fmt: skip
    if o.item is not None:
        found += object_advice(o.item, id_field=id_field, version_field=version_field)
    if o.lookup is not None:
        name, value, answer = o.lookup
        found += lookup_advice(name, value, answer, items_path=items_path)
    if o.writes is not None:
        found += write_advice(o.writes, s, versioned=_versioned(found, s))
    return _settle(found, s)


def _resized(found: list[Advice], sized: Advice, o: Observed) -> tuple[list[Advice], list[Any]]:
    """Paging and total read again from the page the page-size parameter that worked gave."""
    param = sized.settings["limit_param"]
    page = next(t.answer for t in o.trials if t.mode == "limit" and t.param == param)
    again = listing_advice(page, limit=o.limit or _NO_LIMIT, limit_param=param)
    kept = [a for a in found if a.aspect not in ("paging", "total") or a.kind == "problem"]
    return kept + [sized] + [a for a in again if a.aspect in ("paging", "total")], items_of(page)


def _chosen(found: Sequence[Advice], name: str, default: Any) -> Any:
    return next((a.settings[name] for a in found if a.kind == "set" and name in a.settings),
                default)  # fmt: skip


def _versioned(found: Sequence[Advice], settings: RestSettings) -> bool:
    source = _chosen(found, "version_source", settings.version_source)
    return bool(source != "none")


def _settle(found: list[Advice], settings: RestSettings) -> list[Advice]:
    """Findings weighed against the configured paging and each other."""
    # A next link or cursor is only an option where offset or page paging is configured
    # (both work); a total is needed only by offset and page paging, elsewhere an option.
    configured = settings.paging
    settled = []
    for a in found:
        chosen = a.settings.get("paging")
        if a.kind == "set" and configured in _COUNTED and chosen not in (None, *_COUNTED):
            a = dataclasses.replace(a, kind="option")
        settled.append(a)
    paging = _chosen(settled, "paging", configured)
    if paging in _COUNTED:
        return settled
    return [  # cursor and Link paging stop at the last page: a total is only an option
        dataclasses.replace(a, kind="option") if a.aspect == "total" and a.kind == "set" else a
        for a in settled
        if a.aspect != "total" or a.kind != "note"
    ]


def rest_settings(config: Config, entity: str, environ: Mapping[str, str]) -> RestSettings:
    """The entity's ``rest`` target settings, its secrets read; else an error saying why."""
    entity_config(config, entity)
    target = config.target(entity)
    where = target_where(config, entity)
    if target.provider != "rest":
        raise OperatorError(
            f"{entity}'s target uses provider {target.provider!r}; probe speaks to rest APIs only"
        )
    check_target(target, where=where)
    secrets = resolve_secrets(target.secrets, where=f"{where}.secrets", environ=environ)
    return RestSettings.model_validate({**target.settings, **secrets})


async def probe_entity(
    config: Config,
    entity: str,
    options: ProbeOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    environ: Mapping[str, str] | None = None,
) -> ProbeReport:
    """Probe ``entity``'s API as configured: the calls, and the settings that fit them."""
    environ = os.environ if environ is None else environ
    settings = rest_settings(config, entity, environ)
    e = config.entities[entity]
    field_name = options.marker_field or next(iter(e.mapping), None)
    options = dataclasses.replace(options, marker_field=field_name, natural_key=e.natural_key)
    observed = await run_probe(settings, options, transport=transport, environ=environ)
    current = {**settings.model_dump(), "poll.version": e.poll.version}
    return ProbeReport(entity, settings, observed, advise(observed, settings), current)


async def run_probe(
    settings: RestSettings,
    options: ProbeOptions,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    environ: Mapping[str, str] | None = None,
) -> Observed:
    """Make the probe's calls; raises :class:`OperatorError` when the API cannot be read."""
    token = read_token(settings, os.environ if environ is None else environ)
    auth = make_auth(settings, token)
    client = httpx.AsyncClient(
        base_url=settings.base_url, auth=auth, headers={"Accept": "application/json"},
        timeout=httpx.Timeout(settings.timeout_s), transport=transport,
    )  # fmt: skip
    caller = Caller(client, settings, auth.secrets() if auth else [])
    async with client:
        observed = await read_side(caller, settings, options)
        if options.write:
            observed.marker = f"cdcsync-probe-{uuid.uuid4().hex[:12]}"
            observed.writes = await write_test_object(caller, settings, options, observed.marker)
        observed.calls = caller.calls
    return observed
