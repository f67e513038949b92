"""Reading an HTTP answer in a test: the status it must have, then its JSON body."""

from __future__ import annotations

from typing import Any

import httpx

__all__ = ["json_of"]


def json_of(response: httpx.Response, status: int = 200) -> dict[str, Any]:
    """The JSON object ``response`` holds, once its status is ``status`` (else AssertionError)."""
    if response.status_code != status:
        raise AssertionError(f"expected HTTP {status}, got {response.status_code}: {response.text}")
    body = response.json()
    if not isinstance(body, dict):
        raise AssertionError(f"expected a JSON object, got {response.text[:200]}")
    return body
