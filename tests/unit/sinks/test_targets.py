"""Targets become sinks: secrets read from env or file, checked without them, audited calls."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import ResolvedTarget, SecretRef
from cdcsync.schemas.events import AuditRecord
from cdcsync.sinks.base import CallCounter, call_counter
from cdcsync.sinks.providers.rest import RestSink
from cdcsync.sinks.secrets import resolve_secrets
from cdcsync.sinks.targets import build_target, check_target

SECRET = "tok-3f1c-do-not-print"
SETTINGS = {"base_url": "https://crm.example.com", "collection_path": "/c", "object_type": "c"}


def _target(**overrides: Any) -> ResolvedTarget:
    values: dict[str, Any] = {
        "integration": "crm", "provider": "rest", "enabled": True, "settings": SETTINGS,
        "params": {}, "secrets": {"token": SecretRef(env="CRM_TOKEN")},
    }  # fmt: skip
    return ResolvedTarget(**(values | overrides))


class ListAuditor:
    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    async def record(self, record: AuditRecord) -> None:
        self.records.append(record)


def test_secrets_come_from_the_environment_and_from_files(tmp_path: Path) -> None:
    (tmp_path / "token").write_text(SECRET + "\n")
    refs = {"a": SecretRef(env="CRM_TOKEN"), "b": SecretRef(file=str(tmp_path / "token"))}
    values = resolve_secrets(refs, where="integrations.crm.secrets", environ={"CRM_TOKEN": "e"})
    assert values["a"].get_secret_value() == "e" and values["b"].get_secret_value() == SECRET
    assert SECRET not in repr(values)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (SecretRef(env="CRM_TOKEN"), "x.token: the environment variable CRM_TOKEN is not set"),
        (SecretRef(file="/nonexistent/token"), "x.token: cannot read the secret from file"),
    ],
)
def test_a_missing_secret_says_where_it_was_looked_for(ref: SecretRef, message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        resolve_secrets({"token": ref}, where="x", environ={})


def test_check_validates_without_reading_secrets() -> None:
    settings = check_target(_target(), where="entities.c.target")
    assert settings.model_dump()["page_size"] == 100


def test_a_secret_written_in_the_file_is_refused() -> None:
    with pytest.raises(ConfigurationError) as caught:
        check_target(_target(settings={**SETTINGS, "token": SECRET}, secrets={}), where="w")
    assert "w.settings.token: a secret must not be written in the file" in str(caught.value)
    assert SECRET not in str(caught.value)


def test_a_secret_the_provider_does_not_take_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"w.secrets.password: provider 'rest' has no"):
        check_target(_target(secrets={"password": SecretRef(env="X")}), where="w")


def test_an_unknown_provider_is_named_with_its_path() -> None:
    with pytest.raises(ConfigurationError, match=r"^w.provider: unknown provider 'crmx'"):
        check_target(_target(provider="crmx"), where="w")


async def test_the_sink_gets_the_secret_and_audits_every_call_without_it() -> None:
    auditor = ListAuditor()
    sink = build_target(_target(), where="w", auditor=auditor, environ={"CRM_TOKEN": SECRET})
    assert isinstance(sink, RestSink)
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers["Authorization"])
        return httpx.Response(201, json={"id": "7", "rowId": "r1", "email": "a@b"})

    sink._sender.transport = httpx.MockTransport(handler)  # the network, nothing else
    token = call_counter.set(CallCounter(entity="contact", entity_id="42"))
    try:
        await sink.create({"email": "a@b"})
    finally:
        call_counter.reset(token)
        await sink.aclose()
    assert seen == [f"Bearer {SECRET}"]
    (record,) = auditor.records
    assert (record.integration, record.provider, record.method) == ("crm", "rest", "POST")
    assert (record.recipient, record.target) == ("https://crm.example.com", "/c")
    assert (record.entity, record.entity_id) == ("contact", "42")
    assert record.payload_digest is not None and record.payload_digest.startswith("sha256:")
    assert record.payload_bytes == len(b'{"email":"a@b"}')
    assert SECRET not in record.model_dump_json()
