"""The sync decision: a pure function of (change, state, policies). No I/O, tested directly.

A change from either side is decided against the entity's state:

- a source change is pushed unless it is an echo of our own pull (same payload
  hash), filtered out, or touches no watched column;
- an external change is pulled unless it is the echo of our own push (same
  version as the one we recorded);
- when both sides changed since the last sync, the entity's conflict policy
  decides. Pushes carry the last version we know, so a concurrent external
  edit is caught by the API (``If-Match``) and resolved the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from cdcsync.agents.change import WRITES, Action, Decision, RawEvent
from cdcsync.errors import MappingError
from cdcsync.mappers.base import Mapper
from cdcsync.mappers.fieldmap import payload_hash
from cdcsync.schemas.config import EntityConfig, Guards, Policies
from cdcsync.schemas.envelope import ChangeEvent, ExternalChange, parse_change
from cdcsync.schemas.state import SyncState, WriteMark

__all__ = [
    "Winner", "coalescible_update", "conflict_winner", "decide", "deletes_allowed", "newer_side",
    "repeat_writes", "row_matches", "write_loops",
]  # fmt: skip

#: Which side a conflict resolution keeps; ``manual`` parks it for an operator.
Winner = Literal["source", "target", "manual"]


def row_matches(row: Mapping[str, Any], filter_: Mapping[str, Any]) -> bool:
    """True when every filtered column holds the value (or one of the values) given."""
    for column, wanted in filter_.items():
        allowed = wanted if isinstance(wanted, list) else [wanted]
        if row.get(column) not in allowed:
            return False
    return True


def _timestamp(value: Any) -> datetime | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        # Debezium: epoch micros for timestamps, millis for ts_ms; APIs: seconds or millis.
        for scale in (1e6, 1e3, 1):
            if value / scale < 1e11:
                return datetime.fromtimestamp(value / scale, tz=UTC)
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def newer_side(source_value: Any, target_value: Any) -> Literal["source", "target"] | None:
    """Which side changed last, by the two timestamps; ``None`` when they cannot be compared."""
    source, target = _timestamp(source_value), _timestamp(target_value)
    if source is None or target is None:
        return None
    return "target" if target > source else "source"


def conflict_winner(
    policies: Policies, source_row: Mapping[str, Any] | None, target: Mapping[str, Any] | None
) -> Winner:
    """The side a conflict keeps under the entity's policy, both sides having changed.

    ``newest_wins`` compares the configured timestamp of the source row and of the
    external object; when either is missing or unreadable the source wins.
    """
    if policies.conflict == "source_wins":
        return "source"
    if policies.conflict == "target_wins":
        return "target"
    if policies.conflict == "manual":
        return "manual"
    newer = newer_side(
        (source_row or {}).get(policies.source_timestamp or ""),
        (target or {}).get(policies.target_timestamp or ""),
    )
    return newer or "source"


def coalescible_update(raw: RawEvent, config: EntityConfig) -> ChangeEvent | None:
    """The change if the record is a plain source update that a later update of the same
    entity in the batch may carry (no re-check, no ``watch``); else ``None``."""
    if raw.value is None or raw.key is None or config.watch:
        return None
    try:
        parsed = parse_change(raw.key, raw.value, key_field=config.key)
    except Exception:  # the agent parses it again and dead-letters it
        return None
    if not isinstance(parsed, ChangeEvent) or parsed.origin != "source" or parsed.recheck:
        return None
    return parsed if parsed.op == "update" else None


# -- guards against storms: a write loop holds its entity; a mass delete deletes nothing.
# A write loop is one entity writing content it already wrote, again and again, with no
# new source content behind it (an API that rewrites what it stores, a version the
# provider cannot read, a bug): past ``guards.loop_writes`` repeats within
# ``guards.loop_window_s`` the agent holds the entity for an operator.


def repeat_writes(marks: Sequence[WriteMark], *, now_ms: int, window_s: float) -> int:
    """Writes within the window whose content an earlier write of the window already had."""
    since = now_ms - int(window_s * 1000)
    seen: set[str | None] = set()
    repeats = 0
    for mark in marks:
        if mark.at_ms < since:
            continue
        if mark.digest in seen:
            repeats += 1
        seen.add(mark.digest)
    return repeats


def write_loops(state: SyncState, digest: str | None, guards: Guards, *, now_ms: int) -> bool:
    """True when writing ``digest`` (``None``: not known before the write) would continue a loop.

    New content (a digest the window has not written) always goes through.
    """
    since = now_ms - int(guards.loop_window_s * 1000)
    recent = {m.digest for m in state.writes if m.at_ms >= since}
    if digest is not None and digest not in recent:
        return False
    window = guards.loop_window_s
    return repeat_writes(state.writes, now_ms=now_ms, window_s=window) >= guards.loop_writes


def deletes_allowed(missing: int, linked: int, guards: Guards) -> bool:
    """Whether a poll pass may report ``missing`` of ``linked`` objects as deleted."""
    if missing < guards.delete_min_count:
        return True
    return missing <= guards.delete_max_ratio * linked


def decide(
    change: ChangeEvent,
    state: SyncState | None,
    *,
    config: EntityConfig,
    mapper: Mapper,
    partition: int,
    offset: int,
    now_ms: int,
) -> Decision:
    """Decide what to do with ``change`` given the entity's ``state``.

    ``now_ms`` places the entity's recent writes in the loop guard's window.
    Raises MappingError when the row cannot be mapped; the caller dead-letters it.
    """
    if state is not None and state.seen(partition, offset):
        return Decision("skip", f"already applied (redelivered offset {offset})")
    if state is not None and state.status == "conflict":
        return Decision("skip", "parked: a conflict awaits an operator (cdcsync conflicts)")
    if change.origin == "external":
        decision = _decide_external(change, state, config=config, mapper=mapper)
    else:
        decision = _decide_source(change, state, config=config, mapper=mapper)
    guards = config.guards
    if (
        decision.action in WRITES
        and state is not None
        and write_loops(state, decision.payload_hash, guards, now_ms=now_ms)
    ):
        why = f"loop suspected: more than {guards.loop_writes} repeated writes"
        return Decision("hold", why, external_id=decision.external_id)
    return decision


def _known_id(state: SyncState | None) -> str | None:
    return state.external_id if state is not None and state.status != "deleted" else None


def _decide_source(
    change: ChangeEvent, state: SyncState | None, *, config: EntityConfig, mapper: Mapper
) -> Decision:
    known_id = _known_id(state)
    version = state.row_id if state is not None else None
    after = change.after or {}

    gone = change.op == "delete"
    if not gone and config.filter and not row_matches(after, config.filter):
        if known_id is None:
            return Decision("skip", "row does not match the filter")
        gone = True  # a row that stops matching the filter follows the delete policy

    if gone:
        return _source_gone(change, state, known_id, config=config, mapper=mapper)

    if known_id is not None and _before_our_pull(change, state):
        # An echo of an earlier pull (or an edit our pull's conflict check saw) arriving
        # late, after a later pull: pushing it would put an older row over a newer edit.
        why = "stale: committed before our last pull rewrote the row"
        return Decision("skip", why, external_id=known_id)

    if (
        config.watch
        and change.op == "update"
        and change.before is not None
        and known_id is not None
        and all(change.before.get(c) == after.get(c) for c in config.watch)
    ):
        return Decision("skip", "no watched column changed", external_id=known_id)

    payload = mapper.to_external(after)
    digest = payload_hash(payload)
    if known_id is None:
        return Decision("create", "new row", payload=payload, payload_hash=digest)
    if change.recheck and state is not None and state.status == "synced":
        return Decision(
            "verify",
            "re-check requested (resync, trigger, webhook or replay)",
            payload=payload,
            payload_hash=digest,
            external_id=known_id,
        )
    if state is not None and state.payload_hash == digest and state.status == "synced":
        return Decision(
            "skip", "no mapped field changed (or the echo of our own pull)", external_id=known_id
        )
    return Decision(
        "update",
        "mapped fields changed",
        payload=payload,
        payload_hash=digest,
        external_id=known_id,
        expected_version=version,
    )


def _before_our_pull(change: ChangeEvent, state: SyncState | None) -> bool:
    """A Debezium record committed before our last pull wrote the row (not a re-check,
    which re-reads the row as it is now)."""
    pulled = state.pulled_ms if state is not None else None
    committed = change.committed_ms
    if change.recheck or pulled is None or committed is None:
        return False
    return committed < pulled


def _source_gone(
    change: ChangeEvent,
    state: SyncState | None,
    known_id: str | None,
    *,
    config: EntityConfig,
    mapper: Mapper,
) -> Decision:
    """A row deleted, or no longer matching the filter: the source_delete policy decides."""
    why = "row deleted" if change.op == "delete" else "row no longer matches the filter"
    policy = config.policies.source_delete
    if policy == "ignore":
        return Decision("skip", f"{why}; policy source_delete=ignore", external_id=known_id)
    if known_id is None and state is not None and state.status == "deleted":
        return Decision("skip", "external object already deleted")
    if policy == "mark":
        if known_id is None:
            return Decision("skip", f"{why}; nothing to mark")
        field = config.policies.mark_field or ""
        return Decision(
            "mark_target",
            f"{why}; policy source_delete=mark",
            payload={field: config.policies.mark_value},
            external_id=known_id,
        )
    if known_id is not None:
        return Decision("delete", why, external_id=known_id, expected_version=None)
    try:
        payload = mapper.to_external(change.before or change.after or {})
    except MappingError:
        # Without a full before image there is no natural key to look up.
        return Decision("skip", "row was never synced")
    return Decision("delete", f"{why}; not in state, look up by natural key", payload=payload)


def _content_hash(fields: Mapping[str, Any], mapper: Mapper) -> str:
    """The hash of an external object's mapped fields, comparable to ``payload_hash``."""
    return payload_hash({name: fields.get(name) for name in mapper.fields})


