"""The state after each outcome: pure, and the position it records never moves back."""

from __future__ import annotations

import pytest

from cdcsync.agents.change import Outcome, RawEvent
from cdcsync.agents.parking import give_up, park_behind, park_failed, parked_event
from cdcsync.agents.state import StateStore, next_state
from cdcsync.schemas.config import RetryConfig
from cdcsync.schemas.events import SourcePosition
from cdcsync.schemas.state import SyncState

AT_5 = SourcePosition(topic="t", partition=0, offset=5)
SYNCED = SyncState(external_id="x1", row_id="v1", payload_hash="h1", last_partition=0,
                   last_offset=4)  # fmt: skip


def test_a_push_records_the_new_version_and_supersedes_the_old():
    outcome = Outcome("update", "pushed", "x1", version="v2", payload_hash="h2")
    state = next_state(SYNCED, outcome, AT_5, now_ms=7)
    assert (state.status, state.row_id, state.payload_hash) == ("synced", "v2", "h2")
    assert state.superseded == ["v1"]
    assert (state.last_offset, state.updated_ms) == (5, 7)


def test_a_conflict_resolution_supersedes_the_version_it_overwrote():
    outcome = Outcome("update", "source wins", "x1", version="v3", superseded="v2")
    state = next_state(SYNCED, outcome, AT_5, now_ms=7)
    assert state.superseded == ["v1", "v2"]


@pytest.mark.parametrize("action", ["delete", "pull_delete", "mark_target"])
def test_gone_forgets_the_external_object(action):
    state = next_state(SYNCED, Outcome(action, "gone", "x1"), AT_5, now_ms=7)
    assert (state.status, state.external_id, state.row_id, state.payload_hash) == (
        "deleted", None, None, None,
    )  # fmt: skip


def test_park_marks_a_conflict():
    state = next_state(SYNCED, Outcome("park", "manual", "x1"), AT_5, now_ms=7)
    assert state.status == "conflict"


def test_a_skip_ends_a_retry_and_keeps_the_versions():
    retrying = SYNCED.model_copy(update={"status": "retrying", "attempts": 2, "errors": ["e"]})
    state = next_state(retrying, Outcome("skip", "same", "x1"), AT_5, now_ms=7)
    assert (state.status, state.attempts, state.errors, state.row_id) == ("synced", 0, [], "v1")


def test_a_redelivered_record_never_moves_the_position_back():
    earlier = SourcePosition(topic="t", partition=0, offset=2)
    state = next_state(SYNCED, Outcome("skip", "again", "x1"), earlier, now_ms=7)
    assert state.last_offset == 4


def test_giving_up_after_retries_clears_the_retry_and_records_the_position():
    raw = RawEvent(b'{"id":1}', b"{}", AT_5, 1)
    parked = park_failed(SYNCED, parked_event(raw), origin="source", error="503", attempts=1,
                         errors=[], now_ms=10, retry=RetryConfig())  # fmt: skip
    failed = give_up(parked, "503 again", AT_5, origin="source", now_ms=20)
    assert (failed.status, failed.last_error, failed.attempts, failed.retry_at_ms) == (
        "permanently_failed", "503 again", 0, None,
    )  # fmt: skip
    assert (failed.last_offset, failed.updated_ms) == (5, 20)
    assert failed.parked == parked.parked  # the queue behind it is the caller's to redrive


def test_only_a_parked_or_failed_source_change_is_pending_not_a_pull():
    raw = RawEvent(b'{"id":1}', b"{}", AT_5, 1)
    kw = {"error": "503", "attempts": 1, "errors": [], "now_ms": 10, "retry": RetryConfig()}
    pull = park_failed(SYNCED, parked_event(raw), origin="external", **kw)
    assert pull.status == "retrying" and not pull.unpushed
    assert not give_up(pull, "403", AT_5, origin="external", now_ms=20).unpushed
    behind = RawEvent(b'{"id":1}', b"{}", SourcePosition(topic="t", partition=0, offset=6), 1)
    # a row change queued behind may be our pull's echo: the retried pull reads the row
    assert not park_behind(pull, parked_event(behind)).unpushed
    push = park_failed(SYNCED, parked_event(raw), origin="source", **kw)
    assert push.unpushed and give_up(push, "403", AT_5, origin="external", now_ms=20).unpushed
    # pushed, pulled, or nothing to push: both sides agree again
    synced = next_state(push, Outcome("update", "ok", "x1"), AT_5, now_ms=30, origin="source")
    assert not synced.unpushed
    skipped = next_state(push, Outcome("skip", "echo", "x1"), AT_5, now_ms=30, origin="external")
    assert skipped.unpushed
    # a state written before the flag was kept reads it from its status
    legacy = SyncState.model_validate({"status": "permanently_failed"})
    assert legacy.source_pending is None and legacy.unpushed


def test_the_store_keeps_json_and_the_reference_follows_the_external_id():
    store = StateStore(table={}, refs={})
    raw = RawEvent(b'{"id":1}', None, AT_5, 1)
    store.store("1", SYNCED)
    assert store.table["1"]["external_id"] == "x1" and store.load("1") == SYNCED
    assert store.load("2") is None
    store.link(raw, None, SYNCED)
    assert store.refs == {"x1": '{"id":1}'}
    store.link(raw, SYNCED, SYNCED.model_copy(update={"external_id": "x9"}))
    assert store.refs == {"x9": '{"id":1}'}


def test_a_pull_remembers_when_it_wrote_the_row_and_a_delete_forgets_it():
    pull = Outcome("pull", "edited", "x1", version="r9", payload_hash="h", written_ms=5_000)
    pulled = next_state(SYNCED, pull, AT_5, now_ms=10, origin="external")
    assert pulled.pulled_ms == 5_000
    pushed = next_state(pulled, Outcome("update", "ok", "x1", version="r10"), AT_5, now_ms=11)
    assert pushed.pulled_ms == 5_000  # a push leaves the row as it was
    gone = next_state(pulled, Outcome("delete", "row deleted", "x1"), AT_5, now_ms=12)
    assert gone.pulled_ms is None
