"""The provider registry: identifiers to settings models and sinks, with clear config errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from cdcsync.errors import ConfigurationError
from cdcsync.sinks.base import ExternalRecord, Sink
from cdcsync.sinks.registry import (
    Provider,
    SinkRegistry,
    build_sink,
    default_registry,
    settings_model,
)
from cdcsync.sinks.rest import RestSettings, RestSink

TOKEN_ENV = "CDCSYNC_TEST_REGISTRY_TOKEN"
REST = {
    "base_url": "https://crm.example.com",
    "collection_path": "/api/v1/contacts",
    "object_type": "contact",
    "token_env": TOKEN_ENV,
}


@pytest.fixture(autouse=True)
def _token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(TOKEN_ENV, "registry-secret-value")


class _MemorySettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    object_type: str


class _MemorySink(Sink):
    """The smallest provider: proves the registry is not tied to the REST one."""

    def __init__(self, settings: _MemorySettings) -> None:
        self.object_type = settings.object_type

    async def get(self, external_id: str) -> ExternalRecord | None:
        return None

    async def find(self, natural_key: Mapping[str, Any]) -> ExternalRecord | None:
        return None

    async def create(self, payload: Mapping[str, Any]) -> ExternalRecord:
        return ExternalRecord(id="1", row_id="v1", fields=dict(payload))

    async def update(self, external_id: str, payload: Mapping[str, Any]) -> ExternalRecord:
        return ExternalRecord(id=external_id, row_id="v2", fields=dict(payload))

    async def delete(self, external_id: str) -> bool:
        return False

    async def list(self) -> AsyncIterator[ExternalRecord]:
        return
        yield

    def link(self, external_id: str) -> str:
        return f"memory://{external_id}"


async def test_build_rest_sink_from_plain_settings() -> None:
    sink = build_sink("rest", dict(REST, page_size=7))
    try:
        assert isinstance(sink, RestSink)
        assert sink.object_type == "contact" and sink.settings.page_size == 7
        assert sink.link("9") == "https://crm.example.com/api/v1/contacts/9"
    finally:
        await sink.aclose()


async def test_build_accepts_an_already_validated_settings_model() -> None:
    settings = RestSettings(**REST)
    sink = build_sink("rest", settings)
    try:
        assert isinstance(sink, RestSink) and sink.settings is settings
    finally:
        await sink.aclose()


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_sink("salesforce", REST)
    assert "'salesforce'" in str(caught.value) and "'rest'" in str(caught.value)


@pytest.mark.parametrize(
    ("settings", "names"),
    [
        ({k: v for k, v in REST.items() if k != "object_type"}, ["object_type"]),
        (dict(REST, page_size="many", base_url="ftp://x"), ["page_size", "base_url"]),
    ],
)
def test_invalid_settings_name_each_field(settings: dict[str, Any], names: list[str]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        build_sink("rest", settings)
    message = str(caught.value)
    assert message.startswith("invalid settings for sink provider 'rest'")
    assert all(name in message for name in names)


def test_invalid_settings_never_echo_the_values() -> None:
    leaked = "sk_live_do_not_print_me"
    with pytest.raises(ConfigurationError) as caught:
        build_sink("rest", dict(REST, token=leaked, page_size=leaked))
    assert "token" in str(caught.value) and leaked not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_settings_must_be_a_mapping() -> None:
    with pytest.raises(ConfigurationError, match="must be a mapping"):
        build_sink("rest", ["base_url", "https://crm.example.com"])  # type: ignore[arg-type]


def test_a_missing_token_variable_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(TOKEN_ENV)
    with pytest.raises(ConfigurationError, match=TOKEN_ENV):
        build_sink("rest", REST)


def test_settings_model_for_early_validation() -> None:
    assert settings_model("rest") is RestSettings
    assert default_registry.names() == sorted(default_registry.names())
    assert "rest" in default_registry.names()
    with pytest.raises(ConfigurationError):
        settings_model("nope")


def test_a_custom_registry_with_an_eager_and_a_lazy_provider() -> None:
    registry = SinkRegistry({"memory": Provider(_MemorySettings, _MemorySink)})
    registry.register("rest2", "cdcsync.sinks.rest:RestSettings:RestSink")
    assert registry.names() == ["memory", "rest2"]
    sink = registry.build("memory", {"object_type": "case"})
    assert isinstance(sink, _MemorySink) and sink.object_type == "case"
    assert registry.provider("rest2") == Provider(RestSettings, RestSink)
    with pytest.raises(ValueError, match="already registered"):
        registry.register("memory", Provider(_MemorySettings, _MemorySink))
    registry.register("memory", Provider(RestSettings, RestSink), replace=True)
    assert registry.provider("memory").settings_model is RestSettings


def test_a_lazy_provider_whose_module_is_missing_says_so() -> None:
    registry = SinkRegistry({"ghost": "cdcsync.sinks.no_such_module:Settings:Sink"})
    with pytest.raises(ConfigurationError, match="'ghost' is not available"):
        registry.build("ghost", {})