def _target_gone(policy: str, external_id: str) -> Decision:
    """The external object was deleted: the target_delete policy decides."""
    if policy == "ignore":
        why = "external object deleted; policy target_delete=ignore"
        return Decision("skip", why, external_id=external_id)
    if policy == "mark":
        why = "external object deleted; policy target_delete=mark"
        return Decision("mark_source", why, external_id=external_id)
    why = "external object deleted; policy target_delete=delete"
    return Decision("pull_delete", why, external_id=external_id)


def _nothing_new(ext: ExternalChange, state: SyncState, mapper: Mapper) -> Decision | None:
    """A skip when the external record brings nothing to pull: another object, our own
    write (by version, or by content at a version we could not read), or a stale one."""
    if state.external_id != ext.external_id:
        why = f"stale reference: entity is linked to {state.external_id}"
        return Decision("skip", why, external_id=ext.external_id)
    if ext.version is not None and ext.version == state.row_id:
        return Decision("skip", "echo of our own write (same version)", external_id=ext.external_id)
    if ext.version is not None and ext.version in state.superseded:
        why = "stale: a newer version was already synced"
        return Decision("skip", why, external_id=ext.external_id)
    if state.payload_hash is not None and _content_hash(ext.fields, mapper) == state.payload_hash:
        # What we wrote, at a version we could not read (or the API renumbered it): adopt
        # the version, push nothing back.
        why = "the external object holds what we last wrote; its version is adopted"
        return Decision("skip", why, external_id=ext.external_id, version=ext.version)
    return None


