"""Random edits on both sides of a two-way example, then the proof that it converged.

A seed drives ``steps`` random steps against a running example (its worker up):
inserts and updates of rows in PostgreSQL, and edits made through the external
server's own API (not through cdcsync) to objects the sync created. Then it
waits until both sides hold the same values under the mapping and nothing has
moved for three poll intervals, and measures a quiet window of its own (at
least three poll intervals): no writes may reach the server in it.

What a seed reports (:class:`SeedReport`): the changes it made, the results and
dead letters they ended as, API calls per synced change (the ``api_calls`` of
the results; and every call the audit topic saw, the poller's listings
included), the time to settle, the writes in the quiet window (from the audit
topic, and from the server's own counter where it keeps one), duplicates (more
than one external object for a row's email) and fields that differ.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from psycopg import sql

from cdcsync.examples.runner import EventLog, Example

__all__ = ["Convergence", "ExternalSide", "SeedReport"]

Say = Callable[[str], None]

#: Methods that change something on the server.
WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
_FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia"]
_LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman"]


class ExternalSide(Protocol):
    """The external server as its users drive it: its own API, not cdcsync's sink."""

    name: str

    def by_email(self, email: str) -> dict[str, Any] | None:
        """The object holding ``email``, found through the server's own filter."""

    def edit(self, external_id: str, fields: Mapping[str, Any]) -> None:
        """A user changes some fields of one object."""

    def objects(self, suffix: str) -> list[dict[str, Any]]:
        """Every object whose email ends with ``suffix``."""

    def write_count(self) -> int | None:
        """The writes the server itself has recorded so far; ``None`` if it keeps no count."""

    def close(self) -> None:
        """Close the client of the server's API."""


@dataclass
class SeedReport:
    """What one seed did and what it found."""

    seed: int
    steps: int
    made: dict[str, int] = field(default_factory=dict)  # kind of change -> count
    rows: int = 0
    objects: int = 0
    synced: int = 0  # results that were not skips
    skipped: int = 0
    conflicts: int = 0  # results settled by the conflict policy (both sides had changed)
    dead_letters: int = 0
    api_calls: int = 0  # sum of the results' api_calls
    audit_calls: int = 0  # every call the audit topic saw (poll listings included)
    actions: dict[str, int] = field(default_factory=dict)
    max_latency_ms: float = 0.0  # the slowest result, from the commit (or receipt) to done
    steps_s: float = 0.0
    settle_s: float = 0.0
    converged: bool = False
    quiet_s: float = 0.0
    quiet_writes: int = -1  # writes on the audit topic in the quiet window
    quiet_server_writes: int | None = None  # the server's own count, where it has one
    duplicates: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def changes(self) -> int:
        """Changes made to mapped fields on either side (not the notes-only updates)."""
        return sum(n for kind, n in self.made.items() if kind != "db_notes")

    @property
    def calls_per_change(self) -> float:
        """API calls (results) per synced change."""
        return self.api_calls / self.synced if self.synced else 0.0

    def problems(self, *, max_calls_per_change: float = 3.0) -> list[str]:
        """What keeps this seed from counting as converged; empty when it does."""
        found = []
        # Both sides were really edited (not only rows, with the server lagging behind).
        if self.made.get("api_edit", 0) < self.steps // 5:
            found.append(f"too few edits on the server side: {self.made}")
        if not self.converged:
            found.append(f"the sides differ: {self.mismatches[:10]}")
        if self.duplicates:
            found.append(f"duplicate external objects: {self.duplicates}")
        if self.dead_letters:
            found.append(f"{self.dead_letters} dead letters")
        if self.quiet_writes != 0 or self.quiet_server_writes not in (None, 0):
            found.append(f"writes in the quiet window: {self.quiet_writes} "
                         f"(the server counted {self.quiet_server_writes})")  # fmt: skip
        if not self.rows == self.objects > 0:
            found.append(f"{self.rows} rows but {self.objects} objects")
        # A bounded number of calls per synced change (a read-back at most per write).
        if self.calls_per_change > max_calls_per_change:
            found.append(f"{self.calls_per_change:.2f} API calls per synced change")
        return found

    def line(self) -> str:
        made = ", ".join(f"{k} {v}" for k, v in sorted(self.made.items()))
        server = (
            "" if self.quiet_server_writes is None else f" (server: {self.quiet_server_writes})"
        )
        return (
            f"seed {self.seed}: {self.steps} steps ({made}) in {self.steps_s:.1f}s; "
            f"{self.synced} synced ({self.conflicts} conflicts), {self.skipped} skipped, "
            f"{self.dead_letters} dead letters; "
            f"{self.calls_per_change:.2f} API calls per synced change "
            f"({self.api_calls} calls; {self.audit_calls} with the poller's listings); "
            f"slowest change {self.max_latency_ms / 1000:.1f}s after its commit; "
            f"settled {'in' if self.converged else 'NOT after'} {self.settle_s:.1f}s; "
            f"{self.quiet_writes} writes in a {self.quiet_s:.1f}s quiet window{server}; "
            f"{self.rows} rows, {self.objects} objects, {len(self.duplicates)} duplicates, "
            f"{len(self.mismatches)} differences"
        )


