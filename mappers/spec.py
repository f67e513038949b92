"""The declarative map as written in the YAML file, validated by pydantic.

A map is ``external_field -> column spec``. A plain string is a column with the
defaults (both directions, overwrite, no value map), so the original
``{firstName: first_name}`` form stays valid::

    mapping:
      email: email
      status: {column: state, value_map: {active: A, closed: C}, mode: overwrite}
      tags: {column: tags, mode: append}

Validation happens at load: unknown modes and directions, value maps that
cannot be reversed where the pull direction needs them, and two fields pulled
into one column are configuration errors, never surprises at sync time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, RootModel, ValidationError, model_validator

__all__ = ["Direction", "FieldSpec", "MappingSpec", "Mode", "Scalar", "describe_errors"]

#: Which way a field travels: ``push`` source -> external, ``pull`` external -> source.
Direction = Literal["both", "push", "pull"]
#: How a value is written over the current one (pretix's ``assign_properties`` modes).
Mode = Literal["overwrite", "if_new", "if_empty", "append"]
#: A value a value map can hold (JSON scalars, so a map can be reversed).
Scalar = str | int | float | bool | None


class FieldSpec(BaseModel):
    """One external field: its source column, value map, direction and write mode."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str = Field(min_length=1)
    #: source value -> external value; reversed on pull. ``None`` (SQL NULL) passes
    #: through unchanged unless the map names it (a ``~`` key).
    value_map: dict[Scalar, Scalar] | None = None
    #: External value for a source value the map does not name (push); unset -> MappingError.
    value_map_default: Scalar = None
    #: Source value for an external value the reversed map does not name (pull).
    reverse_default: Scalar = None
    direction: Direction = "both"
    mode: Mode = "overwrite"

    @model_validator(mode="before")
    @classmethod
    def _plain_column(cls, data: Any) -> Any:
        """A bare string is shorthand for ``{column: <string>}``."""
        if isinstance(data, str):
            return {"column": data}
        if not isinstance(data, Mapping | FieldSpec):
            raise ValueError(
                f"got a {type(data).__name__}; give a column name or "
                "{column: ..., value_map: ..., direction: ..., mode: ...}"
            )
        return data

    @model_validator(mode="after")
    def _check(self) -> FieldSpec:
        defaults = self.model_fields_set & {"value_map_default", "reverse_default"}
        if defaults and self.value_map is None:
            raise ValueError(f"{', '.join(sorted(defaults))} needs a value_map")
        if self.value_map is not None and self.direction != "push":
            seen: dict[Scalar, Scalar] = {}
            for source, external in self.value_map.items():
                if external in seen:
                    raise ValueError(
                        f"value_map is not invertible: {seen[external]!r} and {source!r} "
                        f"both map to {external!r}; the pull direction could not tell them "
                        "apart (give each its own value, or set direction: push)"
                    )
                seen[external] = source
        return self

    @property
    def pushed(self) -> bool:
        """Whether ``to_external`` writes this field."""
        return self.direction in ("both", "push")

    @property
    def pulled(self) -> bool:
        """Whether ``to_source`` writes this field's column."""
        return self.direction in ("both", "pull")

    @property
    def has_push_default(self) -> bool:
        """Whether ``value_map_default`` was given (``None`` is a valid default)."""
        return "value_map_default" in self.model_fields_set

    @property
    def has_pull_default(self) -> bool:
        """Whether ``reverse_default`` was given (``None`` is a valid default)."""
        return "reverse_default" in self.model_fields_set

    def reverse_map(self) -> dict[Scalar, Scalar] | None:
        """external value -> source value, for the pull direction."""
        if self.value_map is None:
            return None
        return {external: source for source, external in self.value_map.items()}


class MappingSpec(RootModel[dict[str, FieldSpec]]):
    """A whole declarative map: ``external_field -> FieldSpec`` (or a plain column name)."""

    model_config = ConfigDict(frozen=True)

    @model_validator(mode="after")
    def _check(self) -> MappingSpec:
        if not self.root:
            raise ValueError("a mapping needs at least one field")
        pulled: dict[str, str] = {}
        for field, spec in self.root.items():
            if not field:
                raise ValueError("an external field name must not be empty")
            if not spec.pulled:
                continue
            if spec.column in pulled:
                raise ValueError(
                    f"column {spec.column!r} is pulled from both {pulled[spec.column]!r} and "
                    f"{field!r}; set direction: push on all but one of them"
                )
            pulled[spec.column] = field
        return self

    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> MappingSpec:
        """Validate a mapping as read from YAML (raises pydantic's ValidationError)."""
        return cls.model_validate(dict(data))

    @property
    def fields(self) -> dict[str, FieldSpec]:
        """The field specs in file order."""
        return self.root


def describe_errors(exc: ValidationError, where: str = "mapping") -> str:
    """Each problem as ``where.path: message``, one per line, without echoing input values."""
    lines = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"]]
        msg = error["msg"].removeprefix("Value error, ")
        lines.append(f"{'.'.join([where, *loc])}: {msg}")
    return "\n".join(lines)
