"""Exported JSON Schemas describe the events cdcsync really emits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cdcsync.operators.contracts import CONTRACTS, export_schemas, json_schema
from cdcsync.schemas.config import Config
from cdcsync.schemas.events import SCHEMA_VERSION, ConflictEvent, ExternalRef, Notification
from cdcsync.streams.config import load_config
from cdcsync.testing.samples import POSITION, dead_letter, sync_result

EXAMPLES = {
    "sync-result": sync_result(),
    "dead-letter": dead_letter(),
    "conflict": ConflictEvent(
        entity="contact",
        entity_id="7",
        external=ExternalRef(type="contact", id="x1"),
        source_version={"firstName": "Ada"},
        target_version={"firstName": "Ada L."},
        source=POSITION,
        detected_ms=4,
    ),
    "notification": Notification(
        level="error",
        entity="contact",
        entity_id="7",
        message="gave up after 5 attempts",
        source=POSITION,
        created_ms=5,
    ),
}


def test_one_file_each_with_id_and_version(tmp_path: Path):
    paths = export_schemas(tmp_path / "out")
    assert sorted(p.name for p in paths) == [
        f"audit.v{SCHEMA_VERSION}.schema.json",
        "config.v1.schema.json",
        f"conflict.v{SCHEMA_VERSION}.schema.json",
        f"dead-letter.v{SCHEMA_VERSION}.schema.json",
        f"notification.v{SCHEMA_VERSION}.schema.json",
        f"operator-action.v{SCHEMA_VERSION}.schema.json",
        f"sync-result.v{SCHEMA_VERSION}.schema.json",
    ]
    for path in paths:
        schema = json.loads(path.read_text())
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert schema["$id"].startswith("urn:cdcsync:schema:")
        assert schema["x-schema-version"] >= 1


def test_events_pin_their_version_and_require_every_field():
    for contract in CONTRACTS:
        schema = json_schema(contract)
        if contract.emitted:
            assert schema["properties"]["schema_version"]["const"] == contract.version
            assert set(schema["required"]) == set(schema["properties"])


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_a_real_event_round_trips_through_its_model(name: str):
    contract = next(c for c in CONTRACTS if c.name == name)
    event = json.loads(EXAMPLES[name].model_dump_json())
    assert set(event) == set(json_schema(contract)["properties"])  # every field is written
    assert contract.model.model_validate(event) == EXAMPLES[name]


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_exported_schema_validates_a_real_event(name: str, tmp_path: Path):
    jsonschema = pytest.importorskip("jsonschema")
    export_schemas(tmp_path)
    contract = next(c for c in CONTRACTS if c.name == name)
    schema = json.loads((tmp_path / contract.filename).read_text())
    event = json.loads(EXAMPLES[name].model_dump_json())
    jsonschema.Draft202012Validator(schema).validate(event)
    wrong = {**event, "schema_version": contract.version + 1}
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft202012Validator(schema).validate(wrong)


def test_config_schema_accepts_the_demo_configuration(tmp_path: Path):
    jsonschema = pytest.importorskip("jsonschema")
    demo = Path(__file__).resolve().parents[3] / "demo" / "cdcsync.yaml"
    load_config(demo)  # valid for pydantic, so it must be for the exported schema too
    schema = json_schema(next(c for c in CONTRACTS if c.model is Config))
    jsonschema.Draft202012Validator(schema).validate(yaml.safe_load(demo.read_text()))
