"""Fixtures shared by the sink tests: the reference API, in-process, behind a bearer token."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from cdcsync.refapi import RefApi, serve


@pytest.fixture
def api_token() -> str:
    """The bearer token ``api`` accepts; a test module overrides it to know the token it sends."""
    return "sinks-test-token"


@pytest.fixture
async def api(api_token: str) -> AsyncIterator[RefApi]:
    """The reference API on a free port for the length of one test."""
    async with serve(port=0, token=api_token) as server:
        yield server
