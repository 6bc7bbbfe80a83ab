"""Test helpers for API-driven automation tests: the API tests' harness (listen, users with tokens), reachable from here."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest
from aiohttp import web

# One harness for every test that calls the API: pytest puts tests/api on the path only when it collects it.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "api"))

from api_harness import create_user_token, listen  # noqa: E402
from frontdesk.api.app import create_app  # noqa: E402
from frontdesk.api.replies import AFTER_COMMIT  # noqa: E402

__all__ = ["create_user_token", "serve", "stepped_api"]


async def serve(app: web.Application) -> AsyncIterator[aiohttp.ClientSession]:
    """A client of ``app`` listening on a free loopback port, until the caller is done."""
    runner, url = await listen(app)
    try:
        async with aiohttp.ClientSession(base_url=url) as client:
            yield client
    finally:
        await runner.cleanup()


@pytest.fixture
async def stepped_api(mail_settings, sessions, blobs) -> AsyncIterator[aiohttp.ClientSession]:  # type: ignore[no-untyped-def]
    """The API sending through the sink; the test runs automation and deliveries itself, step by step."""
    app = create_app(mail_settings, sessions, blobs)
    app[AFTER_COMMIT] = []
    async for client in serve(app):
        yield client
