"""The soak's verdicts over what it collected after the quiet period (pure, no I/O).

Each check returns a :class:`Check`: its name, whether it passed, the figure it rests
on and, when it failed, evidence a reader can follow (ids, offsets, reasons).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAPPING", "Check", "Collected", "Outcome", "lost_edits", "run_checks"]

#: External field: source column, both directions.
MAPPING = {"firstName": "first_name", "lastName": "last_name", "email": "email",
           "phone": "phone", "notes": "notes"}  # fmt: skip
Position = tuple[int, int]  # partition, offset of the entity topic
EXAMPLES = 5


@dataclass(frozen=True, slots=True)
class Outcome:
    """One result or dead letter, reduced to what the checks read."""

    kind: str  # "result" or "dead_letter"
    position: Position
    entity_id: str | None
    action: str  # a result's action; a dead letter's reason
    detail: str = ""  # a result's reason; a dead letter's error


@dataclass
class Collected:
    """Everything the soak gathered once the pipeline was quiet."""

    #: Source rows by email: the external fields the mapping gives them, and "id".
    rows: dict[str, dict[str, Any]]
    #: Every external object (the API's fields, with its "id").
    objects: list[dict[str, Any]]
    #: The two-way ids' last external edit (notes) the load made.
    edits: dict[int, str]
    #: Every record of the entity topic in the soak's range.
    records: set[Position]
    outcomes: list[Outcome]
    #: Where the injected malformed records landed.
    malformed: set[Position]
    #: Writes seen during the quiet window: "api" requests that write, "db" row changes.
    quiet_writes: dict[str, int]
    quiet_s: float
    #: Each worker's peak resident memory, MiB.
    peak_rss_mb: dict[str, float] = field(default_factory=dict)
    rss_limit_mb: float = 1024.0


@dataclass(frozen=True, slots=True)
class Check:
    """One verdict with its figure and, on failure, the evidence."""

    name: str
    passed: bool
    figure: str
    evidence: list[str] = field(default_factory=list)


def _fields(obj: dict[str, Any]) -> dict[str, Any]:
    return {f: obj.get(f) for f in MAPPING}


def source_rows_external(c: Collected) -> Check:
    """Every source row has an external object equal to it under the mapping."""
    by_email = {o.get("email"): o for o in c.objects}
    missing = [r["id"] for e, r in c.rows.items() if e not in by_email]
    differ = [
        f"id {r['id']}: row {_fields(r)} != object {_fields(by_email[e])}"
        for e, r in sorted(c.rows.items())
        if e in by_email and _fields(r) != _fields(by_email[e])
    ]
    evidence = [f"{len(missing)} rows without an object, e.g. ids {sorted(missing)[:EXAMPLES]}"]
    return Check(
        "source rows present externally and equal",
        not missing and not differ,
        f"{len(c.rows) - len(missing) - len(differ):,} of {len(c.rows):,} rows",
        ([*evidence] if missing else []) + differ[:EXAMPLES],
    )


def lost_edits(c: Collected) -> list[int]:
    """The two-way ids whose row does not hold their last external edit."""
    notes = {r["id"]: r["notes"] for r in c.rows.values()}
    return [i for i, v in sorted(c.edits.items()) if i not in notes or notes[i] != v]


def external_side(c: Collected) -> Check:
    """The other direction: every external object is a source row's, and each two-way id's
    last external edit is in its row."""
    orphans = [o for o in c.objects if o.get("email") not in c.rows]
    by_id = {r["id"]: r for r in c.rows.values()}
    lost = [f"id {i}: edit {c.edits[i]!r}, row has {by_id[i]['notes']!r}" if i in by_id
            else f"id {i}: edit {c.edits[i]!r}, row gone" for i in lost_edits(c)]  # fmt: skip
    evidence = [f"object {o.get('id')} ({o.get('email')}) has no source row" for o in orphans]
    return Check(
        "external edits pulled back, no orphan objects",
        not orphans and not lost,
        f"{len(c.edits) - len(lost):,} of {len(c.edits):,} edited ids; {len(orphans)} orphans",
        evidence[:EXAMPLES] + lost[:EXAMPLES],
    )


def no_duplicates(c: Collected) -> Check:
    """No two external objects stand for one row (same email, the natural key)."""
    emails = Counter(str(o.get("email")) for o in c.objects)
    twice = {e: n for e, n in emails.items() if n > 1}
    ids = defaultdict(list)
    for o in c.objects:
        if str(o.get("email")) in twice:
            ids[str(o.get("email"))].append(o.get("id"))
    return Check(
        "0 duplicate external objects",
        not twice,
        f"{len(twice)} duplicated",
        [f"{e}: objects {ids[e]}" for e in sorted(twice)[:EXAMPLES]],
    )


def quiet_window(c: Collected) -> Check:
    """Nothing written on either side once the pipeline was quiet: no loop."""
    api, db = c.quiet_writes.get("api", 0), c.quiet_writes.get("db", 0)
    return Check(
        "0 writes in the quiet window",
        api == 0 and db == 0,
        f"{api} API writes, {db} row writes in {c.quiet_s:.0f} s",
        [f"{k}: {v}" for k, v in c.quiet_writes.items() if v],
    )


def offsets_accounted(c: Collected) -> tuple[Check, dict[str, int]]:
    """Every record of the entity topic ends in a result or a dead letter, never in both.

    Results are at least once: a record Kafka delivers again after a kill -9 (processed,
    its offset not yet committed) gets a second outcome. A ``skip`` of what was already
    done, the same dead letter again (a bad record leaves no state to say it was seen),
    or a second result when the state of the first had not reached Kafka either (the
    change applied again, to the same content: a second object would fail the duplicate
    check) are counted and reported, not failed. A result and a dead letter for one
    record contradict each other: that fails.
    """
    by_pos: dict[Position, list[Outcome]] = defaultdict(list)
    for o in c.outcomes:
        by_pos[o.position].append(o)
    missing = sorted(c.records - set(by_pos))
    mixed, redelivered, reapplied = [], 0, 0
    for pos, outs in sorted(by_pos.items()):
        if len(outs) == 1:
            continue
        if len({o.kind for o in outs}) > 1:
            mixed.append(f"{pos}: {[(o.kind, o.action, o.detail[:60]) for o in outs]}")
        elif all(o.kind == "dead_letter" or o.action == "skip" for o in outs[1:]):
            redelivered += 1
        else:
            reapplied += 1
    strays = sorted(set(by_pos) - c.records)
    evidence = [f"{len(missing)} records without an outcome, e.g. {missing[:EXAMPLES]}"] * bool(
        missing
    )
    evidence += mixed[:EXAMPLES]
    evidence += [f"{len(strays)} outcomes of offsets outside the range: {strays[:EXAMPLES]}"] * (
        bool(strays)
    )
    figure = (f"{len(c.records) - len(missing):,} of {len(c.records):,} records; "
              f"{len(mixed)} with a result and a dead letter; {redelivered} redelivered "
              f"(skip, same dead letter); {reapplied} applied again after a kill -9")  # fmt: skip
    check = Check("every source offset: a result or a dead letter", not missing and not mixed,
                  figure, evidence)  # fmt: skip
    counts = {"redelivered": redelivered, "applied_again": reapplied, "mixed": len(mixed)}
    return check, counts


def dead_letters_expected(c: Collected) -> Check:
    """Dead letters only for the injected malformed records, and each of those has one."""
    letters = [o for o in c.outcomes if o.kind == "dead_letter"]
    unexpected = [o for o in letters if o.position not in c.malformed]
    lettered = {o.position for o in letters}
    not_lettered = sorted(c.malformed - lettered)
    evidence = [f"{o.position} id {o.entity_id}: {o.action}: {o.detail[:120]}"
                for o in unexpected[:EXAMPLES]]  # fmt: skip
    if not_lettered:
        evidence.append(f"malformed records without a dead letter: {not_lettered[:EXAMPLES]}")
    return Check(
        "dead letters only for the injected bad records",
        not unexpected and not not_lettered,
        f"{len(letters)} dead letters; {len(c.malformed)} injected; {len(unexpected)} other",
        evidence,
    )


def memory_bounded(c: Collected) -> Check:
    """Each worker's peak RSS under the limit."""
    over = {w: mb for w, mb in c.peak_rss_mb.items() if mb > c.rss_limit_mb}
    peaks = ", ".join(f"{w} {mb:.0f} MiB" for w, mb in sorted(c.peak_rss_mb.items()))
    return Check(
        f"worker peak RSS under {c.rss_limit_mb:.0f} MiB",
        bool(c.peak_rss_mb) and not over,
        peaks or "not measured",
        [f"{w}: {mb:.0f} MiB" for w, mb in over.items()],
    )


def run_checks(c: Collected) -> tuple[list[Check], dict[str, int]]:
    """Every check, in the report's order, and the counts the accounting found."""
    accounted, figures = offsets_accounted(c)
    checks = [
        source_rows_external(c),
        external_side(c),
        no_duplicates(c),
        quiet_window(c),
        accounted,
        dead_letters_expected(c),
        memory_bounded(c),
    ]
    return checks, figures
