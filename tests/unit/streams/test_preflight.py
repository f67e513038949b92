"""Start-up checks report every configuration problem with its path and what to do."""

from __future__ import annotations

from typing import Any

import pytest

from cdcsync.mappers.loader import build_mapper
from cdcsync.operators.providers import describe_providers
from cdcsync.schemas.config import Config
from cdcsync.streams.preflight import check_columns, check_key_types, check_targets


def _config(**entity: Any) -> Config:
    return Config.model_validate(
        {
            "integrations": {
                "crm": {"provider": "rest", "settings": {"base_url": "https://crm.example.com"}},
                "old": {"provider": "rest", "enabled": False},
            },
            "entities": {
                "contact": {
                    "topic": "t.contact",
                    "mapping": {"firstName": "first_nam", "email": {"column": "email"}},
                    "source": {"table": "contact"},
                    "target": {
                        "integration": "crm",
                        "settings": {"collection_path": "/c", "object_type": "contact"},
                    },
                    **entity,
                }
            },
        }
    )


def test_a_mapping_to_a_missing_column_names_the_field_and_the_table() -> None:
    config = _config()
    mappers = {"contact": build_mapper(config.entities["contact"].mapping)}
    problems = check_columns(config, mappers, {"public.contact": ["id", "email", "first_name"]})
    assert problems == [
        "entities.contact.mapping.firstName: column 'first_nam' does not exist in public.contact "
        "(it has email, first_name, id); fix the mapping or add it"
    ]


def test_a_missing_source_table_is_reported() -> None:
    config = _config()
    mappers = {"contact": build_mapper(config.entities["contact"].mapping)}
    (problem,) = check_columns(config, mappers, {})
    assert problem.startswith("entities.contact.source.table: public.contact does not exist")


def test_unknown_fields_and_wrong_types_in_target_settings_are_reported() -> None:
    config = _config(
        target={"integration": "crm", "settings": {"collection_path": 5, "colour": "red"}}
    )
    (problem,) = check_targets(config)
    assert problem.startswith("entities.contact.target (integrations.crm).settings: invalid")
    assert "collection_path: Input should be a valid string" in problem
    assert "colour: Extra inputs are not permitted" in problem
    assert "object_type: Field required" in problem


def test_a_valid_configuration_has_no_problems() -> None:
    assert check_targets(_config()) == []


def test_providers_list_shows_settings_defaults_and_who_uses_them() -> None:
    rest = next(p for p in describe_providers(_config()) if p.identifier == "rest")
    assert rest.integrations == ["crm", "old (disabled)"]
    settings = {s.name: s for s in rest.settings}
    assert settings["base_url"].required and not settings["page_size"].required
    assert settings["page_size"].default == 100 and settings["token"].secret


@pytest.mark.parametrize(
    ("key_type", "column_type", "problem"),
    [
        ("integer", "integer", None),
        ("integer", "bigint", None),
        ("text", "uuid", None),
        ("text", "character varying", None),
        ("integer", "text", "is text, which Debezium keys as a string; set key_type: text"),
        ("text", "bigint", "is bigint, which Debezium keys as a number; set key_type: integer"),
    ],
)
def test_key_type_must_match_the_key_column(key_type, column_type, problem) -> None:
    config = _config(key_type=key_type)
    problems = check_key_types(config, {"public.contact": {"id": column_type}})
    if problem is None:
        assert problems == []
    else:
        (found,) = problems
        assert found.startswith("entities.contact.key_type: the key column 'id' of public.contact")
        assert found.endswith(problem)
