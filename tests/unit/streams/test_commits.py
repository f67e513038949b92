"""Commits of an entity topic move only over records processed one after another."""

from __future__ import annotations

from faust.types import TP

from cdcsync.streams.commits import CommitPoint, commit_point


def test_a_run_from_the_committed_offset_is_committed():
    assert commit_point(469, [469, 470, 471, 475]) == CommitPoint(472, 3)


def test_an_unfinished_record_at_the_head_holds_the_commit():
    # Faust's own rule commits 476 here: offset 469 would be skipped.
    assert commit_point(469, [470, 471, 472, 473, 474, 475]) == CommitPoint(None, 0)


def test_offsets_already_committed_are_dropped():
    assert commit_point(10, [7, 8, 10, 11]) == CommitPoint(12, 4)
    assert commit_point(10, [7, 8]) == CommitPoint(None, 2)


def test_a_first_commit_takes_the_first_run_and_a_repeat_is_no_gap():
    assert commit_point(None, [3, 4, 6]) == CommitPoint(5, 2)
    assert commit_point(0, [0, 1, 1, 2]) == CommitPoint(3, 4)


async def test_the_worker_consumer_holds_an_entity_topic_at_an_unfinished_record(consumer):
    tp = TP("t.contact", 0)
    consumer._committed_offset[tp] = 469
    consumer._acked[tp] = [470, 471, 472]
    assert consumer._new_offset(tp) is None
    consumer._acked[tp].append(469)
    assert consumer._new_offset(tp) == 473


async def test_a_jump_in_fetched_offsets_is_no_gap_on_an_entity_topic(consumer):
    entity, changelog = TP("t.contact", 0), TP("t-commits-state_contact-changelog", 0)
    await consumer._add_gap(entity, 470, 472)
    await consumer._add_gap(changelog, 470, 472)
    assert not consumer._gap[entity]
    assert consumer._gap[changelog]  # Faust's own topics keep its rule


async def test_without_a_committed_offset_the_fetch_start_holds_the_commit(consumer):
    # Faust keeps no committed offset for 0: the first record unfinished must still hold.
    tp = TP("t.contact", 0)
    consumer.fetch_starts[tp] = 0
    consumer._acked[tp] = [1, 2, 3]
    assert consumer._new_offset(tp) is None
    consumer._acked[tp].insert(0, 0)
    assert consumer._new_offset(tp) == 4
