"""Fixtures of the reference API's tests: a client of the ``api`` each module serves."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from cdcsync.refapi import RefApi


@pytest.fixture
async def client(api: RefApi) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the module's reference API (its ``api`` fixture)."""
    async with httpx.AsyncClient(base_url=api.url) as http:
        yield http
