"""Integrations: named provider configurations, params, secrets, enabled or not."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import Config
from cdcsync.streams.config import load_config

ENTITY = {"topic": "t.contact", "mapping": {"email": "email"}}


def _config(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "integrations": {
            "crm_a": {
                "provider": "rest",
                "settings": {"base_url": "https://a.example.com/${params.tenant}"},
                "params": {"tenant": "acme", "size": 50},
                "secrets": {"token": {"env": "CRM_A_TOKEN"}},
            },
            "crm_b": {"provider": "rest", "enabled": False, "settings": {}},
        },
        "entities": {
            "contact": {
                **ENTITY,
                "target": {
                    "integration": "crm_a",
                    "settings": {"collection_path": "/contacts", "page_size": "${params.size}"},
                },
            },
            "lead": {**ENTITY, "topic": "t.lead", "target": "crm_b"},
        },
    }
    data.update(overrides)
    return data


def test_an_entity_gets_its_integrations_settings_params_and_secrets() -> None:
    target = Config.model_validate(_config()).target("contact")
    assert target.provider == "rest" and target.integration == "crm_a"
    assert target.settings == {
        "base_url": "https://a.example.com/acme",
        "collection_path": "/contacts",
        "page_size": 50,  # a whole-value param keeps its type
    }
    assert target.secrets["token"].env == "CRM_A_TOKEN"


def test_entity_settings_override_the_integrations() -> None:
    data = _config()
    data["entities"]["contact"]["target"]["settings"]["base_url"] = "https://override"
    assert Config.model_validate(data).target("contact").settings["base_url"] == "https://override"


def test_a_disabled_integration_disables_its_entities() -> None:
    config = Config.model_validate(_config())
    assert config.enabled_entities() == ["contact"]
    assert config.target("lead").enabled is False


def test_a_disabled_entity_consumes_nothing_either() -> None:
    data = _config()
    data["entities"]["contact"]["enabled"] = False
    assert Config.model_validate(data).enabled_entities() == []


def test_an_inline_target_still_works() -> None:
    data = _config()
    data["entities"]["contact"]["target"] = {"provider": "rest", "settings": {"x": 1}}
    target = Config.model_validate(data).target("contact")
    assert target.integration is None and target.settings == {"x": 1} and target.enabled


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("crm_c", "unknown integration 'crm_c' ('crm_a', 'crm_b'); add it under `integrations:`"),
        ({"integration": "crm_a", "provider": "rest"}, "give either `integration: <name>`"),
        ({"settings": {}}, "give either `integration: <name>`"),
    ],
)
def test_a_wrong_target_says_what_to_do(target: Any, message: str, tmp_path: Path) -> None:
    data = _config()
    data["entities"]["contact"]["target"] = target
    path = tmp_path / "cdcsync.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigurationError) as caught:
        load_config(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_an_unknown_param_is_named_with_its_path() -> None:
    data = _config()
    data["integrations"]["crm_a"]["settings"]["base_url"] = "https://${params.nope}"
    with pytest.raises(ConfigurationError) as caught:
        Config.model_validate(data).target("contact")
    assert "integrations.crm_a.base_url: unknown param 'nope'" in str(caught.value)
    assert "params: size, tenant" in str(caught.value)


def test_two_entities_on_one_topic_are_refused() -> None:
    data = _config()
    data["entities"]["lead"]["topic"] = "t.contact"
    with pytest.raises(
        ValueError, match=r"both read topic 't\.contact'; each entity needs its own"
    ):
        Config.model_validate(data)


@pytest.mark.parametrize("ref", [{}, {"env": "A", "file": "/b"}])
def test_a_secret_comes_from_exactly_one_place(ref: dict[str, str]) -> None:
    data = _config()
    data["integrations"]["crm_a"]["secrets"]["token"] = ref
    with pytest.raises(ValueError, match="exactly one of `env: VARIABLE` or `file:"):
        Config.model_validate(data)
