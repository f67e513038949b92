"""JSON Schemas of what cdcsync publishes, exported from the pydantic models.

Downstream consumers validate the result, dead-letter, conflict and notification
events against these
files; the configuration schema lets editors check ``cdcsync.yaml``. Each
file carries an ``$id`` naming the contract and its version, and the version
itself (``x-schema-version``), which every event also carries as
``schema_version``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cdcsync.schemas.config import Config
from cdcsync.schemas.events import (
    SCHEMA_VERSION,
    AuditRecord,
    ConflictEvent,
    DeadLetter,
    Notification,
    OperatorAction,
    SyncResult,
)
from cdcsync.sinks.registry import default_registry

__all__ = ["CONTRACTS", "Contract", "export_schemas", "json_schema"]

log = logging.getLogger(__name__)

DIALECT = "https://json-schema.org/draft/2020-12/schema"
#: Version of the configuration file's shape.
CONFIG_SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Contract:
    """One exported schema: its name (file stem), model and version."""

    name: str
    model: type[BaseModel]
    version: int
    title: str
    #: An event cdcsync writes (every field is always present) rather than input it reads.
    emitted: bool = True

    @property
    def schema_id(self) -> str:
        """The ``$id``: a URN that names the contract and its version."""
        return f"urn:cdcsync:schema:{self.name}:v{self.version}"

    @property
    def filename(self) -> str:
        """``<name>.v<version>.schema.json``."""
        return f"{self.name}.v{self.version}.schema.json"


#: Everything ``cdcsync schemas export`` writes; new event models are added here.
CONTRACTS: tuple[Contract, ...] = (
    Contract("sync-result", SyncResult, SCHEMA_VERSION, "cdcsync result event"),
    Contract("dead-letter", DeadLetter, SCHEMA_VERSION, "cdcsync dead-letter event"),
    Contract("conflict", ConflictEvent, SCHEMA_VERSION, "cdcsync conflict event"),
    Contract("notification", Notification, SCHEMA_VERSION, "cdcsync notification event"),
    Contract("audit", AuditRecord, SCHEMA_VERSION, "cdcsync audit record of an outgoing call"),
    Contract(
        "operator-action",
        OperatorAction,
        SCHEMA_VERSION,
        "cdcsync audit record of an operator action",
    ),
    Contract("config", Config, CONFIG_SCHEMA_VERSION, "cdcsync configuration file", emitted=False),
)


def json_schema(contract: Contract) -> dict[str, Any]:
    """The model's JSON Schema with ``$schema``, ``$id``, title and version.

    Events are described as written (every field present, so all are required)
    and pin ``schema_version`` to their version with ``const``, so a consumer
    validating against v1 rejects a v2 event instead of misreading it. The
    configuration is described as read (fields with defaults are optional).
    """
    schema = contract.model.model_json_schema(
        mode="serialization" if contract.emitted else "validation"
    )
    props = schema.get("properties", {})
    if contract.emitted:
        schema["required"] = list(props)
    if "schema_version" in props:
        props["schema_version"] = {**props["schema_version"], "const": contract.version}
    head = {
        "$schema": DIALECT,
        "$id": contract.schema_id,
        "title": contract.title,
        "x-schema-version": contract.version,
    }
    schema.pop("title", None)
    if contract.model is Config:
        _describe_provider_settings(schema)
    return {**head, **schema}


def _describe_provider_settings(schema: dict[str, Any]) -> None:
    """Give ``settings`` of integrations and inline targets their provider's schema.

    The settings are free-form in the pydantic model (a provider is a plug-in);
    here each installed provider's model is added under ``if provider == id``
    so editors complete and check them. Required settings are not required
    here: an integration may leave some to its entities.
    """
    defs = schema.setdefault("$defs", {})
    branches = []
    broken: dict[str, str] = {}
    for provider in default_registry.all(broken):
        settings = provider.settings_model.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(settings.pop("$defs", {}))
        settings.pop("required", None)
        name = f"settings-{provider.identifier}"
        defs[name] = {**settings, "title": f"{provider.display_name} settings"}
        branches.append(
            {
                "if": {
                    "properties": {"provider": {"const": provider.identifier}},
                    "required": ["provider"],
                },
                "then": {"properties": {"settings": {"$ref": f"#/$defs/{name}"}}},
            }
        )
    for model in ("IntegrationConfig", "TargetConfig"):
        if model in defs:
            defs[model]["allOf"] = branches
    for message in broken.values():
        log.warning("config schema: %s", message)


def export_schemas(directory: Path, contracts: tuple[Contract, ...] = CONTRACTS) -> list[Path]:
    """Write one ``.schema.json`` file per contract into ``directory``; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in contracts:
        path = directory / contract.filename
        path.write_text(json.dumps(json_schema(contract), indent=2, sort_keys=False) + "\n")
        written.append(path)
    return written