class Convergence:
    """Runs seeds against one example whose worker runs, reading its results and audit topics."""

    def __init__(
        self,
        ex: Example,
        side: ExternalSide,
        *,
        table: str,
        mapping: Mapping[str, str],
        entity: str = "contact",
        pace_s: float = 0.02,
        settle_timeout_s: float = 180.0,
        say: Say = print,
    ) -> None:
        self.ex, self.side, self.table, self.mapping = ex, side, table, dict(mapping)
        self.poll_s = ex.config.entities[entity].poll.interval_s or 1.0
        self.pace_s, self.settle_timeout_s = pace_s, settle_timeout_s
        self.say = say
        topics = ex.config.topics
        self.events: EventLog = ex.watch([topics.results, topics.dead_letters, topics.audit])
        self._audit_topic = topics.audit
        self._first_synced = False

    # -- one seed ------------------------------------------------------------------

    def run_seed(self, seed: int, steps: int = 200) -> SeedReport:
        """Make ``steps`` random changes, wait until both sides agree, then check a quiet window."""
        report = SeedReport(seed=seed, steps=steps)
        suffix = f".s{seed}-{uuid.uuid4().hex[:8]}@example.org"
        first_event = len(self.events.seen)
        self._first_synced = False
        started = time.monotonic()
        ids = self._edit_randomly(random.Random(seed), steps, suffix, report)
        report.steps_s = time.monotonic() - started
        self.say(f"  seed {seed}: {steps} steps made in {report.steps_s:.1f}s; settling")
        settled = time.monotonic()
        report.converged = self._settle(suffix, report)
        report.settle_s = time.monotonic() - settled
        if report.converged:
            self._quiet_window(report)
        self._count(self.events.seen[first_event:], ids, report)
        self.say(f"  {report.line()}; {time.monotonic() - started:.1f}s in all")
        self.say(f"    results by action: {report.actions}")
        return report

    def _edit_randomly(
        self, rng: random.Random, steps: int, suffix: str, report: SeedReport
    ) -> set[str]:
        rows: dict[str, str] = {}  # row id -> email
        with self.ex.db() as conn:
            for n in range(steps):
                roll = rng.random()
                if not rows or roll < 0.25:
                    email = f"c{n}{suffix}"
                    values = {"email": email, **self._fields(rng, k=3)}
                    row_id = self._insert(conn, values)
                    rows[row_id] = email
                    kind = "db_insert"
                elif roll < 0.55:
                    kind = self._update_row(conn, rng, rng.choice(sorted(rows)))
                elif (found := self._synced_object(rng, rows)) is not None:
                    fields = self._fields(rng, k=rng.randint(1, 3))
                    external = {f: fields[c] for f, c in self.mapping.items() if c in fields}
                    self.side.edit(str(found["id"]), external)
                    kind = "api_edit"
                else:  # none of the rows tried is synced yet: change a row instead
                    kind = self._update_row(conn, rng, rng.choice(sorted(rows)))
                report.made[kind] = report.made.get(kind, 0) + 1
                time.sleep(self.pace_s)
        return set(rows)

    def _synced_object(self, rng: random.Random, rows: Mapping[str, str]) -> dict[str, Any] | None:
        """The external object of one of a few random rows; ``None`` if none is synced yet.

        Until the seed's first row has reached the server (the capture path can lag for
        seconds on a busy stack), this waits for it, so that edits really happen on both
        sides instead of all falling back to row updates.
        """
        first = min(rows, key=int)
        deadline = time.monotonic() + self.settle_timeout_s
        while not self._first_synced and time.monotonic() < deadline:
            self._first_synced = self.side.by_email(rows[first]) is not None
            if not self._first_synced:
                time.sleep(0.2)
        for row_id in rng.sample(sorted(rows), k=min(3, len(rows))):
            if (found := self.side.by_email(rows[row_id])) is not None:
                return found
        return None

    def _fields(self, rng: random.Random, *, k: int) -> dict[str, str]:
        """``k`` of the mapped, editable columns with new random values."""
        suffix = "" if rng.random() < 0.5 else f"-{rng.randint(1, 99)}"
        values = {
            "first_name": rng.choice(_FIRST),
            "last_name": rng.choice(_LAST) + suffix,
            "phone": f"+44 20 7946 {rng.randint(0, 9999):04d}",
        }
        chosen = rng.sample(sorted(values), k=k)
        return {c: values[c] for c in chosen}

    def _insert(self, conn: Any, values: Mapping[str, str]) -> str:
        query = sql.SQL("INSERT INTO {} ({}) VALUES ({}) RETURNING id").format(
            sql.Identifier(self.table),
            sql.SQL(", ").join(map(sql.Identifier, values)),
            sql.SQL(", ").join(sql.Placeholder() * len(values)),
        )
        return str(conn.execute(query, list(values.values())).fetchone()[0])

    def _update_row(self, conn: Any, rng: random.Random, row_id: str) -> str:
        if rng.random() < 0.15:  # an unmapped column: must cost no API call
            values: dict[str, str] = {"notes": f"note {rng.randint(0, 10**6)}"}
            kind = "db_notes"
        else:
            values, kind = self._fields(rng, k=rng.randint(1, 3)), "db_update"
        query = sql.SQL("UPDATE {} SET {}, updated_at = now() WHERE id = %s").format(
            sql.Identifier(self.table),
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(c)) for c in values),
        )
        conn.execute(query, [*values.values(), row_id])
        return kind

    # -- settling and checking -----------------------------------------------------

    def _settle(self, suffix: str, report: SeedReport) -> bool:
        """Until both sides agree and no event moved for three poll intervals (or the timeout)."""
        calm_s = max(3 * self.poll_s, 1.5)
        deadline = time.monotonic() + self.settle_timeout_s
        while time.monotonic() < deadline:
            moved = [e for e in self.events.drain(calm_s) if _moves(e)]
            if not moved and self._compare(suffix, report):
                return True
        self._compare(suffix, report)
        return False

    def _quiet_window(self, report: SeedReport) -> None:
        window = max(3 * self.poll_s, 2.0)
        before = self.side.write_count()
        started = time.monotonic()
        events = self.events.drain(window)
        report.quiet_s = time.monotonic() - started
        report.quiet_writes = sum(
            1 for e in events if e.get("kind") == "audit" and e.get("method") in WRITES
        )
        after = self.side.write_count()
        if before is not None and after is not None:
            report.quiet_server_writes = after - before

    def _compare(self, suffix: str, report: SeedReport) -> bool:
        """Both sides hold the same values under the mapping; records what differs."""
        columns = sorted(set(self.mapping.values()))
        with self.ex.db() as conn:
            query = sql.SQL("SELECT {} FROM {} WHERE email LIKE %s").format(
                sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier(self.table)
            )
            cur = conn.execute(query, [f"%{suffix}"])
            rows = [dict(zip(columns, r, strict=True)) for r in cur.fetchall()]
        objects = self.side.objects(suffix)
        by_email: dict[str, list[dict[str, Any]]] = {}
        for obj in objects:
            by_email.setdefault(str(obj.get("email")), []).append(obj)
        report.rows, report.objects = len(rows), len(objects)
        report.duplicates = sorted(e for e, found in by_email.items() if len(found) > 1)
        report.mismatches = []
        for row in rows:
            found = by_email.pop(row["email"], [])
            if not found:
                report.mismatches.append(f"{row['email']}: no external object")
                continue
            for ext_field, column in self.mapping.items():
                if found[0].get(ext_field) != row[column]:
                    report.mismatches.append(
                        f"{row['email']}: {ext_field}={found[0].get(ext_field)!r}, "
                        f"{column}={row[column]!r}"
                    )
        report.mismatches += [f"{email}: no row" for email in by_email]
        return not report.mismatches and not report.duplicates

    def _count(self, seen: list[tuple[str, dict[str, Any]]], ids: set[str], r: SeedReport) -> None:
        for topic, event in seen:
            if topic == self._audit_topic:
                r.audit_calls += 1
            elif event.get("kind") == "dead_letter" and event.get("entity_id") in ids:
                r.dead_letters += 1
            elif event.get("kind") == "result" and event.get("entity_id") in ids:
                action = str(event.get("action"))
                r.actions[action] = r.actions.get(action, 0) + 1
                r.api_calls += int(event.get("api_calls") or 0)
                r.max_latency_ms = max(r.max_latency_ms, float(event.get("latency_ms") or 0))
                r.conflicts += "conflict" in str(event.get("reason", ""))
                if action == "skip":
                    r.skipped += 1
                else:
                    r.synced += 1


def _moves(event: Mapping[str, Any]) -> bool:
    """An event showing the sync still at work: a write, a non-skip result, a dead letter."""
    if event.get("kind") == "audit":
        return event.get("method") in WRITES
    return event.get("kind") == "dead_letter" or event.get("action") not in (None, "skip")


def run_seeds(
    ex: Example,
    side: ExternalSide,
    *,
    table: str,
    mapping: Mapping[str, str],
    entity: str,
    seeds: Sequence[int],
    steps: int,
    say: Say = print,
) -> list[SeedReport]:
    """Run ``seeds`` against an example whose worker runs (an example's last step); each
    seed's report. ``side`` is closed afterwards."""
    try:
        conv = Convergence(ex, side, table=table, mapping=mapping, entity=entity, say=say)
        say(f"4/4 {len(seeds)} seed(s) of {steps} random steps on both sides")
        return [conv.run_seed(seed, steps) for seed in seeds]
    finally:
        side.close()


def exit_unless_converged(reports: Sequence[SeedReport]) -> None:
    """End ``python -m cdcsync.examples.<server>`` with an error if a seed did not converge."""
    if any(report.problems() for report in reports):
        raise SystemExit("did not converge cleanly; see the figures above and the worker log")
