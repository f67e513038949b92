"""JSON Pointers (RFC 6901): where an API's answer keeps the items, the object, the next link."""

from __future__ import annotations

from typing import Any, Final

__all__ = ["MISSING", "check_pointer", "escape_token", "resolve"]


class _Missing:
    """The value of a pointer that names nothing (a JSON ``null`` is a value, this is not)."""

    def __repr__(self) -> str:
        return "MISSING"


MISSING: Final = _Missing()


def check_pointer(pointer: str) -> str:
    """``pointer`` if it is a JSON Pointer ("" or "/a/b", with ~0 and ~1 only); else ValueError."""
    if pointer and not pointer.startswith("/"):
        raise ValueError(f'must be a JSON Pointer: "" for the whole body or "/{pointer}"')
    for token in pointer.split("/")[1:]:
        if token.replace("~0", "").replace("~1", "").count("~"):
            raise ValueError(f"{pointer!r}: '~' must be written ~0 (and '/' inside a name ~1)")
    return pointer


def escape_token(name: str) -> str:
    """One member name as a pointer token: ``~`` as ``~0``, ``/`` as ``~1``."""
    return name.replace("~", "~0").replace("/", "~1")


def resolve(document: Any, pointer: str) -> Any:
    """The value ``pointer`` names in ``document``, or :data:`MISSING` if it names nothing."""
    value = document
    for token in pointer.split("/")[1:] if pointer else ():
        token = token.replace("~1", "/").replace("~0", "~")
        if isinstance(value, dict):
            if token not in value:
                return MISSING
            value = value[token]
        elif isinstance(value, list):
            if not (token.isascii() and token.isdigit()) or (
                token != "0" and token.startswith("0")
            ):
                return MISSING
            if int(token) >= len(value):
                return MISSING
            value = value[int(token)]
        else:
            return MISSING
    return value
