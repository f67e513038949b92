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
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from cdcsync.schemas.config import Config
from cdcsync.schemas.events import (
    SCHEMA_VERSION,
    ConflictEvent,
    DeadLetter,
    Notification,
    SyncResult,
)

__all__ = ["CONTRACTS", "Contract", "export_schemas", "json_schema"]

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
    return {**head, **schema}


def export_schemas(directory: Path, contracts: tuple[Contract, ...] = CONTRACTS) -> list[Path]:
    """Write one ``.schema.json`` file per contract into ``directory``; returns the paths."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for contract in contracts:
        path = directory / contract.filename
        path.write_text(json.dumps(json_schema(contract), indent=2, sort_keys=False) + "\n")
        written.append(path)
    return written
