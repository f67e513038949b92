"""Mappers: translate between a source row and the external object, both ways.

The agent holds one :class:`Mapper` per entity, built from the configuration by
:func:`build_mapper`: a declarative :class:`FieldMap` (field -> column, value
maps, directions, write modes) or a Python mapper such as
:class:`PersonCompanyMapper` for logic a map cannot say.
"""

from cdcsync.mappers.base import Mapper
from cdcsync.mappers.fieldmap import FieldMap, payload_hash
from cdcsync.mappers.loader import build_mapper
from cdcsync.mappers.person_company import PersonCompanyMapper
from cdcsync.mappers.spec import FieldSpec, MappingSpec

__all__ = [
    "FieldMap",
    "FieldSpec",
    "Mapper",
    "MappingSpec",
    "PersonCompanyMapper",
    "build_mapper",
    "payload_hash",
]
