"""Standard Webhooks verification: known vectors, rotation, expiry, replay."""

from __future__ import annotations

import base64

import pytest

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config
from cdcsync.streams.webhooks import (
    SeenIds,
    WebhookRejectedError,
    parse_secret,
    secret_env_names,
    secrets_for,
    sign,
    verify,
)

# The Standard Webhooks reference libraries' test vector.
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
MSG_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
TIMESTAMP = 1614265330
BODY = b'{"test": 2432232314}'
SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
KEY = parse_secret(SECRET)
OTHER = parse_secret("whsec_" + base64.b64encode(b"another secret, rotated in").decode())


def headers(signature: str = SIGNATURE, msg_id: str = MSG_ID, ts: int = TIMESTAMP) -> dict:
    return {"webhook-id": msg_id, "webhook-timestamp": str(ts), "webhook-signature": signature}


def test_known_vector_signs_and_verifies():
    assert sign(KEY, MSG_ID, TIMESTAMP, BODY) == SIGNATURE
    assert verify(headers(), BODY, [KEY], now_s=TIMESTAMP) == (MSG_ID, TIMESTAMP)


def test_secret_with_or_without_prefix_and_padding():
    assert parse_secret(SECRET) == parse_secret(SECRET.removeprefix("whsec_"))
    assert parse_secret("whsec_YWJj") == b"abc"
    assert parse_secret("whsec_YWI") == b"ab"  # unpadded base64


@pytest.mark.parametrize("bad", ["", "whsec_", "whsec_not base64!"])
def test_unusable_secrets_are_configuration_errors(bad):
    with pytest.raises(ConfigurationError):
        parse_secret(bad)


def test_header_names_are_case_insensitive():
    given = {k.title(): v for k, v in headers().items()}
    assert verify(given, BODY, [KEY], now_s=TIMESTAMP)[0] == MSG_ID


def test_one_matching_signature_among_several_is_enough():
    sigs = " ".join(
        ["v1,Ceo5qEr07ixe2NLpvHk3FH9bwy/WavXrAFQ/9tdO6mc=", "v2,whatever", "v1,%%%", SIGNATURE]
    )
    assert verify(headers(sigs), BODY, [KEY], now_s=TIMESTAMP)


def test_rotation_any_configured_secret_verifies():
    signed_with_other = sign(OTHER, MSG_ID, TIMESTAMP, BODY)
    assert verify(headers(signed_with_other), BODY, [KEY, OTHER], now_s=TIMESTAMP)
    with pytest.raises(WebhookRejectedError) as info:
        verify(headers(signed_with_other), BODY, [KEY], now_s=TIMESTAMP)
    assert info.value.status == 401


@pytest.mark.parametrize(
    ("change", "status", "reason"),
    [
        ({"webhook-signature": "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OA="}, 401, "no sig"),
        ({"webhook-signature": "v2," + SIGNATURE[3:]}, 401, "no v1"),
        ({"webhook-signature": ""}, 400, "missing"),
        ({"webhook-id": ""}, 400, "missing"),
        ({"webhook-timestamp": "hello"}, 400, "Unix seconds"),
        ({"webhook-timestamp": "1614265330.5"}, 400, "Unix seconds"),
        ({"webhook-id": "msg_other"}, 401, "no sig"),
    ],
)
def test_bad_calls_are_rejected_with_a_reason(change, status, reason):
    given = {**headers(), **change}
    with pytest.raises(WebhookRejectedError, match=reason) as info:
        verify(given, BODY, [KEY], now_s=TIMESTAMP)
    assert info.value.status == status


def test_a_changed_body_does_not_verify():
    with pytest.raises(WebhookRejectedError, match="no signature matches"):
        verify(headers(), BODY + b" ", [KEY], now_s=TIMESTAMP)


def test_timestamps_outside_five_minutes_are_rejected():
    assert verify(headers(), BODY, [KEY], now_s=TIMESTAMP + 300)
    assert verify(headers(), BODY, [KEY], now_s=TIMESTAMP - 300)
    with pytest.raises(WebhookRejectedError, match="too old"):
        verify(headers(), BODY, [KEY], now_s=TIMESTAMP + 301)
    with pytest.raises(WebhookRejectedError, match="future"):
        verify(headers(), BODY, [KEY], now_s=TIMESTAMP - 301)


def test_no_secret_configured_rejects_everything():
    with pytest.raises(WebhookRejectedError, match="no webhook secret") as info:
        verify(headers(), BODY, [], now_s=TIMESTAMP)
    assert info.value.status == 401


def test_seen_ids_reject_replays_until_they_expire():
    seen = SeenIds(tolerance_s=300)
    assert seen.first_time("a", now_s=1000)
    assert not seen.first_time("a", now_s=1000 + 599)
    assert seen.first_time("a", now_s=1000 + 600.1)  # its timestamp can no longer pass


def test_seen_ids_stay_bounded_and_can_forget():
    seen = SeenIds(max_ids=3)
    for n in range(5):
        assert seen.first_time(str(n), now_s=0)
    assert len(seen) == 3
    assert seen.first_time("0", now_s=0)  # the oldest were dropped
    seen.forget("4")
    assert seen.first_time("4", now_s=0)


def test_secrets_from_the_environment_with_rotation():
    config = Config.model_validate(
        {
            "entities": {
                "sales-lead": {
                    "topic": "t",
                    "mapping": {"email": "email"},
                    "target": {"provider": "rest"},
                }
            }
        }
    )
    names = secret_env_names(config, "sales-lead")
    assert names == ["CDCSYNC_WEBHOOK_SECRET_SALES_LEAD"]
    env = {names[0]: f"  {SECRET}   whsec_YWJj "}
    assert secrets_for(config, "sales-lead", env) == [KEY, b"abc"]
    assert secrets_for(config, "sales-lead", {}) == []