def _decide_external(
    change: ChangeEvent, state: SyncState | None, *, config: EntityConfig, mapper: Mapper
) -> Decision:
    ext = change.external
    assert ext is not None
    policies = config.policies
    if state is None or state.external_id is None:
        return Decision(
            "skip", "external object not linked to this entity (yet)", external_id=ext.external_id
        )
    if ext.change == "delete" and state.external_id == ext.external_id:
        return _target_gone(policies.target_delete, ext.external_id)
    if (skip := _nothing_new(ext, state, mapper)) is not None:
        return skip

    known = tuple(v for v in (state.row_id, *state.superseded) if v is not None)

    def linked(action: Action, reason: str, payload_hash: str | None = None) -> Decision:
        return Decision(
            action,
            reason,
            payload_hash=payload_hash,
            external_id=ext.external_id,
            fields=dict(ext.fields),
            version=ext.version,
            known_versions=known,
        )

    if state.unpushed:
        # The source changed too and that change is not pushed yet: both sides changed.
        policy = policies.conflict
        if policy == "target_wins":
            return linked("pull", "conflict: target wins")
        if policy == "manual":
            return linked("park", "conflict: both sides changed; policy manual")
        if policy == "newest_wins":
            return linked("push_current", "conflict: newest wins (compare on apply)")
        return linked("push_current", "conflict: source wins")
    # payload_hash: the source payload we last agreed on; the pull checks the row still has it.
    return linked("pull", "external object changed", state.payload_hash)
