"""The person-vs-company rule: one external ``name`` or first/last name, two source shapes.

Many CRMs hold people and organisations in one record type: a person has a
first and last name, an organisation only a ``name``. The source table keeps
them in separate columns. No declarative map can say "which columns depends on
whether there is a first name", so this Python mapper does, and wraps an
optional declarative map for every other field::

    mapper: "cdcsync.mappers.person_company:PersonCompanyMapper"
    mapping: {email: email, phone: phone}
    mapper_options: {company_column: organisation}
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from cdcsync.errors import ConfigurationError
from cdcsync.mappers.base import Mapper, is_empty, require_columns

__all__ = ["PersonCompanyMapper"]

logger = logging.getLogger(__name__)


class PersonCompanyMapper:
    """A record with a first name is a person; one without is a company (its ``name``).

    Push: a row with a company name and no first name sends
    ``{firstName: None, lastName: None, name: <company>}``; any other row sends
    its first and last name and clears ``name``. Pull: external fields with a
    first name fill the first/last name columns and clear the company column;
    without one, ``name`` fills the company column and clears the other two.
    Both directions always overwrite: the three values are one decision.
    """

    def __init__(
        self,
        mapping: Mapper | None = None,
        *,
        first_name_column: str = "first_name",
        last_name_column: str = "last_name",
        company_column: str = "company_name",
        first_name_field: str = "firstName",
        last_name_field: str = "lastName",
        name_field: str = "name",
    ) -> None:
        self.mapping = mapping
        self.first_name_column = first_name_column
        self.last_name_column = last_name_column
        self.company_column = company_column
        self.first_name_field = first_name_field
        self.last_name_field = last_name_field
        self.name_field = name_field
        own_columns = {first_name_column, last_name_column, company_column}
        own_fields = {first_name_field, last_name_field, name_field}
        if len(own_columns) != 3 or len(own_fields) != 3:
            raise ConfigurationError(
                "PersonCompanyMapper: the three columns and the three fields must each be "
                f"distinct; got columns {sorted(own_columns)} and fields {sorted(own_fields)}"
            )
        if mapping is not None:
            clash_fields = own_fields & set(mapping.fields)
            clash_columns = own_columns & set(mapping.pull_columns)
            if clash_fields or clash_columns:
                raise ConfigurationError(
                    "PersonCompanyMapper: the wrapped mapping also maps "
                    f"{sorted(clash_fields | clash_columns)}; remove them from `mapping` "
                    "(this mapper owns the name fields and columns)"
                )
        self._own_columns = frozenset(own_columns)
        self._own_fields = frozenset(own_fields)

    def __repr__(self) -> str:
        return f"PersonCompanyMapper(company_column={self.company_column!r}, {self.mapping!r})"

    @property
    def columns(self) -> frozenset[str]:
        """The name columns plus those the wrapped mapping reads."""
        extra = self.mapping.columns if self.mapping is not None else ()
        return self._own_columns | frozenset(extra)

    @property
    def fields(self) -> frozenset[str]:
        """The name fields plus those the wrapped mapping writes."""
        extra = self.mapping.fields if self.mapping is not None else ()
        return self._own_fields | frozenset(extra)

    @property
    def pull_columns(self) -> frozenset[str]:
        """The name columns plus those the wrapped mapping writes on pull."""
        extra = self.mapping.pull_columns if self.mapping is not None else ()
        return self._own_columns | frozenset(extra)

    def to_external(
        self, row: Mapping[str, Any], *, current: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The wrapped mapping's payload plus firstName/lastName/name by the rule."""
        require_columns(row, self._own_columns)
        payload = self.mapping.to_external(row, current=current) if self.mapping else {}
        company = row[self.company_column]
        first = row[self.first_name_column]
        if not is_empty(company) and is_empty(first):
            payload |= {self.first_name_field: None, self.last_name_field: None}
            payload[self.name_field] = company
        else:
            payload[self.first_name_field] = first
            payload[self.last_name_field] = row[self.last_name_column]
            payload[self.name_field] = None
        return payload

    def to_source(
        self, fields: Mapping[str, Any], *, current: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """The wrapped mapping's columns plus the name columns by the rule.

        When none of the three name fields is present (a partial update), the
        name columns are left alone.
        """
        values = self.mapping.to_source(fields, current=current) if self.mapping else {}
        if not any(f in fields for f in self._own_fields):
            return values
        first = fields.get(self.first_name_field)
        if not is_empty(first):
            values[self.first_name_column] = first
            values[self.last_name_column] = fields.get(self.last_name_field)
            values[self.company_column] = None
        else:
            values[self.first_name_column] = None
            values[self.last_name_column] = None
            values[self.company_column] = fields.get(self.name_field)
        return values
