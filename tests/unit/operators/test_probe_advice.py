"""The probe's pure half: canned answers of familiar APIs in, the settings that fit them out."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from cdcsync.operators.probe import advise
from cdcsync.operators.probe_advice import (
    Advice,
    Answer,
    Trial,
    item_advice,
    listing_advice,
    lookup_advice,
    needs_trials,
    object_advice,
    refusal,
    trial_advice,
    yaml_value,
)
from cdcsync.operators.probe_calls import Observed
from cdcsync.operators.probe_writes import WriteAnswers, answer_shape, write_advice
from cdcsync.sinks.providers.rest.settings import RestSettings

BASE = "http://api.test"


def answer(status: int = 200, body: Any = None, **headers: str) -> Answer:
    """An answer as the probe records it from a real ``httpx.Response``."""
    named = {k.replace("_", "-"): v for k, v in headers.items()}
    if body is None:
        return Answer.of(httpx.Response(status, headers=named))
    return Answer.of(httpx.Response(status, json=body, headers=named))


def people(*ids: Any, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": i, "name": f"n{i}", **extra} for i in ids]


def settings(**changes: Any) -> RestSettings:
    return RestSettings(
        base_url=BASE, collection_path="/contacts", object_type="contact", **changes
    )


def wanted(found: list[Advice]) -> dict[str, Any]:
    """The settings the ``set`` findings call for, first finding first."""
    merged: dict[str, Any] = {}
    for advice in found:
        if advice.kind == "set":
            for name, value in {**advice.settings, **advice.entity}.items():
                merged.setdefault(name, value)
    return merged


def lines(found: list[Advice]) -> str:
    return "\n".join(a.line() for a in found)


# -- listings of familiar APIs --------------------------------------------------------


def test_a_bare_array_with_link_and_total_headers_is_json_server():
    link = (
        f'<{BASE}/contacts?_page=1&_limit=2>; rel="first", '
        f'<{BASE}/contacts?_page=2&_limit=2>; rel="next"'
    )
    page = answer(body=people(1, 2), Link=link, X_Total_Count="5")
    found = listing_advice(page, limit=2, limit_param="_limit")
    assert wanted(found) == {
        "items_path": "",
        "total_header": "X-Total-Count",
        "paging": "link_header",
    }
    text = lines(found)
    assert 'the listing is a bare array: set items_path: ""' in text
    assert "the total is in X-Total-Count: set total_header: X-Total-Count" in text
    assert "next page link in the Link header: set paging: link_header" in text
    assert not needs_trials(page, limit=2)


def test_a_data_envelope_with_a_meta_total_is_directus_and_pages_by_offset():
    page = answer(body={"data": people(1, 2), "meta": {"total_count": 5}})
    found = listing_advice(page, limit=2, limit_param="limit")
    assert wanted(found) == {"items_path": "/data", "total_path": "/meta/total_count"}
    assert "items are under /data: set items_path: /data" in lines(found)
    assert needs_trials(page, limit=2)  # a full page, and no way to the next one shown
    trials = [
        Trial("offset", "offset", 2, answer(body={"data": people(3, 4)})),
        Trial("page", "page", 2, answer(body={"data": people(1, 2)})),
    ]
    paging = trial_advice(people(1, 2), trials, items_path="/data")
    assert wanted(paging) == {"paging": "offset", "offset_param": "offset"}


def test_offset_trials_that_answer_the_first_page_again_find_nothing():
    trials = [Trial("offset", "skip", 2, answer(body=people(1, 2)))]
    [found] = trial_advice(people(1, 2), trials, items_path="")
    assert found.kind == "problem" and "skip=2" in found.seen


def test_drf_pages_by_its_next_link_and_counts_in_count():
    body = {"count": 9, "next": f"{BASE}/contacts/?limit=2&offset=2", "previous": None,
            "results": people(1, 2)}  # fmt: skip
    found = listing_advice(answer(body=body), limit=2, limit_param="limit")
    assert wanted(found) == {
        "items_path": "/results",
        "total_path": "/count",
        "paging": "cursor",
        "next_path": "/next",
    }
    assert "next page link at /next" in lines(found)


def test_an_opaque_cursor_is_named_a_cursor():
    body = {"items": people(1, 2), "next": "eyJpZCI6Mn0"}
    found = listing_advice(answer(body=body), limit=2, limit_param="limit")
    assert wanted(found) == {"items_path": "/items", "paging": "cursor", "next_path": "/next"}
    assert "next cursor at /next" in lines(found)


def test_more_objects_than_asked_for_means_the_limit_parameter_is_ignored():
    found = listing_advice(answer(body=people(1, 2, 3)), limit=2, limit_param="per_page")
    [problem] = [a for a in found if a.kind == "problem"]
    assert "ignores per_page" in problem.seen


def test_a_listing_without_a_list_says_so():
    [found] = listing_advice(answer(body={"total": 1}), limit=2, limit_param="limit")
    assert found.kind == "problem" and "set items_path" in found.seen


# -- objects, ids, versions ------------------------------------------------------------


def test_integer_ids_and_a_version_field_are_seen_in_the_items():
    found = item_advice({"id": 7, "rowId": "a1", "name": "x"}, id_field="id", version_field="rowId")
    assert wanted(found) == {"id_field": "id", "version_source": "field", "version_field": "rowId"}
    assert "ids are integers" in lines(found)


def test_another_id_and_version_field_are_proposed():
    found = item_advice(
        {"_id": "x", "updated_at": "2025-01-01"}, id_field="id", version_field="rowId"
    )
    assert wanted(found) == {
        "id_field": "_id",
        "version_source": "field",
        "version_field": "updated_at",
    }


def test_an_etag_without_a_version_field_is_the_version():
    found = object_advice(answer(body={"id": 1, "name": "x"}, ETag='"v7"'), id_field="id",
                          version_field="rowId")  # fmt: skip
    assert wanted(found) == {"object_path": "", "version_source": "etag", "poll.version": "hash"}


def test_an_etag_beside_a_version_field_is_possible():
    found = object_advice(answer(body={"id": 1, "rowId": "r"}, ETag='"r"'), id_field="id",
                          version_field="rowId")  # fmt: skip
    [etag] = [a for a in found if a.aspect == "versions"]
    assert etag.kind == "option"
    assert etag.line().endswith("version_source: etag and poll.version: hash is possible")


def test_no_version_field_and_no_etag_means_hashing():
    found = object_advice(answer(body={"data": {"id": 1, "name": "x"}}), id_field="id",
                          version_field="rowId")  # fmt: skip
    assert wanted(found) == {
        "object_path": "/data",
        "version_source": "none",
        "poll.version": "hash",
    }
    assert "no version field and no ETag: set version_source: none and poll.version: hash" in lines(
        found
    )


def test_a_lookup_that_ignores_its_filter_rules_out_the_natural_key():
    ignored = lookup_advice("email", "a@x", answer(body=people(1, 2)), items_path="")
    assert ignored[0].kind == "problem" and "natural_key" in ignored[0].seen
    honoured = lookup_advice(
        "email", "a@x", answer(body=[{"id": 1, "email": "a@x"}]), items_path=""
    )
    assert honoured[0].kind == "note"


@pytest.mark.parametrize(
    ("status", "expected"),
    [(401, "Check the credential"), (403, "lack the permission"), (404, "collection_path")],
)
def test_refusals_say_what_to_check(status: int, expected: str):
    message = refusal(answer(status, {"error": "no"}), what="GET /x", path="/x")
    assert message is not None and expected in message
    assert refusal(answer(200, []), what="GET /x", path="/x") is None


def test_values_are_written_as_yaml_to_paste():
    assert yaml_value("") == '""'
    assert yaml_value("/data") == "/data"
    assert yaml_value("X-Total-Count") == "X-Total-Count"
    assert yaml_value({"meta": "total_count"}) == "{meta: total_count}"
    assert yaml_value(None) == "null" and yaml_value("null") == '"null"'


def test_a_finding_fits_the_configuration_or_not():
    advice = Advice("listing", "items are under /data", settings={"items_path": "/data"})
    assert advice.fits({"items_path": "/data"}) is True
    assert advice.fits({"items_path": "/items"}) is False
    assert Advice("x", "a note", "note").fits({}) is None


# -- the whole read side -----------------------------------------------------------------


def test_a_total_is_only_an_option_under_cursor_paging():
    observed = Observed(answer(body={"items": people(1), "next": None}, X_Total_Count="1"), limit=2)
    [total] = [a for a in advise(observed, settings()) if a.aspect == "total"]
    assert total.kind == "option"


def test_an_empty_page_but_a_full_plain_listing_blames_the_limit_parameter():
    observed = Observed(answer(body=[]), limit=2, plain=answer(body=people(1, 2, 3)))
    found = advise(observed, settings(items_path=""))
    assert any(a.kind == "problem" and "set limit_param" in a.seen for a in found)
    assert not any("ignores limit" in a.seen for a in found)  # the plain listing sent none


# -- write answers ---------------------------------------------------------------------


def test_write_answer_shapes():
    s = settings(items_path="")
    whole = answer(201, {"id": 5, "rowId": "r1", "name": "x"}, Location=f"{BASE}/contacts/5")
    assert answer_shape(whole, s) == answer_shape(whole, s).__class__(
        201, "object", "5", "rowId", f"{BASE}/contacts/5"
    )
    assert answer_shape(answer(201, {"id": "a"}), s).body == "id only"
    assert answer_shape(answer(201, 42), s).object_id == "42"
    located = answer_shape(answer(201, Location="/contacts/a%20b"), s)
    assert (located.body, located.object_id) == ("empty", "a b")
    assert answer_shape(answer(204), s).body == "empty"


def test_complete_answers_and_an_honoured_if_match():
    s = settings()
    obj = {"id": "a", "rowId": "r", "name": "x"}
    w = WriteAnswers(answer(201, obj), answer(412, {"error": "stale"}), answer(200, obj), False,
                     answer(204), answer(404, {"error": "gone"}))  # fmt: skip
    assert wanted(write_advice(w, s, versioned=True)) == {
        "after_write": "read_back",
        "concurrency": "if_match",
    }


def test_empty_answers_an_ignored_if_match_and_merge_patch():
    s = settings(update_method="PATCH")
    w = WriteAnswers(answer(201, Location="/contacts/a"), answer(204), answer(204), True,
                     answer(204), answer(404))  # fmt: skip
    found = write_advice(w, s, versioned=True)
    assert wanted(found) == {
        "after_write": "read_back",
        "concurrency": "read_before_write",
        "patch_format": "merge-patch",
    }
    assert "one GET per write" in lines(found)
    unversioned = wanted(write_advice(w, s, versioned=False))
    assert unversioned["after_write"] == "next_poll" and unversioned["concurrency"] == "none"


def test_a_refused_create_a_missing_id_and_a_soft_delete_are_problems():
    s = settings()
    [refused] = write_advice(
        WriteAnswers(answer(422, {"error": "name required"})), s, versioned=True
    )
    assert refused.kind == "problem" and "--payload" in refused.seen
    no_id = write_advice(WriteAnswers(answer(201, {"ok": True})), s, versioned=True)
    assert any(a.kind == "problem" and "names no id" in a.seen for a in no_id)
    obj = {"id": "a", "rowId": "r", "name": "x"}
    soft = WriteAnswers(answer(201, obj), answer(412), answer(200, obj), False, answer(204),
                        answer(200, obj))  # fmt: skip
    assert any(
        a.aspect == "deletes" and a.kind == "problem" for a in write_advice(soft, s, versioned=True)
    )


def test_a_weak_etag_is_only_an_option():
    found = object_advice(answer(body={"id": 1, "name": "x"}, ETag='W/"62-abc"'), id_field="id",
                          version_field="rowId")  # fmt: skip
    assert wanted(found) == {"object_path": "", "version_source": "none", "poll.version": "hash"}
    assert any(a.kind == "option" and "weak" in a.seen for a in found)


def test_an_ignored_page_size_is_found_among_the_usual_parameters():
    """json-server 0.17: ``limit`` is ignored, ``_limit`` and ``_start`` are honoured."""
    trials = [
        Trial("limit", "_limit", 2, answer(body=people(1, 2), X_Total_Count="5")),
        Trial("offset", "offset", 2, answer(body=people(1, 2), X_Total_Count="5")),
        Trial("offset", "_start", 2, answer(body=people(3, 4), X_Total_Count="5")),
    ]
    observed = Observed(answer(body=people(1, 2, 3, 4, 5)), limit=2, trials=trials)
    found = advise(observed, settings())
    assert wanted(found) == {
        "items_path": "",
        "limit_param": "_limit",
        "total_header": "X-Total-Count",
        "paging": "offset",
        "offset_param": "_start",
        "id_field": "id",
    }
    assert any(a.kind == "problem" and "ignores limit" in a.seen for a in found)
