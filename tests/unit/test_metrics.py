"""The metric functions the agent calls, and consumer lag at scrape time."""

from __future__ import annotations

from cdcsync import metrics
from cdcsync.testing.samples import dead_letter, sync_result


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


def test_results_count_by_entity_and_action_with_latency():
    before = value("cdcsync_events_total", entity="m-test", action="create")
    result = sync_result(entity="m-test", latency_ms=250.0)
    metrics.observe_result(result)
    assert value("cdcsync_events_total", entity="m-test", action="create") == before + 1
    assert value("cdcsync_sync_latency_seconds_sum", entity="m-test", action="create") >= 0.25


def test_dead_letters_retries_and_api_calls():
    letter = dead_letter(entity="m-test")
    metrics.observe_dead_letter(letter)
    metrics.observe_retry("m-test")
    metrics.observe_api_call("m-test", "put", 0.02)
    assert value("cdcsync_dead_letters_total", entity="m-test", reason="schema") >= 1
    assert value("cdcsync_retries_total", entity="m-test") >= 1
    assert value("cdcsync_external_api_seconds_count", entity="m-test", method="PUT") >= 1


def test_lag_comes_from_the_source_at_scrape_time():
    metrics.set_lag_source(lambda: {("cdcsync.contact", 2): 7, ("cdcsync.contact", 0): -1})
    try:
        assert value("cdcsync_consumer_lag", topic="cdcsync.contact", partition="2") == 7
        assert value("cdcsync_consumer_lag", topic="cdcsync.contact", partition="0") == 0
        text = metrics.exposition().decode()
        assert 'cdcsync_consumer_lag{partition="2",topic="cdcsync.contact"} 7.0' in text
    finally:
        metrics.set_lag_source(None)


def test_a_failing_lag_source_never_breaks_a_scrape():
    def broken() -> dict:
        raise RuntimeError("consumer not started")

    metrics.set_lag_source(broken)
    try:
        assert b"cdcsync_consumer_lag" in metrics.exposition()
    finally:
        metrics.set_lag_source(None)
