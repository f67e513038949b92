"""Reconcile: compare both sides of an entity in full and report where they drifted apart.

A missed event (a dead letter nobody redrove, a hand edit in the external
system) leaves drift only a full comparison finds. :func:`compare` is that
comparison, pure so it is tested without services.

Rows pair with records through the sync state (entity id → external id), else
by ``natural_key``, as the agent adopts an object before creating one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from kafka import TopicPartition
from psycopg import sql
from psycopg.rows import dict_row
from pydantic import ValidationError

from cdcsync.agents.decide import row_matches
from cdcsync.errors import CdcsyncError
from cdcsync.mappers.base import Mapper
from cdcsync.operators import common
from cdcsync.operators.common import OperatorError, entity_config
from cdcsync.operators.source import debezium_row, source_dsn, source_table
from cdcsync.schemas.config import Config, target_where
from cdcsync.schemas.state import SyncState
from cdcsync.sinks.base import ExternalRecord
from cdcsync.sinks.targets import build_target

__all__ = ["Drift", "MissingExternal", "MissingSource", "Report", "Unmappable", "compare"]
__all__ += ["Difference", "list_external", "read_links", "read_rows"]


@dataclass(frozen=True, slots=True)
class MissingExternal:
    """A row with no external object: never created, or its object was deleted."""

    entity_id: str
    #: The external id the state still links (its object is gone), else ``None``.
    external_id: str | None


@dataclass(frozen=True, slots=True)
class MissingSource:
    """An external object no row claims; ``entity_id`` names the vanished row it was linked to."""

    external_id: str
    entity_id: str | None


@dataclass(frozen=True, slots=True)
class Difference:
    """One mapped field whose values differ."""

    field: str
    source: Any
    external: Any


@dataclass(frozen=True, slots=True)
class Drift:
    """A linked pair whose mapped fields differ."""

    entity_id: str
    external_id: str
    fields: tuple[Difference, ...]
    #: ``"state"`` or ``"natural_key"``: how the row was paired with the object.
    linked_by: str = "state"


@dataclass(frozen=True, slots=True)
class Unmappable:
    """A row the mapper rejects: the agent dead-letters it too, so it cannot be compared."""

    entity_id: str
    error: str


@dataclass
class Report:
    """What differs between the two sides of one entity."""

    missing_external: list[MissingExternal] = field(default_factory=list)
    missing_source: list[MissingSource] = field(default_factory=list)
    differs: list[Drift] = field(default_factory=list)
    unmappable: list[Unmappable] = field(default_factory=list)
    equal: int = 0
    rows: int = 0
    records: int = 0

    @property
    def clean(self) -> bool:
        """True when nothing differs."""
        return not (self.missing_external or self.missing_source or self.differs)

    def repairable(self) -> list[str]:
        """The entity ids a re-check repairs: rows without an object, pairs that differ."""
        ids = [m.entity_id for m in self.missing_external] + [d.entity_id for d in self.differs]
        return sorted(set(ids), key=_id_order)

    def counts(self) -> dict[str, int]:
        """How many of each category (the summary table)."""
        names = ("missing_external", "missing_source", "differs", "unmappable")
        return {name: len(getattr(self, name)) for name in names} | {"equal": self.equal}

    def to_json(self) -> dict[str, Any]:
        """The full report as plain JSON data (``--as-json``)."""
        return {
            "rows": self.rows,
            "records": self.records,
            "counts": self.counts(),
            "missing_external": [asdict(m) for m in self.missing_external],
            "missing_source": [asdict(m) for m in self.missing_source],
            "differs": [asdict(d) for d in self.differs],
            "unmappable": [asdict(u) for u in self.unmappable],
        }


def _id_order(entity_id: str) -> tuple[int, int | str]:
    """Numeric ids in numeric order, before any others in text order."""
    return (0, int(entity_id)) if entity_id.lstrip("-").isdigit() else (1, entity_id)


def _key_of(payload: Mapping[str, Any], natural_key: Sequence[str]) -> str | None:
    """The natural key as a comparable string, ``None`` when a part of it is empty."""
    values = [payload.get(name) for name in natural_key]
    if not values or any(v is None or v == "" for v in values):
        return None
    return json.dumps(values, sort_keys=True, default=str)


def _differences(payload: Mapping[str, Any], fields: Mapping[str, Any]) -> tuple[Difference, ...]:
    return tuple(
        Difference(name, value, fields.get(name))
        for name, value in payload.items()
        if fields.get(name) != value
    )


#: A row paired with an object: (entity id, the object, ``"state"`` or ``"natural_key"``).
Pair = tuple[str, ExternalRecord, str]


def compare(
    rows: Mapping[str, Mapping[str, Any]],
    records: Iterable[ExternalRecord],
    refs: Mapping[str, str],
    mapper: Mapper,
    natural_key: Sequence[str],
) -> Report:
    """Compare source ``rows`` (entity id → row as Debezium writes it) with ``records``.

    ``refs`` is the sync state's link, entity id → external id. Rows are paired
    by it first, then unlinked rows by ``natural_key`` among the records no link
    claims. A pair is compared on the fields ``to_external`` writes, given the
    object as ``current`` so write modes (``if_new``, ``if_empty``, ``append``)
    count as the agent applies them. Records no row claims are ``missing_source``.
    """
    by_id = {record.id: record for record in records}
    report = Report(rows=len(rows), records=len(by_id))
    owner = {ext: eid for eid, ext in refs.items()}
    pairs, unlinked = _pair_by_state(rows, by_id, refs, report)
    claimed = {record.id for _entity_id, record, _linked_by in pairs}
    free = _free_by_key(by_id, claimed, owner, natural_key)
    adopted = _pair_by_natural_key(unlinked, free, mapper, natural_key, report)
    claimed |= {record.id for _entity_id, record, _linked_by in adopted}
    _compare_pairs(pairs + adopted, rows, mapper, report)

    for found_list in (report.missing_external, report.differs, report.unmappable):
        found_list.sort(key=lambda item: _id_order(item.entity_id))
    for ext_id in sorted(set(by_id) - claimed):
        report.missing_source.append(MissingSource(ext_id, owner.get(ext_id)))
    return report


def _pair_by_state(
    rows: Mapping[str, Mapping[str, Any]],
    by_id: Mapping[str, ExternalRecord],
    refs: Mapping[str, str],
    report: Report,
) -> tuple[list[Pair], list[tuple[str, Mapping[str, Any]]]]:
    """Pair each row with the object its sync state links; ``(pairs, unlinked rows)``.

    A link to an object that is gone is ``missing_external``; rows without a link are
    left for the natural-key pass.
    """
    pairs: list[Pair] = []
    unlinked: list[tuple[str, Mapping[str, Any]]] = []
    for entity_id in sorted(rows, key=_id_order):
        linked = refs.get(entity_id)
        record = by_id.get(linked) if linked is not None else None
        if record is not None:
            pairs.append((entity_id, record, "state"))
        elif linked is not None:  # linked, but the object is gone
            report.missing_external.append(MissingExternal(entity_id, linked))
        else:
            unlinked.append((entity_id, rows[entity_id]))
    return pairs, unlinked


def _free_by_key(
    by_id: Mapping[str, ExternalRecord],
    claimed: set[str],
    owner: Mapping[str, str],
    natural_key: Sequence[str],
) -> dict[str, ExternalRecord]:
    """The objects no pair and no state claims, by natural key (the first of a key wins):
    the ones an unlinked row may adopt, as the agent does before creating one.
    """
    by_key: dict[str, ExternalRecord] = {}
    if natural_key:
        for record in by_id.values():
            key = _key_of(record.fields, natural_key)
            if key is not None and record.id not in claimed and record.id not in owner:
                by_key.setdefault(key, record)
    return by_key


def _pair_by_natural_key(
    unlinked: list[tuple[str, Mapping[str, Any]]],
    free: dict[str, ExternalRecord],
    mapper: Mapper,
    natural_key: Sequence[str],
    report: Report,
) -> list[Pair]:
    """Pair each unlinked row with the free object of its natural key (taking it from
    ``free``); a row without one is ``missing_external``, one the mapper rejects ``unmappable``.
    """
    pairs: list[Pair] = []
    for entity_id, row in unlinked:
        try:
            key = _key_of(mapper.to_external(row), natural_key) if natural_key else None
        except CdcsyncError as exc:
            report.unmappable.append(Unmappable(entity_id, str(exc)))
            continue
        found = free.pop(key, None) if key is not None else None
        if found is None:
            report.missing_external.append(MissingExternal(entity_id, None))
        else:
            pairs.append((entity_id, found, "natural_key"))
    return pairs


def _compare_pairs(
    pairs: list[Pair], rows: Mapping[str, Mapping[str, Any]], mapper: Mapper, report: Report
) -> None:
    """Compare each pair on the fields the mapper writes: ``differs``, ``equal`` or, when
    the mapper rejects the row, ``unmappable``.
    """
    for entity_id, record, linked_by in pairs:
        try:
            payload = mapper.to_external(rows[entity_id], current=record.fields)
        except CdcsyncError as exc:
            report.unmappable.append(Unmappable(entity_id, str(exc)))
            continue
        diffs = _differences(payload, record.fields)
        if diffs:
            report.differs.append(Drift(entity_id, record.id, diffs, linked_by))
        else:
            report.equal += 1


# -- I/O: the three inputs ---------------------------------------------------------------


def read_rows(config: Config, entity: str, *, dsn: str | None = None) -> dict[str, dict[str, Any]]:
    """Every row of the entity's table that its ``filter`` selects, as Debezium writes it
    (the agent maps Debezium's values, so the comparison must too), by entity id.
    """
    cfg = entity_config(config, entity)
    schema, table = source_table(config, entity)
    query = sql.SQL("SELECT * FROM {t}").format(t=sql.Identifier(schema, table))
    rows: dict[str, dict[str, Any]] = {}
    try:
        with psycopg.connect(dsn or source_dsn(config), row_factory=dict_row) as conn:
            with conn.cursor(name="cdcsync_reconcile") as cursor:  # server-side: streams rows
                for raw in cursor.execute(query):
                    row = debezium_row(raw)
                    if not cfg.filter or row_matches(row, cfg.filter):
                        rows[str(raw[cfg.key])] = row
    except psycopg.OperationalError as exc:
        raise OperatorError(
            f"cannot reach PostgreSQL ({exc}); start the stack with `cdcsync local up`"
        ) from exc
    except (psycopg.Error, KeyError) as exc:
        raise OperatorError(
            f"cannot read {schema}.{table} (key column {cfg.key!r}): {exc}; "
            f"check entities.{entity}.source and key in the configuration"
        ) from exc
    return rows


def read_links(config: Config, entity: str) -> dict[str, str]:
    """Entity id → external id, from the latest state of every key in the state changelog.

    A ``deleted`` state links nothing (the agent does not use its id either).
    """
    entity_config(config, entity)
    topic = config.changelog_topic(entity)
    cons = common.consumer(config)
    latest: dict[str, bytes | None] = {}
    try:
        tps = [TopicPartition(topic, p) for p in common.partitions(cons, topic)]
        begin, end = cons.beginning_offsets(tps), cons.end_offsets(tps)
        ranges = [common.OffsetRange(tp.partition, begin[tp], end[tp]) for tp in tps]
        for record in common.read_ranges(cons, topic, ranges):
            latest[json.loads(record.key)] = record.value
    finally:
        cons.close()
    links: dict[str, str] = {}
    for entity_id, value in latest.items():
        if value is None:
            continue
        try:
            state = SyncState.model_validate_json(value)
        except ValidationError:
            continue
        if state.external_id and state.status != "deleted":
            links[str(entity_id)] = state.external_id
    return links


async def list_external(
    config: Config, entity: str, *, on_record: Callable[[int], None] | None = None
) -> list[ExternalRecord]:
    """Every external object of the entity's target, following the API's pagination;
    ``on_record(n)`` is called with the running count, for progress.
    """
    entity_config(config, entity)  # an unknown entity is an OperatorError naming the known ones
    target = config.target(entity)
    sink = build_target(target, where=target_where(config, entity))
    found: list[ExternalRecord] = []
    try:
        async for record in sink.list():
            found.append(record)
            if on_record is not None:
                on_record(len(found))
    except CdcsyncError as exc:
        raise OperatorError(
            f"listing the {target.provider} target of {entity} failed after "
            f"{len(found)} objects: {exc}; check the API is up and the token is set"
        ) from exc
    finally:
        await sink.aclose()
    return found
