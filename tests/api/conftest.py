"""A real listening API application (port 0) and an aiohttp client, on both databases."""

from __future__ import annotations

from typing import AsyncIterator

import aiohttp
import pytest

from frontdesk.api.app import AppExtras, create_app

from api_harness import listen


@pytest.fixture
def app_extras() -> AppExtras:
    """What the daemon would add; tests override this fixture to add readiness checks."""
    return AppExtras()


@pytest.fixture
async def api_url(settings, sessions, blobs, app_extras) -> AsyncIterator[str]:  # type: ignore[no-untyped-def]
    runner, url = await listen(create_app(settings, sessions, blobs, extra=app_extras))
    try:
        yield url
    finally:
        await runner.cleanup()


@pytest.fixture
async def client(api_url: str) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(base_url=api_url) as session:
        yield session
