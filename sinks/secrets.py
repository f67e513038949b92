"""Secrets of an integration, read at start-up from environment variables or files.

Values are wrapped in ``SecretStr`` at once, so a repr, a log line or a
validation error shows ``**********``; messages name where a secret comes
from, never what it is.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import SecretStr

from cdcsync.errors import ConfigurationError
from cdcsync.schemas.config import SecretRef

__all__ = ["resolve_secrets"]


def resolve_secrets(
    refs: Mapping[str, SecretRef],
    *,
    where: str,
    environ: Mapping[str, str] | None = None,
) -> dict[str, SecretStr]:
    """Each secret's value, stripped of surrounding whitespace (files end in a newline)."""
    environ = os.environ if environ is None else environ
    values: dict[str, SecretStr] = {}
    for name, ref in refs.items():
        if ref.env is not None:
            value = environ.get(ref.env, "")
        else:
            assert ref.file is not None
            try:
                value = Path(ref.file).expanduser().read_text()
            except OSError as exc:
                raise ConfigurationError(
                    f"{where}.{name}: cannot read the secret from {ref.describe()} "
                    f"({exc.strerror}); create it or fix the path"
                ) from None
        if not value.strip():
            raise ConfigurationError(
                f"{where}.{name}: the {ref.describe()} is not set or empty; "
                "put the secret there before starting the worker"
            )
        values[name] = SecretStr(value.strip())
    return values
