"""The provider registry: identifiers to settings models and sinks, with clear config errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from importlib.metadata import EntryPoint
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict

from cdcsync.errors import ConfigurationError
from cdcsync.sinks.base import ExternalRecord, Sink
from cdcsync.sinks.providers.rest import RestSettings, RestSink
from cdcsync.sinks.registry import (
    ENTRY_POINT_GROUP,
    Provider,
    SinkRegistry,
    build_sink,
    default_registry,
    settings_model,
)

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

    def __init__(self, settings: _MemorySettings, context: object = None) -> None:
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
    assert message.startswith("invalid settings for provider 'rest'")
    assert all(name in message for name in names)


def test_invalid_settings_never_echo_the_values() -> None:
    leaked = "sk_live_do_not_print_me"
    with pytest.raises(ConfigurationError) as caught:
        build_sink("rest", dict(REST, api_key=leaked, page_size=leaked))
    assert "api_key" in str(caught.value) and leaked not in str(caught.value)
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


MEMORY = Provider("memory", "Memory", "for tests", _MemorySettings, _MemorySink)


def _plugin(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=ENTRY_POINT_GROUP)


def test_a_registry_with_an_object_and_an_entry_point() -> None:
    registry = SinkRegistry(
        {"memory": MEMORY}, plugins=[_plugin("rest", "cdcsync.sinks.providers.rest:provider")]
    )
    assert registry.names() == ["memory", "rest"]
    sink = registry.build("memory", {"object_type": "case"})
    assert isinstance(sink, _MemorySink) and sink.object_type == "case"
    assert registry.provider("rest").settings_model is RestSettings
    with pytest.raises(ValueError, match="already registered"):
        registry.register(MEMORY)
    registry.register(Provider("memory", "M", "", RestSettings, RestSink), replace=True)
    assert registry.provider("memory").settings_model is RestSettings


def test_the_installed_providers_are_found_by_entry_point() -> None:
    assert {"rest", "postgres"} <= set(default_registry.names())
    rest = default_registry.provider("rest")
    assert rest.identifier == "rest" and rest.display_name and rest.description
    defaults = rest.settings_defaults()
    assert defaults["base_url"] is ... and defaults["page_size"] == 100


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("cdcsync.sinks.no_such_module:provider", "cannot be loaded: No module named"),
        (
            "cdcsync.sinks.providers.rest:RestSettings",
            "is a ModelMetaclass, not a cdcsync.sinks.Provider",
        ),
        ("cdcsync.sinks.providers.rest:provider", "calls itself 'rest'; the names must match"),
    ],
)
def test_a_broken_plugin_names_its_entry_point(value: str, problem: str) -> None:
    registry = SinkRegistry(plugins=[_plugin("ghost", value)])
    with pytest.raises(ConfigurationError) as caught:
        registry.build("ghost", {})
    assert "entry point 'ghost'" in str(caught.value) and problem in str(caught.value)
    broken: dict[str, str] = {}
    assert registry.all(broken) == [] and "ghost" in broken
